package campaign

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// TestRetryFailedRequeuesOnlyTheFailed: retry-failed puts the failed
// recipients of a completed campaign back in the queue, runs the campaign
// again for them alone, and leaves everyone who was sent alone.
func TestRetryFailedRequeuesOnlyTheFailed(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	c := f.importCSV("Hi", "phone\n+12025550101\n+12025550102\n+12025550103\n")
	f.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Phone: "+12025550102", Status: 400,
		Body: `{"status":"error","message":"bad number","error_code":"validation_error"}`})
	if n := f.runQueued(QueueSend, TypeSend, "", f.handler); n != 3 {
		t.Fatalf("ran %d send tasks, want 3", n)
	}
	if got := f.get(c.ID); got.Status != StatusCompleted || got.Counts.Failed != 1 || got.Counts.Sent != 2 {
		t.Fatalf("before the retry: %s %+v", got.Status, got.Counts)
	}

	f.sandbox.ClearFaults()
	n, err := f.service.RetryFailed(ctx, c.ID, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("retry-failed requeued %d, %v; want 1", n, err)
	}
	if got := f.get(c.ID); got.Status != StatusRunning || got.Counts.Queued != 1 || got.Counts.Failed != 0 || !addsUp(got.Counts) {
		t.Errorf("after retry-failed: %s %+v", got.Status, got.Counts)
	}
	if ran := f.runQueued(QueueControl, TypeRetry, "", f.starter); ran != 1 {
		t.Fatalf("ran %d retry tasks, want 1", ran)
	}
	if ran := f.runQueued(QueueSend, TypeSend, "", f.handler); ran != 1 {
		t.Fatalf("the retry enqueued %d send tasks, want 1 (only the failed recipient)", ran)
	}
	got := f.get(c.ID)
	if got.Status != StatusCompleted || got.Counts.Sent != 3 || got.Counts.Failed != 0 || !addsUp(got.Counts) {
		t.Errorf("after the retry ran: %s %+v", got.Status, got.Counts)
	}
	perPhone := map[string]int{}
	for _, m := range f.sandbox.Messages() {
		perPhone[m.Recipient]++
	}
	if len(perPhone) != 3 || perPhone["+12025550101"] != 1 || perPhone["+12025550102"] != 1 || perPhone["+12025550103"] != 1 {
		t.Errorf("messages per phone %v; want one each", perPhone)
	}

	if _, err := f.store.Cancel(ctx, c.ID, "", time.Now()); err == nil {
		t.Fatal("a completed campaign was cancelled")
	}
	cancelled := f.importCSV("Hi", "phone\n+12025550104\n")
	if _, err := f.store.Cancel(ctx, cancelled.ID, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	var te *TransitionError
	if _, err := f.service.RetryFailed(ctx, cancelled.ID, time.Now()); !errors.As(err, &te) || te.Status != StatusCancelled {
		t.Errorf("retry-failed of a cancelled campaign: %v; want a TransitionError naming cancelled", err)
	}
}

// TestRescheduleMovesTheStart: a scheduled campaign's send_at moves; the
// start task of the old time does nothing, the new one starts it; a time
// in the past, or a campaign that is not scheduled, is refused.
func TestRescheduleMovesTheStart(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	c := f.importCSV("Hi", "phone\n+12025550101\n", func(d *Draft) { d.SendAt = time.Now().Add(time.Hour) })
	if c.Status != StatusScheduled {
		t.Fatalf("status %s, want scheduled", c.Status)
	}
	var input *InputError
	if _, err := f.service.Reschedule(ctx, c.ID, time.Now().Add(-time.Minute), time.Now()); !errors.As(err, &input) || input.Problems[0].Fields[0] != "send_at" {
		t.Errorf("a send_at in the past: %v; want an InputError on send_at", err)
	}
	oldStart := f.startTasks()
	if len(oldStart) != 1 {
		t.Fatalf("%d start tasks, want 1", len(oldStart))
	}
	sendAt := time.Now().Add(1500 * time.Millisecond).Truncate(time.Millisecond)
	got, err := f.service.Reschedule(ctx, c.ID, sendAt, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusScheduled || got.SendAt == nil || !got.SendAt.Equal(sendAt) {
		t.Fatalf("after reschedule: %s send_at %v, want scheduled at %v", got.Status, got.SendAt, sendAt)
	}
	// The old start task fires (at its old time, here at once): outdated.
	if err := f.starter.ProcessTask(ctx, oldStart[0]); err != nil {
		t.Fatal(err)
	}
	if got := f.get(c.ID); got.Status != StatusScheduled {
		t.Fatalf("the outdated start task moved the campaign to %s", got.Status)
	}
	time.Sleep(time.Until(sendAt) + 50*time.Millisecond)
	if ran := f.runQueued(QueueControl, TypeStart, "", f.starter); ran != 1 {
		t.Fatalf("ran %d start tasks, want the new one", ran)
	}
	if ran := f.runQueued(QueueSend, TypeSend, "", f.handler); ran != 1 {
		t.Fatalf("the start enqueued %d send tasks, want 1", ran)
	}
	if got := f.get(c.ID); got.Status != StatusCompleted || got.Counts.Sent != 1 {
		t.Errorf("after the start: %s %+v", got.Status, got.Counts)
	}
	var te *TransitionError
	if _, err := f.service.Reschedule(ctx, c.ID, time.Now().Add(time.Hour), time.Now()); !errors.As(err, &te) || te.Status != StatusCompleted {
		t.Errorf("rescheduling a completed campaign: %v; want a TransitionError naming completed", err)
	}
}

// startTasks takes the start tasks waiting in the control queue out of it,
// as asynq does when it hands them to a worker.
func (f *fixture) startTasks() []*asynq.Task {
	f.t.Helper()
	infos, err := f.inspector.ListScheduledTasks(QueueControl)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []*asynq.Task
	for _, info := range infos {
		if info.Type == TypeStart {
			if err := f.inspector.DeleteTask(QueueControl, info.ID); err != nil {
				f.t.Fatal(err)
			}
			out = append(out, asynq.NewTask(info.Type, info.Payload))
		}
	}
	return out
}
