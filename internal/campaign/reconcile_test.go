package campaign

import (
	"testing"
	"time"
)

// TestReconcileLookupSchedule: lookups at RECONCILE_AFTER, then doubling
// gaps, the last one at RECONCILE_MAX_AGE, and none after it.
func TestReconcileLookupSchedule(t *testing.T) {
	p := ReconcilePolicy{After: 2 * time.Minute, MaxAge: 30 * time.Minute}.withDefaults()
	d := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	var got []time.Duration
	for n := 0; ; n++ {
		at, ok := p.lookupAt(d, n)
		if !ok {
			break
		}
		got = append(got, at.Sub(d))
		if n > 10 {
			t.Fatal("the schedule never ends")
		}
	}
	want := []time.Duration{2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 30 * time.Minute}
	if len(got) != len(want) {
		t.Fatalf("lookups at %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("lookups at %v; want %v", got, want)
		}
	}
	// A max age under RECONCILE_AFTER still gives one lookup.
	short := ReconcilePolicy{After: 2 * time.Minute, MaxAge: time.Minute}.withDefaults()
	if at, ok := short.lookupAt(d, 0); !ok || at.Sub(d) != 2*time.Minute {
		t.Errorf("first lookup %v %v", at.Sub(d), ok)
	}
	if _, ok := short.lookupAt(d, 1); ok {
		t.Error("a second lookup past the max age")
	}
}
