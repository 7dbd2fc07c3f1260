package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// outcomes gives each generated phone a fate at the sandbox: every fifth
// fails, every third (of the rest) is delivered and never read, the rest
// are read.
func outcomes(phones []string) (func(string) sandbox.Outcome, map[string]campaign.State) {
	want := map[string]campaign.State{}
	for i, p := range phones {
		switch {
		case i%5 == 4:
			want[p] = campaign.StateFailed
		case i%3 == 0:
			want[p] = campaign.StateDelivered
		default:
			want[p] = campaign.StateRead
		}
	}
	return func(phone string) sandbox.Outcome {
		switch want[phone] {
		case campaign.StateFailed:
			return sandbox.OutcomeFailed
		case campaign.StateDelivered:
			return sandbox.OutcomeDelivered
		}
		return sandbox.OutcomeRead
	}, want
}

func fastTracking(sb *sandbox.Config, cfg *app.Config) {
	sb.DeliverAfter = 300 * time.Millisecond
	sb.ReadAfter = 700 * time.Millisecond
	cfg.StatusPollSchedule = []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	cfg.StatusPollMaxAge = 20 * time.Second
}

// TestStatusesBecomeHistories: statuses move at the sandbox (some fail, some
// are never read); the recipients end in the right states with histories
// that hold the provider's words in order, and the counters, funnel and
// report agree with the sandbox one to one.
func TestStatusesBecomeHistories(t *testing.T) {
	phones := generatedPhones(30)
	outcome, want := outcomes(phones)
	h := newHarness(t, fastTracking, func(sb *sandbox.Config, _ *app.Config) { sb.Outcome = outcome })
	h.startWorkers(2)
	lines := []string{"phone,name,note"}
	for i, p := range phones {
		lines = append(lines, fmt.Sprintf("%s,Person %d,%s", p, i, []string{"vip", "=1+2", ""}[i%3]))
	}
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hello {{.name}}"}}, contacts: csvLines(lines...)})

	var wantRead, wantDelivered, wantFailed int64
	for _, st := range want {
		switch st {
		case campaign.StateRead:
			wantRead++
		case campaign.StateDelivered:
			wantDelivered++
		case campaign.StateFailed:
			wantFailed++
		}
	}
	done := h.waitCampaign(c.ID, time.Minute, "tracked to the end", func(c campaign.Campaign) bool {
		return c.Counts.Read == wantRead && c.Counts.Delivered == wantDelivered && c.Counts.Failed == wantFailed
	})
	if !countsAddUp(done.Counts) || done.Status != campaign.StatusCompleted {
		t.Fatalf("final %s %+v", done.Status, done.Counts)
	}
	f := done.Funnel
	if f.Accepted != 30 || f.Delivered != wantDelivered+wantRead || f.Read != wantRead || f.Undelivered != wantFailed {
		t.Errorf("funnel %+v", f)
	}
	if f.DeliveryRate != round4(float64(wantDelivered+wantRead)/30) || f.ReadRate != round4(float64(wantRead)/float64(wantDelivered+wantRead)) {
		t.Errorf("funnel rates %+v", f)
	}

	byUID := map[string]sandbox.Message{}
	for _, m := range h.sandbox.Messages() {
		byUID[m.UID] = m
	}
	for _, r := range h.recipients(c.ID, "") {
		if r.State != want[r.Phone] {
			t.Errorf("%s ended %s, want %s", r.Phone, r.State, want[r.Phone])
		}
		m, ok := byUID[r.MessageUID]
		if !ok || m.Recipient != r.Phone {
			t.Errorf("%s: message_uid %q is not the sandbox's message to it", r.Phone, r.MessageUID)
			continue
		}
		// The history: queued, sending, sent with the uid, then exactly the
		// provider's own statuses, in its order, with its times.
		var ours []string
		for _, e := range r.History {
			if e.ProviderStatus == "" {
				ours = append(ours, string(e.State))
			}
		}
		if strings.Join(ours, ",") != "queued,sending,sent" {
			t.Errorf("%s: history %v", r.Phone, ours)
		}
		if e := r.History[2]; e.Detail != r.MessageUID {
			t.Errorf("%s: the sent entry says %q, want the message_uid", r.Phone, e.Detail)
		}
		theirs, _ := h.sandbox.StatusHistory(r.MessageUID)
		var got, wantWords []string
		for _, e := range r.History {
			if e.ProviderStatus != "" {
				got = append(got, e.ProviderStatus+"@"+e.At.UTC().Format("15:04:05"))
			}
		}
		for _, e := range theirs {
			wantWords = append(wantWords, e.Status+"@"+e.At.UTC().Format("15:04:05"))
		}
		if strings.Join(got, ",") != strings.Join(wantWords, ",") {
			t.Errorf("%s: provider statuses in history %v, the sandbox has %v", r.Phone, got, wantWords)
		}
	}

	// The report: one row per sandbox message, matching it.
	res, err := http.DefaultClient.Do(h.request(http.MethodGet, "/v1/campaigns/"+c.ID+"/report.csv", nil, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); res.StatusCode != 200 || !strings.HasPrefix(ct, "text/csv") {
		t.Fatalf("report: %d %s", res.StatusCode, ct)
	}
	rows, err := csv.NewReader(res.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantHeader := "phone,name,note,state,reason,message_uid,account,sent_at,delivered_at,read_at,replied_at,opted_out_at"
	if strings.Join(rows[0], ",") != wantHeader || len(rows) != 31 {
		t.Fatalf("report header %v and %d rows", rows[0], len(rows)-1)
	}
	seen := map[string]bool{}
	for _, row := range rows[1:] {
		m, ok := byUID[row[5]]
		if !ok || m.Recipient != row[0] || seen[row[5]] {
			t.Errorf("report row %v does not match one sandbox message", row)
			continue
		}
		seen[row[5]] = true
		if row[3] != string(want[row[0]]) || row[7] == "" {
			t.Errorf("report row %v: want state %s and a sent time", row, want[row[0]])
		}
		if (row[3] == "read") != (row[9] != "") || (row[3] != "failed") != (row[8] != "") {
			t.Errorf("report row %v: delivered/read times do not fit the state", row)
		}
		if strings.HasPrefix(row[2], "=") {
			t.Errorf("report row %v: a formula went out as a formula", row)
		}
	}
}

func round4(f float64) float64 { return float64(int(f*10000+0.5)) / 10000 }

// TestShortPollBudgetSlowsPollingVisibly: polls beyond the budget wait, the
// campaign says so, and tracking still finishes.
func TestShortPollBudgetSlowsPollingVisibly(t *testing.T) {
	phones := generatedPhones(8)
	h := newHarness(t, fastTracking, func(sb *sandbox.Config, cfg *app.Config) {
		sb.Outcome = func(string) sandbox.Outcome { return sandbox.OutcomeRead }
		cfg.StatusPollBudget = "2/s"
	})
	h.startWorkers(2)
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}}, contacts: csvLines(append([]string{"phone"}, phones...)...)})
	slowed := h.waitCampaign(c.ID, time.Minute, "showing slowed polling", func(c campaign.Campaign) bool { return c.Tracking.Polling == "slowed" })
	if !strings.Contains(slowed.Tracking.Reason, "STATUS_POLL_BUDGET 2/s") {
		t.Errorf("tracking %+v; want the reason to name the budget", slowed.Tracking)
	}
	h.waitCampaign(c.ID, time.Minute, "all read", func(c campaign.Campaign) bool { return c.Counts.Read == 8 })
}

