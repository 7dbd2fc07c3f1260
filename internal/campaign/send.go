package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/audience"
	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
)

// SendHandler runs a recipient's send task, the pipeline of DESIGN.md, read
// top to bottom in ProcessTask: the campaign still sending this round, a
// usable sender account, the recipient not yet sent nor held, its audience,
// the rendered message, the credits, the account's pacing slot, then the
// claim and dispatch mark in one step right before the provider call, and
// the recorded outcome. Every path ends in a recorded state, in a retry that
// provably sent nothing, or in "unconfirmed", which reconciliation settles.
type SendHandler struct {
	store     *Store
	provider  sender.Provider
	caps      sender.Capabilities // the provider's: credits, statuses, pacing, limits
	canLookUp bool                // unconfirmed sends can be looked up (finderOf)
	ledger    *quota.CreditLedger
	pacer     *quota.Pacer
	accounts  *quota.Accounts
	daily     *quota.DailyLimits // nil: no account has daily limits
	health    *quota.Health      // nil: no account health is kept
	syncer    *quota.QuotaSyncer
	queue     *Enqueuer
	service   *Service // a released recipient back in the queue in the current round
	polls     PollSchedule
	reconcile ReconcilePolicy
	indexed   bool
	log       *zap.Logger
	now       func() time.Time
	specs     specCache
	gates     gateCache
	rows      rowCache
	audience  AudienceConfig // suppressions, the frequency cap, the last-messaged index
	// untroubled reports whether this run of a task follows no failed run
	// of it (untroubledRun; tests replace it).
	untroubled func(context.Context) bool

	// maxInlineWait is the longest pacing wait slept in the handler; longer
	// waits go back to the queue, so no worker slot idles through them. A
	// second (asynq's due times are whole seconds) plus sendLead: what a
	// task queued for its slot may have to sleep.
	maxInlineWait time.Duration
	quotaWait     time.Duration
	accountWait   time.Duration
	claimLease    time.Duration
	apiCallsWait  time.Duration
}

// SendDeps are what the send path needs.
type SendDeps struct {
	Store    *Store
	Provider sender.Provider
	Ledger   *quota.CreditLedger
	Pacer    *quota.Pacer
	Accounts *quota.Accounts
	// Daily holds accounts to their daily caps and warm-up ramps (optional).
	Daily *quota.DailyLimits
	// Health records each send's outcome in its account's health (optional).
	Health *quota.Health
	Syncer *quota.QuotaSyncer // optional: resyncs the ledger after quota_exceeded
	Queue  *Enqueuer          // status polls, reconciliation; recipients released into a newer round
	Polls  PollSchedule
	// Reconcile says when unconfirmed sends are looked up at the provider.
	Reconcile ReconcilePolicy
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
	// APICallsWait is how long a send waits when the workspace's API calls
	// are spent before it looks again (default 5m, spread by up to a
	// minute): nothing announces their renewal.
	APICallsWait time.Duration
	// Audience is the suppression list, FREQUENCY_CAP and REPLY_WINDOW
	// (zero: none of them).
	Audience AudienceConfig
}

// NewSendHandler returns the handler of TypeSend tasks.
func NewSendHandler(d SendDeps) *SendHandler {
	h := &SendHandler{
		store:         d.Store,
		provider:      d.Provider,
		caps:          d.Provider.Capabilities(),
		canLookUp:     finderOf(d.Provider) != nil,
		ledger:        d.Ledger,
		pacer:         d.Pacer,
		accounts:      d.Accounts,
		daily:         d.Daily,
		health:        d.Health,
		syncer:        d.Syncer,
		queue:         d.Queue,
		service:       NewService(d.Store, d.Queue),
		polls:         d.Polls.For(d.Provider.Capabilities()),
		reconcile:     d.Reconcile.withDefaults(),
		indexed:       d.IndexForWebhooks,
		log:           d.Log,
		now:           time.Now,
		maxInlineWait: time.Second + sendLead,
		quotaWait:     orDefault(d.QuotaWait, time.Minute),
		accountWait:   30 * time.Second,
		claimLease:    orDefault(d.ClaimLease, 45*time.Second),
		apiCallsWait:  orDefault(d.APICallsWait, apiCallsWait),
		audience:      d.Audience,
		untroubled:    untroubledRun,
	}
	h.specs.store, h.specs.caps = d.Store, h.caps
	return h
}

