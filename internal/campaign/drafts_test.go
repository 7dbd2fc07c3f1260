package campaign

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
	"github.com/wacampaign/wacampaign/internal/templating"
)

const draftCSV = "phone,name,city\n+12025550101,Ana,Washington\n+12025550102,Brian,\n+12025550103,Chen,Chicago\n"

func asDraft(d *Draft) { d.AsDraft = true }

// queuedTasks counts the tasks waiting in the campaign queues (scheduled or
// pending): what a worker would run.
func (f *fixture) queuedTasks() int {
	f.t.Helper()
	n := 0
	for _, q := range []string{QueueSend, QueueControl, QueueStatus} {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){f.inspector.ListScheduledTasks, f.inspector.ListPendingTasks} {
			infos, err := list(q)
			if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
				f.t.Fatal(err)
			}
			n += len(infos)
		}
	}
	return n
}

// TestDraftQueuesNothingUntilStarted: a draft is imported and counted but
// has no task at all; Start queues it, and its messages then go out once
// each; starting it again is refused naming its status.
func TestDraftQueuesNothingUntilStarted(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	c := f.importCSV("Hi {{.name}}", draftCSV+"+12025550101,Ana again,\nnot-a-phone,Bad,\n", asDraft)
	if c.Status != StatusDraft || c.Counts.Total != 3 || c.Counts.Queued != 3 || c.Duplicates != 1 || c.RejectedCount != 1 {
		t.Fatalf("draft: %s %+v, %d duplicates, %d rejected", c.Status, c.Counts, c.Duplicates, c.RejectedCount)
	}
	if n := f.queuedTasks(); n != 0 {
		t.Fatalf("a draft has %d tasks queued, want none", n)
	}
	if n := f.runQueued(QueueSend, TypeSend, "", f.handler); n != 0 || len(f.sandbox.Messages()) != 0 {
		t.Fatalf("a draft ran %d send tasks and sent %d messages", n, len(f.sandbox.Messages()))
	}

	started, err := f.service.Start(ctx, c.ID, time.Time{}, time.Now())
	if err != nil || started.Status != StatusRunning {
		t.Fatalf("Start: %v, status %v", err, started)
	}
	if ran := f.runQueued(QueueControl, TypeStart, "", f.starter); ran != 1 {
		t.Fatalf("Start queued %d start tasks, want 1", ran)
	}
	if ran := f.runQueued(QueueSend, TypeSend, "", f.handler); ran != 3 {
		t.Fatalf("the start queued %d send tasks, want 3", ran)
	}
	if got := f.get(c.ID); got.Status != StatusCompleted || got.Counts.Sent != 3 || len(f.sandbox.Messages()) != 3 {
		t.Errorf("after the start: %s %+v, %d messages at the provider", got.Status, got.Counts, len(f.sandbox.Messages()))
	}
	var te *TransitionError
	if _, err := f.service.Start(ctx, c.ID, time.Time{}, time.Now()); !errors.As(err, &te) || te.Status != StatusCompleted ||
		err.Error() != "cannot start a campaign that is completed" {
		t.Errorf("starting a completed campaign: %v; want a TransitionError naming completed", err)
	}
}

// TestDraftStartsAtItsSendAt: a draft created with a send_at keeps it and
// is scheduled for it when started; Start with a time of its own moves it;
// a time in the past is refused.
func TestDraftStartsAtItsSendAt(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	at := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	c := f.importCSV("Hi", draftCSV, asDraft, func(d *Draft) { d.SendAt = at })
	if c.Status != StatusDraft || c.SendAt == nil || !c.SendAt.Equal(at) || f.queuedTasks() != 0 {
		t.Fatalf("a draft with a send_at: %s at %v, %d tasks", c.Status, c.SendAt, f.queuedTasks())
	}
	var input *InputError
	if _, err := f.service.Start(ctx, c.ID, time.Now().Add(-time.Hour), time.Now()); !errors.As(err, &input) || input.Problems[0].Fields[0] != "send_at" {
		t.Fatalf("Start in the past: %v; want an InputError on send_at", err)
	}
	later := at.Add(time.Hour)
	got, err := f.service.Start(ctx, c.ID, later, time.Now())
	if err != nil || got.Status != StatusScheduled || !got.SendAt.Equal(later) {
		t.Fatalf("Start at a time of its own: %v, %+v", err, got)
	}
	scheduled, err := f.inspector.ListScheduledTasks(QueueControl)
	if err != nil || len(scheduled) != 1 || !scheduled[0].NextProcessAt.Equal(later) {
		t.Fatalf("start tasks %v (%v), want one due at %v", scheduled, err, later)
	}

	other := f.importCSV("Hi", draftCSV, asDraft, func(d *Draft) { d.SendAt = at })
	got, err = f.service.Start(ctx, other.ID, time.Time{}, time.Now())
	if err != nil || got.Status != StatusScheduled || !got.SendAt.Equal(at) {
		t.Errorf("Start without a time: %v, %+v; want scheduled at the draft's own send_at %v", err, got, at)
	}
}