// webhook posts a payload to the receiver.
func (h *harness) webhook(secret, body string) apiResponse {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.api.URL+"/v1/webhooks/timelines/"+secret, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 5 * time.Second} // the provider gives up after 5 s
	res, err := client.Do(req)
	if err != nil {
		h.t.Fatalf("webhook: %v", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := apiResponse{Code: res.StatusCode, Raw: string(raw)}
	_ = json.Unmarshal(raw, &out)
	return out
}

const webhookSecret = "0123456789abcdef-webhook"

func sentEvent(uid, recipient, account, at string) string {
	return `{"event_type":"message:sent:new",
 "chat":{"full_name":"Someone","chat_url":"https://app.timelines.ai/chat/1/messages/","chat_id":1,"is_group":false,"phone":"` + recipient + `","responsible_name":"","responsible_email":""},
 "whatsapp_account":{"full_name":"Sales","email":"sales@example.com","phone":"` + account + `"},
 "message":{"text":"Hello","direction":"sent","origin":"Public API","timestamp":"` + at + `",
   "message_uid":"` + uid + `","reply_to_uid":null,"sender":{"full_name":"Sales","phone":"` + account + `"},
   "recipient":{"full_name":"Someone","phone":"` + recipient + `"},"attachments":[]}}`
}

func TestWebhookReceiver(t *testing.T) {
	const account = "+14155550100"
	h := newHarness(t, func(sb *sandbox.Config, cfg *app.Config) {
		cfg.WebhookSecret = webhookSecret
		cfg.ProviderTimeout = time.Second
		// Only the webhook may settle the unconfirmed send here.
		cfg.ReconcileAfter, cfg.ReconcileMaxAge = time.Hour, time.Hour
		sb.DeliverAfter, sb.ReadAfter = time.Hour, time.Hour
	})
	phones := generatedPhones(3)
	// The second recipient's answer never comes back: its send is unconfirmed.
	h.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Phone: phones[1], Delay: time.Hour, Process: true})
	h.startWorkers(1)
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"accounts", account}}, contacts: csvLines(append([]string{"phone"}, phones...)...)})
	h.waitCampaign(c.ID, 30*time.Second, "settled", func(c campaign.Campaign) bool { return c.Counts.Sent == 2 && c.Counts.Unconfirmed == 1 })
	msgs := h.sentTo()
	now := time.Now().Format("2006-01-02 15:04:05 -0700")

	t.Run("wrong secret, garbage, unknown events", func(t *testing.T) {
		if res := h.webhook("wrong-secret-wrong-secret", sentEvent("x", phones[0], account, now)); res.Code != 404 {
			t.Errorf("wrong secret: %d %s", res.Code, res.Raw)
		}
		for _, body := range []string{"not json", `{"no_event_type":1}`, "", `{"event_type":"message:sent:new","message":"a string"}`} {
			if res := h.webhook(webhookSecret, body); res.Code != 400 || res.ErrorCode != "validation_error" {
				t.Errorf("body %q: %d %s; want 400", body, res.Code, res.Raw)
			}
		}
		res := h.webhook(webhookSecret, `{"event_type":"chat:new","chat":{"id":1}}`)
		if res.Code != 200 || !strings.Contains(res.Raw, `"handled":false`) {
			t.Errorf("unknown event: %d %s; want 200, ignored", res.Code, res.Raw)
		}
	})

	t.Run("message:sent:new confirms a send", func(t *testing.T) {
		m := msgs[phones[0]][0]
		res := h.webhook(webhookSecret, sentEvent(m.UID, phones[0], account, now))
		if res.Code != 200 || !strings.Contains(res.Raw, `"handled":true`) {
			t.Fatalf("%d %s", res.Code, res.Raw)
		}
		r := recipientByPhone(h, c.ID, phones[0])
		if last := r.History[len(r.History)-1]; last.ProviderStatus != "Sent" || r.State != campaign.StateSent {
			t.Errorf("history %+v", r.History)
		}
		// The same event again (providers retry) adds nothing.
		h.webhook(webhookSecret, sentEvent(m.UID, phones[0], account, now))
		if again := recipientByPhone(h, c.ID, phones[0]); len(again.History) != len(r.History) {
			t.Errorf("a repeated event grew the history: %+v", again.History)
		}
	})

	t.Run("message:sent:new settles an unconfirmed send", func(t *testing.T) {
		m := msgs[phones[1]][0] // the sandbox did accept it
		res := h.webhook(webhookSecret, sentEvent(m.UID, phones[1], account, m.ReceivedAt.Format("2006-01-02 15:04:05 -0700")))
		if res.Code != 200 || !strings.Contains(res.Raw, `"handled":true`) {
			t.Fatalf("%d %s", res.Code, res.Raw)
		}
		r := recipientByPhone(h, c.ID, phones[1])
		if r.State != campaign.StateSent || r.MessageUID != m.UID {
			t.Errorf("after the event: %s %q; want sent with %s", r.State, r.MessageUID, m.UID)
		}
		if got := h.campaign(c.ID); got.Counts.Unconfirmed != 0 || got.Counts.Sent != 3 || got.Status != campaign.StatusCompleted || !countsAddUp(got.Counts) {
			t.Errorf("counts %+v", got.Counts)
		}
	})

	t.Run("account disconnected and connected", func(t *testing.T) {
		body := `{"event_type":"whatsapp:account:disconnected","whatsapp_account":{"id":"14155550100@s.whatsapp.net","phone":"` + account + `","connected_on":"2024-01-08 10:35:18 +0200","disconnected_on":"2024-01-09 10:35:18 +0200","status":"disconnected","account_name":"Sales","owner_name":"Ann","owner_email":"ann@example.com"}}`
		if res := h.webhook(webhookSecret, body); res.Code != 200 {
			t.Fatalf("%d %s", res.Code, res.Raw)
		}
		if list := h.call(http.MethodGet, "/v1/accounts", ""); !strings.Contains(list.Raw, `"phone":"`+account+`","status":"disconnected"`) {
			t.Errorf("after disconnected: %s", list.Raw)
		}
		h.webhook(webhookSecret, strings.Replace(body, "disconnected\",\"whatsapp", "connected\",\"whatsapp", 1))
		if list := h.call(http.MethodGet, "/v1/accounts", ""); !strings.Contains(list.Raw, `"phone":"`+account+`","status":"active"`) {
			t.Errorf("after connected: %s", list.Raw)
		}
	})
}

