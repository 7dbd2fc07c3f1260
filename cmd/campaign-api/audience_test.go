package main

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
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

	// Sequences go through the same send path: even a transactional one
	// (exempt from the frequency cap) skips a suppressed phone.
	step := h.sequenceStep(phones[0], true)
	h.waitCampaign(step, 30*time.Second, "skipped", func(c campaign.Campaign) bool { return c.Counts.Skipped == 1 })
	if r := h.recipients(step, ""); r[0].Reason != campaign.ReasonOptedOut {
		t.Errorf("sequence step: %q, want %q", r[0].Reason, campaign.ReasonOptedOut)
	}
	if got := len(h.sentTo()[phones[0]]); got != 1 {
		t.Fatalf("the opted-out phone got %d messages; want 1", got)
	}

	h.write(phones[0], "start")
	h.awaitSuppressed(phones[0], false)
	later := h.audienceCampaign(phones[:1])
	h.waitCampaign(later.ID, 30*time.Second, "completed", func(c campaign.Campaign) bool { return completed(c) && c.Counts.Sent == 1 })
	if got := len(h.sentTo()[phones[0]]); got != 2 {
		t.Errorf("after START the phone got %d messages in all; want 2", got)
	}
}

// A reply goes to the latest campaign that messaged its writer, shows in
// that campaign's funnel, history and report, and counts once however
// often the webhook comes.
func TestRepliesAreAttributedToTheLatestCampaign(t *testing.T) {
	h := newAudienceHarness(t)
	h.startWorkers(1)
	phones := generatedPhones(2)
	older := h.audienceCampaign(phones)
	h.waitCampaign(older.ID, 30*time.Second, "completed", completed)
	latest := h.audienceCampaign(phones[:1])
	h.waitCampaign(latest.ID, 30*time.Second, "completed", completed)

	h.write(phones[0], "Thanks, sounds good")
	h.write(phones[0], "When does it start?") // a second reply: still one recipient who replied
	h.write(phones[1], "STOP")
	l := h.waitCampaign(latest.ID, 15*time.Second, "showing the reply", func(c campaign.Campaign) bool { return c.Funnel.Replied == 1 })
	o := h.waitCampaign(older.ID, 15*time.Second, "showing the opt-out", func(c campaign.Campaign) bool { return c.Funnel.OptedOut == 1 })
	if l.Funnel.OptedOut != 0 || l.Funnel.ReplyRate != 1 {
		t.Errorf("latest campaign's funnel: %+v; want 1 reply, no opt-out, reply rate 1", l.Funnel)
	}
	if o.Funnel.Replied != 1 || o.Funnel.ReplyRate != 0.5 || o.Funnel.OptOutRate != 0.5 {
		t.Errorf("older campaign's funnel: %+v; want phone 2's reply only (its opt-out), rates 0.5", o.Funnel)
	}
	var replied bool
	for _, e := range h.recipients(latest.ID, "")[0].History {
		if e.Event == campaign.EventReplied {
			if replied {
				t.Error("the history has two replied entries")
			}
			replied = e.State == campaign.StateSent || e.State == campaign.StateDelivered || e.State == campaign.StateRead
		}
	}
	if !replied {
		t.Errorf("the recipient's history has no replied entry: %+v", h.recipients(latest.ID, "")[0].History)
	}
	rows := h.reportRows(older.ID)
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, row := range rows[1:] {
		wantReplied, wantOptOut := row[0] == phones[1], row[0] == phones[1]
		if (row[col["replied_at"]] != "") != wantReplied || (row[col["opted_out_at"]] != "") != wantOptOut {
			t.Errorf("report row %v: replied_at/opted_out_at do not fit", row)
		}
	}
}

