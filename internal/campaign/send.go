package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptrace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// SendHandler runs a recipient's send task, the pipeline of DESIGN.md: the
// campaign still sending this round, a usable sender account, the claim, the
// rendered message, the credits, the account's pacing slot, the provider
// call, the recorded outcome. Every path ends in a recorded state or in a
// retry that provably sent nothing.
type SendHandler struct {
	store    *Store
	provider sender.Provider
	ledger   *quota.CreditLedger
	pacer    *quota.Pacer
	accounts *quota.Accounts
	syncer   *quota.QuotaSyncer
	queue    *Enqueuer
	polls    PollSchedule
	indexed  bool
	log      *zap.Logger
	now      func() time.Time
	specs    specCache
	gates    gateCache

	// maxInlineWait is the longest pacing wait slept in the handler; longer
	// waits go back to the queue, so no worker slot idles through them.
	maxInlineWait time.Duration
	quotaWait     time.Duration
	accountWait   time.Duration
	claimLease    time.Duration
}

// SendDeps are what the send path needs.
type SendDeps struct {
	Store    *Store
	Provider sender.Provider
	Ledger   *quota.CreditLedger
	Pacer    *quota.Pacer
	Accounts *quota.Accounts
	Syncer   *quota.QuotaSyncer // optional: resyncs the ledger after quota_exceeded
	Queue    *Enqueuer          // status polls; recipients released into a newer round
	Polls    PollSchedule
	// IndexForWebhooks keeps the indexes that let the provider's
	// message:sent:new events find their recipients (WEBHOOK_SECRET set).
	IndexForWebhooks bool
	Log              *zap.Logger
	// QuotaWait is how long a recipient waits for credits before it looks
	// again: credits only change when the ledger syncs, so QUOTA_SYNC_INTERVAL
	// (default 1m).
	QuotaWait time.Duration
	// ClaimLease outlasts the provider client's timeout (default 45s, for the
	// client's 30s) and must stay under a minute, when asynq hands a dead
	// worker's task on (see claimScript).
	ClaimLease time.Duration
}

// NewSendHandler returns the handler of TypeSend tasks.
func NewSendHandler(d SendDeps) *SendHandler {
	h := &SendHandler{
		store:         d.Store,
		provider:      d.Provider,
		ledger:        d.Ledger,
		pacer:         d.Pacer,
		accounts:      d.Accounts,
		syncer:        d.Syncer,
		queue:         d.Queue,
		polls:         d.Polls,
		indexed:       d.IndexForWebhooks,
		log:           d.Log,
		now:           time.Now,
		maxInlineWait: time.Second,
		quotaWait:     cmp(d.QuotaWait, time.Minute),
		accountWait:   30 * time.Second,
		claimLease:    cmp(d.ClaimLease, 45*time.Second),
	}
	h.specs.store = d.Store
	return h
}

func cmp(d, fallback time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return fallback
}

// Reasons a running campaign shows while it is not moving.
const (
	ReasonWaitingForQuota   = "waiting for quota"
	ReasonWaitingForAccount = "waiting for a sender account"
	reasonAuthFailed        = "provider auth failed"
)

// heldWait is how often a send task of a campaign whose upload is still
// arriving looks again.
const heldWait = 250 * time.Millisecond

