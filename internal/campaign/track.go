package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
)

// Status tracking. The provider has no delivered/read webhook: a sent
// message's status is polled with GET /messages/{uid}/status_history, one
// asynq task per poll, on a widening schedule after the send (1m, 5m, 30m, 2h,
// 12h, then every last gap) until the status is final (Read, Failed) or the
// message is older than the max age. Every poll spends an API call, so polls
// go through the poll budget, which slows them rather than stop them when
// calls run short.

const (
	TypePoll = "campaign:poll"
	// QueueStatus holds the polls, weighted below sends: a late poll costs
	// nothing, a late send costs the campaign.
	QueueStatus = "status"
)

type pollPayload struct {
	Campaign string `json:"c"`
	Seq      int64  `json:"s"`
	N        int    `json:"n"` // which poll of the schedule this is
}

// PollSchedule says when a sent message's status is polled.
type PollSchedule struct {
	Delays []time.Duration // after the send (STATUS_POLL_SCHEDULE)
	MaxAge time.Duration   // no poll later than this after the send
}

// For is the schedule for a provider with caps: none at all when it keeps
// no status history (a gateway), whose message's state is what its send
// answered. Every place that schedules polls takes its schedule through
// here.
func (s PollSchedule) For(caps sender.Capabilities) PollSchedule {
	if !caps.StatusHistory {
		return PollSchedule{}
	}
	return s
}

// at is when poll n is due for a message sent at sent; after the listed
// delays, polls go on at the last gap. ok is false past the max age.
func (s PollSchedule) at(sent time.Time, n int) (time.Time, bool) {
	if len(s.Delays) == 0 {
		return time.Time{}, false
	}
	last := s.Delays[len(s.Delays)-1]
	var d time.Duration
	if n < len(s.Delays) {
		d = s.Delays[n]
	} else {
		gap := last
		if len(s.Delays) > 1 {
			gap = last - s.Delays[len(s.Delays)-2]
		}
		d = last + time.Duration(n-len(s.Delays)+1)*gap
	}
	if s.MaxAge > 0 && d > s.MaxAge {
		return time.Time{}, false
	}
	return sent.Add(d), true
}

// enqueuePoll enqueues poll n of a recipient, due at at.
func (e *Enqueuer) enqueuePoll(ctx context.Context, campaignID string, seq int64, n int, at time.Time) error {
	payload, _ := json.Marshal(pollPayload{Campaign: campaignID, Seq: seq, N: n})
	_, err := e.client.EnqueueContext(ctx, asynq.NewTask(TypePoll, payload),
		asynq.TaskID("poll:"+campaignID+":"+strconv.FormatInt(seq, 10)+":"+strconv.Itoa(n)),
		asynq.Queue(QueueStatus),
		asynq.ProcessAt(at),
		asynq.MaxRetry(5),
		asynq.Timeout(time.Minute),
	)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue status poll %d of recipient %d of campaign %s: %w", n, seq, campaignID, err)
	}
	return nil
}

// TrackSent starts the status polls of a message sent at sent (for sends
// confirmed from outside the send path, like a webhook resolving an unknown
// outcome).
func (e *Enqueuer) TrackSent(ctx context.Context, campaignID string, seq int64, sent time.Time, s PollSchedule) error {
	at, ok := s.at(sent, 0)
	if !ok {
		return nil
	}
	return e.enqueuePoll(ctx, campaignID, seq, 0, at)
}

// Tracker runs TypePoll tasks.
type Tracker struct {
	store    *Store
	provider sender.Provider
	queue    *Enqueuer
	schedule PollSchedule
	budget   *quota.PollBudget
	health   *quota.Health // nil: failures are not noted in account health
	log      *zap.Logger
}

// NewTracker returns the handler of TypePoll tasks.
func NewTracker(store *Store, provider sender.Provider, queue *Enqueuer, schedule PollSchedule, budget *quota.PollBudget, log *zap.Logger) *Tracker {
	return &Tracker{store: store, provider: provider, queue: queue, schedule: schedule.For(provider.Capabilities()), budget: budget, log: log}
}

// WithHealth notes every message the polls find failed in its sending
// account's health.
func (tr *Tracker) WithHealth(h *quota.Health) *Tracker {
	tr.health = h
	return tr
}

// ProcessTask implements asynq.Handler.
func (tr *Tracker) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p pollPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Campaign == "" {
		return fmt.Errorf("malformed poll task %q: %w", t.Payload(), asynq.SkipRetry)
	}
	rec, history, err := tr.store.tracking(ctx, p.Campaign, p.Seq)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if rec.UID == "" || terminal(rec.State) || rec.State == StateQueued || rec.State == StateSending || len(tr.schedule.Delays) == 0 {
		// Nothing (more) to learn; or a poll enqueued under a provider with
		// status history, run under one without it.
		return nil
	}
	if wait, err := tr.budget.Take(ctx); err != nil {
		return err
	} else if wait > 0 {
		_, basis, _ := tr.budget.Limit(ctx)
		tr.store.noteSlowPolling(ctx, p.Campaign, basis)
		return &WaitError{Delay: wait, Reason: "status poll budget"}
	}

	events, err := tr.provider.StatusHistory(ctx, rec.UID)
	if err != nil {
		var pe *sender.Error
		errors.As(err, &pe)
		switch {
		case pe != nil && pe.Kind == sender.RateLimited:
			return &WaitError{Delay: max(pe.RetryAfter, 5*time.Second), Reason: "provider rate limit", NotEarlier: true}
		case pe != nil && pe.Kind == sender.CallsExhausted:
			return waitForAPICalls(apiCallsWait)
		case pe != nil && (pe.Kind == sender.AuthFailed || pe.Kind == sender.Forbidden):
			return &WaitError{Delay: 5 * time.Minute, Reason: "provider refused status polls: " + pe.Reason()}
		case pe != nil && (pe.Kind == sender.NotFound || pe.Kind == sender.Invalid):
			// Not visible yet, or never will be: the next poll of the
			// schedule asks again, and the max age ends it.
			tr.log.Info("status poll: the provider does not know the message (yet)", zap.String("campaign", p.Campaign), zap.Int64("seq", p.Seq))
		default:
			return err // transient: asynq retries with backoff
		}
	}
	state, err := tr.store.applyStatuses(ctx, p.Campaign, p.Seq, events, time.Now())
	if err != nil {
		return err
	}
	if state == StateFailed && rec.State != StateFailed && tr.health != nil {
		// Only this poll moved it: the polls of a message run one after another.
		if err := tr.health.Note(ctx, rec.Account, quota.OutcomeFailed); err != nil {
			tr.log.Warn("note a failed message in its account's health", zap.String("account", rec.Account), zap.Error(err))
		}
	}
	if terminal(state) {
		return nil
	}
	sent := sentAt(history)
	if sent.IsZero() {
		return nil
	}
	next, ok := tr.schedule.at(sent, p.N+1)
	if !ok {
		return nil // older than the max age: it stays at its last known state
	}
	return tr.queue.enqueuePoll(ctx, p.Campaign, p.Seq, p.N+1, next)
}
