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

func mustTemplate(t *testing.T, src string) *templating.Template {
	t.Helper()
	tmpl, err := templating.Parse("t", src)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// startTasks runs every start task in the control queue.
func (f *fixture) runStartTasks() {
	f.t.Helper()
	var tasks []*asynq.TaskInfo
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){f.inspector.ListPendingTasks, f.inspector.ListScheduledTasks} {
		got, err := list(QueueControl)
		if err != nil {
			f.t.Fatal(err)
		}
		tasks = append(tasks, got...)
	}
	if len(tasks) == 0 {
		f.t.Fatal("no start task")
	}
	for _, info := range tasks {
		if err := f.starter.ProcessTask(context.Background(), asynq.NewTask(info.Type, info.Payload)); err != nil {
			f.t.Fatal(err)
		}
	}
}

// TestHeldImportSendsNothingUntilReleased: a held campaign's tasks wait;
// Release applies accounts that came late in a new round, whose tasks send
// from them, while the tasks planned before find themselves outdated.
func TestHeldImportSendsNothingUntilReleased(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	early := Draft{Name: "Held", Template: mustTemplate(t, "Hi {{.name}}"), Hold: true}
	c, err := f.importer.Import(ctx, early, strings.NewReader("phone,name\n+12025550101,Ann\n+12025550102,Bob\n"))
	if err != nil {
		t.Fatal(err)
	}
	var wait *WaitError
	if err := f.handler.ProcessTask(ctx, f.task(c.ID, 0)); !errors.As(err, &wait) {
		t.Fatalf("a held campaign's task answered %v; want it to wait", err)
	}

	final := early
	final.Name, final.Accounts, final.Label = "Released", []string{"+14155550100"}, "late"
	released, err := f.importer.Release(ctx, c, early, final)
	if err != nil {
		t.Fatal(err)
	}
	if released.Name != "Released" || released.Label != "late" || len(released.Accounts) != 1 || released.Status != StatusRunning {
		t.Fatalf("released: %q %q %v %s", released.Name, released.Label, released.Accounts, released.Status)
	}
	f.runStartTasks()
	if err := f.handler.ProcessTask(ctx, f.taskOfRound(c.ID, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := f.handler.ProcessTask(ctx, f.task(c.ID, 1)); err != nil {
		t.Fatalf("a task planned before the release: %v", err)
	}
	msgs := f.sandbox.Messages()
	if len(msgs) != 1 || msgs[0].Sender != "+14155550100" || msgs[0].Label != "late" || msgs[0].Text != "Hi Ann" {
		t.Fatalf("sandbox got %+v; want Ann's message alone, from the late account with the late label", msgs)
	}
	if uploading, _ := f.rdb.SIsMember(ctx, uploadingIndex, c.ID).Result(); uploading {
		t.Error("a released campaign is still listed as uploading")
	}
}

// TestReleaseRefusesALateTemplateTheContactsCannotFill: the template is
// checked against the columns, and the held campaign is then discarded with
// everything it wrote.
func TestReleaseRefusesALateTemplateTheContactsCannotFill(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	early := Draft{Template: mustTemplate(t, "Hi {{.name}}"), Hold: true}
	c, err := f.importer.Import(ctx, early, strings.NewReader("phone,name\n+12025550101,Ann\n123,Broken\n"))
	if err != nil {
		t.Fatal(err)
	}
	final := early
	final.Template = mustTemplate(t, "Hi {{.name}} in {{.city}}")
	_, err = f.importer.Release(ctx, c, early, final)
	var input *InputError
	if !errors.As(err, &input) || input.Problems[0].Fields[0] != "template" || !strings.Contains(input.Msg, "city") {
		t.Fatalf("release answered %v; want an input error naming the template and city", err)
	}
	if err := f.importer.DiscardUpload(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if keys, _ := f.rdb.Keys(ctx, campaignKey(c.ID)+"*").Result(); len(keys) != 0 {
		t.Errorf("the discarded campaign left %v", keys)
	}
	for _, index := range []string{activeIndex, uploadingIndex} {
		if member, _ := f.rdb.SIsMember(ctx, index, c.ID).Result(); member {
			t.Errorf("the discarded campaign is still in %s", index)
		}
	}
	if list, _ := f.store.List(ctx, 10, ""); len(list) != 0 {
		t.Errorf("the discarded campaign is still listed")
	}
	if err := f.handler.ProcessTask(ctx, f.task(c.ID, 0)); err != nil || len(f.sandbox.Messages()) != 0 {
		t.Errorf("a task of the discarded campaign: %v, %d messages", err, len(f.sandbox.Messages()))
	}
}

// TestReleaseWithALateSendAtSchedules: a send_at that came after the
// contacts makes the campaign scheduled, started by a task at that time.
func TestReleaseWithALateSendAtSchedules(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	early := Draft{Template: mustTemplate(t, "Hi"), Hold: true}
	c, err := f.importer.Import(ctx, early, strings.NewReader("phone\n+12025550101\n"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	final := early
	final.SendAt = at
	released, err := f.importer.Release(ctx, c, early, final)
	if err != nil {
		t.Fatal(err)
	}
	if released.Status != StatusScheduled || released.SendAt == nil || !released.SendAt.Equal(at) {
		t.Fatalf("released: %s at %v; want scheduled at %v", released.Status, released.SendAt, at)
	}
	starts, err := f.inspector.ListScheduledTasks(QueueControl)
	if err != nil || len(starts) != 1 || !starts[0].NextProcessAt.Equal(at) {
		t.Fatalf("start tasks %v %v; want one at %v", starts, err, at)
	}
	if err := f.handler.ProcessTask(ctx, f.task(c.ID, 0)); err != nil || len(f.sandbox.Messages()) != 0 {
		t.Errorf("the task planned for now: %v, %d messages; want nothing before send_at", err, len(f.sandbox.Messages()))
	}
}