// ProcessTask implements asynq.Handler.
func (h *SendHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p sendPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Campaign == "" {
		return fmt.Errorf("malformed send task %q: %w", t.Payload(), asynq.SkipRetry)
	}
	gate, err := h.gates.get(ctx, h.store, p.Campaign, false)
	if err == nil && (gate.round != p.Round || gate.status != StatusRunning) {
		// Never drop a task on a cached view: a resume may have just
		// started this task's round.
		gate, err = h.gates.get(ctx, h.store, p.Campaign, true)
	}
	if errors.Is(err, ErrNotFound) {
		return nil // the campaign was deleted: nothing to send
	}
	if err != nil {
		return err
	}
	if gate.round != p.Round || gate.status != StatusRunning {
		// An outdated round, or a campaign paused, cancelled or not started:
		// resuming or starting it enqueues the recipients in a new round.
		return nil
	}
	if gate.held {
		// The upload creating the campaign is still arriving: a late field
		// may yet change it, and a broken upload must leave nothing sent.
		return &WaitError{Delay: heldWait, Reason: "the upload is still arriving"}
	}
	spec, err := h.specs.get(ctx, p.Campaign)
	if err != nil {
		return err
	}
	log := h.log.With(zap.String("campaign", p.Campaign), zap.Int64("seq", p.Seq))
	if spec.window != nil {
		wait, err := h.untilWindowOpens(ctx, spec, p)
		if err != nil {
			return err
		}
		if wait != nil {
			return wait
		}
	}

	account, unusable, err := h.pickAccount(ctx, spec, p.Seq)
	if err != nil {
		return err
	}
	if unusable != "" {
		h.store.setReason(ctx, p.Campaign, ReasonWaitingForAccount+": "+unusable)
		return &WaitError{Delay: h.accountWait, Reason: ReasonWaitingForAccount}
	}
	attempt := newAttemptID()
	claim, err := h.store.claim(ctx, p.Campaign, p.Seq, p.Round, account, attempt, h.claimLease, h.now())
	if err != nil {
		return err
	}
	switch claim.outcome {
	case "claimed":
	case "unknown":
		log.Warn("an earlier attempt died during the provider call; recipient marked unknown")
		if values := decodeRow(claim.detail); len(values) > spec.phoneIdx {
			h.noteUnknown(ctx, p, values[spec.phoneIdx], log)
		}
		return nil
	default: // settled, in flight in another attempt, outdated, campaign stopped
		return nil
	}
	p.attempt = attempt

	msg, err := spec.message(decodeRow(claim.detail), p.Campaign, account)
	if err != nil {
		return h.finish(ctx, p, record{State: StateFailed, Reason: err.Error(), Account: account}, 0, log)
	}
	reservation, err := h.ledger.Reserve(ctx, msg.Credits())
	if err != nil {
		if rerr := h.releaseClaim(ctx, p, "no credits: "+err.Error(), log); rerr != nil {
			return rerr
		}
		if errors.Is(err, quota.ErrNotSynced) {
			// A fresh Redis: the ledger has never read the quota. Ask for a
			// read and look again as soon as it is there, rather than a sync
			// interval later.
			delay := 2 * time.Second
			if h.syncer != nil {
				synced, serr := h.syncer.AwaitFirstSync(ctx, time.Second)
				if serr != nil {
					log.Warn("first quota read", zap.Error(serr))
				}
				if synced {
					delay = 10 * time.Millisecond
				}
			}
			return &WaitError{Delay: delay, Reason: "the credit ledger has not read the quota yet"}
		}
		if errors.Is(err, quota.ErrInsufficientCredits) {
			h.store.setReason(ctx, p.Campaign, ReasonWaitingForQuota)
			return &WaitError{Delay: h.quotaWait, Reason: ReasonWaitingForQuota}
		}
		return err
	}

	// The account's pacing slot last, right before the provider call, so
	// the gap the provider sees between two sends is the interval, not the
	// interval blurred by claims, renders and reservations. A wait beyond a
	// short nap gives everything back: nothing has been sent.
	slept, err := h.waitForSlot(ctx, account)
	if err == nil && slept {
		// A pause (or cancel) during the nap must stop this send too.
		var g sendGate
		if g, err = h.gates.get(ctx, h.store, p.Campaign, true); err == nil && (g.status != StatusRunning || g.round != p.Round) {
			h.settleCredits(reservation, false, log)
			return h.releaseClaim(ctx, p, "the campaign stopped", log)
		}
	}
	if err != nil {
		h.settleCredits(reservation, false, log)
		if rerr := h.releaseClaim(ctx, p, "waiting for the account's turn", log); rerr != nil {
			return rerr
		}
		return err
	}

	receipt, sendErr := h.sendOnTime(ctx, account, msg, log)
	if sendErr == nil {
		h.settleCredits(reservation, true, log)
		if err := h.finish(ctx, p, record{State: StateSent, Account: account, UID: receipt.MessageUID}, msg.Credits(), log); err != nil {
			return err
		}
		if h.indexed {
			if err := h.store.indexMessage(context.WithoutCancel(ctx), receipt.MessageUID, p.Campaign, p.Seq); err != nil {
				log.Error("index a sent message for webhooks", zap.Error(err))
			}
		}
		h.track(ctx, p, log)
		return nil
	}
	return h.onSendError(ctx, p, account, msg.Phone, sendErr, reservation, log)
}

