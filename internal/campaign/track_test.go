package campaign

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// shiftedClock is a sandbox clock that tests move forward, so that the
// provider's statuses (delivered, read) come without waiting for them.
type shiftedClock struct{ offset atomic.Int64 }

func (c *shiftedClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *shiftedClock) advance(d time.Duration) { c.offset.Add(int64(d)) }
func (f *fixture) tracker(polls PollSchedule) *Tracker {
	budget, _ := quota.ParsePollBudget("1000/s")
	return NewTracker(f.store, f.client, f.queue, polls, quota.NewPollBudget(f.rdb, budget, f.store.QueuedSends), f.handler.log)
}

// TestPollsTurnProviderStatusesIntoHistory: a sent message's status polls
// record what the provider reports (Delivered, then Read) in the
// recipient's history, move the recipient and the campaign's counts
// forward, and stop once the status is final.
func TestPollsTurnProviderStatusesIntoHistory(t *testing.T) {
	clock := &shiftedClock{}
	f := newFixture(t, sandbox.Config{ReadRate: 1, DeliverAfter: 2 * time.Second, ReadAfter: 5 * time.Second, Now: clock.now})
	polls := PollSchedule{Delays: []time.Duration{time.Minute, 5 * time.Minute}, MaxAge: time.Hour}
	f.handler.polls = polls
	tracker := f.tracker(polls)
	c := f.importCSV("Hi", "phone\n+12025550101\n")
	if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}

	// Before the provider has delivered it, a poll learns "Sent" only and
	// schedules the next one. The first is queued by the poll sweeper.
	if n := f.sweep(time.Now().Add(time.Minute)); n != 1 {
		t.Fatalf("the send scheduled %d polls, want 1", n)
	}
	if n := f.runQueued(QueueStatus, TypePoll, "", tracker); n != 1 {
		t.Fatalf("the sweeper queued %d polls, want 1", n)
	}
	if r := f.recipient(c.ID, 0); r.State != StateSent {
		t.Fatalf("after the first poll the recipient is %s, want sent", r.State)
	}
	clock.advance(3 * time.Second)
	if n := f.runQueued(QueueStatus, TypePoll, "", tracker); n != 1 {
		t.Fatalf("the first poll scheduled %d more, want 1", n)
	}
	if got := f.get(c.ID); got.Counts.Delivered != 1 || got.Funnel.Delivered != 1 || !addsUp(got.Counts) {
		t.Errorf("after delivery: counts %+v funnel %+v", got.Counts, got.Funnel)
	}
	clock.advance(5 * time.Second)
	if n := f.runQueued(QueueStatus, TypePoll, "", tracker); n != 1 {
		t.Fatalf("the second poll scheduled %d more, want 1", n)
	}
	r := f.recipient(c.ID, 0)
	if r.State != StateRead {
		t.Fatalf("recipient %s, want read", r.State)
	}
	var words []string
	for _, e := range r.History {
		if e.ProviderStatus != "" {
			words = append(words, e.ProviderStatus)
		}
	}
	if len(words) != 3 || words[0] != "Sent" || words[1] != "Delivered" || words[2] != "Read" {
		t.Errorf("provider statuses in the history: %v, want [Sent Delivered Read] once each", words)
	}
	if got := f.get(c.ID); got.Counts.Read != 1 || got.Counts.Delivered != 0 || got.Funnel.Read != 1 || got.Funnel.ReadRate != 1 {
		t.Errorf("after read: counts %+v funnel %+v", got.Counts, got.Funnel)
	}
	if n := f.runQueued(QueueStatus, TypePoll, "", tracker); n != 0 {
		t.Errorf("a read message is polled again (%d polls)", n)
	}
}