// untroubledRun reports whether this run of a task follows no failed run of
// it: asynq counts failures, and not waits (IsFailure), and a worker that
// died mid-send counts as one when asynq hands its task on. False outside
// an asynq server.
func untroubledRun(ctx context.Context) bool {
	n, ok := asynq.GetRetryCount(ctx)
	return ok && n == 0
}

func orDefault(d, fallback time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return fallback
}

// Reasons a running campaign shows while it is not moving.
const (
	ReasonWaitingForQuota    = "waiting for quota"
	ReasonWaitingForAccount  = "waiting for a sender account"
	ReasonWaitingForAPICalls = "waiting for API calls: the workspace's API calls for this period are spent"
	reasonAuthFailed         = "provider auth failed"
)

// heldWait is how often a send task of a campaign whose upload is still
// arriving looks again.
const heldWait = 250 * time.Millisecond

// attemptRun is one run of a send task: what it names, and what it has
// taken so far.
type attemptRun struct {
	sendPayload
	id      string // the attempt, the owner of the claim once it holds one
	account string
	hold    *quota.Hold // the account's slot, held until the answer (a provider that answers after sending)
	// slotTaken is when the account's pacing slot was taken (zero: not
	// yet): a send that reaches the wire well after it moves the account's
	// next slot (sendOnTime).
	slotTaken time.Time
	day       *quota.DayReservation // one of the account's messages of today
	winner    string                // the campaign's A/B winner once chosen
	// created and started are the campaign's created_at and whether its
	// started_at is set, as the caches know them: the claim need not read
	// them.
	created *time.Time
	started bool
	// claimed says the attempt holds the recipient's claim: taken right
	// before its request was written, so from then on its message may have
	// gone out.
	claimed    bool
	dispatched time.Time // when the claim (and dispatch mark) was taken
	// capAddress is the address whose frequency-cap slot this attempt
	// reserved ("": none), released when the message does not go out.
	capAddress string
	// audienceAddress is the address the suppression list is read for
	// with the claim ("": none applies, see admitAudience); unwritten says
	// the claim was taken but the list held the recipient back, so its
	// request was never written.
	audienceAddress string
	unwritten       bool
	// confirms is the spec's: a keyword's confirmation records no "last
	// messaged" entry (noteMessaged).
	confirms string
	log      *zap.Logger
}

// ProcessTask implements asynq.Handler.
func (h *SendHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p sendPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Campaign == "" {
		return fmt.Errorf("malformed send task %q: %w", t.Payload(), asynq.SkipRetry)
	}
	run := &attemptRun{sendPayload: p, id: NewAttemptID(),
		log: h.log.With(zap.String("campaign", p.Campaign), zap.Int64("seq", p.Seq))}

	spec, err := h.admit(ctx, run)
	if spec == nil || err != nil {
		return err
	}
	run.confirms = spec.confirms
	if err := h.chooseAccount(ctx, spec, run); err != nil {
		return err
	}
	row, err := h.look(ctx, spec, run)
	if row == nil || err != nil {
		return err
	}
	if done, err := h.admitAudience(ctx, spec, run, row); done {
		return err
	}
	msg, err := spec.message(row, run.Campaign, run.account, run.winner)
	if err != nil {
		return h.finish(ctx, run, record{State: StateFailed, Reason: err.Error(), Account: run.account}, 0)
	}
	reservation, err := h.reserveCredits(ctx, run, msg)
	if err != nil {
		return err
	}
	if err := h.reserveDay(ctx, run, reservation); err != nil {
		return err
	}
	if ok, err := h.takeSlot(ctx, run, reservation); !ok {
		return err
	}
	receipt, sendErr := h.dispatch(ctx, run, msg)
	if sendErr != nil {
		return h.onSendError(ctx, run, msg, sendErr, reservation)
	}
	return h.recordSent(ctx, run, msg, receipt, reservation)
}