// onSendError records what a failed provider call means for the recipient,
// the account and the campaign: DESIGN.md's error table.
func (h *SendHandler) onSendError(ctx context.Context, p sendPayload, account, phone string, sendErr error, res *quota.Reservation, log *zap.Logger) error {
	var pe *sender.Error
	if !errors.As(sendErr, &pe) {
		pe = &sender.Error{Kind: sender.Transient, Message: sendErr.Error(), Err: sendErr}
	}
	log = log.With(zap.String("kind", pe.Kind.String()), zap.Int("http_status", pe.HTTPStatus), zap.String("code", pe.Code))
	// Only a message that may have gone out keeps its credits spent.
	h.settleCredits(res, pe.Kind == sender.OutcomeUnknown, log)

	switch {
	case pe.Kind == sender.OutcomeUnknown:
		log.Warn("provider outcome unknown; not resending", zap.Error(sendErr))
		err := h.finish(ctx, p, record{State: StateUnknown, Reason: "the message may have been sent (" + pe.Reason() + "); it is not sent again, to avoid a duplicate", Account: account}, 0, log)
		h.noteUnknown(ctx, p, phone, log)
		return err

	case pe.Kind == sender.Invalid && account != "" && onlyField(pe, "whatsapp_account_phone"):
		// The account, not the recipient: disconnected, or not in the
		// workspace. Rest it and let the recipient go through another.
		if err := h.releaseClaim(ctx, p, pe.Reason(), log); err != nil {
			return err
		}
		if err := h.accounts.MarkDisconnected(context.WithoutCancel(ctx), account, pe.Reason()); err != nil {
			return err
		}
		log.Warn("sender account refused by the provider; resting it", zap.String("account", account), zap.String("reason", pe.Reason()))
		return &WaitError{Delay: 10 * time.Millisecond, Reason: "sender account refused"}

	case pe.Kind == sender.Invalid || pe.Kind == sender.NotFound:
		return h.finish(ctx, p, record{State: StateFailed, Reason: "provider rejected the message: " + pe.Reason(), Account: account}, 0, log)

	case pe.Kind == sender.AuthFailed || pe.Kind == sender.Forbidden:
		// Nothing will go through until someone fixes the token or the plan:
		// pause once instead of failing every recipient or storming retries.
		if err := h.releaseClaim(ctx, p, pe.Reason(), log); err != nil {
			return err
		}
		reason := reasonAuthFailed + ": " + pe.Reason()
		if pe.Kind == sender.Forbidden {
			reason = "provider refused: " + pe.Reason()
		}
		err := h.store.Pause(context.WithoutCancel(ctx), p.Campaign, reason, h.now())
		var te *TransitionError
		switch {
		case err == nil:
			log.Error("campaign paused", zap.String("reason", reason))
		case errors.As(err, &te):
			// Paused (or ended) already, by another send that met the same answer.
		default:
			return err
		}
		return nil

	case pe.Kind == sender.QuotaExceeded:
		if err := h.releaseClaim(ctx, p, pe.Reason(), log); err != nil {
			return err
		}
		if err := h.ledger.Exhausted(context.WithoutCancel(ctx)); err != nil {
			log.Error("mark the ledger exhausted", zap.Error(err))
		}
		if h.syncer != nil {
			if err := h.syncer.SyncNow(context.WithoutCancel(ctx)); err != nil {
				log.Warn("quota resync after quota_exceeded", zap.Error(err))
			}
		}
		h.store.setReason(ctx, p.Campaign, ReasonWaitingForQuota)
		return &WaitError{Delay: h.quotaWait, Reason: ReasonWaitingForQuota}

	case pe.Kind == sender.RateLimited:
		if err := h.releaseClaim(ctx, p, pe.Reason(), log); err != nil {
			return err
		}
		delay := pe.RetryAfter
		if delay <= 0 {
			delay = time.Second + rand.N(2*time.Second)
		}
		return &WaitError{Delay: delay, Reason: "provider rate limit", NotEarlier: true}

	default: // Transient: definitely not sent
		if err := h.releaseClaim(ctx, p, pe.Reason(), log); err != nil {
			return err
		}
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, ok := asynq.GetMaxRetry(ctx)
		if ok && retried >= maxRetry {
			// The release above put it back to queued; it fails from there.
			return h.finishFrom(ctx, p, StateQueued, record{State: StateFailed, Reason: fmt.Sprintf("provider unavailable after %d attempts: %s", retried+1, pe.Reason()), Account: account}, 0, log)
		}
		return fmt.Errorf("send recipient %d of campaign %s: %w", p.Seq, p.Campaign, sendErr)
	}
}

