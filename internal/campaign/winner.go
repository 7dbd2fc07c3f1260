package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"time"
)

// VariantFunnel is how far one variant's messages got: counts of its
// recipients by how far they got, and rates in percent of those sent.
type VariantFunnel struct {
	Recipients int64   `json:"recipients"` // assigned to it so far
	Sent       int64   `json:"sent"`       // sent, delivered, read or failed after sending
	Delivered  int64   `json:"delivered"`
	Read       int64   `json:"read"`
	Failed     int64   `json:"failed"`
	Replied    int64   `json:"replied"`
	OptedOut   int64   `json:"opted_out"`
	ReadRate   float64 `json:"read_rate"`
	ReplyRate  float64 `json:"reply_rate"`
	OptOutRate float64 `json:"opt_out_rate"`
}

// The history events the reply handling records on a recipient
// (inbound.go), read here to split replies and opt-outs by variant.
const (
	historyReplied  = State(EventReplied)
	historyOptedOut = State(EventOptedOut)
)

// WinnerMetric scores a variant from its funnel: higher wins.
type WinnerMetric func(VariantFunnel) float64

// WinnerMetrics are the metrics a winner may be chosen by. reply_rate
// counts what the reply handling records in recipients' histories.
var WinnerMetrics = map[string]WinnerMetric{
	"read_rate":  func(f VariantFunnel) float64 { return f.ReadRate },
	"reply_rate": func(f VariantFunnel) float64 { return f.ReplyRate },
}

