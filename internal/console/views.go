package console

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// viewFuncs are the templates' helpers: numbers with thousands separators,
// times the browser localises, the progress bar and the funnel.
var viewFuncs = template.FuncMap{
	"num":      num,
	"pct":      pct,
	"rate":     func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
	"when":     when,
	"relative": relative,
	"dur":      humanDuration,
	"progress": progressOf,
	"funnel":   funnelOf,
	"states":   func() []campaign.State { return campaign.States },
	"join":     strings.Join,
	"list":     func(v ...string) []string { return v },
	"stepRow":  stepRow,
	"count":    count,
	"window":   windowFields,
	"deref":    func(p *int64) int64 { return derefOr(p, 0) },
	"pair":     func(a, b any) []any { return []any{a, b} },
	"knownAccount": func(list []accountJSON, phone string) bool {
		for _, a := range list {
			if a.Phone == phone {
				return true
			}
		}
		return false
	},
}

// num writes a count with thousands separators: 1234567 → "1,234,567".
func num(v any) string {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	case *int64:
		if x == nil {
			return "—"
		}
		n = *x
	default:
		return fmt.Sprint(v)
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// count writes a number of things, with thousands separators and the
// plural when it is not one: "1 credit", "2,500 credits".
func count(v any, unit string) string {
	s := num(v)
	if s == "1" {
		return "1 " + unit
	}
	return s + " " + unit + "s"
}

func derefOr(p *int64, fallback int64) int64 {
	if p == nil {
		return fallback
	}
	return *p
}

// pct is part of whole in whole percent, rounded down: 99.6% of a campaign
// is not shown as 100% until it is.
func pct(part, whole int64) string {
	if whole <= 0 {
		return "0%"
	}
	return strconv.FormatInt(part*100/whole, 10) + "%"
}

// when is a time as the browser localises it: the server writes UTC, named,
// and the script rewrites it in the viewer's zone, naming that.
func when(v any) template.HTML {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x != nil {
			t = *x
		}
	}
	if t.IsZero() {
		return "—"
	}
	t = t.UTC()
	return template.HTML(fmt.Sprintf(`<time datetime="%s">%s UTC</time>`,
		t.Format(time.RFC3339), t.Format("2 Jan 2006, 15:04:05")))
}

// relative says how far t is from now, in words: "in 3 min", "2 h ago".
func relative(v *time.Time) string {
	if v == nil {
		return ""
	}
	d := time.Until(*v)
	if d >= 0 {
		return "in " + roughly(d)
	}
	return roughly(-d) + " ago"
}

func roughly(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + " min"
	case d < 48*time.Hour:
		return strconv.FormatFloat(d.Hours(), 'f', 1, 64) + " h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + " days"
}

// humanDuration reads a Go duration ("72h0m0s") the way a person writes it
// ("3 days"); anything else is shown as it came.
func humanDuration(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	switch {
	case d == 0:
		return "at once"
	case d%(24*time.Hour) == 0:
		return plural(int(d/(24*time.Hour)), "day")
	case d%time.Hour == 0:
		return plural(int(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return plural(int(d/time.Minute), "minute")
	}
	return d.String()
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// segment is one state's share of the progress bar.
type segment struct {
	State string
	Count int64
	X, W  string // offset and width in percent, for SVG attributes
}

// progressOf is the progress bar: the settled states side by side, each as
// wide as its share of the total; the rest of the bar is what is still to
// go (queued, sending, unconfirmed).
func progressOf(c campaign.Counts) []segment {
	parts := []struct {
		state string
		n     int64
	}{{"read", c.Read}, {"delivered", c.Delivered}, {"sent", c.Sent}, {"failed", c.Failed}, {"skipped", c.Skipped}, {"unknown", c.Unknown}}
	var out []segment
	var at float64
	for _, p := range parts {
		if p.n == 0 || c.Total <= 0 {
			continue
		}
		w := float64(p.n) / float64(c.Total) * 100
		out = append(out, segment{State: p.state, Count: p.n, X: percent(at), W: percent(w)})
		at += w
	}
	return out
}

func percent(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) + "%" }

// funnelBar is one bar of the funnel chart.
type funnelBar struct {
	Label string
	Class string
	Count int64
	Rate  string // of the bar before it ("" for the first)
	W     string // width in percent of the widest bar
	TextY int    // baseline of its label, in px
	BarY  int    // top of its bar, in px
}

// funnelOf draws the funnel: accepted → delivered → read, failed, and the
// replies and opt-outs of the recipients, each
// bar as wide as its count against the widest.
func funnelOf(f campaign.Funnel) []funnelBar {
	widest := max(f.Accepted, f.Failed, 1)
	bars := []funnelBar{
		{Label: "Accepted by the provider", Class: "sent", Count: f.Accepted},
		{Label: "Delivered", Class: "delivered", Count: f.Delivered, Rate: rateText(f.DeliveryRate, "of accepted")},
		{Label: "Read", Class: "read", Count: f.Read, Rate: rateText(f.ReadRate, "of delivered")},
		{Label: "Failed", Class: "failed", Count: f.Failed, Rate: rateText(f.FailureRate, "of attempts")},
		{Label: "Replied", Class: "read", Count: f.Replied, Rate: rateText(f.ReplyRate, "of accepted")},
		{Label: "Opted out", Class: "failed", Count: f.OptedOut, Rate: rateText(f.OptOutRate, "of accepted")},
	}
	for i := range bars {
		bars[i].W = percent(float64(bars[i].Count) / float64(widest) * 100)
		bars[i].TextY, bars[i].BarY = i*funnelRow+14, i*funnelRow+22
	}
	return bars
}

// funnelRow is the height of one funnel row (label above, bar below).
const funnelRow = 46

func rateText(r float64, of string) string {
	return strconv.FormatFloat(r*100, 'f', 1, 64) + "% " + of
}
