package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/audience"
	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
)

// Reconciliation turns unconfirmed sends into facts. A send is unconfirmed
// when its request may have reached the provider and no definite answer
// came back (a timeout, a lost connection or any 5xx after the request was
// written, or a worker that died after its dispatch mark). The provider has
// no idempotency key, so sending again blindly could message someone twice;
// instead, RECONCILE_AFTER after the dispatch, a TypeReconcile task asks the
// provider what that account sent the recipient since then (its chats and
// their history). A message with the same text marks the recipient sent,
// with the provider's uid. Not found, the lookup is repeated on a widening
// schedule until RECONCILE_MAX_AGE; then UNCONFIRMED_POLICY decides: resend,
// or hold it as unknown for a person. A message:sent:new webhook can settle
// it earlier.
//
// Every lookup searches from the recipient's first claim, so a resend's
// lookup also finds an earlier attempt that shows up late. A recipient is
// resent at most maxResends times: should lookups fail to find messages
// that did go out (a provider that rewrites text, say), the damage stays
// bounded.

// TypeReconcile is the task that looks an unconfirmed send up.
const TypeReconcile = "campaign:reconcile"

// ReconcilePolicy says when unconfirmed sends are looked up and what
// happens to one that is never found.
type ReconcilePolicy struct {
	After  time.Duration // first lookup after the dispatch (RECONCILE_AFTER)
	MaxAge time.Duration // last lookup after the dispatch (RECONCILE_MAX_AGE)
	// Resend sends a never-found message once more; false holds it as
	// unknown (UNCONFIRMED_POLICY resend or hold).
	Resend bool
}

// Default reconciliation: the provider queues messages and its chat
// history may lag, so the first look waits a little.
const (
	DefaultReconcileAfter  = 2 * time.Minute
	DefaultReconcileMaxAge = 30 * time.Minute
)

func (p ReconcilePolicy) withDefaults() ReconcilePolicy {
	p.After = orDefault(p.After, DefaultReconcileAfter)
	p.MaxAge = max(orDefault(p.MaxAge, DefaultReconcileMaxAge), p.After)
	return p
}

// lookupAt is when lookup n of a send dispatched at d is due: After, then
// doubling gaps (2m, 4m, 8m, 16m), the last at MaxAge. ok is false past it.
func (p ReconcilePolicy) lookupAt(d time.Time, n int) (time.Time, bool) {
	offset := p.After << min(n, 20)
	if offset >= p.MaxAge {
		offset = p.MaxAge
	}
	if n > 0 && p.After<<min(n-1, 20) >= p.MaxAge {
		return time.Time{}, false
	}
	return d.Add(offset), true
}

// clockSkew widens the lookup's time filter: the provider's clock and ours
// differ, and its timestamps have whole seconds.
const clockSkew = time.Minute

type reconcilePayload struct {
	Campaign   string `json:"c"`
	Seq        int64  `json:"s"`
	Dispatched int64  `json:"d"` // unix ms of the dispatch mark
	N          int    `json:"n"` // which lookup this is
}

// enqueueReconcile enqueues lookup p.N of the send p names, due at at
// (never earlier: the last lookup decides the policy). The task id names
// the send, so a second report of the same unconfirmed send adds nothing.
func (e *Enqueuer) enqueueReconcile(ctx context.Context, p reconcilePayload, at time.Time) error {
	payload, _ := json.Marshal(p)
	id := "reconcile:" + p.Campaign + ":" + strconv.FormatInt(p.Seq, 10) + ":" + strconv.FormatInt(p.Dispatched, 36) + ":" + strconv.Itoa(p.N)
	_, err := e.client.EnqueueContext(ctx, asynq.NewTask(TypeReconcile, payload),
		asynq.TaskID(id),
		asynq.Queue(QueueStatus),
		asynq.ProcessAt(wholeSecondAfter(at)),
		asynq.MaxRetry(20),
		asynq.Timeout(2*time.Minute),
	)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue the reconciliation of recipient %d of campaign %s: %w", p.Seq, p.Campaign, err)
	}
	return nil
}