func onlyField(pe *sender.Error, field string) bool {
	if len(pe.Fields) == 0 {
		return false
	}
	for _, f := range pe.Fields {
		if !slices.Contains(f.Fields, field) {
			return false
		}
	}
	return true
}

// noteUnknown lets a later message:sent:new webhook resolve an unknown
// outcome.
func (h *SendHandler) noteUnknown(ctx context.Context, p sendPayload, phone string, log *zap.Logger) {
	if !h.indexed || phone == "" {
		return
	}
	if err := h.store.noteUnknown(context.WithoutCancel(ctx), phone, p.Campaign, p.Seq); err != nil {
		log.Error("index an unknown outcome for webhooks", zap.Error(err))
	}
}

// untilWindowOpens answers a wait when the recipient's local time is outside
// the campaign's send window.
func (h *SendHandler) untilWindowOpens(ctx context.Context, spec *sendSpec, p sendPayload) (*WaitError, error) {
	phone, err := h.store.phoneOf(ctx, p.Campaign, p.Seq, spec.phoneIdx)
	if err != nil {
		return nil, err
	}
	now := h.now()
	open := spec.window.NextOpen(now, spec.window.Location(phone))
	if !open.After(now) {
		return nil, nil
	}
	// A little spread, so a window opening on the hour does not wake a whole
	// campaign in the same second.
	return &WaitError{Delay: open.Sub(now) + rand.N(time.Minute), Reason: "outside the send window", NotEarlier: true}, nil
}

// track starts following a sent message's delivery status. A failure here
// costs the recipient its tracking, not its message: it is logged, not
// retried (a retry would find the recipient settled and do nothing).
func (h *SendHandler) track(ctx context.Context, p sendPayload, log *zap.Logger) {
	at, ok := h.polls.at(h.now(), 0)
	if !ok {
		return
	}
	if err := h.queue.enqueuePoll(context.WithoutCancel(ctx), p.Campaign, p.Seq, 0, at); err != nil {
		log.Error("could not schedule the status polls of a sent message", zap.Error(err))
	}
}

// pickAccount is the sender account for recipient seq: its turn among the
// campaign's accounts or, when that one is paused or disconnected, one of
// the usable others, also in turn, so the load of an unusable account is
// spread over all the rest. When none is usable it answers why.
func (h *SendHandler) pickAccount(ctx context.Context, spec *sendSpec, seq int64) (string, string, error) {
	if len(spec.accounts) == 0 {
		return "", "", nil // the provider's default account
	}
	var usable, why []string
	preferred := accountOf(spec.accounts, seq)
	for _, a := range spec.accounts {
		ok, reason, err := h.accounts.Usable(ctx, a)
		if err != nil {
			return "", "", err
		}
		if !ok {
			why = append(why, reason)
			continue
		}
		if a == preferred {
			return a, "", nil
		}
		usable = append(usable, a)
	}
	if len(usable) == 0 {
		return "", strings.Join(why, "; "), nil
	}
	return usable[seq%int64(len(usable))], "", nil
}

// waitForSlot takes the account's pacing slot, sleeping through short waits
// (and saying whether it slept).
// A longer wait books this task a slot of its own on the account's timeline
// and sends it back to the queue until then: retrying "at the next free
// slot" instead would have every task that missed one collide again at the
// next, and again, for as long as the backlog lasts.
func (h *SendHandler) waitForSlot(ctx context.Context, account string) (bool, error) {
	slept := false
	for {
		wait, err := h.pacer.Take(ctx, account)
		if err != nil {
			return slept, err
		}
		if wait <= 0 {
			return slept, nil
		}
		if wait > h.maxInlineWait {
			slot, _, err := h.pacer.Plan(ctx, account, 1)
			if err != nil {
				return slept, err
			}
			return slept, &WaitError{Delay: max(time.Until(slot), wait), Reason: "pacing"}
		}
		slept = true
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return slept, ctx.Err()
		case <-timer.C:
		}
	}
}

// lateSendSlack is how long a send may take from its pacing slot to the
// wire before the account's next slot is moved after it. A few ms is the
// normal cost of the API-call limiter and the HTTP client; more means the
// process was held back, and without the move the provider would see this
// send and the account's next one closer than the interval.
const lateSendSlack = 5 * time.Millisecond