func winnerMetricNames() []string {
	names := make([]string, 0, len(WinnerMetrics))
	for n := range WinnerMetrics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// add counts one recipient of the variant.
func (f *VariantFunnel) add(r Recipient) {
	f.Recipients++
	switch r.State {
	case StateSent:
		f.Sent++
	case StateDelivered:
		f.Sent++
		f.Delivered++
	case StateRead:
		f.Sent++
		f.Delivered++
		f.Read++
	case StateFailed:
		if !sentAt(r.History).IsZero() {
			f.Sent++
		}
		f.Failed++
	}
	for _, e := range r.History {
		switch e.State {
		case historyReplied:
			f.Replied++
		case historyOptedOut:
			f.OptedOut++
		}
	}
}

func (f *VariantFunnel) rates() {
	if f.Sent == 0 {
		return
	}
	pct := func(n int64) float64 { return float64(int64(float64(n)*1000/float64(f.Sent)+0.5)) / 10 }
	f.ReadRate, f.ReplyRate, f.OptOutRate = pct(f.Read), pct(f.Replied), pct(f.OptedOut)
}

// maxVariantScan bounds the recipients a split by variant reads.
const maxVariantScan = 100_000

// VariantFunnels splits a campaign's recipients by variant (only those of
// the test share, with testOnly). It reads the recipients page by page, at
// most maxVariantScan of them.
func (s *Store) VariantFunnels(ctx context.Context, c *Campaign, testOnly bool) (map[string]*VariantFunnel, error) {
	out := map[string]*VariantFunnel{}
	for _, v := range c.Variants {
		out[v.Name] = &VariantFunnel{}
	}
	read := 0
	for cursor := int64(0); cursor >= 0 && read < maxVariantScan; {
		page, next, err := s.Recipients(ctx, c.ID, "", cursor, 1024)
		if err != nil {
			return nil, err
		}
		for _, r := range page {
			if testOnly && c.Winner != nil && !inTestShare(c.ID, r.Key, c.Winner) {
				continue
			}
			if f := out[c.VariantOf(r.Key)]; f != nil {
				f.add(r)
			}
		}
		read += len(page)
		cursor = next
	}
	for _, f := range out {
		f.rates()
	}
	return out, nil
}

// chooseWinner picks the best variant by the metric, fewer opt-outs
// breaking ties (then the earlier variant), and says why.
func chooseWinner(c *Campaign, funnels map[string]*VariantFunnel) (string, string) {
	metric := WinnerMetrics[c.Winner.Metric]
	names := make([]string, 0, len(c.Variants))
	for _, v := range c.Variants {
		names = append(names, v.Name)
	}
	best := slices.MinFunc(names, func(a, b string) int {
		fa, fb := *funnels[a], *funnels[b]
		switch ma, mb := metric(fa), metric(fb); {
		case ma != mb:
			return cmpDesc(ma, mb)
		case fa.OptOutRate != fb.OptOutRate:
			return cmpDesc(fb.OptOutRate, fa.OptOutRate)
		}
		return 0
	})
	why := fmt.Sprintf("%s by %s:", best, c.Winner.Metric)
	for _, n := range names {
		f := funnels[n]
		why += fmt.Sprintf(" %s %.1f %% of %d sent (opt-outs %.1f %%);", n, metric(*f), f.Sent, f.OptOutRate)
	}
	return best, why[:len(why)-1]
}

func cmpDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// decideWinner chooses a winner-mode campaign's winner, once: one process
// takes the decision lock and writes the choice; the others wait for it.
func (s *Store) decideWinner(ctx context.Context, id string) error {
	ok, err := s.rdb.SetNX(ctx, winnerLockKey(id), "1", time.Minute).Result()
	if err != nil || !ok {
		return err
	}
	c, err := s.Get(ctx, id)
	if err != nil || c.Winner == nil || c.Winner.Variant != "" {
		return err
	}
	funnels, err := s.VariantFunnels(ctx, c, true)
	if err != nil {
		return err
	}
	w := *c.Winner
	w.Variant, w.Why = chooseWinner(c, funnels)
	now := time.Now().UTC()
	w.DecidedAt = &now
	b, _ := json.Marshal(w)
	return s.rdb.HSet(ctx, campaignKey(id), fWinner, string(b)).Err()
}

// errNoWinnerYet is the wait of a recipient outside the test share.
var errNoWinnerYet = errors.New("waiting for the A/B test's winner")

// untilWinner holds back a recipient outside a winner-mode campaign's test
// share until the winner is chosen: a wait (no retry spent) until the
// decision time; then the first task there chooses it, and the others look
// again a moment later.
func (h *SendHandler) untilWinner(ctx context.Context, spec *sendSpec, run *attemptRun) error {
	values, err := h.store.row(ctx, run.Campaign, run.Seq)
	if err != nil {
		return err
	}
	key, err := spec.key(values)
	if err != nil {
		return err
	}
	if inTestShare(run.Campaign, key.value, spec.winner) {
		return nil
	}
	if wait := time.Until(h.decideAt(ctx, spec, run)); wait > 0 {
		return &WaitError{Delay: wait + rand.N(5*time.Second), Reason: errNoWinnerYet.Error(), NotEarlier: true}
	}
	if err := h.store.decideWinner(ctx, run.Campaign); err != nil {
		return err
	}
	gate, err := h.gates.get(ctx, h.store, run.Campaign, true)
	if err != nil {
		return err
	}
	if gate.winner == "" {
		return &WaitError{Delay: time.Second + rand.N(time.Second), Reason: errNoWinnerYet.Error()}
	}
	run.winner = gate.winner
	return nil
}

// decideAt is when a winner-mode campaign chooses: its DecideAt, or, for a
// campaign that started later (a draft started since), After past its
// start; After from now while nothing has been claimed yet.
func (h *SendHandler) decideAt(ctx context.Context, spec *sendSpec, run *attemptRun) time.Time {
	after, _ := time.ParseDuration(spec.winner.After)
	at := spec.winner.DecideAt
	gate, err := h.gates.get(ctx, h.store, run.Campaign, false)
	switch {
	case err != nil:
	case gate.started == nil:
		at = maxTime(at, time.Now().Add(after))
	default:
		at = maxTime(at, gate.started.Add(after))
	}
	return at
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
