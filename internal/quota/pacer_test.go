package quota_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/quota"
)

// grant is a Take that answered 0: the slot was taken at some moment
// between before and after.
type grant struct{ before, after time.Time }

// TestPacerSpacesSendsAcrossProcesses hammers one account's slot from 3
// pacers on 3 clients (3 processes) for about 2 s.
func TestPacerSpacesSendsAcrossProcesses(t *testing.T) {
	const (
		interval  = 100 * time.Millisecond
		duration  = 2 * time.Second
		tolerance = 5 * time.Millisecond // slots are kept in whole ms of the Redis clock
	)
	ctx := testContext(t)
	var pacers []*quota.Pacer
	for _, c := range processes(t, 3) {
		pacers = append(pacers, quota.NewPacer(c, interval, 0))
	}

	var (
		mu     sync.Mutex
		grants []grant
	)
	start := time.Now()
	end := start.Add(duration)
	var wg sync.WaitGroup
	for g := range 6 {
		p := pacers[g%len(pacers)]
		wg.Go(func() {
			for time.Now().Before(end) {
				before := time.Now()
				wait, err := p.Take(ctx, "+14155550100")
				after := time.Now()
				if err != nil {
					t.Error(err)
					return
				}
				if wait == 0 {
					mu.Lock()
					grants = append(grants, grant{before, after})
					mu.Unlock()
					continue
				}
				if wait > interval+tolerance {
					t.Errorf("Take answered a wait of %s, more than the interval %s", wait, interval)
				}
				time.Sleep(min(wait, time.Until(end)))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	// Two slots are at least an interval apart. Each was taken at a moment
	// we only bracket, so for any two the widest bracketed gap must be at
	// least the interval; a violation cannot hide behind a slow call.
	for i := range grants {
		for j := i + 1; j < len(grants); j++ {
			a, b := grants[i], grants[j]
			if gap := max(b.after.Sub(a.before), a.after.Sub(b.before)); gap < interval-tolerance {
				t.Errorf("two slots granted within %s of each other, want at least %s", gap, interval)
			}
		}
	}
	// GCRA cannot grant more than one slot per interval (plus the first);
	// how many fewer depends on the machine's load, so the lower bound is
	// generous.
	most := int(elapsed/interval) + 1
	if n := len(grants); n > most || n < most/4 {
		t.Errorf("%d slots granted in %s, want between %d and %d", n, elapsed, most/4, most)
	}
}

func TestPacerTake(t *testing.T) {
	const interval = time.Hour // long enough that no slot frees up during the test
	tests := []struct {
		name    string
		takes   []string // accounts, in order, each taken from the next pacer (round robin)
		granted []bool
	}{
		{
			name:    "one slot per interval",
			takes:   []string{"+1A", "+1A", "+1A"},
			granted: []bool{true, false, false},
		},
		{
			name:    "accounts are independent",
			takes:   []string{"+1A", "+1B", "+1A", "+1B"},
			granted: []bool{true, true, false, false},
		},
		{
			name:    "the default account has its own slot",
			takes:   []string{"", "+1A", ""},
			granted: []bool{true, true, false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			var pacers []*quota.Pacer
			for _, c := range processes(t, 3) {
				pacers = append(pacers, quota.NewPacer(c, interval, 0))
			}
			for i, account := range tt.takes {
				wait, err := pacers[i%len(pacers)].Take(ctx, account)
				if err != nil {
					t.Fatal(err)
				}
				if granted := wait == 0; granted != tt.granted[i] {
					t.Errorf("take %d (account %q): granted = %v, want %v", i, account, granted, tt.granted[i])
				}
				if wait != 0 && (wait < interval-time.Minute || wait > interval) {
					t.Errorf("take %d (account %q): wait %s, want about %s", i, account, wait, interval)
				}
			}
		})
	}
}

func TestPacerIntervalOverrideIsSharedByAllProcesses(t *testing.T) {
	ctx := testContext(t)
	clients := processes(t, 3)
	setter := quota.NewPacer(clients[0], 100*time.Millisecond, 0)
	other := quota.NewPacer(clients[1], 100*time.Millisecond, 0)
	third := quota.NewPacer(clients[2], 100*time.Millisecond, 0)

	must(t, setter.SetInterval(ctx, "+1A", time.Hour))
	if d, err := other.Interval(ctx, "+1A"); err != nil || d != time.Hour {
		t.Errorf("Interval of the overridden account from another process = %s, %v; want 1h", d, err)
	}
	if d, err := other.Interval(ctx, "+1B"); err != nil || d != 100*time.Millisecond {
		t.Errorf("Interval of another account = %s, %v; want the default 100ms", d, err)
	}
	if wait, err := other.Take(ctx, "+1A"); err != nil || wait != 0 {
		t.Fatalf("first Take = %s, %v; want the slot", wait, err)
	}
	if wait, err := third.Take(ctx, "+1A"); err != nil || wait < 59*time.Minute {
		t.Errorf("second Take from a third process = %s, %v; want a wait of about the 1h override", wait, err)
	}

	// A change reaches the other processes within a second (their cache).
	must(t, setter.SetInterval(ctx, "+1A", 0))
	if d, _ := setter.Interval(ctx, "+1A"); d != 100*time.Millisecond {
		t.Errorf("the process that cleared the override still sees %s", d)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		d, err := third.Interval(ctx, "+1A")
		if err == nil && d == 100*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Interval after clearing the override = %s, %v three seconds later; want the default", d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := setter.SetInterval(ctx, "+1A", -time.Second); err == nil {
		t.Error("SetInterval accepted a negative interval")
	}
}

// TestPacerLateSendMovesTheNextSlot: a send that left the process well after
// its slot holds the account for an interval after it went out, across
// processes; a report of an older send never moves a slot earlier.
func TestPacerLateSendMovesTheNextSlot(t *testing.T) {
	t.Run("a late send pushes the next slot", func(t *testing.T) {
		const interval = 300 * time.Millisecond
		ctx := testContext(t)
		clients := processes(t, 2)
		sender, other := quota.NewPacer(clients[0], interval, 0), quota.NewPacer(clients[1], interval, 0)
		if wait, err := sender.Take(ctx, "+1A"); err != nil || wait != 0 {
			t.Fatalf("first Take = %s, %v; want the slot", wait, err)
		}
		// Held back 150 ms between the slot and the wire (a stalled
		// machine); unmoved, the next slot would be ~150 ms away.
		time.Sleep(150 * time.Millisecond)
		if err := sender.WentOutLate(ctx, "+1A", 0); err != nil {
			t.Fatal(err)
		}
		wait, err := other.Take(ctx, "+1A")
		if err != nil {
			t.Fatal(err)
		}
		if wait < interval-50*time.Millisecond || wait > interval {
			t.Errorf("after a send that went out 150 ms late, the next slot is %s away; want about the whole interval %s", wait, interval)
		}
	})
	t.Run("an older send never moves the slot earlier", func(t *testing.T) {
		const interval = time.Hour
		ctx := testContext(t)
		p := quota.NewPacer(processes(t, 1)[0], interval, 0)
		if wait, err := p.Take(ctx, "+1A"); err != nil || wait != 0 {
			t.Fatalf("first Take = %s, %v; want the slot", wait, err)
		}
		for _, ago := range []time.Duration{59 * time.Minute, 2 * time.Hour} {
			if err := p.WentOutLate(ctx, "+1A", ago); err != nil {
				t.Fatal(err)
			}
		}
		if wait, err := p.Take(ctx, "+1A"); err != nil || wait < interval-time.Minute {
			t.Errorf("Take = %s, %v; want the slot still about an hour away", wait, err)
		}
	})
	t.Run("pacing off", func(t *testing.T) {
		ctx := testContext(t)
		p := quota.NewPacer(processes(t, 1)[0], 0, 0)
		if err := p.WentOutLate(ctx, "+1A", 0); err != nil {
			t.Fatal(err)
		}
		if wait, err := p.Take(ctx, "+1A"); err != nil || wait != 0 {
			t.Errorf("Take with pacing off = %s, %v; want the slot", wait, err)
		}
	})
}

// TestPacerHoldsTheAccountUntilTheAnswer: a provider that answers after
// the message went out (the gateway, typing) holds the account for the
// whole send, however long, and frees it an interval after the answer.
func TestPacerHoldsTheAccountUntilTheAnswer(t *testing.T) {
	t.Run("held while typing, an interval after the answer", func(t *testing.T) {
		const interval = 200 * time.Millisecond
		ctx := testContext(t)
		clients := processes(t, 2)
		sender, other := quota.NewPacer(clients[0], interval, 0), quota.NewPacer(clients[1], interval, 0)
		wait, hold, err := sender.TakeHeld(ctx, "+1A", time.Minute)
		if err != nil || wait != 0 || hold == nil {
			t.Fatalf("TakeHeld = %s, %v, %v; want the slot held", wait, hold, err)
		}
		time.Sleep(2 * interval) // typing, longer than the interval
		if wait, err := other.Take(ctx, "+1A"); err != nil || wait < 30*time.Second {
			t.Fatalf("during the send, Take = %s, %v; want the account held (about a minute)", wait, err)
		}
		// A held send looks again soon, not when the hold would lapse: the
		// answer may come any moment.
		if wait, h, err := other.TakeHeld(ctx, "+1A", time.Minute); h != nil || err != nil || wait <= 0 || wait > 250*time.Millisecond {
			t.Fatalf("a second held send during the first: wait %s, hold %v, %v; want a short wait and no hold", wait, h, err)
		}
		if err := hold.Answered(ctx, 0); err != nil {
			t.Fatal(err)
		}
		wait, err = other.Take(ctx, "+1A")
		if err != nil || wait < interval/2 || wait > interval {
			t.Fatalf("just after the answer, Take = %s, %v; want about the interval %s", wait, err, interval)
		}
		time.Sleep(wait)
		if wait, err := other.Take(ctx, "+1A"); err != nil || wait != 0 {
			t.Fatalf("an interval after the answer, Take = %s, %v; want the slot", wait, err)
		}
	})
	t.Run("an answer long ago frees the account at once", func(t *testing.T) {
		ctx := testContext(t)
		p := quota.NewPacer(processes(t, 1)[0], time.Second, 0)
		_, hold, err := p.TakeHeld(ctx, "+1A", time.Hour)
		if err != nil || hold == nil {
			t.Fatal(hold, err)
		}
		if err := hold.Answered(ctx, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if wait, err := p.Take(ctx, "+1A"); err != nil || wait != 0 {
			t.Errorf("Take = %s, %v; want the slot", wait, err)
		}
	})
	t.Run("a lapsed hold never moves another send's slot earlier", func(t *testing.T) {
		const interval = 50 * time.Millisecond
		ctx := testContext(t)
		p := quota.NewPacer(processes(t, 1)[0], interval, 0)
		_, hold, err := p.TakeHeld(ctx, "+1A", 100*time.Millisecond)
		if err != nil || hold == nil {
			t.Fatal(hold, err)
		}
		time.Sleep(150 * time.Millisecond) // the send outlived its hold (a dead worker's)
		if err := p.SetInterval(ctx, "+1A", time.Hour); err != nil {
			t.Fatal(err)
		}
		if wait, err := p.Take(ctx, "+1A"); err != nil || wait != 0 {
			t.Fatalf("after the hold lapsed, Take = %s, %v; want the slot", wait, err)
		}
		if err := hold.Answered(ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
		if wait, err := p.Take(ctx, "+1A"); err != nil || wait < 50*time.Minute {
			t.Errorf("Take = %s, %v; the late answer of a lapsed hold freed another send's slot", wait, err)
		}
	})
	t.Run("pacing off", func(t *testing.T) {
		ctx := testContext(t)
		p := quota.NewPacer(processes(t, 1)[0], 0, 0)
		wait, hold, err := p.TakeHeld(ctx, "+1A", time.Minute)
		if err != nil || wait != 0 || hold != nil {
			t.Fatalf("TakeHeld with pacing off = %s, %v, %v; want go, nothing held", wait, hold, err)
		}
		if err := hold.Answered(ctx, 0); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPacerJitterAddsToWaitsAndSteps(t *testing.T) {
	const interval, jitter = time.Hour, time.Minute
	ctx := testContext(t)
	p := quota.NewPacer(processes(t, 1)[0], interval, jitter)
	if wait, err := p.Take(ctx, "+1A"); err != nil || wait != 0 {
		t.Fatalf("first Take = %s, %v; want the slot", wait, err)
	}
	wait, err := p.Take(ctx, "+1A")
	if err != nil {
		t.Fatal(err)
	}
	if wait < interval-time.Minute || wait >= interval+jitter {
		t.Errorf("wait = %s, want in [about %s, %s)", wait, interval, interval+jitter)
	}
	for range 5 {
		_, step, err := p.Plan(ctx, "+1B", 1)
		if err != nil {
			t.Fatal(err)
		}
		least := interval + quota.PlanSlack(interval)
		if step < least || step > least+jitter {
			t.Errorf("step = %s, want in [%s, %s]: the least gap stays the interval", step, least, least+jitter)
		}
	}
}

// plan is one Plan answer.
type plan struct {
	first time.Time
	n     int
	step  time.Duration
}

// TestPlanIsContiguousAcrossProcesses books slots of one account from 3
// pacers on 3 clients concurrently: the plans queue behind each other with
// no overlap and no gap, starting within IdleSpread of now.
func TestPlanIsContiguousAcrossProcesses(t *testing.T) {
	const interval = time.Hour // no booked slot passes during the test
	ctx := testContext(t)
	var pacers []*quota.Pacer
	for _, c := range processes(t, 3) {
		pacers = append(pacers, quota.NewPacer(c, interval, 0))
	}

	before := time.Now()
	var (
		mu    sync.Mutex
		plans []plan
		wg    sync.WaitGroup
	)
	for g := range 30 {
		wg.Go(func() {
			n := 1 + g%5
			first, step, err := pacers[g%len(pacers)].Plan(ctx, "+1A", n)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			plans = append(plans, plan{first, n, step})
			mu.Unlock()
		})
	}
	wg.Wait()
	after := time.Now()
	if len(plans) != 30 {
		t.Fatalf("%d plans, want 30", len(plans))
	}

	slices.SortFunc(plans, func(a, b plan) int { return a.first.Compare(b.first) })
	// An idle account's timeline starts within IdleSpread of now. Redis's
	// clock and ours are the same machine's; a second covers the ms
	// rounding and scheduling.
	if first := plans[0].first; first.Before(before.Add(-time.Second)) || first.After(after.Add(quota.IdleSpread+time.Second)) {
		t.Errorf("first slot of an idle account at %s, want now (%s..%s) or up to %s after", first, before, after, quota.IdleSpread)
	}
	for i := 1; i < len(plans); i++ {
		prev := plans[i-1]
		if want := interval + quota.PlanSlack(interval); prev.step != want {
			t.Errorf("step = %s, want %s", prev.step, want)
		}
		if want := prev.first.Add(time.Duration(prev.n) * prev.step); !plans[i].first.Equal(want) {
			t.Errorf("plan %d starts at %s, want %s (right after plan %d)", i, plans[i].first, want, i-1)
		}
	}
	last := plans[len(plans)-1]
	tail, err := pacers[2].PlanTail(ctx, "+1A")
	if err != nil {
		t.Fatal(err)
	}
	if want := last.first.Add(time.Duration(last.n-1) * last.step); !tail.Equal(want) {
		t.Errorf("PlanTail = %s, want the last booked slot %s", tail, want)
	}
	if tail, err := pacers[0].PlanTail(ctx, "+1B"); err != nil || !tail.IsZero() {
		t.Errorf("PlanTail of an account with nothing booked = %s, %v; want zero", tail, err)
	}
}

// TestPlanRestartsAtNowOnceTheTimelinePassed uses the real clock: a plan
// made after the booked slots have passed starts at the time of the call,
// not at the old tail.
func TestPlanRestartsAtNowOnceTheTimelinePassed(t *testing.T) {
	const interval = 50 * time.Millisecond
	ctx := testContext(t)
	p := quota.NewPacer(processes(t, 1)[0], interval, 0)
	first, step, err := p.Plan(ctx, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	oldTail := first.Add(2 * step)
	time.Sleep(time.Until(oldTail) + 200*time.Millisecond)

	before := time.Now()
	again, _, err := p.Plan(ctx, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !again.After(oldTail) || again.Before(before.Add(-time.Second)) || again.After(time.Now().Add(time.Second)) {
		t.Errorf("plan after the timeline passed starts at %s, want now (about %s), after the old tail %s", again, before, oldTail)
	}
	if _, _, err := p.Plan(ctx, "", 0); err == nil {
		t.Error("Plan of 0 slots succeeded")
	}
}

// TestKeysAreUnderThePrefix checks that every key the package writes,
// including redis_rate's, is under "wac:".
func TestKeysAreUnderThePrefix(t *testing.T) {
	ctx := testContext(t)
	c := processes(t, 1)[0]
	p := quota.NewPacer(c, time.Hour, 0)
	l := quota.NewCreditLedger(c)
	if _, err := p.Take(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Plan(ctx, "+1A", 3); err != nil {
		t.Fatal(err)
	}
	must(t, p.SetInterval(ctx, "+1A", time.Minute))
	must(t, quota.NewCallLimiter(c, 10).Wait(ctx))
	now, err := l.Now(ctx)
	must(t, err)
	must(t, l.Sync(ctx, 10, now))
	r, err := l.Reserve(ctx, 1)
	must(t, err)
	must(t, r.Commit(ctx))

	keys, err := c.Keys(ctx, "*").Result()
	must(t, err)
	wantKeys := []string{"wac:pace:_default", "wac:plan:+1A", "wac:intervals", "wac:apicalls", "wac:{credits}", "wac:{credits}:committed", "wac:{credits}:cost"}
	for _, k := range wantKeys {
		if !slices.Contains(keys, k) {
			t.Errorf("key %q missing; keys: %q", k, keys)
		}
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "wac:") {
			t.Errorf("key %q is not under wac:", k)
		}
	}
}

// TestPlanEachBooksLikePlan books several accounts in one call, also after
// Redis lost its scripts: each account's slots are booked on its own
// timeline, and a later Plan continues right after them.
func TestPlanEachBooksLikePlan(t *testing.T) {
	const interval = time.Hour
	ctx := testContext(t)
	c := processes(t, 1)[0]
	p := quota.NewPacer(c, interval, 0)
	must(t, c.ScriptFlush(ctx).Err())
	got, err := p.PlanEach(ctx, map[string]int{"+1A": 3, "+1B": 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("PlanEach booked %d accounts, want 2: %v", len(got), got)
	}
	a := got["+1A"]
	if want := interval + quota.PlanSlack(interval); a.Step != want || got["+1B"].Step != want {
		t.Errorf("steps %s and %s, want %s", a.Step, got["+1B"].Step, want)
	}
	next, _, err := p.Plan(ctx, "+1A", 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := a.First.Add(3 * a.Step); !next.Equal(want) {
		t.Errorf("Plan after PlanEach's 3 slots starts at %s, want %s", next, want)
	}
	if _, err := p.PlanEach(ctx, map[string]int{"+1A": 0}); err == nil {
		t.Error("PlanEach of 0 slots succeeded")
	}
}
