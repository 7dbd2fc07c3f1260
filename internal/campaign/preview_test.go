package campaign

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// forecaster is a Forecaster on the fixture's Redis, for a TimelinesAI-like
// provider (credits metered, 2000 characters).
func (f *fixture) forecaster() *Forecaster {
	return NewForecaster(ForecastDeps{Store: f.store, Pacer: f.sendDeps.Pacer, Accounts: f.sendDeps.Accounts,
		Ledger: f.ledger, Caps: sender.TimelinesCapabilities(), QuotaSyncEvery: time.Minute})
}

// TestPreviewOfTheExampleFile: the README's sample template over
// examples/contacts.csv: the rows as read (a rejected row with its number
// and reason, a duplicate), the first messages rendered with their rows,
// lengths and credits, and the empty city of row 5 named as a gap.
func TestPreviewOfTheExampleFile(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	csv, err := os.ReadFile("../../examples/contacts.csv")
	if err != nil {
		t.Fatal(err)
	}
	c := f.importCSV(`Hi {{default "there" (firstName .name)}}, our sale is on in {{.city}}!`, string(csv), asDraft)
	p, err := NewPreviewer(f.store, sender.TimelinesCapabilities(), f.forecaster()).Preview(ctx, c.ID, 5)
	if err != nil {
		t.Fatal(err)
	}
	if p.Rows != (RowCounts{Read: 7, Valid: 5, Duplicates: 1, Rejected: 1}) {
		t.Errorf("rows %+v; want 7 read, 5 valid, 1 duplicate, 1 rejected", p.Rows)
	}
	if len(p.Rejected) != 1 || p.Rejected[0].Row != 7 || !strings.Contains(p.Rejected[0].Msg, "12345") {
		t.Errorf("rejected %+v; want row 7 with its phone 12345", p.Rejected)
	}
	if len(p.Messages) != 5 || p.MaxLength != 2000 || p.Warned != 1 {
		t.Fatalf("%d messages (max %d), %d warned; want 5 of at most 2000 characters, 1 warned", len(p.Messages), p.MaxLength, p.Warned)
	}
	wantRows := []int{2, 3, 4, 5, 6}
	for i, m := range p.Messages {
		if m.Row != wantRows[i] || m.Credits != 1 || m.Length != len([]rune(m.Text)) {
			t.Errorf("message %d: row %d, %d credits, length %d of %q", i, m.Row, m.Credits, m.Length, m.Text)
		}
	}
	dana := p.Messages[3]
	if dana.Text != "Hi Dana, our sale is on in !" || len(dana.Warnings) != 1 || dana.Warnings[0].Code != WarnEmptyField ||
		dana.Warnings[0].Field != "city" || !strings.Contains(dana.Warnings[0].Msg, "row 5") {
		t.Errorf("Dana's message: %q with %+v; want the gap of her empty city named, with her row", dana.Text, dana.Warnings)
	}
	if p.Messages[1].Text != "Hi Brian, our sale is on in san francisco!" || len(p.Messages[1].Warnings) != 0 {
		t.Errorf("Brian's message: %q %+v", p.Messages[1].Text, p.Messages[1].Warnings)
	}
	if p.Credits.Needed != 5 {
		t.Errorf("credits needed %d, want 5", p.Credits.Needed)
	}
	if f.queuedTasks() != 0 {
		t.Errorf("a preview queued %d tasks", f.queuedTasks())
	}

	few, err := NewPreviewer(f.store, sender.TimelinesCapabilities(), f.forecaster()).Preview(ctx, c.ID, 2)
	if err != nil || len(few.Messages) != 2 {
		t.Errorf("a preview of 2: %v, %d messages", err, len(few.Messages))
	}
}

// TestPreviewWarnsOfFailingMessages: a message over the provider's limit,
// an empty one, and one with its own file (2 credits) are each named.
func TestPreviewWarnsOfFailingMessages(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	long := strings.Repeat("word ", 420) // 2100 characters
	c := f.importCSV("{{.note}}", "phone,note,file_uid\n+12025550101,"+long+",\n+12025550102,,\n+12025550103,hello,file-9\n", asDraft)
	p, err := NewPreviewer(f.store, sender.TimelinesCapabilities(), f.forecaster()).Preview(context.Background(), c.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	codes := func(m PreviewMessage) string {
		var out []string
		for _, w := range m.Warnings {
			out = append(out, w.Code)
		}
		return strings.Join(out, ",")
	}
	if got := codes(p.Messages[0]); got != WarnTooLong || p.Messages[0].Length != 2099 {
		t.Errorf("the long message (%d characters) warns %q, want %s", p.Messages[0].Length, got, WarnTooLong)
	}
	if got := codes(p.Messages[1]); got != WarnEmpty+","+WarnEmptyField {
		t.Errorf("the empty message warns %q", got)
	}
	if m := p.Messages[2]; codes(m) != "" || m.Credits != 2 {
		t.Errorf("the message with its own file: %q, %d credits; want no warning and 2 credits", codes(m), m.Credits)
	}
	if p.Warned != 2 {
		t.Errorf("%d messages warned, want 2", p.Warned)
	}
}
