package console

import (
	"strconv"
	"strings"
	"testing"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

func TestNumbersHaveThousandsSeparators(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -45000: "-45,000"} {
		if got := num(in); got != want {
			t.Errorf("num(%d) = %q, want %q", in, got, want)
		}
	}
	if got := pct(999, 1000); got != "99%" {
		t.Errorf("999 of 1,000 shows %s: a campaign is not 100%% until it is", got)
	}
}

func TestProgressBarCoversTheSettledShare(t *testing.T) {
	c := campaign.Counts{Total: 8, Queued: 2, Sent: 1, Delivered: 2, Read: 1, Failed: 1, Skipped: 1}
	var end float64
	for _, s := range progressOf(c) {
		x, _ := strconv.ParseFloat(strings.TrimSuffix(s.X, "%"), 64)
		w, _ := strconv.ParseFloat(strings.TrimSuffix(s.W, "%"), 64)
		if x < end-0.01 {
			t.Errorf("segment %s starts at %v, inside the one before (ends %v)", s.State, x, end)
		}
		end = x + w
	}
	if end < 74.99 || end > 75.01 {
		t.Errorf("the settled segments end at %v%%, want 75%% (6 of 8)", end)
	}
}

func TestLocalTimesBecomeRFC3339(t *testing.T) {
	for _, tc := range []struct{ value, tz, want string }{
		{"2026-12-01T09:00", "Europe/Madrid", "2026-12-01T09:00:00+01:00"},
		{"2026-07-01T09:00", "Europe/Madrid", "2026-07-01T09:00:00+02:00"},
		{"2026-12-01T09:00", "", "2026-12-01T09:00:00Z"},
		{"2026-12-01T09:00:00-05:00", "Europe/Madrid", "2026-12-01T09:00:00-05:00"},
	} {
		got, problem := localTime(tc.value, tc.tz, "send_at")
		if problem != nil || got != tc.want {
			t.Errorf("localTime(%q, %q) = %q, %v; want %q", tc.value, tc.tz, got, problem, tc.want)
		}
	}
	for _, bad := range [][2]string{{"next tuesday", ""}, {"2026-12-01T09:00", "Mars/Olympus"}, {"", ""}} {
		if _, problem := localTime(bad[0], bad[1], "send_at"); problem == nil || problem.ForField("send_at") == "" {
			t.Errorf("localTime(%q, %q) gave no error for the send_at field", bad[0], bad[1])
		}
	}
}

func TestStepDelays(t *testing.T) {
	for _, tc := range []struct{ n, unit, want string }{
		{"", "hours", "0s"}, {"1", "days", "1440m"}, {"1.5", "hours", "90m"}, {"30", "minutes", "30m"},
	} {
		if got, err := stepDelay(tc.n, tc.unit); err != nil || got != tc.want {
			t.Errorf("stepDelay(%q, %q) = %q, %v; want %q", tc.n, tc.unit, got, err, tc.want)
		}
	}
	if _, err := stepDelay("soon", "days"); err == nil {
		t.Error("a delay that is not a number was taken")
	}
}

func TestAPIErrorsLandBesideTheirFields(t *testing.T) {
	e := &APIError{Message: "row problems", Errors: []apiProblem{
		{Fields: []string{"contacts", "row 12", "phone"}, Msg: "not a valid number"},
		{Fields: []string{"steps", "2", "delay"}, Msg: "not a duration"},
	}}
	if got := e.ForField("contacts"); got != "row 12: not a valid number" {
		t.Errorf("contacts: %q", got)
	}
	if got := e.ForField("steps.2.delay"); got != "not a duration" {
		t.Errorf("steps.2.delay: %q", got)
	}
	if got := e.ForField("template"); got != "" {
		t.Errorf("template: %q, want nothing", got)
	}
	mapped := stepErrorsToRows(e, []int{0, 2, 4})
	if got := mapped.ForField("steps.4.delay"); got != "not a duration" {
		t.Errorf("the API's step 2 is the form's row 4: %q", got)
	}
}
