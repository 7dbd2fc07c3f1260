package campaign

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/wacampaign/wacampaign/internal/templating"
)

// A/B variants: a campaign may carry 2 to 4 templates with weights. Each
// recipient's variant is a pure function of the campaign id and its key
// (phone, JID or chat id), so a retry, a resume or a report always finds
// the same one without storing it, and an import costs nothing more per
// row. In test-then-winner mode a test share of the recipients (also a
// pure function, of another hash) gets the variants first; the rest wait
// until the winner is chosen and all get it.

// Variant is one of a campaign's templates, named A, B, C, D in order.
type Variant struct {
	Name         string `json:"name"`
	Template     string `json:"template"`
	TemplateName string `json:"template_name,omitempty"`
	Weight       int    `json:"weight"`
	// Funnel is how far this variant's messages got (GET campaign only).
	Funnel *VariantFunnel `json:"funnel,omitempty"`
}

// DraftVariant is a variant as the user asks for it.
type DraftVariant struct {
	Template     *templating.Template
	TemplateName string
	Weight       int
}

// Winner is a campaign's test-then-winner mode and, once chosen, its winner.
type Winner struct {
	TestShare float64 `json:"test_share"` // of the recipients, from 0.01 to 0.99
	After     string  `json:"after"`      // how long after the start the winner is chosen (a Go duration)
	Metric    string  `json:"metric"`     // a key of WinnerMetrics
	// DecideAt is when the winner is chosen.
	DecideAt time.Time `json:"decide_at"`
	// Variant, Why and DecidedAt are the choice, once made.
	Variant   string     `json:"variant,omitempty"`
	Why       string     `json:"why,omitempty"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
}

// Variant limits.
const (
	MinVariants = 2
	MaxVariants = 4
)

var variantNames = []string{"A", "B", "C", "D"}

// CheckVariants says what is wrong with a campaign's variants and winner
// mode, naming the fields.
func CheckVariants(vs []DraftVariant, w *Winner) []Problem {
	var problems []Problem
	if len(vs) < MinVariants || len(vs) > MaxVariants {
		problems = append(problems, Problem{Fields: []string{"variants"}, Msg: fmt.Sprintf("variants has %d entries; an A/B test has %d to %d", len(vs), MinVariants, MaxVariants)})
	}
	for i, v := range vs {
		if v.Weight <= 0 || v.Weight > 1000 {
			problems = append(problems, Problem{Fields: []string{fmt.Sprintf("variants[%d].weight", i)}, Msg: fmt.Sprintf("variants[%d].weight %d is not from 1 to 1000", i, v.Weight)})
		}
		if v.Template == nil {
			problems = append(problems, Problem{Fields: []string{fmt.Sprintf("variants[%d].template", i)}, Msg: fmt.Sprintf("variants[%d] has no template: send template or template_name", i)})
		}
	}
	if w != nil {
		problems = append(problems, checkWinner(w)...)
	}
	return problems
}

func checkWinner(w *Winner) []Problem {
	var problems []Problem
	if w.TestShare < 0.01 || w.TestShare > 0.99 {
		problems = append(problems, Problem{Fields: []string{"winner.test_share"}, Msg: fmt.Sprintf("winner.test_share %g is not from 0.01 to 0.99", w.TestShare)})
	}
	if d, err := time.ParseDuration(w.After); err != nil || d < time.Second || d > 30*24*time.Hour {
		problems = append(problems, Problem{Fields: []string{"winner.after"}, Msg: fmt.Sprintf("winner.after %q is not a duration from 1s to 720h (like 2h)", w.After)})
	}
	if _, ok := WinnerMetrics[w.Metric]; !ok {
		problems = append(problems, Problem{Fields: []string{"winner.metric"}, Msg: fmt.Sprintf("winner.metric %q is not one of %s", w.Metric, strings.Join(winnerMetricNames(), ", "))})
	}
	return problems
}

// draftVariants turns checked draft variants into the campaign's.
func draftVariants(vs []DraftVariant) []Variant {
	out := make([]Variant, len(vs))
	for i, v := range vs {
		out[i] = Variant{Name: variantNames[i], Template: v.Template.Source(), TemplateName: v.TemplateName, Weight: v.Weight}
	}
	return out
}

// VariantOf is the name of the variant recipient key gets ("" without
// variants): in winner mode, outside the test share, the winner once
// chosen ("" before).
func (c *Campaign) VariantOf(key string) string {
	i := variantIndex(c.ID, key, weightsOf(c.Variants), c.Winner)
	if i < 0 {
		return ""
	}
	return c.Variants[i].Name
}

func weightsOf(vs []Variant) []int {
	w := make([]int, len(vs))
	for i, v := range vs {
		w[i] = v.Weight
	}
	return w
}

// variantIndex is the index of the variant key gets, -1 for none (no
// variants, or a recipient outside the test share before the winner).
func variantIndex(campaignID, key string, weights []int, w *Winner) int {
	if len(weights) == 0 {
		return -1
	}
	if w != nil && !inTestShare(campaignID, key, w) {
		for i, name := range variantNames[:len(weights)] {
			if name == w.Variant {
				return i
			}
		}
		return -1
	}
	return weighted(unitOf(campaignID, key, "variant"), weights)
}

// inTestShare reports whether key is among the recipients a winner-mode
// campaign tests its variants on.
func inTestShare(campaignID, key string, w *Winner) bool {
	return unitOf(campaignID, key, "test") < w.TestShare
}

// weighted picks the index whose share of the weights holds u in [0, 1).
func weighted(u float64, weights []int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	x := u * float64(total)
	for i, w := range weights {
		if x < float64(w) {
			return i
		}
		x -= float64(w)
	}
	return len(weights) - 1
}

// unitOf maps (campaign, key, purpose) to [0, 1), evenly.
func unitOf(campaignID, key, purpose string) float64 {
	h := fnv.New64a()
	h.Write([]byte(purpose))
	h.Write([]byte{0})
	h.Write([]byte(campaignID))
	h.Write([]byte{0})
	h.Write([]byte(key))
	// splitmix64's finalizer: keys in a row differ in their last digits.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// addVariantFields adds a new campaign's variants and winner mode to its
// hash fields.
func addVariantFields(fields map[string]any, c *Campaign) {
	if len(c.Variants) > 0 {
		b, _ := json.Marshal(c.Variants)
		fields[fVariants] = string(b)
	}
	if c.Winner != nil {
		b, _ := json.Marshal(c.Winner)
		fields[fWinner] = string(b)
	}
}

// readVariantFields reads them back.
func readVariantFields(c *Campaign, h map[string]string) {
	if raw := h[fVariants]; raw != "" {
		_ = json.Unmarshal([]byte(raw), &c.Variants)
	}
	if raw := h[fWinner]; raw != "" {
		c.Winner = new(Winner)
		_ = json.Unmarshal([]byte(raw), c.Winner)
	}
}

// draftVariantProblems checks a draft's variants and winner mode.
func draftVariantProblems(d Draft) []Problem {
	switch {
	case len(d.Variants) > 0:
		return CheckVariants(d.Variants, d.Winner)
	case d.Winner != nil:
		return []Problem{{Fields: []string{"winner"}, Msg: "winner picks among variants: send variants too"}}
	}
	return nil
}

// setVariants gives a checked campaign its draft's variants; the winner is
// chosen After the campaign starts (its send_at, or now).
func setVariants(c *Campaign, d Draft, now time.Time) {
	if len(d.Variants) == 0 {
		return
	}
	c.Variants = draftVariants(d.Variants)
	if d.Winner != nil {
		w := *d.Winner
		after, _ := time.ParseDuration(w.After)
		start := now
		if c.SendAt != nil {
			start = *c.SendAt
		}
		w.DecideAt = start.Add(after).UTC()
		w.Variant, w.Why, w.DecidedAt = "", "", nil
		c.Winner = &w
	}
}

// checkVariantColumns checks every variant against the CSV's columns, like
// the single template, naming the variant.
func checkVariantColumns(vs []DraftVariant, columns []string) error {
	for i, v := range vs {
		if err := v.Template.CheckColumns(columns); err != nil {
			field := fmt.Sprintf("variants[%d].template", i)
			return &InputError{Msg: field + ": " + err.Error(), Problems: []Problem{{Fields: []string{field}, Msg: err.Error()}}}
		}
	}
	return nil
}

// variantTemplates parses a campaign's variants by name.
func variantTemplates(c *Campaign) (map[string]*templating.Template, error) {
	out := make(map[string]*templating.Template, len(c.Variants))
	for _, v := range c.Variants {
		tmpl, err := templating.Parse("variant "+v.Name, v.Template)
		if err != nil {
			return nil, fmt.Errorf("campaign %s has a variant %s that does not parse: %w", c.ID, v.Name, err)
		}
		out[v.Name] = tmpl
	}
	return out, nil
}

// lateVariantChanges adds to changes the variants and winner mode that
// came after the contacts (want is the final campaign).
func lateVariantChanges(changes map[string]any, c *Campaign, final Draft, want *Campaign) error {
	was, is := map[string]any{}, map[string]any{}
	addVariantFields(was, c)
	addVariantFields(is, want)
	if is[fVariants] != was[fVariants] {
		if err := checkVariantColumns(final.Variants, c.Columns); err != nil {
			return err
		}
		changes[fVariants] = is[fVariants]
		if is[fVariants] == nil {
			changes[fVariants] = ""
		}
	}
	if (c.Winner == nil) != (want.Winner == nil) || c.Winner != nil && (c.Winner.TestShare != want.Winner.TestShare ||
		c.Winner.After != want.Winner.After || c.Winner.Metric != want.Winner.Metric) {
		changes[fWinner] = is[fWinner]
		if is[fWinner] == nil {
			changes[fWinner] = ""
		}
	}
	return nil
}

// draftVariantsOf gives d the stored campaign's variants and winner mode,
// so that editing another field of a draft keeps them.
func draftVariantsOf(c *Campaign, d *Draft) error {
	templates, err := variantTemplates(c)
	if err != nil {
		return err
	}
	for _, v := range c.Variants {
		d.Variants = append(d.Variants, DraftVariant{Template: templates[v.Name], TemplateName: v.TemplateName, Weight: v.Weight})
	}
	if c.Winner != nil {
		w := *c.Winner
		d.Winner = &w
	}
	return nil
}