// Reconciler runs TypeReconcile tasks.
type Reconciler struct {
	store    *Store
	provider sender.Provider
	finder   sender.MessageFinder // nil: the provider cannot look messages up
	caps     sender.Capabilities
	queue    *Enqueuer
	service  *Service // resends: a recipient back in the queue in the current round
	budget   *quota.PollBudget
	polls    PollSchedule
	policy   ReconcilePolicy
	indexed  bool
	audience AudienceConfig // a send found is its recipient's latest message, for replies
	log      *zap.Logger
	now      func() time.Time
	specs    specCache
}

// ReconcilerDeps are what reconciliation needs.
type ReconcilerDeps struct {
	Store    *Store
	Provider sender.Provider
	Queue    *Enqueuer
	Budget   *quota.PollBudget // lookups spend API calls like status polls
	Polls    PollSchedule      // a send found is followed like any other
	Policy   ReconcilePolicy
	// IndexForWebhooks records found messages' uids for webhooks, and
	// each as its recipient's latest message in Audience, for replies.
	IndexForWebhooks bool
	Audience         AudienceConfig
	Log              *zap.Logger
}

// NewReconciler returns the handler of TypeReconcile tasks.
func NewReconciler(d ReconcilerDeps) *Reconciler {
	caps := d.Provider.Capabilities()
	r := &Reconciler{store: d.Store, provider: d.Provider, finder: finderOf(d.Provider), caps: caps, queue: d.Queue,
		service: NewService(d.Store, d.Queue), budget: d.Budget, polls: d.Polls.For(caps),
		policy: d.Policy.withDefaults(), indexed: d.IndexForWebhooks, audience: d.Audience, log: d.Log, now: time.Now}
	r.specs.store, r.specs.caps = d.Store, caps
	return r
}

// finderOf is the provider's message lookup: nil unless its capabilities
// say it can look sent messages up (and it implements MessageFinder). It is
// the one place that decides whether unconfirmed sends can be reconciled.
func finderOf(p sender.Provider) sender.MessageFinder {
	finder, ok := p.(sender.MessageFinder)
	if !ok || !p.Capabilities().MessageLookup {
		return nil
	}
	return finder
}

// Reasons an unconfirmed send ends unknown.
const (
	reasonNoLookup  = "the provider's answer was lost and this provider cannot look up sent messages; it may have been sent, so it is not sent again"
	reasonNoGroup   = "the provider's answer was lost and a group's messages cannot be looked up at the provider (it finds chats by phone); it may have been sent, so it is not sent again"
	reasonNotFound  = "not found at the provider %s after the send; held as unknown for a person to check (UNCONFIRMED_POLICY=hold): it may have been sent"
	reasonResentMax = "not found at the provider %s after the send, which was already resend %d; held as unknown for a person to check: it may have been sent"
	// resendNote starts the history detail of a resend; the history counts
	// them.
	resendNote = "sent once more: "
)

// maxResends bounds the resends of one recipient.
const maxResends = 3

// ProcessTask implements asynq.Handler.
func (r *Reconciler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p reconcilePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Campaign == "" {
		return fmt.Errorf("malformed reconcile task %q: %w", t.Payload(), asynq.SkipRetry)
	}
	log := r.log.With(zap.String("campaign", p.Campaign), zap.Int64("seq", p.Seq), zap.Int("lookup", p.N))
	rec, history, err := r.store.tracking(ctx, p.Campaign, p.Seq)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if rec.State != StateUnconfirmed || rec.Dispatched != strconv.FormatInt(p.Dispatched, 10) {
		return nil // settled meanwhile (its own late answer, a webhook), or another send's lookup
	}
	dispatched := time.UnixMilli(p.Dispatched)
	if r.finder == nil {
		return r.settle(ctx, p, record{State: StateUnknown, Reason: reasonNoLookup, Account: rec.Account}, reasonNoLookup, 0)
	}
	msg, err := r.message(ctx, p, rec.Account)
	if err != nil {
		return err
	}
	query, ok := sentQuery(msg)
	if !ok {
		return r.settle(ctx, p, record{State: StateUnknown, Reason: reasonNoGroup, Account: rec.Account}, reasonNoGroup, 0)
	}
	if err := r.takeBudget(ctx); err != nil {
		return err
	}
	found, err := r.lookup(ctx, query, msg, firstClaim(history, dispatched))
	if err != nil {
		return lookupError(err)
	}
	if found != nil {
		log.Info("unconfirmed send found at the provider", zap.String("message_uid", found.UID))
		return r.found(ctx, p, rec, msg, *found)
	}
	return r.notFound(ctx, p, rec, history, log)
}

