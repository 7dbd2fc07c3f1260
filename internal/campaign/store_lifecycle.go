package campaign

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// The lifecycle of DESIGN.md: draft → scheduled → running → (paused ⇄
// running) → completed | cancelled. Every transition is one Lua script that
// checks the current status, so two operators (or an operator and a worker)
// can never move a campaign through an illegal step.
//
// Starting work is always the same: a start task (TypeStart) that enqueues
// every queued recipient in the campaign's current round. A scheduled
// campaign gets one at send_at; a resumed one gets one at once, in a new
// round, so the tasks of the paused round find themselves outdated. Start
// tasks carry a version: rescheduling or resuming bumps it, and a start task
// of an older version does nothing.

// TransitionError is a lifecycle action the campaign's status does not
// allow; the API answers it 409, naming the status.
type TransitionError struct {
	Action string
	Status Status
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s a campaign that is %s", e.Action, e.Status)
}

type transition struct {
	action    string
	from      []Status
	to        Status
	reason    string
	bumpRound bool
	bumpStart bool
}

// transitioned is what a transition moved a campaign to: its round and
// start version afterwards.
type transitioned struct {
	round, version int64
}

func (s *Store) transition(ctx context.Context, id string, t transition, now time.Time) (transitioned, error) {
	allowed := ","
	for _, st := range t.from {
		allowed += string(st) + ","
	}
	res, err := transitionScript.Run(ctx, s.rdb, []string{campaignKey(id)},
		allowed, string(t.to), t.reason, UnixMilli(now), boolArg(t.bumpRound), boolArg(t.bumpStart)).StringSlice()
	if err != nil {
		return transitioned{}, fmt.Errorf("%s campaign %s: %w", t.action, id, err)
	}
	if res[0] != "1" {
		if res[1] == "" {
			return transitioned{}, ErrNotFound
		}
		return transitioned{}, &TransitionError{Action: t.action, Status: Status(res[1])}
	}
	var moved transitioned
	moved.round, _ = strconv.ParseInt(res[2], 10, 64)
	moved.version, _ = strconv.ParseInt(res[3], 10, 64)
	return moved, nil
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Pause pauses a running or scheduled campaign, saying why: no recipient is
// claimed once it returns; sends already handed to the provider finish.
func (s *Store) Pause(ctx context.Context, id, reason string, now time.Time) error {
	if reason == "" {
		reason = "paused by an operator"
	}
	_, err := s.transition(ctx, id, transition{action: "pause", from: []Status{StatusRunning, StatusScheduled}, to: StatusPaused, reason: reason}, now)
	return err
}

// Cancel ends a campaign: no recipient is claimed after it returns, and every
// recipient still queued is marked skipped with the reason. Messages already
// handed to the provider are not recalled. Cancelling a cancelled campaign
// finishes the sweep of an earlier Cancel that was interrupted.
func (s *Store) Cancel(ctx context.Context, id, reason string, now time.Time) (bool, error) {
	if reason == "" {
		reason = "cancelled"
	}
	_, err := s.transition(ctx, id, transition{action: "cancel",
		from: []Status{StatusDraft, StatusScheduled, StatusRunning, StatusPaused}, to: StatusCancelled, reason: reason}, now)
	var te *TransitionError
	changed := err == nil
	if err != nil && !(asTransition(err, &te) && te.Status == StatusCancelled) {
		return false, err
	}
	total, err := s.rdb.HGet(ctx, campaignKey(id), fTotal).Int64()
	if err != nil {
		return changed, fmt.Errorf("cancel campaign %s: %w", id, err)
	}
	rec := record{State: StateSkipped, Reason: reason, At: UnixMilli(now)}.encode()
	for first := int64(0); first < total; first += bucketSize {
		last := min(first+bucketSize, total)
		err := skipQueuedScript.Run(ctx, s.rdb, []string{campaignKey(id), stateKey(id, first), historyKey(id, first)}, first, last, rec, UnixMilli(now), reason).Err()
		if err != nil {
			return changed, fmt.Errorf("skip the queued recipients of cancelled campaign %s: %w", id, err)
		}
	}
	return changed, nil
}

func asTransition(err error, te **TransitionError) bool {
	t, ok := err.(*TransitionError)
	if ok {
		*te = t
	}
	return ok
}

// start runs a start task of the given version: its outcome, and the
// campaign's round.
func (s *Store) start(ctx context.Context, id string, version int64, now time.Time) (outcome startOutcome, round int64, err error) {
	res, err := startScript.Run(ctx, s.rdb, []string{campaignKey(id)}, UnixMilli(now), version).StringSlice()
	if err != nil {
		return "", 0, fmt.Errorf("start campaign %s: %w", id, err)
	}
	round, _ = strconv.ParseInt(res[1], 10, 64)
	return startOutcome(res[0]), round, nil
}

// setSendAt moves a scheduled campaign's send_at.
func (s *Store) setSendAt(ctx context.Context, id string, sendAt time.Time) error {
	if err := s.rdb.HSet(ctx, campaignKey(id), fSendAt, UnixMilli(sendAt)).Err(); err != nil {
		return fmt.Errorf("reschedule campaign %s: %w", id, err)
	}
	return nil
}

// requeueFailed puts the failed recipients of a campaign back in the queue
// and lists them for the retry task (see requeueFailedScript); a completed
// campaign with failed recipients runs again. It answers how many it
// requeued.
func (s *Store) requeueFailed(ctx context.Context, id string, now time.Time) (int64, error) {
	c, err := s.Get(ctx, id)
	if err != nil {
		return 0, err
	}
	switch c.Status {
	case StatusRunning, StatusPaused, StatusCompleted:
	default:
		return 0, &TransitionError{Action: "retry the failed recipients of", Status: c.Status}
	}
	if c.Status == StatusCompleted && c.Counts.Failed > 0 {
		if _, err := s.transition(ctx, id, transition{action: "retry the failed recipients of", from: []Status{StatusCompleted}, to: StatusRunning}, now); err != nil {
			return 0, err
		}
		if err := s.keepCampaign(ctx, id); err != nil { // it may have had its retention set
			return 0, err
		}
	}
	var n int64
	for first := int64(0); first < c.Counts.Total; first += bucketSize {
		last := min(first+bucketSize, c.Counts.Total)
		got, err := requeueFailedScript.Run(ctx, s.rdb,
			[]string{campaignKey(id), stateKey(id, first), historyKey(id, first), retryListKey(id)},
			first, last, UnixMilli(now)).Int64()
		if err != nil {
			return n, fmt.Errorf("requeue the failed recipients of campaign %s: %w", id, err)
		}
		n += got
	}
	return n, nil
}

// retryBatch reads the first n recipients of a campaign's retry list (those
// retry-failed requeued): their seqs, and how many entries it read.
func (s *Store) retryBatch(ctx context.Context, id string, n int) ([]int64, int, error) {
	batch, err := s.rdb.LRange(ctx, retryListKey(id), 0, int64(n)-1).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("read the retry list of campaign %s: %w", id, err)
	}
	seqs := make([]int64, 0, len(batch))
	for _, v := range batch {
		if seq, err := strconv.ParseInt(v, 10, 64); err == nil {
			seqs = append(seqs, seq)
		}
	}
	return seqs, len(batch), nil
}

// trimRetry drops the first n entries of a campaign's retry list, once they
// are enqueued.
func (s *Store) trimRetry(ctx context.Context, id string, n int) error {
	if err := s.rdb.LTrim(ctx, retryListKey(id), int64(n), -1).Err(); err != nil {
		return fmt.Errorf("trim the retry list of campaign %s: %w", id, err)
	}
	return nil
}