// A message later than REPLY_WINDOW after ours is nobody's reply (an
// opt-out keyword in it still suppresses its writer).
func TestNoReplyOutsideTheReplyWindow(t *testing.T) {
	const window = 1500 * time.Millisecond
	h := newAudienceHarness(t, func(_ *sandbox.Config, cfg *app.Config) { cfg.ReplyWindow = window })
	h.startWorkers(1)
	phones := generatedPhones(1)
	c := h.audienceCampaign(phones)
	h.waitCampaign(c.ID, 30*time.Second, "completed", completed)
	time.Sleep(window + time.Second)
	h.write(phones[0], "stop")
	h.awaitSuppressed(phones[0], true) // the webhook has been acted on
	if got := h.campaign(c.ID).Funnel; got.Replied != 0 || got.OptedOut != 0 {
		t.Errorf("a message after the window was attributed: %+v", got)
	}
}

// reportRows reads a campaign's report.csv.
func (h *harness) reportRows(id string) [][]string {
	h.t.Helper()
	res, err := http.DefaultClient.Do(h.request(http.MethodGet, "/v1/campaigns/"+id+"/report.csv", nil, ""))
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	rows, err := csv.NewReader(res.Body).ReadAll()
	if err != nil || len(rows) == 0 {
		h.t.Fatalf("report: %v", err)
	}
	return rows
}

// FREQUENCY_CAP=1/24h: a second campaign to the same phones sends to none
// of them; a transactional sequence still reaches them, an ordinary one
// does not.
func TestFrequencyCapSkipsAcrossCampaigns(t *testing.T) {
	h := newAudienceHarness(t, func(_ *sandbox.Config, cfg *app.Config) {
		cfg.FrequencyCap = audience.FrequencyCap{Messages: 1, Period: 24 * time.Hour}
	})
	h.startWorkers(1)
	phones := generatedPhones(3)
	first := h.audienceCampaign(phones)
	h.waitCampaign(first.ID, 30*time.Second, "completed", completed)
	second := h.audienceCampaign(phones)
	done := h.waitCampaign(second.ID, 30*time.Second, "completed", completed)
	if done.Counts.Skipped != 3 || done.Counts.Sent != 0 {
		t.Errorf("second campaign: %+v; want all 3 skipped", done.Counts)
	}
	for _, r := range h.recipients(second.ID, "") {
		if r.Reason != campaign.ReasonFrequencyCap {
			t.Errorf("%s: reason %q, want %q", r.Phone, r.Reason, campaign.ReasonFrequencyCap)
		}
	}

	transactional := h.sequenceStep(phones[0], true)
	marketing := h.sequenceStep(phones[1], false)
	h.waitCampaign(transactional, 30*time.Second, "sent", func(c campaign.Campaign) bool { return c.Counts.Sent == 1 })
	h.waitCampaign(marketing, 30*time.Second, "skipped", func(c campaign.Campaign) bool { return c.Counts.Skipped == 1 })
	sent := h.sentTo()
	if len(sent[phones[0]]) != 2 || len(sent[phones[1]]) != 1 || len(sent[phones[2]]) != 1 {
		t.Errorf("messages per phone: %d, %d, %d; want 2 (transactional sequence), 1, 1",
			len(sent[phones[0]]), len(sent[phones[1]]), len(sent[phones[2]]))
	}
}

