package sequence

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// TestSequenceStepsGoOutOncePerEnrolment: enrolling a phone queues each step
// at the enrolment time plus its delay; enrolling it again changes nothing;
// unenrolling skips the steps not yet sent; bad enrolments name the field.
func TestSequenceStepsGoOutOncePerEnrolment(t *testing.T) {
	const account = "+14155550100"
	f := newFixture(t, sandbox.Config{Accounts: []string{account}})
	ctx := context.Background()
	seq, err := f.sequences.Create(ctx, Draft{Name: "Onboarding", Accounts: []string{account}, Steps: []DraftStep{
		{Name: "welcome", Template: mustTemplate(t, "Welcome {{.name}}")},
		{Name: "tips", Delay: time.Hour, Template: mustTemplate(t, "Tips for {{.plan}}")},
	}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(seq.Fields, ",") != "name,plan" || len(seq.Steps) != 2 {
		t.Fatalf("sequence fields %v, %d steps", seq.Fields, len(seq.Steps))
	}
	welcome, tips := seq.Steps[0].CampaignID, seq.Steps[1].CampaignID

	enrolledAt := time.Now()
	e, created, err := f.sequences.Enroll(ctx, seq, campaign.Address{Phone: "(202) 555-0101"}, map[string]string{"Name": "Ann", "plan": "pro"}, enrolledAt)
	if err != nil || !created || e.Phone != "+12025550101" || len(e.Steps) != 2 {
		t.Fatalf("enrol: %+v created %v, %v", e, created, err)
	}
	again, created, err := f.sequences.Enroll(ctx, seq, campaign.Address{Phone: "+12025550101"}, map[string]string{"name": "Annie", "plan": "pro"}, time.Now())
	if err != nil || created || !again.EnrolledAt.Equal(e.EnrolledAt) {
		t.Errorf("enrolling again: created %v at %v (first at %v), %v", created, again.EnrolledAt, e.EnrolledAt, err)
	}
	if c := f.get(tips); c.Counts.Total != 1 || c.Counts.Queued != 1 || c.Credits.Estimated != 1 || c.Status != campaign.StatusRunning {
		t.Errorf("the tips step after two enrolments of one phone: %s %+v %+v", c.Status, c.Counts, c.Credits)
	}
	due := f.sendTaskDue(tips, 0)
	if due.Before(enrolledAt.Add(time.Hour)) || due.After(enrolledAt.Add(time.Hour+2*time.Second)) {
		t.Errorf("the tips step is due at %v; enrolled at %v with a delay of 1h", due, enrolledAt)
	}

	if err := f.handler.ProcessTask(ctx, f.task(welcome, 0)); err != nil {
		t.Fatal(err)
	}
	msgs := f.sandbox.Messages()
	if len(msgs) != 1 || msgs[0].Text != "Welcome Ann" || msgs[0].AccountPhone != account {
		t.Fatalf("the sandbox got %+v; want the welcome to Ann", msgs)
	}

	n, err := f.sequences.Unenroll(ctx, seq, "+12025550101", time.Now())
	if err != nil || n != 1 {
		t.Fatalf("unenrol cancelled %d steps, %v; want 1 (the welcome was sent)", n, err)
	}
	got, err := f.sequences.Enrollment(ctx, seq, "+12025550101")
	if err != nil || got.Status != "cancelled" || got.Steps[0].State != campaign.StateSent || got.Steps[1].State != campaign.StateSkipped {
		t.Fatalf("enrolment after unenrol: %+v, %v", got, err)
	}
	if err := f.handler.ProcessTask(ctx, f.task(tips, 0)); err != nil {
		t.Fatal(err)
	}
	if len(f.sandbox.Messages()) != 1 {
		t.Errorf("an unenrolled step was sent")
	}
	if c := f.get(tips); c.Counts.Skipped != 1 || c.Counts.Sum() != c.Counts.Total {
		t.Errorf("the tips step: %+v", c.Counts)
	}

	var input *campaign.InputError
	if _, _, err := f.sequences.Enroll(ctx, seq, campaign.Address{Phone: "+12025550102"}, map[string]string{"name": "Bob"}, time.Now()); !errors.As(err, &input) || !strings.Contains(input.Msg, "plan") {
		t.Errorf("a missing field: %v; want an campaign.InputError naming plan", err)
	}
	if _, _, err := f.sequences.Enroll(ctx, seq, campaign.Address{Phone: "12"}, map[string]string{"name": "Bob", "plan": "x"}, time.Now()); !errors.As(err, &input) || input.Problems[0].Fields[0] != "phone" {
		t.Errorf("a bad phone: %v; want an campaign.InputError on phone", err)
	}
	if _, err := f.sequences.Create(ctx, Draft{Name: " ", Steps: []DraftStep{{Delay: time.Hour, Template: mustTemplate(t, "a")}, {Template: mustTemplate(t, "b")}}}, time.Now()); !errors.As(err, &input) || len(input.Problems) != 2 {
		t.Errorf("a sequence without a name and with steps out of order: %v; want two problems", err)
	}
}

// TestEnrollCSVEnrolsEveryGoodRow: a contacts CSV enrols its rows, counts
// phones enrolled already, and lists bad rows by their row number.
func TestEnrollCSVEnrolsEveryGoodRow(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	seq, err := f.sequences.Create(ctx, Draft{Name: "Onboarding", Steps: []DraftStep{{Name: "welcome", Template: mustTemplate(t, "Welcome {{.name}}")}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.sequences.Enroll(ctx, seq, campaign.Address{Phone: "+12025550101"}, map[string]string{"name": "Ann"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	report, err := f.sequences.EnrollCSV(ctx, seq, strings.NewReader("phone,name\n+12025550101,Ann\n+12025550102,Bob\n12,Bad\n+12025550103,Cy\n"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if report.Enrolled != 2 || report.AlreadyEnrolled != 1 || report.RejectedCount != 1 || report.Rejected[0].Row != 4 {
		t.Errorf("report %+v", report)
	}
	if n := f.runSends(); n != 3 {
		t.Errorf("ran %d send tasks, want 3", n)
	}
	if c := f.get(seq.Steps[0].CampaignID); c.Counts.Sent != 3 || c.Counts.Total != 3 {
		t.Errorf("the welcome step: %+v", c.Counts)
	}
	var input *campaign.InputError
	if _, err := f.sequences.EnrollCSV(ctx, seq, strings.NewReader("phone,city\n+12025550104,Oslo\n"), time.Now); !errors.As(err, &input) || !strings.Contains(input.Msg, "name") {
		t.Errorf("a CSV without the name column: %v; want an campaign.InputError naming it", err)
	}
}

// sendTaskDue is when the send task of recipient seq (round 0) is due.
func (f *fixture) sendTaskDue(campaignID string, seq int64) time.Time {
	f.t.Helper()
	info, err := f.inspector.GetTaskInfo(campaign.QueueSend, campaignID+":"+strconv.FormatInt(seq, 10))
	if err != nil {
		f.t.Fatalf("the send task of recipient %d of %s: %v", seq, campaignID, err)
	}
	return info.NextProcessAt
}
