package campaign

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

func TestWindowNextOpen(t *testing.T) {
	w, err := ParseWindow("mon-fri", "09:00-18:00", "")
	if err != nil {
		t.Fatal(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	at := func(s string) time.Time { tm, _ := time.ParseInLocation("2006-01-02 15:04", s, ny); return tm }
	for _, tc := range []struct{ now, want string }{
		{"2026-11-23 10:00", "2026-11-23 10:00"}, // Monday, open
		{"2026-11-23 08:59", "2026-11-23 09:00"}, // before opening
		{"2026-11-23 18:00", "2026-11-24 09:00"}, // closing time: tomorrow
		{"2026-11-27 19:00", "2026-11-30 09:00"}, // Friday evening: Monday
		{"2026-11-28 12:00", "2026-11-30 09:00"}, // Saturday
		{"2026-03-08 12:00", "2026-03-09 09:00"}, // Sunday of the DST change: 09:00 of the new clock
	} {
		if got := w.NextOpen(at(tc.now), ny); !got.Equal(at(tc.want)) {
			t.Errorf("at %s: opens %s, want %s", tc.now, got.In(ny).Format("Mon 2006-01-02 15:04 MST"), tc.want)
		}
	}
	weekend, _ := ParseWindow("sat,sun", "10:00-12:00", "")
	if got := weekend.NextOpen(at("2026-11-23 10:00"), ny); !got.Equal(at("2026-11-28 10:00")) {
		t.Errorf("weekend window from Monday: %s", got)
	}
}

func TestRecipientZones(t *testing.T) {
	w, _ := ParseWindow("", "09:00-18:00", "America/Chicago")
	for phone, want := range map[string]string{
		"+12125550199":   "America/New_York",    // the area code tells
		"+14155550100":   "America/Los_Angeles", // the area code tells
		"+447911123456":  "Europe/Guernsey",     // several zones with the same clock: one
		"+4915112345678": "Europe/Berlin",
	} {
		if got := w.Location(phone).String(); got != want {
			t.Errorf("%s: %s, want %s", phone, got, want)
		}
	}
}

// TestOutsideTheWindowWaits drives the send path with a clock the test
// controls: recipients in London and New York, a Monday-to-Friday
// 09:00-18:00 window.
func TestOutsideTheWindowWaits(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	win, err := ParseWindow("mon-fri", "09:00-18:00", "")
	if err != nil {
		t.Fatal(err)
	}
	c := f.importCSV("Hello", "phone\n+447911123456\n+12125550199\n", func(d *Draft) { d.Window = win })
	london, _ := time.LoadLocation("Europe/London")
	ny, _ := time.LoadLocation("America/New_York")
	run := func(now time.Time, seq int64) error {
		f.handler.now = func() time.Time { return now }
		return f.handler.ProcessTask(context.Background(), f.task(c.ID, seq))
	}
	wantWait := func(err error, until time.Time, now time.Time) {
		t.Helper()
		var w *WaitError
		if !errors.As(err, &w) || IsFailure(err) {
			t.Fatalf("answered %v; want a wait", err)
		}
		if opens := now.Add(w.Delay); opens.Before(until) || opens.After(until.Add(time.Minute)) {
			t.Errorf("waits until %s, want %s (+ up to a minute of spread)", opens, until)
		}
	}

	saturday := time.Date(2026, 11, 28, 12, 0, 0, 0, london)
	wantWait(run(saturday, 0), time.Date(2026, 11, 30, 9, 0, 0, 0, london), saturday)
	wantWait(run(saturday, 1), time.Date(2026, 11, 30, 9, 0, 0, 0, ny), saturday)

	// Monday 10:00 in London is 05:00 in New York.
	monday := time.Date(2026, 11, 30, 10, 0, 0, 0, london)
	if err := run(monday, 0); err != nil {
		t.Fatalf("London, in its window: %v", err)
	}
	wantWait(run(monday, 1), time.Date(2026, 11, 30, 9, 0, 0, 0, ny), monday)
	msgs := f.sandbox.Messages()
	if len(msgs) != 1 || msgs[0].Recipient != "+447911123456" {
		t.Fatalf("sent %+v; want only the London recipient", msgs)
	}
	got := f.get(c.ID)
	if got.Counts.Queued != 1 || got.Counts.Failed != 0 {
		t.Errorf("counts %+v: the waiting recipient must stay queued, not fail", got.Counts)
	}
}
