package campaign

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender"
)

// Service is what changes a campaign and its queue together: the
// lifecycle actions that enqueue (resume, reschedule, retry-failed), the
// start of a round, a released recipient's new task, and adding recipients
// to a campaign that keeps taking them. Store holds the state, Enqueuer
// the tasks; neither takes the other.
type Service struct {
	store *Store
	queue *Enqueuer
	caps  sender.Capabilities // what test sends cost and may carry
}

// NewService returns the campaign operations on store and queue, for the
// provider of caps (none given: TimelinesAI's).
func NewService(store *Store, queue *Enqueuer, caps ...sender.Capabilities) *Service {
	s := &Service{store: store, queue: queue, caps: sender.TimelinesCapabilities()}
	if len(caps) > 0 {
		s.caps = caps[0]
	}
	return s
}

// NewRecipient is one recipient AddRecipient adds.
type NewRecipient struct {
	Campaign string
	// Seq is its number in the campaign: adding the same number again
	// adds nothing (a replayed enrolment).
	Seq     int64
	Values  []string  // in the campaign's column order, the phone in E.164
	Credits int       // what its message costs (sender.Message.Credits)
	DueAt   time.Time // when it is sent; zero: now, at its account's next free pacing slot
}

// AddRecipient is the one way other packages add a recipient to a
// campaign (a sequence step, which keeps taking them): the row is stored
// and counted queued once, and its send task enqueued, due at DueAt or
// booked on its account's plan.
func (s *Service) AddRecipient(ctx context.Context, r NewRecipient) error {
	if _, err := s.store.addRecipientOnce(ctx, r.Campaign, r.Seq, r.Values, r.Credits); err != nil {
		return err
	}
	due := r.DueAt
	if !due.IsZero() {
		if err := s.queue.enqueueSend(ctx, r.Campaign, r.Seq, 0, due); err != nil {
			return err
		}
		return s.store.notePlanEnd(ctx, r.Campaign, due)
	}
	accounts, err := s.store.accountsOf(ctx, r.Campaign)
	if err != nil {
		return err
	}
	slots, err := s.queue.plan(ctx, accounts, []int64{r.Seq})
	if err != nil {
		return err
	}
	p := sendPayload{Campaign: r.Campaign, Seq: r.Seq}
	if err := s.queue.enqueuePlanned(ctx, sendTaskID(r.Campaign, r.Seq, 0), p, slots[0]); err != nil {
		return err
	}
	return s.store.notePlanEnd(ctx, r.Campaign, slots[0])
}

// Resume continues a paused campaign: in a new round, so that the paused
// round's tasks do nothing, with a start task that enqueues the queued
// recipients on their accounts' plans as they are now. A campaign paused
// before its send_at goes back to scheduled. Nobody is sent twice: settled
// recipients are not queued, and claims guard the rest.
func (s *Service) Resume(ctx context.Context, id string, now time.Time) (*Campaign, error) {
	c, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	to, startAt := StatusRunning, now
	if c.SendAt != nil && c.SendAt.After(now) && c.StartedAt == nil {
		to, startAt = StatusScheduled, *c.SendAt
	}
	moved, err := s.store.transition(ctx, id, transition{action: "resume", from: []Status{StatusPaused}, to: to, bumpRound: true, bumpStart: true}, now)
	if err != nil {
		return nil, err
	}
	if err := s.queue.enqueueStart(ctx, id, startAt, moved.version); err != nil {
		return nil, err
	}
	return s.store.Get(ctx, id)
}

// Reschedule moves a scheduled campaign's send_at; the start task of the old
// time, when it fires, finds itself outdated.
func (s *Service) Reschedule(ctx context.Context, id string, sendAt, now time.Time) (*Campaign, error) {
	if !sendAt.After(now) {
		return nil, FieldError("send_at", "send_at "+sendAt.Format(time.RFC3339)+" is not in the future")
	}
	moved, err := s.store.transition(ctx, id, transition{action: "reschedule", from: []Status{StatusScheduled}, to: StatusScheduled, bumpStart: true}, now)
	if err != nil {
		return nil, err
	}
	if err := s.store.setSendAt(ctx, id, sendAt); err != nil {
		return nil, err
	}
	if err := s.queue.enqueueStart(ctx, id, sendAt, moved.version); err != nil {
		return nil, err
	}
	return s.store.Get(ctx, id)
}

// RetryFailed puts every failed recipient back in the queue and enqueues
// them again, leaving everyone else alone. A completed campaign runs again
// until they are settled; a paused one keeps them queued for its resume.
func (s *Service) RetryFailed(ctx context.Context, id string, now time.Time) (int64, error) {
	n, err := s.store.requeueFailed(ctx, id, now)
	if n > 0 && err == nil {
		err = s.queue.enqueueRetry(ctx, id, now)
	}
	return n, err
}

// requeueInCurrentRound enqueues a recipient that went back to the queue
// (a released claim, an unconfirmed send to be sent again) when its
// campaign is running in a round other than seenRound: without a task in the
// current round it would stay queued. A paused campaign's resume enqueues
// it; in the same round the caller's own task retries it. A non-empty
// idSuffix gives the task an id of its own, for a recipient whose earlier
// task of this round may still be in the queue.
func (s *Service) requeueInCurrentRound(ctx context.Context, id string, seq, seenRound int64, idSuffix string) error {
	g, err := s.store.gate(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if g.status != StatusRunning || (g.round == seenRound && idSuffix == "") {
		return nil
	}
	accounts, err := s.store.accountsOf(ctx, id)
	if err != nil {
		return err
	}
	due, err := s.queue.plan(ctx, accounts, []int64{seq})
	if err != nil {
		return err
	}
	taskID := sendTaskID(id, seq, g.round) + idSuffix
	if err := s.queue.enqueuePlanned(ctx, taskID, sendPayload{Campaign: id, Seq: seq, Round: g.round}, due[0]); err != nil {
		return err
	}
	return s.store.notePlanEnd(ctx, id, due[0])
}

// enqueueQueued enqueues, in round, a send task for every recipient of the
// campaign that is still queued: what starting a scheduled campaign and
// resuming a paused one do. Recipients are walked bucket by bucket, so a
// million of them never sit in memory at once.
func (s *Service) enqueueQueued(ctx context.Context, campaignID string, accounts []string, round int64) (int64, error) {
	var enqueued int64
	err := s.store.eachQueuedBucket(ctx, campaignID, func(seqs []int64) error {
		latest, err := s.queue.enqueueBatch(ctx, sendBatch{campaign: campaignID, accounts: accounts, round: round, seqs: seqs, parallel: 16})
		if err != nil {
			return err
		}
		enqueued += int64(len(seqs))
		return s.store.notePlanEnd(ctx, campaignID, latest)
	})
	if err != nil {
		return enqueued, fmt.Errorf("enqueue the queued recipients of campaign %s: %w", campaignID, err)
	}
	return enqueued, nil
}