// sendOnTime calls the provider right after the account's pacing slot was
// taken, and reports a send that reached the wire late to the pacer.
func (h *SendHandler) sendOnTime(ctx context.Context, account string, msg sender.Message, log *zap.Logger) (sender.Receipt, error) {
	slotAt := time.Now()
	var wroteAfter atomic.Int64 // since slotAt, of the last request written; 0: none
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wroteAfter.Store(int64(max(time.Since(slotAt), 1)))
			}
		},
	})
	receipt, err := h.provider.Send(ctx, msg)
	if late := time.Duration(wroteAfter.Load()); late > lateSendSlack {
		wentOutAgo := time.Since(slotAt) - late
		if perr := h.pacer.WentOutLate(context.WithoutCancel(ctx), account, wentOutAgo); perr != nil {
			log.Warn("move the account's next send slot after a late send", zap.Duration("late", late), zap.Error(perr))
		}
	}
	return receipt, err
}

// finish records the outcome of a claimed attempt.
func (h *SendHandler) finish(ctx context.Context, p sendPayload, rec record, credits int, log *zap.Logger) error {
	return h.finishFrom(ctx, p, StateSending, rec, credits, log)
}

func (h *SendHandler) finishFrom(ctx context.Context, p sendPayload, from State, rec record, credits int, log *zap.Logger) error {
	// The outcome must be written even when the task's context is ending
	// (shutdown): a message that went out and is not recorded would be
	// marked unknown by the next attempt.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	owner := p.attempt
	if from != StateSending {
		owner = ""
	}
	var err error
	for try := 1; try <= 3; try++ {
		var ok bool
		detail := rec.Reason
		if rec.State == StateSent {
			detail = rec.UID
		}
		ok, err = h.store.settle(ctx, p.Campaign, p.Seq, from, owner, rec, credits, h.now(), detail)
		if err == nil {
			if !ok {
				log.Warn("recipient was settled by someone else meanwhile", zap.String("state", string(rec.State)))
			}
			return nil
		}
		time.Sleep(time.Duration(try) * 200 * time.Millisecond) // a Redis failover takes a moment
	}
	log.Error("could not record the outcome", zap.String("state", string(rec.State)), zap.String("message_uid", rec.UID), zap.Error(err))
	// Not returned: a retry would find the claim lapsed and mark the
	// recipient unknown, which is what it is now.
	return nil
}

// releaseClaim gives the claim back: the provider call provably did not
// happen. why goes into the recipient's history.
func (h *SendHandler) releaseClaim(ctx context.Context, p sendPayload, why string, log *zap.Logger) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	released, err := h.store.settle(ctx, p.Campaign, p.Seq, StateSending, p.attempt, record{State: StateQueued}, 0, h.now(), why)
	if err != nil {
		log.Error("could not release the claim; the next attempt will mark the recipient unknown", zap.Error(err))
		return err
	}
	if !released {
		return nil
	}
	// A pause and resume while this attempt held the claim: the resume's
	// start task saw the recipient "sending" and left it out of the new
	// round, and this task, of the old round, will find itself outdated.
	// Without a task in the current round the recipient would stay queued.
	g, err := h.store.gate(ctx, p.Campaign)
	if err != nil || g.status != StatusRunning || g.round == p.Round {
		return nil // paused: the resume enqueues it; same round: this task retries it
	}
	spec, err := h.specs.get(ctx, p.Campaign)
	if err != nil {
		log.Error("re-enqueue a released recipient in the current round", zap.Error(err))
		return err
	}
	if _, err := h.queue.enqueueBatch(ctx, p.Campaign, spec.accounts, g.round, []int64{p.Seq}, 1); err != nil {
		log.Error("re-enqueue a released recipient in the current round", zap.Error(err))
		return err
	}
	return nil
}

// settleCredits commits a reservation (the provider took, or may have
// taken, the credits) or releases it.
func (h *SendHandler) settleCredits(r *quota.Reservation, spent bool, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	if spent {
		err = r.Commit(ctx)
	} else {
		err = r.Release(ctx)
	}
	if err != nil {
		log.Error("settle credits", zap.Bool("spent", spent), zap.Error(err))
	}
}

// newAttemptID names one run of a task, the owner of its claim.
func newAttemptID() string {
	return strconv.FormatUint(rand.Uint64(), 36)
}

