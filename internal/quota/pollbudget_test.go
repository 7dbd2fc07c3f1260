package quota

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/redistest"
	"github.com/wacampaign/wacampaign/internal/sender"
)

func TestPollBudgetFollowsTheAPICallQuota(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	reserved := int64(0)
	b := NewPollBudget(rdb, nil, func(context.Context) (int64, error) { return reserved, nil })

	// Before the first quota read nothing limits polls.
	if l, basis, err := b.Limit(ctx); err != nil || !l.IsZero() || !strings.Contains(basis, "not been read") {
		t.Fatalf("unsynced: %v %q %v", l, basis, err)
	}
	syncer := NewQuotaSyncer(rdb, nil, NewCreditLedger(rdb), time.Minute, nil)
	store := func(total, used int64, end time.Time) {
		if err := syncer.storeSnapshot(ctx, sender.Quota{APICallsTotal: total, APICallsUsed: used, APICallsPeriodEnd: end}, time.Now()); err != nil {
			t.Fatal(err)
		}
		b.at = time.Time{} // forget the derived rate
	}
	end := time.Now().Add(10 * 24 * time.Hour)
	store(200_000, 100_000, end)
	reserved = 10_000
	l, basis, err := b.Limit(ctx)
	// (100000 - 10000) × 0.9 over 10 days: 8100 a day.
	if err != nil || l.Period != 24*time.Hour || l.Rate < 8000 || l.Rate > 8200 || !strings.Contains(basis, "10000 kept for queued sends") {
		t.Fatalf("derived %v %q %v; want about 8100/day", l, basis, err)
	}
	// Calls nearly gone: polls slow to a trickle, they never stop.
	store(200_000, 199_990, end)
	if l, _, _ := b.Limit(ctx); l.Rate != minPollsPerDay {
		t.Errorf("nearly out of calls: %v, want the floor of %d/day", l, minPollsPerDay)
	}

	fixed, err := ParsePollBudget("2/s")
	if err != nil {
		t.Fatal(err)
	}
	fb := NewPollBudget(rdb, fixed, nil)
	granted := 0
	for i := 0; i < 10; i++ {
		if wait, err := fb.Take(ctx); err != nil {
			t.Fatal(err)
		} else if wait == 0 {
			granted++
		}
	}
	if granted > 2 {
		t.Errorf("a budget of 2/s granted %d polls at once", granted)
	}
	for _, bad := range []string{"lots", "5/week", "0/day", "/s"} {
		if _, err := ParsePollBudget(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
