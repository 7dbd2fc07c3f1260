package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/audience"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

const audienceAccount = "+14155550100"

// newAudienceHarness is the product with its webhook receiver registered at
// the sandbox, so that what a contact writes (sandbox.Receive) reaches it
// as TimelinesAI's message:received:new would.
func newAudienceHarness(t *testing.T, opts ...harnessOption) *harness {
	t.Helper()
	opts = append([]harnessOption{func(_ *sandbox.Config, cfg *app.Config) {
		cfg.WebhookSecret = webhookSecret
		cfg.ReplyWindow = time.Hour
	}}, opts...)
	h := newHarness(t, opts...)
	h.sandbox.SetWebhookURL(h.api.URL + "/v1/webhooks/timelines/" + webhookSecret)
	return h
}

// audienceCampaign sends template to phones from audienceAccount, with
// extra form fields.
func (h *harness) audienceCampaign(phones []string, extra ...[2]string) campaign.Campaign {
	h.t.Helper()
	fields := append([][2]string{{"template", "Hello {{.phone}}, reply STOP to stop"}, {"accounts", audienceAccount}}, extra...)
	return h.createCampaign(form{fields: fields, contacts: csvLines(append([]string{"phone"}, phones...)...)})
}

// write has phone write text to audienceAccount, through the sandbox and its webhook.
func (h *harness) write(phone, text string) {
	h.t.Helper()
	if _, ok := h.sandbox.Receive(audienceAccount, phone, text); !ok {
		h.t.Fatalf("the sandbox refused a message from %s", phone)
	}
}

// suppressions reads the first page of the suppression list.
func (h *harness) suppressions() map[string]audience.Entry {
	h.t.Helper()
	res := h.call(http.MethodGet, "/v1/suppressions?limit=1000", "")
	if res.Code != http.StatusOK {
		h.t.Fatalf("list suppressions: %d %s", res.Code, res.Raw)
	}
	var page struct {
		Suppressions []audience.Entry `json:"suppressions"`
	}
	if err := json.Unmarshal(res.Data, &page); err != nil {
		h.t.Fatal(err)
	}
	out := map[string]audience.Entry{}
	for _, e := range page.Suppressions {
		out[e.Address] = e
	}
	return out
}

// awaitSuppressed polls the list until phone is (or is not) on it.
func (h *harness) awaitSuppressed(phone string, want bool) audience.Entry {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		e, ok := h.suppressions()[phone]
		if ok == want {
			return e
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s suppressed: %v, want %v", phone, ok, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func completed(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted }

// A STOP reply suppresses its writer: the next campaign counts it
// suppressed at import, a campaign already queued skips it at send time
// ("opted out", nothing reaches the sandbox), and START lifts it.
func TestOptOutAndOptInEndToEnd(t *testing.T) {
	h := newAudienceHarness(t)
	h.startWorkers(1)
	phones := generatedPhones(3)
	first := h.audienceCampaign(phones)
	h.waitCampaign(first.ID, 30*time.Second, "completed", completed)

	// Queued before the opt-out: scheduled an hour out, started after it.
	queued := h.audienceCampaign(phones, [2]string{"send_at", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	if queued.Status != campaign.StatusScheduled || queued.Counts.Queued != 3 {
		t.Fatalf("the scheduled campaign: %s with %+v", queued.Status, queued.Counts)
	}

	h.write(phones[0], "  Stop! ")
	e := h.awaitSuppressed(phones[0], true)
	if e.Source != audience.SourceKeyword || !strings.Contains(e.Why, `replied "Stop!"`) || !strings.Contains(e.Why, first.ID) {
		t.Errorf("the entry does not say why a person can read: %+v", e)
	}
	h.waitCampaign(first.ID, 10*time.Second, "showing the reply", func(c campaign.Campaign) bool {
		return c.Funnel.Replied == 1 && c.Funnel.OptedOut == 1
	})

	next := h.audienceCampaign(phones)
	if next.Suppressed != 1 || next.Counts.Total != 2 {
		t.Errorf("next campaign: suppressed %d, total %d; want 1 and 2", next.Suppressed, next.Counts.Total)
	}
	h.waitCampaign(next.ID, 30*time.Second, "completed", completed)

	if res := h.call(http.MethodPost, "/v1/campaigns/"+queued.ID+"/reschedule", `{"send_at":"`+time.Now().Add(time.Second).UTC().Format(time.RFC3339)+`"}`); res.Code != http.StatusOK {
		t.Fatalf("reschedule: %d %s", res.Code, res.Raw)
	}
	done := h.waitCampaign(queued.ID, 30*time.Second, "completed", completed)
	if done.Counts.Skipped != 1 || done.Counts.Sent != 2 {
		t.Errorf("the queued campaign: %+v; want 1 skipped, 2 sent", done.Counts)
	}
	for _, r := range h.recipients(queued.ID, "skipped") {
		if r.Phone != phones[0] || r.Reason != campaign.ReasonOptedOut {
			t.Errorf("skipped %s for %q; want %s for %q", r.Phone, r.Reason, phones[0], campaign.ReasonOptedOut)
		}
	}
	if got := len(h.sentTo()[phones[0]]); got != 1 {
		t.Fatalf("the opted-out phone got %d messages; want 1 (the first campaign's)", got)
	}

	h.write(phones[0], "start")
	h.awaitSuppressed(phones[0], false)
	later := h.audienceCampaign(phones[:1])
	h.waitCampaign(later.ID, 30*time.Second, "completed", func(c campaign.Campaign) bool { return completed(c) && c.Counts.Sent == 1 })
	if got := len(h.sentTo()[phones[0]]); got != 2 {
		t.Errorf("after START the phone got %d messages in all; want 2", got)
	}
}