// takeBudget spends one lookup from the status-poll budget, or answers the
// wait for it: lookups are API calls like polls.
func (r *Reconciler) takeBudget(ctx context.Context) error {
	if r.budget == nil {
		return nil
	}
	wait, err := r.budget.Take(ctx)
	if err != nil {
		return err
	}
	if wait > 0 {
		return &WaitError{Delay: wait, Reason: "reconciliation waits for the API-call budget"}
	}
	return nil
}

// message renders the recipient's message again, as it was sent: a message
// depends only on its row, its campaign, its account and (A/B) the winner.
func (r *Reconciler) message(ctx context.Context, p reconcilePayload, account string) (sender.Message, error) {
	spec, err := r.specs.get(ctx, p.Campaign)
	if err != nil {
		return sender.Message{}, err
	}
	values, err := r.store.row(ctx, p.Campaign, p.Seq)
	if err != nil {
		return sender.Message{}, err
	}
	winner := ""
	if spec.winner != nil { // an A/B winner chosen since: the variant it was sent with
		gate, err := r.store.gate(ctx, p.Campaign)
		if err != nil {
			return sender.Message{}, err
		}
		winner = gate.winner
	}
	return spec.message(values, p.Campaign, account, winner)
}

// sentQuery is how the provider is asked for what was sent to msg's
// recipient: by phone (a contact's JID has one), or in the chat of a chat
// id. A group's JID has neither, and the provider finds chats by phone
// alone: no lookup (false).
func sentQuery(msg sender.Message) (sender.SentQuery, bool) {
	q := sender.SentQuery{Phone: recipientPhone(msg), AccountPhone: msg.AccountPhone}
	if msg.ChatID != 0 {
		// The chat belongs to its account, whatever account the campaign
		// named: TimelinesAI sends a chat's message from the chat's.
		q = sender.SentQuery{ChatID: msg.ChatID}
	}
	return q, q.Phone != "" || q.ChatID != 0
}

// lookup asks the provider for the messages the account sent the recipient
// since the first claim, and answers the first with the message's text. A
// lookup cut short still counts what it found: finding the message is a
// fact, not finding it is not.
func (r *Reconciler) lookup(ctx context.Context, q sender.SentQuery, msg sender.Message, claimed time.Time) (*sender.SentMessage, error) {
	since := claimed.Add(-clockSkew)
	q.After = since
	sent, err := r.finder.FindSent(ctx, q)
	slices.SortStableFunc(sent, func(a, b sender.SentMessage) int { return a.At.Compare(b.At) })
	want := strings.TrimSpace(msg.Text)
	for _, m := range sent {
		if m.At.Before(since) || strings.TrimSpace(m.Text) != want {
			continue
		}
		if q.AccountPhone != "" && m.AccountPhone != "" && m.AccountPhone != q.AccountPhone {
			continue
		}
		return &m, nil
	}
	return nil, err
}

// lookupError turns a failed lookup into the task's retry: the provider's
// rate limit is a wait, anything else a failure asynq backs off from.
func lookupError(err error) error {
	var pe *sender.Error
	if errors.As(err, &pe) && pe.Kind == sender.RateLimited {
		return &WaitError{Delay: max(pe.RetryAfter, 5*time.Second), Reason: "provider rate limit", NotEarlier: true}
	}
	if errors.As(err, &pe) && pe.Kind == sender.CallsExhausted {
		return waitForAPICalls(apiCallsWait)
	}
	return fmt.Errorf("look up an unconfirmed send: %w", err)
}

// found records an unconfirmed send the provider has: sent, with its uid,
// and followed like any other send (its first status poll entered with the
// record, for the poll sweeper).
func (r *Reconciler) found(ctx context.Context, p reconcilePayload, rec record, msg sender.Message, m sender.SentMessage) error {
	sentAt := orNow(m.At, time.UnixMilli(p.Dispatched))
	firstPoll, _ := r.polls.at(sentAt, 0)
	_, err := r.store.settle(ctx, settleParams{Campaign: p.Campaign, Seq: p.Seq, From: StateUnconfirmed,
		Record: record{State: StateSent, Account: rec.Account, UID: m.UID}, Detail: m.UID, Credits: r.caps.Credits(msg),
		Now: r.now(), PollAt: firstPoll})
	if err != nil {
		return err
	}
	if r.indexed {
		if err := r.store.indexMessage(ctx, m.UID, p.Campaign, p.Seq); err != nil {
			r.log.Error("index a reconciled message for webhooks", zap.Error(err))
		}
	}
	r.noteMessaged(ctx, p, rec.Account, messageAddress(msg), sentAt)
	return nil
}