// admit answers the campaign's shared spec when this task may go on: its
// campaign is running in the task's round, its upload has arrived, and the
// recipient is inside the send window. A nil spec with a nil error means
// there is nothing to do.
func (h *SendHandler) admit(ctx context.Context, run *attemptRun) (*sendSpec, error) {
	gate, err := h.gates.get(ctx, h.store, run.Campaign, false)
	if err == nil && (gate.round != run.Round || gate.status != StatusRunning) {
		// Never drop a task on a cached view: a resume may have just
		// started this task's round.
		gate, err = h.gates.get(ctx, h.store, run.Campaign, true)
	}
	if errors.Is(err, ErrNotFound) {
		return nil, nil // the campaign was deleted: nothing to send
	}
	if err != nil {
		return nil, err
	}
	if gate.round != run.Round || gate.status != StatusRunning {
		// An outdated round, or a campaign paused, cancelled or not started:
		// resuming or starting it enqueues the recipients in a new round.
		return nil, nil
	}
	if gate.held {
		// The upload creating the campaign is still arriving: a late field
		// may yet change it, and a broken upload must leave nothing sent.
		return nil, h.whileUploading(ctx, run)
	}
	spec, err := h.specs.get(ctx, run.Campaign)
	if err != nil {
		return nil, err
	}
	run.winner = gate.winner
	run.created, run.started = spec.created, gate.started != nil
	if spec.winner != nil && gate.winner == "" {
		if err := h.untilWinner(ctx, spec, run); err != nil {
			return nil, err
		}
	}
	if spec.window != nil {
		if err := h.untilWindowOpens(ctx, spec, run.sendPayload); err != nil {
			return nil, err
		}
	}
	return spec, nil
}

// whileUploading is the wait of a task whose campaign's upload is still
// arriving. Its slot passes meanwhile, so it books its account's next free
// one and waits for that: when the upload ends, each account sends at its
// plan, not every task that came due meanwhile at once (a burst whose
// queue made the sends after it late), and none looks again every heldWait
// until then. Without the campaign's accounts yet, it looks again soon.
func (h *SendHandler) whileUploading(ctx context.Context, run *attemptRun) error {
	accounts, err := h.store.accountsOf(ctx, run.Campaign)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if len(accounts) == 0 {
		return &WaitError{Delay: heldWait, Reason: reasonUploading}
	}
	slot, _, err := h.pacer.Plan(ctx, accountOf(accounts, run.Seq), 1)
	if err != nil {
		return err
	}
	return &WaitError{Delay: max(time.Until(slot), heldWait), Reason: reasonUploading}
}

const reasonUploading = "the upload is still arriving"

// chooseAccount picks the sender account, or answers a wait when none of
// the campaign's accounts is usable.
func (h *SendHandler) chooseAccount(ctx context.Context, spec *sendSpec, run *attemptRun) error {
	account, unusable, err := h.pickAccount(ctx, spec, run.Seq)
	if err != nil {
		return err
	}
	if unusable != "" {
		h.store.setReason(ctx, run.Campaign, ReasonWaitingForAccount+": "+unusable)
		if h.allSpentToday(spec) {
			// Nothing frees a message before midnight UTC but an operator
			// raising a cap; pausing and resuming the campaign then sends
			// its waiting recipients at once.
			return &WaitError{Delay: h.daily.UntilTomorrow() + rand.N(time.Minute), Reason: ReasonWaitingForAccount + ": today's allowances are sent"}
		}
		return &WaitError{Delay: h.accountWait, Reason: ReasonWaitingForAccount}
	}
	run.account = account
	return nil
}

// look reads the recipient before anything is spent on it, and answers its
// row; a nil row means there is nothing to do (gone, settled, or held by
// an attempt that died after its request may have left: reconciliation
// takes that one, see settleDeadClaim).
//
// An untroubled run of a fixed list's task reads only the row, from the
// worker's row cache (most often without a round trip), and not the
// state: such a run all but always finds its recipient queued. The claim
// checks the state anyway before the request is written, and turns the
// rare other one away (a duplicate of a task still running, a campaign
// cancelled within the gate's cache time); that costs only the account
// a pacing slot. Any run after a failure (a worker that died mid-send
// counts as one) reads the state first, as does every run of a campaign
// that keeps taking recipients, whose queued ones a sequence may skip
// behind their tasks.
func (h *SendHandler) look(ctx context.Context, spec *sendSpec, run *attemptRun) ([]string, error) {
	if spec.fixedList && h.untroubled(ctx) {
		return h.rows.row(ctx, h.store, run.Campaign, run.Seq)
	}
	row, rec, err := h.store.candidate(ctx, run.Campaign, run.Seq)
	if row == nil || err != nil || rec == nil {
		return row, err
	}
	if rec.State != StateSending {
		return nil, nil // settled, or reconciliation has it
	}
	if lease := ParseUnixMilli(rec.Lease); lease != nil && lease.After(h.now()) {
		return nil, h.claimRefused(ctx, run, "", claimResult{outcome: claimInflight, leaseEnds: *lease})
	}
	if rec.Dispatched == "" {
		return row, nil // an old claim that lapsed before its request was written: send
	}
	return h.settleDeadClaim(ctx, spec, run, row)
}

