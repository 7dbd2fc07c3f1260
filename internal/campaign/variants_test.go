package campaign

import (
	"fmt"
	"strings"
	"testing"
)

func TestWinnerTiesGoToFewerOptOuts(t *testing.T) {
	c := &Campaign{Variants: []Variant{{Name: "A", Weight: 1}, {Name: "B", Weight: 1}, {Name: "C", Weight: 1}},
		Winner: &Winner{Metric: "reply_rate"}}
	funnels := map[string]*VariantFunnel{
		"A": {Sent: 100, Replied: 10, OptedOut: 3},
		"B": {Sent: 100, Replied: 10, OptedOut: 1},
		"C": {Sent: 100, Replied: 5},
	}
	for _, f := range funnels {
		f.rates()
	}
	best, why := chooseWinner(c, funnels)
	if best != "B" || !strings.HasPrefix(why, "B by reply_rate: A 10.0 % of 100 sent (opt-outs 3.0 %); B 10.0 %") {
		t.Errorf("winner %s (%s), want B: A's reply rate with fewer opt-outs", best, why)
	}
}

func TestReplyRateCountsRepliesInHistories(t *testing.T) {
	var f VariantFunnel
	f.add(Recipient{State: StateRead, History: []HistoryEntry{{State: StateSent}, {State: historyReplied}}})
	f.add(Recipient{State: StateDelivered, History: []HistoryEntry{{State: StateSent}, {State: historyOptedOut}}})
	f.add(Recipient{State: StateQueued})
	f.rates()
	if f.Recipients != 3 || f.Sent != 2 || f.ReplyRate != 50 || f.OptOutRate != 50 || f.ReadRate != 50 {
		t.Errorf("funnel %+v", f)
	}
}

func TestVariantAssignmentIsPureAndWeighted(t *testing.T) {
	weights := []int{1, 1, 2}
	counts := make([]int, 3)
	for i := range 4000 {
		key := fmt.Sprintf("+1415555%04d", i)
		a := variantIndex("c1", key, weights, nil)
		if b := variantIndex("c1", key, weights, nil); a != b {
			t.Fatalf("%s: variant %d then %d", key, a, b)
		}
		counts[a]++
	}
	// 1000, 1000, 2000 expected; ±5 points of 4000 is ±200.
	if counts[0] < 800 || counts[0] > 1200 || counts[2] < 1800 || counts[2] > 2200 {
		t.Errorf("split %v of 4000 for weights %v", counts, weights)
	}
	w := &Winner{TestShare: 0.2}
	if i := variantIndex("c1", "+14155550001", weights, w); i != -1 && !inTestShare("c1", "+14155550001", w) {
		t.Errorf("a recipient outside the test share got variant %d before the winner", i)
	}
}
