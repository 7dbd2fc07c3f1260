package quota_test

import (
	"sync"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/quota"
)

// TestOptOutsStopAnAccountWithTheReason: opt-outs noted through the API the
// reply handling uses slow an account past the warning rate and pause it
// past the stop rate, saying which rate over how many messages; replies do
// not count against it.
func TestOptOutsStopAnAccountWithTheReason(t *testing.T) {
	ctx := testContext(t)
	rdb := processes(t, 1)[0]
	pacer := quota.NewPacer(rdb, time.Second, 0)
	accounts := quota.NewAccounts(rdb)
	health := quota.NewHealth(rdb, accounts, pacer, quota.HealthThresholds{Window: 200, MinMessages: 50, FailureWarn: 0.1, FailureStop: 0.25, OptOutWarn: 0.02, OptOutStop: 0.04})
	const account = "+14155550100"
	note := func(o quota.Outcome, n int) {
		for range n {
			if err := health.Note(ctx, account, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	note(quota.OutcomeSent, 200)
	note(quota.OutcomeReply, 60)
	note(quota.OutcomeOptOut, 5) // 2.5 %
	h, err := health.Of(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	interval, _ := pacer.Interval(ctx, account)
	if h.State != quota.HealthSlowed || h.OptOutRate != 2.5 || h.ReplyRate != 30 || interval != 2*time.Second {
		t.Fatalf("5 opt-outs in 200 messages: %+v at %s, want slowed (warn 2 %%) at 2s", h, interval)
	}
	note(quota.OutcomeOptOut, 3) // 8 of 200: 4 %
	usable, why, _ := accounts.Usable(ctx, account)
	list, _ := accounts.List(ctx, nil)
	if usable || len(list) != 1 || list[0].Reason != "account health: opt-out rate 4.0 % over the last 200 messages" {
		t.Fatalf("8 opt-outs in 200: usable %v (%s), %+v", usable, why, list)
	}
	if err := health.Reset(ctx, account); err != nil {
		t.Fatal(err)
	}
	h, _ = health.Of(ctx, account)
	if interval, _ = pacer.Interval(ctx, account); h.State != quota.HealthOK || h.Messages != 0 || interval != time.Second {
		t.Errorf("after a reset: %+v at %s", h, interval)
	}
}

// TestHealthWindowAndMinimum: no verdict on fewer than the least messages;
// only the last window's messages count, so an account recovers.
func TestHealthWindowAndMinimum(t *testing.T) {
	ctx := testContext(t)
	rdb := processes(t, 1)[0]
	pacer := quota.NewPacer(rdb, time.Second, 0)
	health := quota.NewHealth(rdb, quota.NewAccounts(rdb), pacer, quota.HealthThresholds{Window: 20, MinMessages: 10, FailureWarn: 0.2, FailureStop: 0.9})
	const account = "+14155550101"
	for range 5 {
		_ = health.Note(ctx, account, quota.OutcomeRefused)
	}
	if h, _ := health.Of(ctx, account); h.State != quota.HealthOK || h.FailureRate != 100 {
		t.Fatalf("5 refusals of 5 messages, judged from 10: %+v", h)
	}
	for range 5 {
		_ = health.Note(ctx, account, quota.OutcomeSent)
	}
	if h, _ := health.Of(ctx, account); h.State != quota.HealthSlowed {
		t.Fatalf("5 refusals of 10: %+v, want slowed", h)
	}
	for range 20 {
		_ = health.Note(ctx, account, quota.OutcomeSent)
	}
	h, _ := health.Of(ctx, account)
	interval, _ := pacer.Interval(ctx, account)
	if h.State != quota.HealthOK || h.Messages != 20 || h.Failures != 0 || interval != time.Second {
		t.Errorf("20 good messages later: %+v at %s, want ok at 1s", h, interval)
	}
}

// TestHealthActsOnceUnderConcurrentNotes: many workers noting at once
// cross the warning once: the interval is doubled, not quadrupled.
func TestHealthActsOnceUnderConcurrentNotes(t *testing.T) {
	ctx := testContext(t)
	clients := processes(t, 4)
	const account = "+14155550102"
	var wg sync.WaitGroup
	for _, rdb := range clients {
		health := quota.NewHealth(rdb, quota.NewAccounts(rdb), quota.NewPacer(rdb, time.Second, 0), quota.HealthThresholds{Window: 100, MinMessages: 10, FailureWarn: 0.1, FailureStop: 0.9})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				o := quota.OutcomeSent
				if i%4 == 0 {
					o = quota.OutcomeRefused
				}
				if err := health.Note(ctx, account, o); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if interval, _ := quota.NewPacer(clients[0], time.Second, 0).Interval(ctx, account); interval != 2*time.Second {
		t.Errorf("interval %s after concurrent notes past the warning, want doubled once: 2s", interval)
	}
}

// TestRampRisesToTheCap: a warm-up starts at its start and reaches the
// daily cap after its days, rising every day; today's allowance follows
// the day since it started.
func TestRampRisesToTheCap(t *testing.T) {
	l := quota.Limits{DailyCap: 1000, Warmup: &quota.Warmup{Start: 20, Days: 14, StartedOn: "2026-03-01"}}
	ramp := l.Ramp(time.Second)
	if len(ramp) != 15 || ramp[0] != 20 || ramp[14] != 1000 {
		t.Fatalf("ramp %v", ramp)
	}
	for i := 1; i < len(ramp); i++ {
		if ramp[i] <= ramp[i-1] {
			t.Fatalf("ramp %v does not rise on day %d", ramp, i+1)
		}
	}
	day := func(s string) time.Time { d, _ := time.Parse(quota.DayFormat, s); return d.Add(13 * time.Hour) }
	for when, want := range map[string]int{"2026-02-20": 20, "2026-03-01": 20, "2026-03-02": ramp[1], "2026-03-15": 1000, "2027-01-01": 1000} {
		if got, _ := l.Allowance(day(when), time.Second); got != want {
			t.Errorf("allowance on %s: %d, want %d", when, got, want)
		}
	}
	// Without a cap the full rate is what the interval allows in a day.
	noCap := quota.Limits{Warmup: &quota.Warmup{Start: 20, Days: 2, StartedOn: "2026-03-01"}}
	if got, _ := noCap.Allowance(day("2026-03-03"), 2*time.Second); got != 43200 {
		t.Errorf("full rate at 2s without a cap: %d, want 43200", got)
	}
}

// TestDailyAllowanceIsSharedAndReleased: processes together never take
// more than the allowance; a released message can be taken again.
func TestDailyAllowanceIsSharedAndReleased(t *testing.T) {
	ctx := testContext(t)
	clients := processes(t, 3)
	const account = "+14155550103"
	limits := make([]*quota.DailyLimits, len(clients))
	for i, rdb := range clients {
		limits[i] = quota.NewDailyLimits(rdb, quota.NewPacer(rdb, time.Second, 0))
	}
	if err := limits[0].Set(ctx, account, quota.Limits{DailyCap: 30}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var taken []*quota.DayReservation
	var wg sync.WaitGroup
	for _, d := range limits {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				r, err := d.Reserve(ctx, account)
				if err == nil {
					mu.Lock()
					taken = append(taken, r)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(taken) != 30 || !limits[1].SpentToday(account) && !limits[2].SpentToday(account) && !limits[0].SpentToday(account) {
		t.Fatalf("60 tries at a cap of 30: %d taken", len(taken))
	}
	if err := taken[0].Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := limits[0].Reserve(ctx, account); err != nil {
		t.Errorf("a released message is not taken again: %v", err)
	}
	if today, _, _ := limits[2].Today(ctx, account); today.Sent != 30 || today.Allowance != 30 {
		t.Errorf("today %+v", today)
	}
}