// settleDeadClaim lets the claim script settle the lapsed claim of an
// attempt that died after its request may have left: the recipient becomes
// unconfirmed and is reconciled, not sent again here.
func (h *SendHandler) settleDeadClaim(ctx context.Context, spec *sendSpec, run *attemptRun, row []string) ([]string, error) {
	res, err := h.store.claim(ctx, claimParams{Campaign: run.Campaign, Seq: run.Seq, Round: run.Round,
		Account: run.account, Attempt: run.id, Lease: h.claimLease, Now: h.now(), InspectOnly: true})
	if err != nil {
		return nil, err
	}
	if res.outcome == claimFree {
		return row, nil // released meanwhile: an ordinary send
	}
	phone := ""
	if key, err := spec.key(row); err == nil {
		phone = key.phone()
	}
	return nil, h.claimRefused(ctx, run, phone, res)
}

// claimRefused is what a task does when the recipient's claim is not its to
// take; phone is the recipient's, for a send found unconfirmed.
func (h *SendHandler) claimRefused(ctx context.Context, run *attemptRun, phone string, res claimResult) error {
	switch res.outcome {
	case claimUnconfirmed:
		run.log.Warn("an earlier attempt died after handing the message to the provider; reconciling, not resending")
		h.indexUnconfirmed(ctx, run, phone)
		dispatched := res.dispatched
		if dispatched.IsZero() {
			dispatched = h.now()
		}
		return h.reconcileLater(ctx, run, dispatched)
	case claimInflight:
		// Another attempt holds the claim: a duplicate run at the same
		// time, or an attempt that could not record its outcome (Redis
		// was down) and whose task this may be. Dropping this task could
		// leave the recipient "sending" for good; looking again once the
		// lease has run out settles it either way.
		return &WaitError{Delay: max(time.Until(res.leaseEnds), 0) + time.Second, Reason: "another attempt holds the recipient"}
	}
	return nil // settled, outdated, campaign stopped
}

// reserveCredits reserves the message's credits in the shared ledger. None
// left: the claim is given back and the task waits for quota. A provider
// that meters no credits needs no reservation (nil).
func (h *SendHandler) reserveCredits(ctx context.Context, run *attemptRun, msg sender.Message) (*quota.Reservation, error) {
	if !h.caps.MeteredCredits {
		return nil, nil
	}
	reservation, err := h.ledger.Reserve(ctx, h.caps.Credits(msg))
	if err == nil {
		return reservation, nil
	}
	if rerr := h.releaseClaim(ctx, run, "no credits: "+err.Error()); rerr != nil {
		return nil, rerr
	}
	switch {
	case errors.Is(err, quota.ErrNotSynced):
		return nil, h.awaitFirstQuotaRead(ctx, run)
	case errors.Is(err, quota.ErrInsufficientCredits):
		h.store.setReason(ctx, run.Campaign, ReasonWaitingForQuota)
		return nil, &WaitError{Delay: h.quotaWait, Reason: ReasonWaitingForQuota}
	}
	return nil, err
}

// awaitFirstQuotaRead is the wait of a send on a fresh Redis, whose ledger
// has never read the quota: it asks for a read and looks again as soon as
// it is there, rather than a sync interval later.
func (h *SendHandler) awaitFirstQuotaRead(ctx context.Context, run *attemptRun) error {
	delay := 2 * time.Second
	if h.syncer != nil {
		synced, err := h.syncer.AwaitFirstSync(ctx, time.Second)
		if err != nil {
			run.log.Warn("first quota read", zap.Error(err))
		}
		if synced {
			delay = 10 * time.Millisecond
		}
	}
	return &WaitError{Delay: delay, Reason: "the credit ledger has not read the quota yet"}
}