// WaitError is a send that must wait (pacing, quota, a sender account, the
// provider's rate limit). It is not a failure: asynq retries it after Delay
// without spending one of the task's retries.
type WaitError struct {
	Delay  time.Duration
	Reason string
	// NotEarlier marks a wait that must not be cut short (the provider's
	// Retry-After). Pacing waits may be: the send path sleeps off the rest.
	NotEarlier bool
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("waiting %s: %s", e.Delay.Round(time.Millisecond), e.Reason)
}

// IsFailure is the asynq server's IsFailure: waits are not failures.
func IsFailure(err error) bool {
	var w *WaitError
	return !errors.As(err, &w)
}

// RetryDelay is the asynq server's RetryDelayFunc: a wait retries when the
// limiter said; a failure backs off exponentially (1s, 2s, 4s ... 10 min)
// with jitter, so a provider outage is not met by a synchronized storm.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var w *WaitError
	if errors.As(err, &w) {
		if w.NotEarlier {
			return notEarlier(w.Delay)
		}
		return max(w.Delay, 10*time.Millisecond)
	}
	backoff := time.Second << min(n, 10)
	backoff = min(backoff, 10*time.Minute)
	return notEarlier(backoff/2 + rand.N(backoff/2+1))
}

// notEarlier stretches a delay to the next whole second: asynq keeps retry
// and schedule times in whole seconds, rounded down, so a task due at
// 12:00:00.9 runs at 12:00:00, almost a second early.
func notEarlier(d time.Duration) time.Duration {
	now := time.Now()
	at := now.Add(d)
	if at.Equal(at.Truncate(time.Second)) {
		return d
	}
	return at.Truncate(time.Second).Add(time.Second).Sub(now)
}

// ControlHandler runs the tasks that put a campaign's recipients on the
// queue: TypeStart (a scheduled campaign at send_at, a resumed one at once)
// and TypeRetry (recipients requeued by retry-failed).
type ControlHandler struct {
	store *Store
	queue *Enqueuer
	log   *zap.Logger
}

// NewControlHandler returns the handler of TypeStart and TypeRetry tasks.
func NewControlHandler(store *Store, queue *Enqueuer, log *zap.Logger) *ControlHandler {
	return &ControlHandler{store: store, queue: queue, log: log}
}

// ProcessTask implements asynq.Handler. Replaying either task is harmless:
// asynq's task ids make enqueueing a recipient twice in one round a no-op.
func (h *ControlHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p startPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Campaign == "" {
		return fmt.Errorf("malformed %s task %q: %w", t.Type(), t.Payload(), asynq.SkipRetry)
	}
	if t.Type() == TypeRetry {
		return h.retry(ctx, p.Campaign)
	}
	outcome, round, err := h.store.start(ctx, p.Campaign, p.Version, time.Now())
	if err != nil {
		return err
	}
	if outcome != "started" && outcome != "running" {
		return nil // outdated, cancelled, paused, gone, or moved to a later send_at
	}
	c, err := h.store.Get(ctx, p.Campaign)
	if err != nil {
		return err
	}
	n, err := h.queue.enqueueQueued(ctx, h.store, c.ID, c.Accounts, round)
	if err != nil {
		return err
	}
	h.log.Info("campaign started", zap.String("campaign", c.ID), zap.Int64("round", round), zap.Int64("recipients", n))
	return nil
}