// TestEditDraft: a draft's fields change; the template is checked again
// against the contacts' columns, a mistake changes nothing; the file's
// credits follow the attachment; a campaign that is no draft is refused
// naming its status.
func TestEditDraft(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	c := f.importCSV("Hi {{.name}}", draftCSV, asDraft)
	edit := func(change func(d *Draft)) (*Campaign, error) {
		cur := f.get(c.ID)
		d, err := DraftOf(cur)
		if err != nil {
			t.Fatal(err)
		}
		change(&d)
		return f.importer.Edit(ctx, c.ID, d)
	}
	tmpl := func(src string) *templating.Template {
		parsed, err := templating.Parse("template", src)
		if err != nil {
			t.Fatal(err)
		}
		return parsed
	}

	_, err := edit(func(d *Draft) { d.Template = tmpl("Hi {{.first_name}}") })
	var input *InputError
	if !errors.As(err, &input) || input.Problems[0].Fields[0] != "template" || !strings.Contains(err.Error(), "first_name") {
		t.Fatalf("a template using a column the file lacks: %v; want an InputError on template naming first_name", err)
	}
	if got := f.get(c.ID); got.Template != "Hi {{.name}}" {
		t.Fatalf("a refused edit changed the template to %q", got.Template)
	}

	window, _ := ParseWindow("mon-fri", "09:00-17:00", "Europe/Madrid")
	got, err := edit(func(d *Draft) {
		d.Name, d.Template, d.Label, d.FileUID = "Renamed", tmpl(`Hi {{.name}} in {{default "town" .city}}`), "spring", "file-1"
		d.Accounts, d.Window = []string{"+14155550100"}, window
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Renamed" || got.Template != `Hi {{.name}} in {{default "town" .city}}` || got.Label != "spring" ||
		got.FileUID != "file-1" || len(got.Accounts) != 1 || got.Accounts[0] != "+14155550100" || got.Window == nil || got.Window.Zone != "Europe/Madrid" {
		t.Fatalf("after the edit: %+v", got)
	}
	if got.Credits.Estimated != 6 {
		t.Errorf("with a file on every message the estimate is %d credits, want 6", got.Credits.Estimated)
	}
	got, err = edit(func(d *Draft) { d.FileUID, d.Window = "", nil })
	if err != nil || got.FileUID != "" || got.Window != nil || got.Credits.Estimated != 3 {
		t.Fatalf("taking the file and window away: %v, %+v", err, got)
	}
	if f.queuedTasks() != 0 {
		t.Fatalf("editing a draft queued %d tasks", f.queuedTasks())
	}

	if _, err := f.service.Start(ctx, c.ID, time.Time{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var te *TransitionError
	if _, err := edit(func(d *Draft) { d.Name = "too late" }); !errors.As(err, &te) || te.Status != StatusRunning {
		t.Errorf("editing a running campaign: %v; want a TransitionError naming running", err)
	}
}

// TestDraftAfterTheContacts: draft=true that comes after the contacts of a
// held upload turns the campaign into a draft; the tasks the upload queued
// meanwhile send nothing.
func TestDraftAfterTheContacts(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	parsed, _ := templating.Parse("t", "Hi")
	early := Draft{Name: "Late draft", Template: parsed, Hold: true}
	held, err := f.importer.Import(ctx, early, strings.NewReader(draftCSV))
	if err != nil {
		t.Fatal(err)
	}
	final := early
	final.AsDraft = true
	c, err := f.importer.Release(ctx, held, early, final)
	if err != nil || c.Status != StatusDraft {
		t.Fatalf("Release with draft=true: %v, %+v", err, c)
	}
	f.runQueued(QueueSend, TypeSend, "", f.handler)
	if n := len(f.sandbox.Messages()); n != 0 {
		t.Fatalf("a campaign made a draft after its contacts sent %d messages", n)
	}
	if got := f.get(c.ID); got.Status != StatusDraft || got.Counts.Queued != 3 {
		t.Errorf("after its old tasks ran: %s %+v", got.Status, got.Counts)
	}
}
