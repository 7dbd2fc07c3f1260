package campaign

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// TestSendTestReachesTheProviderOnce: a test of a draft goes out once, to
// the user's phone, with the first recipient's message, through the send
// path; it shows in the test's own history and not in the campaign's
// counts, and a rerun of its task sends nothing more.
func TestSendTestReachesTheProviderOnce(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	c := f.importCSV("Hi {{.name}}, our sale is on in {{.city}} ({{.campaign.id}})", draftCSV, asDraft)

	test, err := f.service.SendTest(ctx, TestRequest{Campaign: c.ID, Phone: "(415) 555-0199", Region: "US"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if test.Phone != "+14155550199" || test.CampaignID != c.ID || test.State != StateQueued {
		t.Fatalf("the test send: %+v", test)
	}
	tasks, err := f.inspector.ListScheduledTasks(QueueSend)
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatal(err)
	}
	pending, _ := f.inspector.ListPendingTasks(QueueSend)
	if len(tasks)+len(pending) != 1 {
		t.Fatalf("a test send queued %d send tasks, want 1", len(tasks)+len(pending))
	}
	task := asynq.NewTask(TypeSend, append(tasks, pending...)[0].Payload)
	if ran := f.runQueued(QueueSend, TypeSend, "", f.handler); ran != 1 {
		t.Fatalf("ran %d send tasks", ran)
	}
	if err := f.handler.ProcessTask(ctx, task); err != nil {
		t.Fatalf("a rerun of the test's task: %v", err)
	}
	msgs := f.sandbox.Messages()
	if len(msgs) != 1 || msgs[0].Recipient != "+14155550199" || msgs[0].Text != "Hi Ana, our sale is on in Washington ("+c.ID+")" {
		t.Fatalf("the provider got %+v; want one message to the test phone with the first recipient's text and the campaign's id", msgs)
	}

	tests, err := f.service.Tests(ctx, c.ID)
	if err != nil || len(tests) != 1 {
		t.Fatalf("Tests: %v, %+v", err, tests)
	}
	got := tests[0]
	if got.State != StateSent || got.MessageUID != msgs[0].UID || !hasStates(got.History, StateQueued, StateSending, StateSent) {
		t.Errorf("the test's own history: %s %q %+v", got.State, got.MessageUID, got.History)
	}
	after := f.get(c.ID)
	if after.Status != StatusDraft || after.Counts.Queued != 3 || after.Counts.Sent != 0 || after.Credits.Spent != 0 {
		t.Errorf("the campaign after its test: %s %+v, %d credits spent; want a draft untouched", after.Status, after.Counts, after.Credits.Spent)
	}

	var input *InputError
	if _, err := f.service.SendTest(ctx, TestRequest{Campaign: c.ID, Phone: "12345", Region: "US"}, time.Now()); !errors.As(err, &input) || input.Problems[0].Fields[0] != "phone" {
		t.Errorf("a test to a bad phone: %v; want an InputError on phone", err)
	}
	if _, err := f.service.SendTest(ctx, TestRequest{Campaign: "nope", Phone: "+14155550199"}, time.Now()); !errors.Is(err, ErrNotFound) {
		t.Errorf("a test of no campaign: %v", err)
	}
	// A campaign that keeps taking recipients (a sequence step) and has
	// none yet has no message to test.
	open := &Campaign{ID: "step1", Name: "Welcome", Status: StatusRunning, CreatedAt: time.Now(), Template: "Hi", Columns: []string{"phone"}}
	if err := f.store.CreateOpen(ctx, open, "phone"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.service.SendTest(ctx, TestRequest{Campaign: "step1", Phone: "+14155550199"}, time.Now()); !errors.As(err, &input) || !strings.Contains(err.Error(), "no recipient yet") {
		t.Errorf("a test of a campaign without recipients: %v; want an InputError saying so", err)
	}
	if n := len(f.sandbox.Messages()); n != 1 {
		t.Errorf("the refused tests sent %d messages more", n-1)
	}
}

func hasStates(h []HistoryEntry, want ...State) bool {
	i := 0
	for _, e := range h {
		if i < len(want) && e.State == want[i] {
			i++
		}
	}
	return i == len(want)
}

// TestDeleteRemovesEverything: deleting a finished campaign leaves no key
// of it (nor of its test sends) in Redis and no entry of it in the uid
// index; its tasks still queued run harmlessly and write nothing back. A
// campaign that may still send is refused, naming its status.
func TestDeleteRemovesEverything(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	deps := f.sendDeps
	deps.IndexForWebhooks = true
	indexing := NewSendHandler(deps)

	done := f.importCSV("Hi {{.name}}", draftCSV)
	if _, err := f.service.SendTest(ctx, TestRequest{Campaign: done.ID, Phone: "+14155550199"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	f.runQueued(QueueSend, TypeSend, "", indexing)
	if got := f.get(done.ID); got.Status != StatusCompleted {
		t.Fatalf("status %s", got.Status)
	}
	if !strings.Contains(f.uidIndex(), done.ID) {
		t.Fatal("the sends were not indexed: the test would prove nothing")
	}

	running := f.importCSV("Hi", draftCSV)
	var te *TransitionError
	if err := f.store.Delete(ctx, running.ID); !errors.As(err, &te) || te.Status != StatusRunning {
		t.Fatalf("deleting a running campaign: %v; want a TransitionError naming running", err)
	}
	if _, err := f.store.Cancel(ctx, running.ID, "", time.Now()); err != nil {
		t.Fatal(err)
	}

	for _, id := range []string{done.ID, running.ID} {
		if err := f.store.Delete(ctx, id); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	// The cancelled campaign's send tasks, and a status poll and a lookup
	// of the deleted one, run after the delete.
	ran := f.runQueued(QueueSend, TypeSend, "", f.handler)
	for _, task := range []*asynq.Task{
		asynq.NewTask(TypePoll, []byte(`{"c":"`+done.ID+`","s":0}`)),
		asynq.NewTask(TypeReconcile, []byte(`{"c":"`+done.ID+`","s":0,"d":1}`)),
		asynq.NewTask(TypeStart, []byte(`{"c":"`+running.ID+`"}`)),
	} {
		var h asynq.Handler = f.starter
		switch task.Type() {
		case TypePoll:
			h = NewTracker(f.store, f.client, f.queue, PollSchedule{}, nil, f.sendDeps.Log)
		case TypeReconcile:
			h = f.reconciler
		}
		if err := h.ProcessTask(ctx, task); err != nil {
			t.Errorf("a %s task of a deleted campaign: %v", task.Type(), err)
		}
	}
	if ran != 3 || len(f.sandbox.Messages()) != 4 {
		t.Errorf("after the delete %d send tasks ran and the provider has %d messages; want 3 harmless tasks and the 4 messages of before", ran, len(f.sandbox.Messages()))
	}
	for _, id := range []string{done.ID, running.ID} {
		if keys := f.keysNaming(id); len(keys) > 0 {
			t.Errorf("keys of deleted campaign %s are left: %v", id, keys)
		}
		if _, err := f.store.Get(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get of deleted campaign %s: %v", id, err)
		}
	}
	if strings.Contains(f.uidIndex(), done.ID) {
		t.Error("the uid index still leads to the deleted campaign")
	}
	if list, _ := f.store.List(ctx, 10, ""); len(list) != 0 {
		t.Errorf("the list still has %d campaigns", len(list))
	}
	if err := f.store.Delete(ctx, done.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting it again: %v; want ErrNotFound", err)
	}
}

// keysNaming lists the product's keys whose name holds id (a campaign's
// hash tag, and its test sends').
func (f *fixture) keysNaming(id string) []string {
	f.t.Helper()
	var out []string
	iter := f.rdb.Scan(context.Background(), 0, KeyPrefix+"*", 1000).Iterator()
	for iter.Next(context.Background()) {
		if strings.Contains(iter.Val(), id) {
			out = append(out, iter.Val())
		}
	}
	if err := iter.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// uidIndex is every value of the message uid index, joined.
func (f *fixture) uidIndex() string {
	f.t.Helper()
	var b strings.Builder
	iter := f.rdb.Scan(context.Background(), 0, KeyPrefix+"uid:*", 1000).Iterator()
	for iter.Next(context.Background()) {
		vals, err := f.rdb.HVals(context.Background(), iter.Val()).Result()
		if err != nil {
			f.t.Fatal(err)
		}
		b.WriteString(strings.Join(vals, " "))
	}
	return b.String()
}