// noteMessaged records a found send as its recipient's latest message, as
// the send's answer would have (SendHandler.noteMessaged), so that a reply
// to it is attributed.
func (r *Reconciler) noteMessaged(ctx context.Context, p reconcilePayload, account, address string, sentAt time.Time) {
	if !r.indexed {
		return
	}
	spec, err := r.specs.get(ctx, p.Campaign)
	if err != nil || spec.confirms != "" {
		return // gone meanwhile, or a keyword's confirmation
	}
	m := audience.LastMessage{Campaign: p.Campaign, Seq: p.Seq, Account: account, At: sentAt}
	if err := r.audience.noteLastMessaged(ctx, address, m); err != nil {
		r.log.Warn("note the last message to the recipient, for replies", zap.Error(err))
	}
}

// orNow is t, or fallback when t is zero.
func orNow(t, fallback time.Time) time.Time {
	if t.IsZero() {
		return fallback
	}
	return t
}

// notFound looks again later, or, past the max age, applies the policy.
func (r *Reconciler) notFound(ctx context.Context, p reconcilePayload, rec record, history []HistoryEntry, log *zap.Logger) error {
	dispatched := time.UnixMilli(p.Dispatched)
	next, ok := r.policy.lookupAt(dispatched, p.N+1)
	if deadline := dispatched.Add(r.policy.MaxAge); !ok && r.now().Before(deadline) {
		next, ok = deadline, true // ran early (a retry, another clock): the policy waits for the max age
	}
	if ok {
		return r.queue.enqueueReconcile(ctx, reconcilePayload{Campaign: p.Campaign, Seq: p.Seq, Dispatched: p.Dispatched, N: p.N + 1}, next)
	}
	age := r.now().Sub(dispatched).Round(time.Second).String()
	switch resends := resendsIn(history); {
	case resends >= maxResends:
		reason := fmt.Sprintf(reasonResentMax, age, resends)
		return r.settle(ctx, p, record{State: StateUnknown, Reason: reason, Account: rec.Account}, reason, 0)
	case !r.policy.Resend:
		reason := fmt.Sprintf(reasonNotFound, age)
		return r.settle(ctx, p, record{State: StateUnknown, Reason: reason, Account: rec.Account}, reason, 0)
	}
	log.Warn("unconfirmed send not found at the provider; sending it once more", zap.String("age", age))
	note := resendNote + "not found at the provider " + age + " after the send (UNCONFIRMED_POLICY=resend)"
	if err := r.settle(ctx, p, record{State: StateQueued}, note, 0); err != nil {
		return err
	}
	return r.service.requeueInCurrentRound(ctx, p.Campaign, p.Seq, -1, ":resend")
}

// resendsIn counts the resends in a recipient's history.
func resendsIn(history []HistoryEntry) int {
	n := 0
	for _, e := range history {
		if e.State == StateQueued && strings.HasPrefix(e.Detail, resendNote) {
			n++
		}
	}
	return n
}

// firstClaim is when the recipient was first claimed, from its history:
// every attempt to send it came after. fallback when the history has none.
func firstClaim(history []HistoryEntry, fallback time.Time) time.Time {
	for _, e := range history {
		if e.State == StateSending && e.ProviderStatus == "" {
			return e.At
		}
	}
	return fallback
}

// settle moves the unconfirmed recipient on; a recipient settled meanwhile
// (by a webhook, or its own late answer) is left as it is.
func (r *Reconciler) settle(ctx context.Context, p reconcilePayload, rec record, detail string, credits int) error {
	_, err := r.store.settle(ctx, settleParams{Campaign: p.Campaign, Seq: p.Seq, From: StateUnconfirmed,
		Record: rec, Detail: detail, Credits: credits, Now: r.now()})
	return err
}
