package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

func column(header []string, name string) int {
	for i, c := range header {
		if c == name {
			return i
		}
	}
	return -1
}

// variantOfText is the variant a message's text says it is ("A: …").
func variantOfText(text string) string {
	name, _, _ := strings.Cut(text, ":")
	return name
}

// TestVariantsSplitByWeightAndSurviveAResume: 1000 recipients, variants
// weighted 1:3, paused half way and resumed. Each recipient gets one
// message; B's share is 75 % within ±5 points; what arrived at the sandbox
// is the variant the report names for that recipient, before and after
// the resume; the funnel splits by variant.
func TestVariantsSplitByWeightAndSurviveAResume(t *testing.T) {
	h := newHarness(t)
	h.startWorkers(workers)
	phones := make([]string, 1000)
	for i := range phones {
		phones[i] = fmt.Sprintf("+1415555%04d", i)
	}
	c := h.createCampaign(form{fields: [][2]string{
		{"variants", `[{"template":"A: Hi {{.name}}","weight":1},{"template":"B: Hello {{.name}}","weight":3}]`},
	}, contacts: csvLines(append([]string{"phone,name"}, withName(phones)...)...)})
	h.waitCampaign(c.ID, time.Minute, "part sent", func(c campaign.Campaign) bool { return c.Counts.Sent >= 200 })
	if res := h.call(http.MethodPost, "/v1/campaigns/"+c.ID+"/pause", ""); res.Code != http.StatusOK {
		t.Fatalf("pause: %s", res.Raw)
	}
	beforeResume := len(h.sandbox.Messages())
	if res := h.call(http.MethodPost, "/v1/campaigns/"+c.ID+"/resume", ""); res.Code != http.StatusOK {
		t.Fatalf("resume: %s", res.Raw)
	}
	done := h.waitCampaign(c.ID, 2*time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
	if done.Counts.Sent != 1000 || beforeResume >= 1000 {
		t.Fatalf("final %+v; %d sent before the resume", done.Counts, beforeResume)
	}
	report := h.reportRows(c.ID)
	header, rows := report[0], report[1:]
	phoneAt, variantAt := column(header, "phone"), column(header, "variant")
	if variantAt < 0 {
		t.Fatalf("report header %v has no variant", header)
	}
	sent := h.sentTo()
	share := map[string]int{}
	for _, row := range rows {
		msgs := sent[row[phoneAt]]
		if len(msgs) != 1 {
			t.Fatalf("%s received %d messages", row[phoneAt], len(msgs))
		}
		if got := variantOfText(msgs[0].Text); got != row[variantAt] {
			t.Errorf("%s got variant %s at the sandbox; the report says %s", row[phoneAt], got, row[variantAt])
		}
		share[row[variantAt]]++
	}
	if b := share["B"]; b < 700 || b > 800 || share["A"]+b != 1000 {
		t.Errorf("variants split %v of 1000; want B (weight 3 of 4) at 750 ± 50", share)
	}
	got := h.campaign(c.ID)
	if len(got.Variants) != 2 || got.Variants[1].Funnel == nil || got.Variants[1].Funnel.Sent != int64(share["B"]) || got.Variants[0].Funnel.Sent != int64(share["A"]) {
		t.Errorf("funnel by variant %+v, want sent %v", got.Variants, share)
	}
	t.Logf("split %v; %d of them sent before the pause", share, beforeResume)
}

func withName(phones []string) []string {
	out := make([]string, len(phones))
	for i, p := range phones {
		out[i] = p + ",Ana"
	}
	return out
}

// TestWinnerModePicksTheFavouredVariant: the sandbox marks variant B's
// messages read and A's only delivered. The test share gets both; after the
// set time B wins by read rate, with the reason shown, and every other
// recipient gets B.
func TestWinnerModePicksTheFavouredVariant(t *testing.T) {
	h := newHarness(t, fastTracking, func(sb *sandbox.Config, _ *app.Config) {
		sb.MessageOutcome = func(_, text string) sandbox.Outcome {
			if strings.HasPrefix(text, "B:") {
				return sandbox.OutcomeRead
			}
			return sandbox.OutcomeDelivered
		}
	})
	h.startWorkers(workers)
	phones := generatedPhones(120)
	c := h.createCampaign(form{fields: [][2]string{
		{"variants", `[{"template":"A: Hi","weight":1},{"template":"B: Hello","weight":1}]`},
		{"winner", `{"test_share":0.3,"after":"5s","metric":"read_rate"}`},
	}, contacts: csvLines(append([]string{"phone"}, phones...)...)})
	if c.Winner == nil || c.Winner.DecideAt.IsZero() || c.Winner.Variant != "" {
		t.Fatalf("created winner mode %+v", c.Winner)
	}
	early := h.waitCampaign(c.ID, 30*time.Second, "the test share sent", func(c campaign.Campaign) bool { return c.Counts.Sent+c.Counts.Delivered+c.Counts.Read > 10 })
	if n := len(h.sandbox.Messages()); n > 60 && early.Winner.Variant == "" && time.Now().Before(early.Winner.DecideAt) {
		t.Fatalf("%d of 120 went out before the winner was chosen; the test share is 30 %%", n)
	}
	done := h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
	if done.Winner == nil || done.Winner.Variant != "B" || !strings.HasPrefix(done.Winner.Why, "B by read_rate:") || done.Winner.DecidedAt == nil {
		t.Fatalf("winner %+v, want B by read_rate", done.Winner)
	}
	byVariant := map[string]int{}
	for phone, msgs := range h.sentTo() {
		if len(msgs) != 1 {
			t.Errorf("%s received %d messages", phone, len(msgs))
		}
		byVariant[variantOfText(msgs[0].Text)]++
	}
	// The test share (about 36) split A/B; everyone else B.
	if byVariant["A"] < 5 || byVariant["A"] > 30 || byVariant["A"]+byVariant["B"] != 120 {
		t.Errorf("messages by variant %v: want A only within the test share", byVariant)
	}
	t.Logf("winner: %s; messages by variant %v", done.Winner.Why, byVariant)
}

// TestVariantsRefuseBadInput: each mistake is a 400 naming its field, and
// creates nothing.
func TestVariantsRefuseBadInput(t *testing.T) {
	h := newHarness(t)
	contacts := csvLines("phone,name", "+14155550100,Ana")
	for _, tc := range []struct {
		fields [][2]string
		field  string
	}{
		{[][2]string{{"variants", `[{"template":"Hi","weight":1}]`}}, "variants"},
		{[][2]string{{"variants", `[{"template":"a"},{"template":"b"},{"template":"c"},{"template":"d"},{"template":"e"}]`}}, "variants"},
		{[][2]string{{"variants", `[{"template":"Hi","weight":0},{"template":"Yo","weight":1}]`}}, "variants[0].weight"},
		{[][2]string{{"variants", `[{"template":"Hi","weight":1},{"template":"Yo","weight":-2}]`}}, "variants[1].weight"},
		{[][2]string{{"variants", `[{"template":"Hi"},{"template_name":"no-such-template"}]`}}, "variants[1].template_name"},
		{[][2]string{{"variants", `[{"template":"Hi"},{}]`}}, "variants[1].template"},
		{[][2]string{{"variants", `[{"template":"Hi"},{"template":"Hi {{.city}}"}]`}}, "variants[1].template"},
		{[][2]string{{"variants", `[{"template":"Hi"},{"template":"{{if}}"}]`}}, "variants[1].template"},
		{[][2]string{{"variants", `{"template":"Hi"}`}}, "variants"},
		{[][2]string{{"template", "Hi"}, {"variants", `[{"template":"Hi"},{"template":"Yo"}]`}}, "variants"},
		{[][2]string{{"template", "Hi"}, {"winner", `{"test_share":0.2,"after":"2h","metric":"read_rate"}`}}, "variants"},
		{[][2]string{{"variants", `[{"template":"Hi"},{"template":"Yo"}]`}, {"winner", `{"test_share":0.2,"after":"2h","metric":"clicks"}`}}, "winner.metric"},
		{[][2]string{{"variants", `[{"template":"Hi"},{"template":"Yo"}]`}, {"winner", `{"test_share":1.5,"after":"2h","metric":"read_rate"}`}}, "winner.test_share"},
		{[][2]string{{"variants", `[{"template":"Hi"},{"template":"Yo"}]`}, {"winner", `{"test_share":0.2,"after":"soon","metric":"read_rate"}`}}, "winner.after"},
	} {
		res := h.upload(form{fields: tc.fields, contacts: contacts})
		if res.Code != http.StatusBadRequest || len(res.Errors) == 0 || res.Errors[0].Fields[0] != tc.field {
			t.Errorf("%v: %d %s; want 400 naming %s", tc.fields, res.Code, res.Raw, tc.field)
		}
	}
	// JSON takes the same fields as JSON values.
	res := h.call(http.MethodPost, "/v1/campaigns", `{"variants":[{"template":"Hi","weight":2}],"contacts":[{"phone":"+14155550100"}]}`)
	if res.Code != http.StatusBadRequest || len(res.Errors) == 0 || res.Errors[0].Fields[0] != "variants" {
		t.Errorf("JSON with one variant: %d %s", res.Code, res.Raw)
	}
	if list := h.call(http.MethodGet, "/v1/campaigns", ""); strings.Contains(list.Raw, `"id":"`) {
		t.Errorf("a refused campaign was created: %s", list.Raw)
	}
}

// TestPickPreviewIsWhatIsSent: {{pick}} gives each recipient one choice,
// the same in the preview and at the sandbox, and different recipients
// different ones.
func TestPickPreviewIsWhatIsSent(t *testing.T) {
	h := newHarness(t)
	phones := generatedPhones(40)
	c := h.createCampaign(form{fields: [][2]string{{"template", `{{pick "Hi" "Hello" "Hey"}} {{.name}}, {{pick "see you" "talk soon"}}`}, {"draft", "true"}},
		contacts: csvLines(append([]string{"phone,name"}, withName(phones)...)...)})
	var p campaign.Preview
	decode(t, h.call(http.MethodGet, "/v1/campaigns/"+c.ID+"/preview?limit=40", ""), http.StatusOK, &p)
	previewed := map[string]string{}
	for _, m := range p.Messages {
		previewed[m.Phone] = m.Text
	}
	h.startWorkers(workers)
	if res := h.call(http.MethodPost, "/v1/campaigns/"+c.ID+"/start", ""); res.Code != http.StatusOK {
		t.Fatalf("start: %s", res.Raw)
	}
	h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
	texts := map[string]bool{}
	for phone, msgs := range h.sentTo() {
		if len(msgs) != 1 || msgs[0].Text != previewed[phone] {
			t.Errorf("%s: sent %v, previewed %q", phone, msgs, previewed[phone])
			continue
		}
		texts[msgs[0].Text] = true
	}
	if len(previewed) != 40 || len(texts) < 4 {
		t.Errorf("%d previews; %d different texts among 40 recipients, want the picks to vary", len(previewed), len(texts))
	}
}

// TestDraftEditsKeepVariants: renaming a draft with variants keeps them;
// changing its template, which the variants replace, is refused.
func TestDraftEditsKeepVariants(t *testing.T) {
	h := newHarness(t)
	c := h.createCampaign(form{fields: [][2]string{{"draft", "true"},
		{"variants", `[{"template":"A: Hi","weight":1},{"template":"B: Hello","weight":2}]`}},
		contacts: csvLines("phone", "+14155550100")})
	if res := h.call(http.MethodPatch, "/v1/campaigns/"+c.ID, `{"name":"Spring A/B"}`); res.Code != http.StatusOK {
		t.Fatalf("rename: %d %s", res.Code, res.Raw)
	}
	got := h.campaign(c.ID)
	if got.Name != "Spring A/B" || len(got.Variants) != 2 || got.Variants[1].Template != "B: Hello" || got.Variants[1].Weight != 2 {
		t.Errorf("after a rename: %q %+v", got.Name, got.Variants)
	}
	res := h.call(http.MethodPatch, "/v1/campaigns/"+c.ID, `{"template":"Yo"}`)
	if res.Code != http.StatusBadRequest || len(res.Errors) == 0 || res.Errors[0].Fields[0] != "template" {
		t.Errorf("PATCH template of a campaign with variants: %d %s", res.Code, res.Raw)
	}
}
