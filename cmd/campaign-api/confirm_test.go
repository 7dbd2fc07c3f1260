package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/audience"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

const (
	optOutConfirmText = "You will get no more messages from us at {{.phone}}. Reply START to opt back in."
	optInConfirmText  = "Welcome back: {{.phone}} gets our news again."
)

// withConfirmTemplates sets OPTOUT_CONFIRM_TEMPLATE and
// OPTIN_CONFIRM_TEMPLATE to templates of a library of the test's own.
func withConfirmTemplates(t *testing.T) harnessOption {
	dir := t.TempDir()
	for name, text := range map[string]string{"optout-confirm": optOutConfirmText, "optin-confirm": optInConfirmText} {
		if err := os.WriteFile(filepath.Join(dir, name+".tmpl"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return func(_ *sandbox.Config, cfg *app.Config) {
		cfg.TemplatesDir = dir
		cfg.OptOutConfirm, cfg.OptInConfirm = "optout-confirm", "optin-confirm"
	}
}

// redeliver posts a message:received:new event again, as TimelinesAI
// retries a webhook, and answers the confirmation campaign it names.
func (h *harness) redeliver(uid, from, text string) string {
	h.t.Helper()
	ev := map[string]any{
		"event_type":       "message:received:new",
		"chat":             map[string]any{"chat_id": 1, "is_group": false, "phone": from},
		"whatsapp_account": map[string]any{"phone": audienceAccount},
		"message": map[string]any{"text": text, "direction": "received", "message_uid": uid,
			"timestamp": time.Now().Format("2006-01-02 15:04:05 -0700"),
			"sender":    map[string]any{"phone": from}, "recipient": map[string]any{"phone": audienceAccount}},
	}
	body, _ := json.Marshal(ev)
	req := h.request(http.MethodPost, "/v1/webhooks/timelines/"+webhookSecret, strings.NewReader(string(body)), "application/json")
	res := h.do(req)
	if res.Code != http.StatusOK {
		h.t.Fatalf("redelivered webhook: %d %s", res.Code, res.Raw)
	}
	var out webhookResult
	if err := json.Unmarshal(res.Data, &out); err != nil {
		h.t.Fatal(err)
	}
	return out.Confirmation
}

// textsTo are the texts the sandbox received for phone, in order.
func (h *harness) textsTo(phone string) []string {
	var out []string
	for _, m := range h.sentTo()[phone] {
		out = append(out, m.Text)
	}
	return out
}

// A STOP gets exactly one confirmation reply, through the send path from
// the account written to, though the suppression it confirms holds back
// everything else and the webhook comes twice; nothing else reaches the
// phone afterwards; a START gets its own confirmation, once.
func TestOptOutConfirmationIsSentOnce(t *testing.T) {
	h := newAudienceHarness(t, withConfirmTemplates(t), func(_ *sandbox.Config, cfg *app.Config) {
		cfg.FrequencyCap = audience.FrequencyCap{Messages: 1, Period: 24 * time.Hour} // confirmations are exempt
	})
	h.startWorkers(1)
	phones := generatedPhones(2)
	first := h.audienceCampaign(phones)
	h.waitCampaign(first.ID, 30*time.Second, "completed", completed)

	uid, ok := h.sandbox.Receive(audienceAccount, phones[0], "Stop")
	if !ok {
		t.Fatal("the sandbox refused the STOP")
	}
	h.awaitSuppressed(phones[0], true)
	confirmation := h.redeliver(uid, phones[0], "Stop") // the provider's retry
	if confirmation == "" {
		t.Fatal("the redelivered STOP names no confirmation campaign")
	}
	c := h.waitCampaign(confirmation, 30*time.Second, "completed", completed)
	if c.Counts.Total != 1 || c.Counts.Sent != 1 || c.Confirms != campaign.ConfirmOptOut {
		t.Fatalf("confirmation campaign: confirms %q, %+v; want one sent opt-out confirmation", c.Confirms, c.Counts)
	}
	r := h.recipients(confirmation, "")
	if len(r) != 1 || r[0].Account != audienceAccount || r[0].Phone != phones[0] {
		t.Fatalf("confirmation recipients %+v; want %s from %s", r, phones[0], audienceAccount)
	}
	if h.redeliver(uid, phones[0], "Stop") != confirmation {
		t.Error("a third delivery names another confirmation campaign")
	}

	// Another campaign afterwards: the phone is suppressed at import.
	next := h.audienceCampaign(phones)
	if next.Suppressed != 1 {
		t.Errorf("next campaign: suppressed %d, want 1", next.Suppressed)
	}
	h.waitCampaign(next.ID, 30*time.Second, "completed", completed)
	h.waitCampaign(confirmation, 10*time.Second, "still one", func(c campaign.Campaign) bool { return c.Counts.Total == 1 })

	want := []string{"Hello " + phones[0] + ", reply STOP to stop",
		"You will get no more messages from us at " + phones[0] + ". Reply START to opt back in."}
	if got := h.textsTo(phones[0]); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("the phone received %q; want the campaign's message and one confirmation %q", got, want)
	}

	startUID, _ := h.sandbox.Receive(audienceAccount, phones[0], "START")
	h.awaitSuppressed(phones[0], false)
	optIn := h.redeliver(startUID, phones[0], "START")
	if optIn == "" || optIn == confirmation {
		t.Fatalf("START's confirmation campaign %q (the STOP's was %q)", optIn, confirmation)
	}
	h.waitCampaign(optIn, 30*time.Second, "completed", func(c campaign.Campaign) bool { return completed(c) && c.Counts.Sent == 1 })
	if got := h.textsTo(phones[0]); len(got) != 3 || got[2] != "Welcome back: "+phones[0]+" gets our news again." {
		t.Errorf("after START the phone received %q; want one opt-in confirmation last", got)
	}
}