// takeSlot takes the account's pacing slot, last before the provider call,
// so that the gap the provider sees between two sends is the interval, not
// the interval blurred by claims, renders and reservations. A wait beyond a
// short nap, or a campaign stopped during the nap, gives everything back:
// nothing has been sent, and ok is false (with the wait, if any).
func (h *SendHandler) takeSlot(ctx context.Context, run *attemptRun, reservation *quota.Reservation) (ok bool, err error) {
	slept, err := h.waitForSlot(ctx, run)
	if err == nil && slept {
		var g sendGate
		if g, err = h.gates.get(ctx, h.store, run.Campaign, true); err == nil && (g.status != StatusRunning || g.round != run.Round) {
			h.settleCredits(reservation, false, run.log)
			h.releaseDay(ctx, run)
			h.endHold(ctx, run, 0)
			return false, h.releaseClaim(ctx, run, "the campaign stopped")
		}
	}
	if err != nil {
		h.endHold(ctx, run, 0)
		h.settleCredits(reservation, false, run.log)
		h.releaseDay(ctx, run)
		if rerr := h.releaseClaim(ctx, run, "waiting for the account's turn"); rerr != nil {
			return false, rerr
		}
		return false, err
	}
	return true, nil
}

// claimNotTaken stops a send whose claim, taken right before its request
// would be written, went to someone else or found the campaign moved on:
// nothing was written.
type claimNotTaken struct{ res claimResult }

func (e *claimNotTaken) Error() string {
	return "the recipient's claim was not this attempt's to take: " + string(e.res.outcome)
}

// dispatch calls the provider. Right before the request is written, after
// every wait of the client's own, the attempt takes the recipient's claim,
// which is also the dispatch mark: from then on a lost answer means "maybe
// sent".
func (h *SendHandler) dispatch(ctx context.Context, run *attemptRun, msg sender.Message) (sender.Receipt, error) {
	ctx = sender.BeforeDispatch(ctx, func(ctx context.Context) error { return h.claimForDispatch(ctx, run) })
	return h.sendOnTime(ctx, run, msg)
}

// errOptedOutAtClaim stops a send whose recipient the suppression list
// holds, read in the claim's round trip: nothing was written.
var errOptedOutAtClaim = errors.New("the recipient opted out")

// claimForDispatch takes the recipient's claim and dispatch mark, reading
// the suppression list in the same round trip: an opt-out that came during
// the waits (credits, pacing) stops the send here.
func (h *SendHandler) claimForDispatch(ctx context.Context, run *attemptRun) error {
	at := h.now()
	p := claimParams{Campaign: run.Campaign, Seq: run.Seq, Round: run.Round,
		Account: run.account, Attempt: run.id, Lease: h.claimLease, Now: at, Created: run.created, Started: run.started}
	var listed *audience.SuppressionRead
	if run.audienceAddress != "" {
		p.Alongside = func(pipe redis.Pipeliner) {
			listed = h.audience.Store.QueueSuppressed(ctx, pipe, run.audienceAddress)
		}
	}
	res, err := h.store.claim(ctx, p)
	if err != nil {
		return err
	}
	if res.outcome != claimTaken {
		return &claimNotTaken{res: res}
	}
	run.claimed, run.dispatched = true, at
	if listed == nil {
		return nil
	}
	entry, err := listed.Entry()
	if err == nil && entry != nil {
		err = errOptedOutAtClaim
	}
	return err // with an error the request is not written, and the claim is given back or settled
}

// recordSent records an accepted message and starts following it: the
// outcome script itself enters its first status poll in the campaign's poll
// set (the poll sweeper enqueues it when due), so no crash after the record
// can leave the message untracked.
func (h *SendHandler) recordSent(ctx context.Context, run *attemptRun, msg sender.Message, receipt sender.Receipt, reservation *quota.Reservation) error {
	h.settleCredits(reservation, true, run.log)
	firstPoll, _ := h.polls.at(h.now(), 0) // zero when the provider keeps no status history
	sent := record{State: StateSent, Account: run.account, UID: receipt.MessageUID}
	if err := h.finishSent(ctx, run, sent, h.caps.Credits(msg), firstPoll); err != nil {
		return err
	}
	h.noteHealth(ctx, run, quota.OutcomeSent)
	if h.indexed {
		h.indexSent(context.WithoutCancel(ctx), run, msg, receipt.MessageUID)
	}
	h.noteMessaged(ctx, run, messageAddress(msg), h.now())
	return nil
}

// indexSent lets the provider's message:sent:new event of a sent message
// find its recipient, or, when the event came first, applies it now.
func (h *SendHandler) indexSent(ctx context.Context, run *attemptRun, msg sender.Message, uid string) {
	if err := h.store.indexMessage(ctx, uid, run.Campaign, run.Seq); err != nil {
		run.log.Error("index a sent message for webhooks", zap.Error(err))
	}
	if phone := recipientPhone(msg); phone != "" {
		if err := h.store.confirmFromRecentEvent(ctx, phone, uid, run.Campaign, run.Seq); err != nil {
			run.log.Warn("apply the provider's early sent event", zap.Error(err))
		}
	}
}

