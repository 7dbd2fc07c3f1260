package audience

import (
	"fmt"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/redistest"
)

func TestAdmitReservesTheCapOncePerRecipient(t *testing.T) {
	s := NewStore(redistest.Start(t).Client(t))
	ctx := t.Context()
	now := time.Now()
	capDay := FrequencyCap{Messages: 2, Period: 24 * time.Hour}
	admit := func(campaign string, at time.Time) Admission {
		t.Helper()
		a, err := s.Admit(ctx, AdmitParams{Address: "+12025550100", Campaign: campaign, Seq: 0, Cap: capDay, Now: at})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if a := admit("a", now); !a.Reserved {
		t.Fatalf("first message: %+v", a)
	}
	if a := admit("a", now.Add(time.Second)); !a.Reserved || !a.CappedUntil.IsZero() {
		t.Fatalf("a retry of the same recipient must find its slot again: %+v", a)
	}
	admit("b", now.Add(time.Minute))
	a := admit("c", now.Add(2*time.Minute))
	if want := now.Add(capDay.Period).Truncate(time.Millisecond); !a.CappedUntil.Equal(want) {
		t.Fatalf("third message: capped until %s, want %s (when the first leaves the period)", a.CappedUntil, want)
	}
	if err := s.ReleaseCap(ctx, "+12025550100", "b", 0); err != nil {
		t.Fatal(err)
	}
	if a := admit("c", now.Add(3*time.Minute)); !a.Reserved {
		t.Fatalf("a released slot is free again: %+v", a)
	}
	if a := admit("d", now.Add(capDay.Period+time.Second)); !a.Reserved {
		t.Fatalf("after the period the oldest message no longer counts: %+v", a)
	}

	if _, err := s.Suppress(ctx, Entry{Address: "+12025550100", Source: SourceAPI, At: now}); err != nil {
		t.Fatal(err)
	}
	if a := admit("e", now); a.Suppressed == nil || a.Reserved {
		t.Fatalf("a suppressed address: %+v", a)
	}
}

func TestSuppressionListPagesAndLooksUpInBatches(t *testing.T) {
	s := NewStore(redistest.Start(t).Client(t))
	ctx := t.Context()
	var entries []Entry
	for i := 0; i < 25; i++ {
		entries = append(entries, Entry{Address: fmt.Sprintf("+1202555%04d", i), Source: SourceImport, At: time.Now()})
	}
	if err := s.SuppressMany(ctx, entries); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		page, next, err := s.List(ctx, cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range page {
			if seen[e.Address] || e.Why == "" {
				t.Errorf("entry %+v: listed twice or without why", e)
			}
			seen[e.Address] = true
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 25 || pages != 3 {
		t.Errorf("%d entries in %d pages; want 25 in 3", len(seen), pages)
	}
	got, err := s.Suppressed(ctx, []string{"+12025550003", "+13125550000", "", "+12025550024"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[true false false true]" {
		t.Errorf("Suppressed: %v", got)
	}
	if removed, _ := s.Unsuppress(ctx, "+12025550003"); !removed {
		t.Error("Unsuppress found nothing")
	}
	if removed, _ := s.Unsuppress(ctx, "+12025550003"); removed {
		t.Error("Unsuppress removed twice")
	}
}
