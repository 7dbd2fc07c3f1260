package campaign

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

func TestImportReadsTheCSVsPeopleHave(t *testing.T) {
	cases := []struct {
		name   string
		csv    string
		phones []string // E.164, in order
		city   []string // the city field of each
	}{
		{"comma", "phone,city\n+12025550101,Paris\n+12025550102,Rome\n", []string{"+12025550101", "+12025550102"}, []string{"Paris", "Rome"}},
		{"semicolon (European Excel)", "Phone;City\n+12025550101;Paris\n2025550102;Rome\n", []string{"+12025550101", "+12025550102"}, []string{"Paris", "Rome"}},
		{"tab", "phone\tcity\n+12025550101\tParis\n", []string{"+12025550101"}, []string{"Paris"}},
		{"UTF-8 BOM and CRLF", "\xEF\xBB\xBFphone,city\r\n+12025550101,Paris\r\n", []string{"+12025550101"}, []string{"Paris"}},
		{"quoted delimiters, quotes and newlines", "phone,city\n\"+1 (202) 555-0101\",\"Paris, \"\"la ville\"\"\nlumière\"\n", []string{"+12025550101"}, []string{"Paris, \"la ville\"\nlumière"}},
		{"Windows-1252 (older Excel)", "phone,city\n+12025550101,Bogot\xe1\n", []string{"+12025550101"}, []string{"Bogotá"}},
		{"trailing empty cells and empty rows", "phone,city,,\n+12025550101,Paris,,\n,,,\n+12025550102,,,\n", []string{"+12025550101", "+12025550102"}, []string{"Paris", ""}},
		{"short row padded", "phone,city,plan\n+12025550101\n", []string{"+12025550101"}, []string{""}},
		{"phone column named mobile", "Mobile,City\n+12025550101,Paris\n", []string{"+12025550101"}, []string{"Paris"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, sandbox.Config{})
			c := f.importCSV("Hi from {{.city}}", tc.csv)
			if c.Counts.Total != int64(len(tc.phones)) || c.RejectedCount != 0 {
				t.Fatalf("total %d rejected %d %+v; want %d, 0", c.Counts.Total, c.RejectedCount, c.Rejected, len(tc.phones))
			}
			list, _, err := f.store.Recipients(context.Background(), c.ID, "", 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range list {
				if r.Phone != tc.phones[i] || r.Fields["city"] != tc.city[i] || r.State != StateQueued {
					t.Errorf("recipient %d: %s %q %s; want %s %q queued", i, r.Phone, r.Fields["city"], r.State, tc.phones[i], tc.city[i])
				}
			}
		})
	}
}

func TestImportNumbersRejectedRowsLikeASpreadsheet(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	csv := strings.Join([]string{
		"phone,note",                  // row 1
		"+12025550101,ok",             // row 2
		"",                            // row 3: a blank line
		"12345,bad phone",             // row 4
		"+12025550102,\"two\nlines\"", // rows 5 (one spreadsheet row, two file lines)
		"nonsense,bad phone",          // row 6
		"+12025550103,a,b,c",          // row 7: too many values
		"+12025550101,dup",            // row 8: duplicate of row 2
	}, "\n") + "\n"
	c := f.importCSV("x", csv)
	want := []RejectedRow{
		{Row: 4, Msg: `column "phone": phone "12345" is not a valid number for region US; write it with + and the country code`},
		{Row: 6, Msg: `column "phone": phone "nonsense" is not a phone number`},
		{Row: 7, Msg: "the row has 4 values but the header has 2 columns"},
	}
	if fmt.Sprint(c.Rejected) != fmt.Sprint(want) {
		t.Errorf("rejected:\n got %v\nwant %v", c.Rejected, want)
	}
	if c.Counts.Total != 2 || c.Duplicates != 1 || c.RejectedCount != 3 {
		t.Errorf("total %d duplicates %d rejected %d; want 2, 1, 3", c.Counts.Total, c.Duplicates, c.RejectedCount)
	}
}