// sequenceStep makes a one-step sequence, enrols phone, and answers the
// step's campaign id.
func (h *harness) sequenceStep(phone string, transactional bool) string {
	h.t.Helper()
	body := `{"name":"Receipts","accounts":["` + audienceAccount + `"],"transactional":` + strconv.FormatBool(transactional) + `,
		"steps":[{"name":"now","template":"Your receipt","delay":"0s"}]}`
	res := h.call(http.MethodPost, "/v1/sequences", body)
	if res.Code != http.StatusCreated {
		h.t.Fatalf("create sequence: %d %s", res.Code, res.Raw)
	}
	var seq struct {
		ID    string `json:"id"`
		Steps []struct {
			CampaignID string `json:"campaign_id"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(res.Data, &seq); err != nil || len(seq.Steps) != 1 {
		h.t.Fatalf("sequence: %s", res.Raw)
	}
	if res := h.call(http.MethodPost, "/v1/sequences/"+seq.ID+"/enrollments", `{"phone":"`+phone+`"}`); res.Code != http.StatusCreated {
		h.t.Fatalf("enrol: %d %s", res.Code, res.Raw)
	}
	return seq.Steps[0].CampaignID
}

// Under cap_policy defer, a capped recipient waits for the cap to free and
// is sent then: never before.
func TestFrequencyCapDefers(t *testing.T) {
	const period = 4 * time.Second
	h := newAudienceHarness(t, func(_ *sandbox.Config, cfg *app.Config) {
		cfg.FrequencyCap = audience.FrequencyCap{Messages: 1, Period: period}
	})
	h.startWorkers(1)
	phones := generatedPhones(2)
	first := h.audienceCampaign(phones)
	h.waitCampaign(first.ID, 30*time.Second, "completed", completed)
	deferred := h.audienceCampaign(phones, [2]string{"cap_policy", "defer"})
	if deferred.CapPolicy != campaign.CapDefer {
		t.Fatalf("cap_policy %q", deferred.CapPolicy)
	}
	done := h.waitCampaign(deferred.ID, 30*time.Second, "completed", completed)
	if done.Counts.Sent != 2 || done.Counts.Skipped != 0 {
		t.Fatalf("deferred campaign: %+v; want both sent once the cap freed", done.Counts)
	}
	for _, p := range phones {
		msgs := h.sentTo()[p]
		if len(msgs) != 2 {
			t.Fatalf("%s got %d messages, want 2", p, len(msgs))
		}
		// The sandbox stamps arrivals; the cap's period is counted from our
		// reservation, just before the first send, so allow its second.
		if gap := msgs[1].ReceivedAt.Sub(msgs[0].ReceivedAt); gap < period-time.Second {
			t.Errorf("%s: second message %s after the first, inside the cap's %s", p, gap, period)
		}
	}
}

// A send whose answer was lost, found later to have gone out, is its
// recipient's latest message like any other: a reply to it is attributed
// to its campaign, whether reconciliation found it or the provider's
// message:sent:new webhook settled it.
func TestReplyToAConfirmedUnconfirmedSendIsAttributed(t *testing.T) {
	for _, by := range []string{"reconciliation", "webhook"} {
		t.Run(by, func(t *testing.T) {
			h := newHarness(t, func(_ *sandbox.Config, cfg *app.Config) {
				cfg.WebhookSecret = webhookSecret // not registered at the sandbox: the test posts the events
				cfg.ReplyWindow = time.Hour
				cfg.ProviderTimeout = time.Second
				if by == "webhook" { // only the webhook may settle it
					cfg.ReconcileAfter, cfg.ReconcileMaxAge = time.Hour, time.Hour
				}
			})
			phones := generatedPhones(2)
			// The first recipient's answer never comes back: its send is unconfirmed.
			h.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Phone: phones[0], Delay: time.Hour, Process: true})
			h.startWorkers(1)
			c := h.audienceCampaign(phones)
			h.waitCampaign(c.ID, 30*time.Second, "settled", func(c campaign.Campaign) bool {
				return c.Counts.Sent+c.Counts.Unconfirmed == 2 && c.Counts.Unconfirmed <= 1
			})
			if by == "webhook" {
				m := h.sentTo()[phones[0]][0] // the sandbox did accept it
				res := h.webhook(webhookSecret, sentEvent(m.UID, phones[0], audienceAccount, m.ReceivedAt.Format("2006-01-02 15:04:05 -0700")))
				if res.Code != http.StatusOK {
					t.Fatalf("sent event: %d %s", res.Code, res.Raw)
				}
			}
			h.waitCampaign(c.ID, 30*time.Second, "completed", func(c campaign.Campaign) bool { return completed(c) && c.Counts.Sent == 2 })

			h.redeliver("reply-"+by, phones[0], "Thanks, see you Tuesday")
			got := h.waitCampaign(c.ID, 10*time.Second, "showing the reply", func(c campaign.Campaign) bool { return c.Funnel.Replied == 1 })
			if got.Funnel.OptedOut != 0 {
				t.Errorf("funnel %+v; want one reply, no opt-out", got.Funnel)
			}
		})
	}
}
