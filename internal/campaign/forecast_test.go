package campaign

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

const (
	accountA = "+14155550100"
	accountB = "+14155550101"
	// fiveInDC are five recipients in Washington, DC: America/New_York.
	fiveInDC = "phone,name\n+12025550101,A\n+12025550102,B\n+12025550103,C\n+12025550104,D\n+12025550105,E\n"
)

// annotated reads a campaign with its forecast.
func (f *fixture) annotated(fc *Forecaster, id string) *Campaign {
	f.t.Helper()
	c := f.get(id)
	if err := fc.Annotate(context.Background(), c); err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fixture) setLedger(credits int64) {
	f.t.Helper()
	if err := f.ledger.Sync(context.Background(), credits, time.Now()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) setInterval(account string, d time.Duration) {
	f.t.Helper()
	if err := f.sendDeps.Pacer.SetInterval(context.Background(), account, d); err != nil {
		f.t.Fatal(err)
	}
}

func waitOf(c *Campaign, cause string) *Wait {
	for i := range c.Waiting {
		if c.Waiting[i].Cause == cause {
			return &c.Waiting[i]
		}
	}
	return nil
}

// within fails unless t is between lo and hi.
func within(tb testing.TB, what string, t *time.Time, lo, hi time.Time) {
	tb.Helper()
	if t == nil || t.Before(lo) || t.After(hi) {
		tb.Errorf("%s is %v, want between %v and %v", what, t, lo.Format(time.TimeOnly), hi.Format(time.TimeOnly))
	}
}

// TestForecastCreditsAndETA: what a draft needs against a known ledger,
// and its ETA from its accounts' pace: five messages at 2 s on one account
// take 10 s, on two accounts 6 s; a provider that meters nothing has no
// credits to compare.
func TestForecastCreditsAndETA(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	fc := f.forecaster()
	f.setInterval(accountA, 2*time.Second)
	f.setInterval(accountB, 2*time.Second)

	f.setLedger(3)
	short := f.importCSV("Hi", fiveInDC, asDraft, func(d *Draft) { d.Accounts = []string{accountA} })
	c := f.annotated(fc, short.ID)
	if c.Credits.Needed != 5 || c.Credits.Available == nil || *c.Credits.Available != 3 || *c.Credits.Shortfall != 2 {
		t.Fatalf("credits %+v; want 5 needed, 3 available, 2 short", c.Credits)
	}
	w := waitOf(c, WaitQuota)
	if w == nil || w.Recipients != 2 || w.Until != nil || !strings.Contains(w.Reason, "need 5 credits and 3 are available") {
		t.Errorf("the quota wait %+v; want 2 recipients held until credits are added", w)
	}
	if c.ETA != nil {
		t.Errorf("ETA %v while two recipients wait for credits nobody has bought", c.ETA)
	}

	f.setLedger(100)
	now := time.Now()
	c = f.annotated(fc, short.ID)
	if *c.Credits.Shortfall != 0 || waitOf(c, WaitQuota) != nil || len(c.Waiting) != 0 {
		t.Errorf("with 100 credits: %+v, waits %+v", c.Credits, c.Waiting)
	}
	within(t, "the ETA of 5 at 2 s", c.ETA, now.Add(9*time.Second), now.Add(12*time.Second))

	two := f.importCSV("Hi", fiveInDC, asDraft, func(d *Draft) { d.Accounts = []string{accountA, accountB} })
	now = time.Now()
	within(t, "the ETA of 5 over two accounts at 2 s", f.annotated(fc, two.ID).ETA, now.Add(5*time.Second), now.Add(8*time.Second))

	gateway := NewForecaster(ForecastDeps{Store: f.store, Pacer: f.sendDeps.Pacer, Accounts: f.sendDeps.Accounts,
		Ledger: f.ledger, Caps: sender.GatewayCapabilities()})
	f.setLedger(0)
	if c := f.annotated(gateway, short.ID); c.Credits.Available != nil || waitOf(c, WaitQuota) != nil || c.ETA == nil {
		t.Errorf("a provider without credits: %+v, waits %+v, ETA %v", c.Credits, c.Waiting, c.ETA)
	}
}

// TestWaitsSayWhyAndUntilWhen: each thing a campaign waits for is named
// with its end; the ETA comes after it, or is absent when nobody can name
// the end; it never says "now" while everything waits.
func TestWaitsSayWhyAndUntilWhen(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	fc := f.forecaster()
	f.setLedger(1000)
	f.setInterval(accountA, 2*time.Second)

	t.Run("pacing: the account is booked by another campaign", func(t *testing.T) {
		if _, _, err := f.sendDeps.Pacer.Plan(ctx, accountA, 30); err != nil {
			t.Fatal(err)
		}
		tail, _ := f.sendDeps.Pacer.PlanTail(ctx, accountA)
		c := f.annotated(fc, f.importCSV("Hi", fiveInDC, asDraft, func(d *Draft) { d.Accounts = []string{accountA} }).ID)
		w := waitOf(c, WaitPacing)
		if w == nil || w.Until == nil || !w.Until.Equal(tail) || w.Recipients != 5 || !strings.Contains(w.Reason, "booked until") {
			t.Fatalf("the pacing wait %+v; want until the account's last booked send %v", w, tail)
		}
		within(t, "the ETA behind the backlog", c.ETA, tail.Add(9*time.Second), tail.Add(11*time.Second))
	})

	t.Run("accounts: paused by a person, then disconnected", func(t *testing.T) {
		c := f.importCSV("Hi", fiveInDC, asDraft, func(d *Draft) { d.Accounts = []string{accountB} })
		if err := f.sendDeps.Accounts.Pause(ctx, accountB, "checking the number"); err != nil {
			t.Fatal(err)
		}
		got := f.annotated(fc, c.ID)
		w := waitOf(got, WaitAccounts)
		if w == nil || w.Until != nil || !strings.Contains(w.Reason, accountB+" is paused") || got.ETA != nil {
			t.Errorf("paused: wait %+v, ETA %v; want the paused account named, no end, no ETA", w, got.ETA)
		}
		if err := f.sendDeps.Accounts.MarkDisconnected(ctx, accountB, "logged out"); err != nil {
			t.Fatal(err)
		}
		if err := f.sendDeps.Accounts.Resume(ctx, accountB); err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		if err := f.sendDeps.Accounts.MarkDisconnected(ctx, accountB, "logged out"); err != nil {
			t.Fatal(err)
		}
		got = f.annotated(fc, c.ID)
		w = waitOf(got, WaitAccounts)
		if w == nil {
			t.Fatalf("disconnected: no accounts wait in %+v", got.Waiting)
		}
		within(t, "the disconnected account's retry", w.Until, before.Add(5*time.Minute-time.Second), time.Now().Add(5*time.Minute))
		if got.ETA == nil || !got.ETA.After(*w.Until) {
			t.Errorf("ETA %v, want after the account comes back at %v", got.ETA, w.Until)
		}
	})

	t.Run("window: closed now in the recipients' zone", func(t *testing.T) {
		ny, _ := time.LoadLocation("America/New_York")
		now := time.Now().In(ny)
		start := (now.Hour() + 2) % 24
		end := fmt.Sprintf("%02d:00", start+1)
		if start == 23 {
			end = "23:59"
		}
		window, err := ParseWindow("", fmt.Sprintf("%02d:00", start)+"-"+end, "")
		if err != nil {
			t.Fatal(err)
		}
		opens := time.Date(now.Year(), now.Month(), now.Day(), start, 0, 0, 0, ny)
		if !opens.After(now) {
			opens = time.Date(now.Year(), now.Month(), now.Day()+1, start, 0, 0, 0, ny)
		}
		c := f.importCSV("Hi", fiveInDC, func(d *Draft) { d.Window = window }) // running: its tasks are queued
		got := f.annotated(fc, c.ID)
		w := waitOf(got, WaitWindow)
		if w == nil || w.Until == nil || !w.Until.Equal(opens) || w.Recipients != 5 {
			t.Fatalf("the window wait %+v; want 5 recipients until %v", w, opens.UTC())
		}
		if !strings.Contains(w.Reason, "until "+opens.Format("Mon 15:04")+" in the recipients' local time") {
			t.Errorf("the reason %q does not name the local opening %s", w.Reason, opens.Format("Mon 15:04"))
		}
		if got.Queue == nil || got.Queue.Window != 5 || got.Queue.Due != 0 {
			t.Errorf("queue %+v; want 5 waiting for their window, none due", got.Queue)
		}
		if got.ETA == nil || !got.ETA.After(opens) {
			t.Errorf("ETA %v; want after the window opens at %v", got.ETA, opens)
		}
	})

	t.Run("quota: a running campaign whose plan is overdue", func(t *testing.T) {
		c := f.importCSV("Hi", fiveInDC) // planned at the fixture's 1 ms: due already
		f.setLedger(0)
		defer f.setLedger(1000)
		time.Sleep(20 * time.Millisecond) // the plan is behind now
		got := f.annotated(fc, c.ID)
		if w := waitOf(got, WaitQuota); w == nil || w.Recipients != 5 {
			t.Errorf("the quota wait %+v; want all 5 recipients", w)
		}
		if got.ETA != nil {
			t.Errorf("ETA %v while every recipient waits for credits; the old answer was now", got.ETA)
		}
	})
}