func TestImportEnqueuesEachRecipientOnce(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	var b strings.Builder
	b.WriteString("phone\n")
	for i := 0; i < 1500; i++ { // more than one batch and one bucket
		fmt.Fprintf(&b, "+1%s55501%02d\n", []string{"202", "212", "312", "415", "617", "713", "206", "305", "404", "503", "602", "702", "801", "919", "972"}[i/100], i%100)
	}
	c := f.importCSV("hello", b.String())
	if c.Counts.Total != 1500 || c.Counts.Queued != 1500 {
		t.Fatalf("counts %+v", c.Counts)
	}
	info, err := f.inspector.GetQueueInfo(QueueSend)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != 1500 {
		t.Errorf("%d send tasks, want 1500", info.Size)
	}
	// Enqueueing the same recipient again (a replayed import) adds nothing.
	if err := f.queue.enqueueSend(context.Background(), c.ID, 7, 0, time.Time{}); err != nil {
		t.Fatal(err)
	}
	info, _ = f.inspector.GetQueueInfo(QueueSend)
	if info.Size != 1500 {
		t.Errorf("after a replay: %d pending tasks, want 1500", info.Pending)
	}
}

func TestImportScheduledCampaign(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	c := f.importCSV("hello", "phone\n+12025550101\n+12025550102\n", func(d *Draft) { d.SendAt = at })
	if c.Status != StatusScheduled || c.SendAt == nil || !c.SendAt.Equal(at) {
		t.Fatalf("status %s send_at %v; want scheduled at %v", c.Status, c.SendAt, at)
	}
	// One durable start task at send_at; no send task before it runs.
	starts, err := f.inspector.ListScheduledTasks(QueueControl)
	if err != nil || len(starts) != 1 || !starts[0].NextProcessAt.Equal(at) {
		t.Fatalf("start tasks %v %v; want one due at %v", starts, err, at)
	}
	if info, err := f.inspector.GetQueueInfo(QueueSend); err == nil && info.Size != 0 {
		t.Fatalf("%d send tasks before the start", info.Size)
	}
	start := asynq.NewTask(TypeStart, starts[0].Payload)
	// Run early (clock skew, a manual run): it starts nothing.
	if err := f.starter.ProcessTask(context.Background(), start); err != nil {
		t.Fatal(err)
	}
	if got := f.get(c.ID); got.Status != StatusScheduled {
		t.Fatalf("an early start made the campaign %s", got.Status)
	}
	// Its time comes: it starts and every recipient is enqueued once, even
	// when the start runs twice.
	f.rdb.HSet(context.Background(), campaignKey(c.ID), fSendAt, time.Now().Add(-time.Second).UnixMilli())
	for i := 0; i < 2; i++ {
		if err := f.starter.ProcessTask(context.Background(), start); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.get(c.ID); got.Status != StatusRunning || got.StartedAt == nil {
		t.Fatalf("after the start: %s", got.Status)
	}
	info, err := f.inspector.GetQueueInfo(QueueSend)
	if err != nil || info.Size != 2 {
		t.Fatalf("send tasks after the start: %+v %v; want 2", info, err)
	}
}

func TestCancelSkipsEveryQueuedRecipient(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	var b strings.Builder
	b.WriteString("phone\n")
	for i := 0; i < 1100; i++ {
		fmt.Fprintf(&b, "+1%s55501%02d\n", []string{"202", "212", "312", "415", "617", "713", "206", "305", "404", "503", "602"}[i/100], i%100)
	}
	c := f.importCSV("hello", b.String())
	// Two recipients go out first.
	for seq := int64(0); seq < 2; seq++ {
		if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, seq)); err != nil {
			t.Fatal(err)
		}
	}
	changed, err := f.store.Cancel(context.Background(), c.ID, "stopped by a test", time.Now())
	if err != nil || !changed {
		t.Fatalf("cancel: %v %v", changed, err)
	}
	got := f.get(c.ID)
	if got.Status != StatusCancelled || got.Counts.Sent != 2 || got.Counts.Skipped != 1098 || got.Counts.Queued != 0 || !addsUp(got.Counts) {
		t.Errorf("after cancel: %s %+v", got.Status, got.Counts)
	}
	// A task that runs after the cancel sends nothing.
	if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 500)); err != nil {
		t.Fatal(err)
	}
	if n := len(f.sandbox.Messages()); n != 2 {
		t.Errorf("%d messages, want the 2 sent before the cancel", n)
	}
	if r := f.recipient(c.ID, 500); r.State != StateSkipped || r.Reason != "stopped by a test" {
		t.Errorf("recipient 500: %s %q", r.State, r.Reason)
	}
}