func recipientByPhone(h *harness, id, phone string) campaign.Recipient {
	h.t.Helper()
	for _, r := range h.recipients(id, "") {
		if r.Phone == phone {
			return r
		}
	}
	h.t.Fatalf("no recipient %s", phone)
	return campaign.Recipient{}
}

// TestEventsStream: GET .../events streams the campaign as it changes and
// ends with it.
func TestEventsStream(t *testing.T) {
	h := newHarness(t, func(_ *sandbox.Config, cfg *app.Config) { cfg.SendInterval = 50 * time.Millisecond })
	h.startWorkers(1)
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}}, contacts: csvLines(append([]string{"phone"}, generatedPhones(20)...)...)})
	res, err := http.DefaultClient.Do(h.request(http.MethodGet, "/v1/campaigns/"+c.ID+"/events", nil, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", res.Header.Get("Content-Type"))
	}
	var updates []campaign.Campaign
	var raw []string // the data lines as sent
	ended := false
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "campaign":
			raw = append(raw, line)
			var u campaign.Campaign
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &u); err != nil {
				t.Fatal(err)
			}
			if !countsAddUp(u.Counts) {
				t.Errorf("an update's counts do not add up: %+v", u.Counts)
			}
			updates = append(updates, u)
		case event == "end":
			ended = true
		}
	}
	if !ended || len(updates) < 2 {
		t.Fatalf("%d updates, ended %v", len(updates), ended)
	}
	last := updates[len(updates)-1]
	if last.Status != campaign.StatusCompleted || last.Counts.Sent != 20 {
		t.Errorf("last update %s %+v", last.Status, last.Counts)
	}
	for i := 1; i < len(updates); i++ {
		if updates[i].Counts.Settled() < updates[i-1].Counts.Settled() {
			t.Errorf("progress went backwards: %+v after %+v", updates[i].Counts, updates[i-1].Counts)
		}
	}
	for _, line := range raw {
		if strings.Contains(line, `"rejected":[`) {
			t.Errorf("the stream carries the rejected rows: %s", line)
			break
		}
	}
}
