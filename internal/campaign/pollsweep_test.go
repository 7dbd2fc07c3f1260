package campaign

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// sweeper is a poll sweeper on the fixture whose clock reads at.
func (f *fixture) sweeper(at time.Time) *PollSweeper {
	w := NewPollSweeper(f.store, f.queue, time.Second, f.handler.log)
	w.now = func() time.Time { return at }
	return w
}

// sweep makes one pass of a sweeper at at and answers how many polls it
// enqueued.
func (f *fixture) sweep(at time.Time) int {
	f.t.Helper()
	n, err := f.sweeper(at).Sweep(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// pollTasks are the ids of the status polls waiting in the queue.
func (f *fixture) pollTasks() []string {
	f.t.Helper()
	var ids []string
	for _, info := range f.queued(QueueStatus, TypePoll) {
		ids = append(ids, info.ID)
	}
	return ids
}

// providerStatuses are the provider's words in a recipient's history.
func providerStatuses(r Recipient) []string {
	var words []string
	for _, e := range r.History {
		if e.ProviderStatus != "" {
			words = append(words, e.ProviderStatus)
		}
	}
	return words
}

var minuteThenFive = PollSchedule{Delays: []time.Duration{time.Minute, 5 * time.Minute}, MaxAge: time.Hour}

// TestFirstPollRunsOnScheduleThroughTheSweeper: a sent message's first
// status poll is not queued by the send; the sweeper queues it once it is
// due (not before), and running it puts the provider's status in the
// recipient's history.
func TestFirstPollRunsOnScheduleThroughTheSweeper(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	f.handler.polls = minuteThenFive
	c := f.importCSV("Hi", "phone\n+12025550101\n")
	sentAt := time.Now()
	if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	if ids := f.pollTasks(); len(ids) != 0 {
		t.Fatalf("the send queued polls itself: %v", ids)
	}
	if n := f.sweep(sentAt.Add(50 * time.Second)); n != 0 {
		t.Fatalf("the sweeper queued %d polls 50 s after the send, want none before the schedule's 1 min", n)
	}
	if n := f.sweep(sentAt.Add(61 * time.Second)); n != 1 {
		t.Fatalf("the sweeper queued %d polls once due, want 1", n)
	}
	if ids := f.pollTasks(); len(ids) != 1 || ids[0] != "poll:"+c.ID+":0:0" {
		t.Fatalf("queued polls %v, want the recipient's first", ids)
	}
	if n := f.runQueued(QueueStatus, TypePoll, "", f.tracker(minuteThenFive)); n != 1 {
		t.Fatalf("ran %d polls, want 1", n)
	}
	if words := providerStatuses(f.recipient(c.ID, 0)); len(words) != 1 || words[0] != "Sent" {
		t.Errorf("provider statuses in the history %v, want [Sent]", words)
	}
	if n := f.sweep(sentAt.Add(time.Hour)); n != 0 {
		t.Errorf("a later pass queued the first poll again (%d)", n)
	}
}

// TestPollOfAWorkerThatDiedAfterTheRecordStillRuns: the recorded outcome is
// all a sent message needs to be followed. The worker that sent it is gone
// right after (nothing it would have done next happens); another process's
// sweeper queues the poll.
func TestPollOfAWorkerThatDiedAfterTheRecordStillRuns(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	c := f.importCSV("Hi", "phone\n+12025550101\n+12025550102\n")
	ctx := context.Background()
	run := &attemptRun{sendPayload: sendPayload{Campaign: c.ID, Seq: 1}, id: "attempt-1", log: f.handler.log}
	if res, err := f.store.claim(ctx, claimParams{Campaign: c.ID, Seq: 1, Attempt: run.id, Lease: time.Minute, Now: time.Now()}); err != nil || res.outcome != claimTaken {
		t.Fatalf("claim: %+v %v", res, err)
	}
	sent := time.Now()
	receipt, err := f.client.Send(ctx, sender.Message{Phone: "+12025550102", Text: "Hi"})
	if err != nil {
		t.Fatal(err)
	}
	uid := receipt.MessageUID
	// What recordSent writes, and then the worker dies: no index, no health
	// note, no poll enqueued.
	if err := f.handler.finishFrom(ctx, run, StateSending, record{State: StateSent, UID: uid}, 1, sent.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	other := f.otherProcess()
	if n, err := other.sweeper(sent.Add(2 * time.Minute)).Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("another process's sweeper queued %d polls (%v), want 1", n, err)
	}
	if n := f.runQueued(QueueStatus, TypePoll, "", f.tracker(minuteThenFive)); n != 1 {
		t.Fatalf("ran %d polls, want 1", n)
	}
	if words := providerStatuses(f.recipient(c.ID, 1)); len(words) != 1 || words[0] != "Sent" {
		t.Errorf("provider statuses in the history %v, want [Sent]", words)
	}
}

// TestTwoSweepersQueueEachPollOnce: two processes sweeping the same
// campaign at the same time, and a sweeper that died after queueing polls
// but before taking them off the set, queue each poll once.
func TestTwoSweepersQueueEachPollOnce(t *testing.T) {
	const n = 40
	f := newFixture(t, sandbox.Config{})
	f.handler.polls = minuteThenFive
	c := f.importCSV("Hi {{.name}}", contactsCSV(n))
	f.sendAll()
	due := time.Now().Add(2 * time.Minute)

	other := f.otherProcess()
	var wg sync.WaitGroup
	for _, w := range []*PollSweeper{f.sweeper(due), other.sweeper(due)} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := w.Sweep(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	assertOnePollEach(t, f, c.ID, n)

	// A sweeper that died between the two steps left its entries: the next
	// pass finds their tasks queued and only clears the set.
	ctx := context.Background()
	f.rdb.ZAdd(ctx, pollsKey(c.ID), redis.Z{Score: float64(due.UnixMilli()), Member: "3"}, redis.Z{Score: float64(due.UnixMilli()), Member: "7"})
	f.sweep(due)
	assertOnePollEach(t, f, c.ID, n)
}

func assertOnePollEach(t *testing.T, f *fixture, id string, n int) {
	t.Helper()
	ids := f.pollTasks()
	seen := map[string]bool{}
	for _, task := range ids {
		if seen[task] {
			t.Errorf("poll %s queued twice", task)
		}
		seen[task] = true
	}
	if len(seen) != n {
		t.Errorf("%d polls queued, want one for each of the %d recipients", len(seen), n)
	}
	if left := f.rdb.ZCard(context.Background(), pollsKey(id)).Val(); left != 0 {
		t.Errorf("%d polls left in the poll set after the sweep", left)
	}
}

// TestAGreatBacklogDrainsAPassAtATime: a pass queues at most its bound,
// earliest first; the next passes take the rest.
func TestAGreatBacklogDrainsAPassAtATime(t *testing.T) {
	const n = 25
	f := newFixture(t, sandbox.Config{})
	f.handler.polls = minuteThenFive
	c := f.importCSV("Hi {{.name}}", contactsCSV(n))
	f.sendAll()
	w := f.sweeper(time.Now().Add(2 * time.Minute))
	w.maxPass = 10
	for pass, want := range []int{10, 10, 5, 0} {
		if got, err := w.Sweep(context.Background()); err != nil || got != want {
			t.Fatalf("pass %d queued %d polls (%v), want %d", pass+1, got, err, want)
		}
	}
	assertOnePollEach(t, f, c.ID, n)
}

// TestDeletedOrExpiredCampaignLeavesNoPollSet: deleting a campaign whose
// first polls are not queued yet deletes them with it; the retention
// keeper leaves an ended campaign where the sweeper looks until its polls
// are queued, and only then sets its keys to expire.
func TestDeletedOrExpiredCampaignLeavesNoPollSet(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	f.handler.polls = minuteThenFive
	ctx := context.Background()
	deleted := f.importCSV("Hi {{.name}}", contactsCSV(2))
	kept := f.importCSV("Hi {{.name}}", contactsCSV(2))
	f.sendAll()
	for _, id := range []string{deleted.ID, kept.ID} {
		if got := f.get(id); got.Status != StatusCompleted || f.rdb.ZCard(ctx, pollsKey(id)).Val() != 2 {
			t.Fatalf("campaign %s %s with %d polls waiting, want completed with 2", id, got.Status, f.rdb.ZCard(ctx, pollsKey(id)).Val())
		}
	}
	if err := f.store.Delete(ctx, deleted.ID); err != nil {
		t.Fatal(err)
	}
	if keys := f.rdb.Keys(ctx, "wac:c:{"+deleted.ID+"}*").Val(); len(keys) != 0 {
		t.Errorf("keys of the deleted campaign remain: %v", keys)
	}

	k := NewRetentionKeeper(f.store, time.Hour, time.Minute, -1, zap.NewNop())
	if err := k.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if ttl := f.rdb.PTTL(ctx, campaignKey(kept.ID)).Val(); ttl != -1 || !f.rdb.SIsMember(ctx, endedIndex, kept.ID).Val() {
		t.Fatalf("with polls waiting, the campaign has TTL %s and is ended-listed %v; want no TTL, still listed",
			ttl, f.rdb.SIsMember(ctx, endedIndex, kept.ID).Val())
	}
	if n := f.sweep(time.Now().Add(2 * time.Minute)); n != 2 {
		t.Fatalf("the sweeper queued %d polls of the ended campaign, want 2", n)
	}
	if err := k.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if ttl := f.rdb.PTTL(ctx, campaignKey(kept.ID)).Val(); ttl <= 0 {
		t.Errorf("once its polls were queued the campaign has TTL %s, want the retention", ttl)
	}
	if n := f.rdb.Exists(ctx, pollsKey(kept.ID)).Val(); n != 0 {
		t.Error("the expiring campaign keeps a poll set")
	}
}

// TestNoPollSetWithoutStatusHistory: a provider that keeps no status
// history (a gateway) gets no polls, so its sends enter none.
func TestNoPollSetWithoutStatusHistory(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	f.handler.polls = PollSchedule{}
	c := f.importCSV("Hi {{.name}}", contactsCSV(2))
	f.sendAll()
	if n := f.rdb.Exists(context.Background(), pollsKey(c.ID)).Val(); n != 0 {
		t.Error("sends without a poll schedule entered polls")
	}
}

// otherProcess is a second worker process on the fixture's Redis: a store
// and queue client of its own.
func (f *fixture) otherProcess() *fixture {
	rdb := f.redis.Client(f.t)
	client := asynq.NewClientFromRedisClient(rdb)
	f.t.Cleanup(func() { client.Close() })
	other := *f
	other.rdb = rdb
	other.store = NewStore(rdb)
	other.queue = NewEnqueuer(client, rdb, quota.NewPacer(rdb, time.Millisecond, 0))
	return &other
}

// TestReconciledSendGetsItsFirstPollWithTheRecord: an unconfirmed send that
// reconciliation finds at the provider is recorded sent with its first
// poll, which the sweeper queues like a send's.
func TestReconciledSendGetsItsFirstPollWithTheRecord(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	policy := ReconcilePolicy{After: time.Millisecond, MaxAge: time.Millisecond, Resend: true}
	f.reconciler = NewReconciler(ReconcilerDeps{Store: f.store, Provider: f.client, Queue: f.queue, Policy: policy, Polls: minuteThenFive, Log: f.handler.log})
	c := f.importCSV("Hi {{.name}}", "phone,name\n+12025550101,Ann\n")
	ctx := context.Background()
	f.deadAttempt(c.ID, 0, true)
	if _, err := f.client.Send(ctx, sender.Message{Phone: "+12025550101", Text: "Hi Ann"}); err != nil {
		t.Fatal(err)
	}
	if err := f.handler.ProcessTask(ctx, f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	f.reconcileAll()
	if r := f.recipient(c.ID, 0); r.State != StateSent {
		t.Fatalf("recipient %s after reconciliation, want sent", r.State)
	}
	if n := f.sweep(time.Now().Add(2 * time.Minute)); n != 1 {
		t.Fatalf("the sweeper queued %d polls of the reconciled send, want 1", n)
	}
	if n := f.runQueued(QueueStatus, TypePoll, "", f.tracker(minuteThenFive)); n != 1 {
		t.Fatalf("ran %d polls, want 1", n)
	}
	if words := providerStatuses(f.recipient(c.ID, 0)); len(words) != 1 || words[0] != "Sent" {
		t.Errorf("provider statuses in the history %v, want [Sent]", words)
	}
}