// retry enqueues, in the campaign's current round, the recipients a
// retry-failed put back in the queue, a batch at a time; the list shrinks
// only after a batch is enqueued, so a crash repeats at most one batch.
func (h *ControlHandler) retry(ctx context.Context, id string) error {
	c, err := h.store.Get(ctx, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	gate, err := h.store.gate(ctx, id)
	if err != nil {
		return err
	}
	for {
		batch, err := h.store.rdb.LRange(ctx, retryListKey(id), 0, batchRows-1).Result()
		if err != nil {
			return fmt.Errorf("read the retry list of campaign %s: %w", id, err)
		}
		if len(batch) == 0 {
			return nil
		}
		seqs := make([]int64, 0, len(batch))
		for _, v := range batch {
			if seq, err := strconv.ParseInt(v, 10, 64); err == nil {
				seqs = append(seqs, seq)
			}
		}
		latest, err := h.queue.enqueueBatch(ctx, id, c.Accounts, gate.round, seqs, 16)
		if err != nil {
			return err
		}
		if err := h.store.notePlanEnd(ctx, id, latest); err != nil {
			return err
		}
		if err := h.store.rdb.LTrim(ctx, retryListKey(id), int64(len(batch)), -1).Err(); err != nil {
			return fmt.Errorf("trim the retry list of campaign %s: %w", id, err)
		}
	}
}

// sendSpec is what every recipient of a campaign shares, parsed once per
// worker and campaign.
type sendSpec struct {
	name     string
	template *templating.Template
	accounts []string
	label    string
	fileUID  string
	columns  []string
	phoneIdx int
	fileIdx  int // the per-recipient file_uid column, or -1
	window   *Window
	loadedAt time.Time
}

// message renders one recipient's message from its row.
func (s *sendSpec) message(values []string, campaignID, account string) (sender.Message, error) {
	row := make(map[string]string, len(s.columns))
	for i, col := range s.columns {
		if i < len(values) {
			row[col] = values[i]
		}
	}
	text, err := s.template.Render(row, templating.Campaign{ID: campaignID, Name: s.name})
	if err != nil {
		return sender.Message{}, err
	}
	msg := sender.Message{Phone: row[s.columns[s.phoneIdx]], AccountPhone: account, Text: text, FileUID: s.fileUID, Label: s.label}
	if s.fileIdx >= 0 && row[s.columns[s.fileIdx]] != "" {
		msg.FileUID = row[s.columns[s.fileIdx]]
	}
	if strings.TrimSpace(msg.Text) == "" && msg.FileUID == "" {
		return sender.Message{}, errors.New("the rendered message is empty")
	}
	return msg, nil
}

// gateCache keeps each campaign's status and round for a quarter second.
// The gate only spares stopped campaigns a pacing slot and a credit
// reservation; the claim checks both again atomically, so a pause still
// stops every send at once, and the cache saves a Redis round trip on
// nearly every message of a running campaign. Only a "go ahead" may come
// from the cache: a task is dropped on a fresh read alone.
type gateCache struct {
	mu    sync.Mutex
	gates map[string]cachedGate
}

type cachedGate struct {
	gate sendGate
	at   time.Time
}

const gateCacheFor = 250 * time.Millisecond

func (c *gateCache) get(ctx context.Context, store *Store, id string, fresh bool) (sendGate, error) {
	c.mu.Lock()
	g, ok := c.gates[id]
	c.mu.Unlock()
	if ok && !fresh && time.Since(g.at) < gateCacheFor {
		return g.gate, nil
	}
	gate, err := store.gate(ctx, id)
	if err != nil {
		return gate, err
	}
	c.mu.Lock()
	if c.gates == nil || len(c.gates) >= specCacheSize {
		c.gates = make(map[string]cachedGate)
	}
	c.gates[id] = cachedGate{gate: gate, at: time.Now()}
	c.mu.Unlock()
	return gate, nil
}

// specCache keeps parsed campaigns for a while. What it holds never changes
// after a campaign is created, so staleness is harmless; the bound only
// keeps memory in check.
type specCache struct {
	store *Store
	mu    sync.Mutex
	specs map[string]*sendSpec
}

const (
	specCacheTTL  = 10 * time.Minute
	specCacheSize = 1024
)

func (c *specCache) get(ctx context.Context, id string) (*sendSpec, error) {
	c.mu.Lock()
	s, ok := c.specs[id]
	c.mu.Unlock()
	if ok && time.Since(s.loadedAt) < specCacheTTL {
		return s, nil
	}
	h, err := c.store.sendingSpec(ctx, id)
	if err != nil {
		return nil, err
	}
	tmpl, err := templating.Parse(id, h[fTemplate])
	if err != nil {
		return nil, fmt.Errorf("campaign %s has a template that does not parse: %w", id, err)
	}
	s = &sendSpec{
		name:     h[fName],
		template: tmpl,
		label:    h[fLabel],
		fileUID:  h[fFileUID],
		loadedAt: time.Now(),
	}
	_ = json.Unmarshal([]byte(h[fAccounts]), &s.accounts)
	_ = json.Unmarshal([]byte(h[fColumns]), &s.columns)
	s.phoneIdx = max(0, indexOf(s.columns, h[fPhoneColumn]))
	s.fileIdx = indexOf(s.columns, fileColumn)
	s.window = decodeWindow(h[fWindow])
	c.mu.Lock()
	if c.specs == nil || len(c.specs) >= specCacheSize {
		c.specs = make(map[string]*sendSpec) // crude, but a worker rarely juggles a thousand campaigns
	}
	c.specs[id] = s
	c.mu.Unlock()
	return s, nil
}