// indexUnconfirmed lets a later message:sent:new webhook settle an
// unconfirmed send before reconciliation does; an earlier one (the
// provider reported the message while our request was timing out)
// settles it now.
func (h *SendHandler) indexUnconfirmed(ctx context.Context, run *attemptRun, phone string) {
	if !h.indexed || phone == "" {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if err := h.store.indexUnconfirmed(ctx, phone, run.Campaign, run.Seq); err != nil {
		run.log.Error("index an unconfirmed send for webhooks", zap.Error(err))
	}
	ev, ok, err := h.store.ResolveFromRecentEvents(ctx, phone, run.Campaign, run.Seq)
	if err != nil {
		run.log.Error("look for the provider's report of an unconfirmed send", zap.Error(err))
	}
	if ok {
		run.log.Info("the provider had reported the unconfirmed send: sent", zap.String("message_uid", ev.MessageUID))
		h.noteMessaged(ctx, run, phone, orNow(ev.At, h.now()))
		h.track(ctx, run, ev.At)
	}
}

// untilWindowOpens answers a wait (a *WaitError) when the recipient's local
// time is outside the campaign's send window.
func (h *SendHandler) untilWindowOpens(ctx context.Context, spec *sendSpec, p sendPayload) error {
	values, err := h.store.row(ctx, p.Campaign, p.Seq)
	if err != nil {
		return err
	}
	key, err := spec.key(values)
	if err != nil {
		return err
	}
	now := h.now()
	open := spec.window.NextOpen(now, key.location(spec.window))
	if !open.After(now) {
		return nil
	}
	// A little spread, so a window opening on the hour does not wake a whole
	// campaign in the same second.
	return &WaitError{Delay: open.Sub(now) + rand.N(time.Minute), Reason: "outside the send window", NotEarlier: true}
}

// track starts following a message sent at sent that was recorded sent
// elsewhere (an unconfirmed send the provider had reported). A failure here
// costs the recipient its tracking, not its message: it is logged, not
// retried (a retry would find the recipient settled and do nothing).
func (h *SendHandler) track(ctx context.Context, run *attemptRun, sent time.Time) {
	if err := h.queue.TrackSent(context.WithoutCancel(ctx), run.Campaign, run.Seq, sent, h.polls); err != nil {
		run.log.Error("could not schedule the status polls of a sent message", zap.Error(err))
	}
}

// pickAccount is the sender account for recipient seq: its turn among the
// campaign's accounts or, when that one is paused or disconnected, one of
// the usable others, also in turn, so the load of an unusable account is
// spread over all the rest. When none is usable it answers why. The
// preferred account is looked at first, and alone when it is usable (the
// usual case): a campaign of a thousand accounts costs one look a send,
// not a thousand.
func (h *SendHandler) pickAccount(ctx context.Context, spec *sendSpec, seq int64) (string, string, error) {
	if len(spec.accounts) == 0 {
		return "", "", nil // the provider's default account
	}
	preferred := accountOf(spec.accounts, seq)
	if ok, _, err := h.canSend(ctx, preferred); err != nil || ok {
		if err != nil {
			return "", "", err
		}
		return preferred, "", nil
	}
	var usable, why []string
	for _, a := range spec.accounts {
		ok, reason, err := h.canSend(ctx, a)
		if err != nil {
			return "", "", err
		}
		if !ok {
			why = append(why, reason)
			continue
		}
		usable = append(usable, a)
	}
	if len(usable) == 0 {
		return "", strings.Join(why, "; "), nil
	}
	return usable[seq%int64(len(usable))], "", nil
}

// canSend says whether the account may send now: it is active and has not
// sent today's allowance; else why not.
func (h *SendHandler) canSend(ctx context.Context, account string) (bool, string, error) {
	ok, reason, err := h.accounts.Usable(ctx, account)
	if err == nil && ok && h.daily != nil && h.daily.SpentToday(account) {
		return false, "sender account " + account + " has sent today's allowance", nil
	}
	return ok, reason, err
}

// NewAttemptID names one run of a task: the owner of a claim or a lease.
func NewAttemptID() string {
	return strconv.FormatUint(rand.Uint64(), 36)
}
