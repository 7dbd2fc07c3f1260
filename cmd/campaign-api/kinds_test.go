package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// The product end to end with recipients of every kind, with the
// self-hosted gateway, and with the provider's webhooks and API-call quota.

// gatewayKey is the gateway's key, sent as the Authorization header exactly
// as written (here a JWT with its scheme).
const gatewayKey = "Bearer gw-test-jwt"

// gatewayHarness is the harness sending through one gateway instance per
// account (a sandbox in gateway mode, typing for typing before it
// answers); it answers those instances by account. The harness's
// TimelinesAI sandbox stays up, to show that nothing reaches it.
func gatewayHarness(t *testing.T, typing time.Duration, accounts []string, opts ...harnessOption) (*harness, map[string]*sandbox.Server) {
	t.Helper()
	gateways := map[string]*sandbox.Server{}
	routes := map[string]string{}
	for _, account := range accounts {
		gw := sandbox.New(sandbox.Config{Mode: sandbox.ModeGateway, Token: gatewayKey, Accounts: []string{account}, TypingDelay: typing})
		srv := httptest.NewServer(gw)
		t.Cleanup(srv.Close)
		gateways[account], routes[account] = gw, srv.URL
	}
	useGateways := func(_ *sandbox.Config, cfg *app.Config) {
		cfg.Provider, cfg.TimelinesToken, cfg.GatewayAPIKey, cfg.GatewayAccounts = app.ProviderGateway, "", gatewayKey, routes
	}
	return newHarness(t, append([]harnessOption{useGateways}, opts...)...), gateways
}

// statusTasks lists the tasks waiting in the status queue (polls and
// reconciliations).
func (h *harness) statusTasks() []*asynq.TaskInfo {
	h.t.Helper()
	inspector := asynq.NewInspectorFromRedisClient(h.rdb.Client)
	var out []*asynq.TaskInfo
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){inspector.ListScheduledTasks, inspector.ListPendingTasks} {
		infos, err := list(campaign.QueueStatus)
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			h.t.Fatal(err)
		}
		out = append(out, infos...)
	}
	return out
}

// TestGatewayCampaignEndToEnd: phones and a group over two sender accounts,
// each served by its own gateway instance. Every message reaches the
// instance of its account, with the key as its Authorization header and
// the campaign's simulation flags; no quota read or status poll is made
// (nothing reaches TimelinesAI, no poll is queued); the campaign never
// waits for credits, shows them not metered, and completes. A label or an
// attachment is refused at creation, naming the field.
func TestGatewayCampaignEndToEnd(t *testing.T) {
	accounts := []string{"+14155550101", "+14155550102"}
	h, gateways := gatewayHarness(t, -1, accounts)
	h.startWorkers(2)

	for field, value := range map[string]string{"label": "vip", "file_uid": "f-1"} {
		res := h.upload(form{fields: [][2]string{{"template", "Hi"}, {field, value}}, contacts: csvLines("phone", "+12025550101")})
		if res.Code != http.StatusBadRequest || len(res.Errors) == 0 || res.Errors[0].Fields[0] != field ||
			!strings.Contains(res.Message, "the gateway cannot send "+field) {
			t.Errorf("%s for the gateway: %d %s; want 400 naming %s", field, res.Code, res.Raw, field)
		}
	}

	contacts := csvLines("phone,jid,name",
		"+12025550101,,Ann", "+12025550102,,Bob", "+12025550103,,Cy",
		",120363025551234567@g.us,Team", "+12025550104,,Dee")
	c := h.createCampaign(form{fields: [][2]string{
		{"template", "Hi {{.name}}"}, {"accounts", strings.Join(accounts, ",")}, {"presence_simulation", "off"},
	}, contacts: contacts})
	if c.Credits.Metered || c.Credits.Status != campaign.CreditsNotMetered || c.Credits.Estimated != 0 {
		t.Errorf("credits %+v; want not metered", c.Credits)
	}
	done := h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool {
		if c.Reason == campaign.ReasonWaitingForQuota {
			t.Errorf("a gateway campaign waited for credits")
		}
		return c.Status == campaign.StatusCompleted
	})
	if done.Counts.Sent != 5 || !countsAddUp(done.Counts) {
		t.Errorf("counts %+v; want 5 sent", done.Counts)
	}

	recipients := h.recipients(c.ID, "")
	byKey := map[string]campaign.Recipient{}
	for _, r := range recipients {
		byKey[r.Key] = r
	}
	total := 0
	for account, gw := range gateways {
		for _, m := range gw.Messages() {
			total++
			key := "+" + strings.TrimSuffix(m.JID, "@s.whatsapp.net")
			if strings.HasSuffix(m.JID, "@g.us") {
				key = m.JID
			}
			r, ok := byKey[key]
			switch {
			case !ok:
				t.Errorf("instance of %s got a message to %s, who is no recipient", account, m.JID)
			case r.Account != account:
				t.Errorf("the message to %s went through the instance of %s, its recipient's account is %s", key, account, r.Account)
			case r.MessageUID != m.UID:
				t.Errorf("recipient %s has uid %q, the instance gave %q", key, r.MessageUID, m.UID)
			}
			if m.Authorization != gatewayKey {
				t.Errorf("a message carried Authorization %q, want the key exactly", m.Authorization)
			}
			if m.TypingSimulation == nil || !*m.TypingSimulation || m.PresenceSimulation == nil || *m.PresenceSimulation {
				t.Errorf("message to %s: typing %v presence %v; want on (the default) and off", key, m.TypingSimulation, m.PresenceSimulation)
			}
		}
		if answers := gw.Answers(); answers[http.StatusOK] != len(gw.Messages()) || len(answers) != 1 {
			t.Errorf("instance of %s answered %v: a request that was not a send reached it", account, answers)
		}
	}
	if total != 5 {
		t.Errorf("the instances got %d messages, want 5", total)
	}
	if r := byKey["120363025551234567@g.us"]; r.Kind != campaign.KindJID || r.Phone != "" || r.State != campaign.StateSent {
		t.Errorf("the group: %+v", r)
	}
	if n := len(h.sandbox.Answers()); n != 0 {
		t.Errorf("TimelinesAI got requests (%v): a gateway campaign must neither read a quota nor poll", h.sandbox.Answers())
	}
	if tasks := h.statusTasks(); len(tasks) != 0 {
		t.Errorf("%d status tasks queued for a provider without status history", len(tasks))
	}

	var q struct {
		Credits struct {
			Metered bool   `json:"metered"`
			Status  string `json:"status"`
		} `json:"credits"`
		Shortfall int64 `json:"shortfall"`
	}
	if err := json.Unmarshal(h.call(http.MethodGet, "/v1/quota", "").Data, &q); err != nil {
		t.Fatal(err)
	}
	if q.Credits.Metered || q.Credits.Status != "not metered" || q.Shortfall != 0 {
		t.Errorf("GET /v1/quota: %+v; want credits not metered", q)
	}
}

// TestLongTypingNeitherTimesOutNorShortensTheGap: each gateway types for
// 3 s before it sends and answers, longer than the client's timeout of
// 2 s and than SEND_INTERVAL of 1 s; a second campaign on the same
// accounts sends without typing. No send times out (GATEWAY_TYPING_MAX
// covers the typing), and two messages of one account never go out closer
// than the interval: the account is held until the gateway answers, so a
// quick message cannot slip out while a slow one is being typed.
func TestLongTypingNeitherTimesOutNorShortensTheGap(t *testing.T) {
	const (
		typing   = 3 * time.Second
		interval = time.Second
	)
	accounts := []string{"+14155550101", "+14155550102"}
	h, gateways := gatewayHarness(t, typing, accounts, func(_ *sandbox.Config, cfg *app.Config) {
		cfg.SendInterval = interval
		cfg.ProviderTimeout = 2 * time.Second
	})
	typed := h.createCampaign(form{fields: [][2]string{{"template", "Hi {{.name}}"}, {"accounts", strings.Join(accounts, ",")}},
		contacts: csvLines("phone,name", "+12025550101,A", "+12025550102,B", "+12025550103,C", "+12025550104,D")})
	quick := h.createCampaign(form{fields: [][2]string{{"template", "Quick {{.name}}"}, {"accounts", strings.Join(accounts, ",")}, {"typing_simulation", "false"}},
		contacts: csvLines("phone,name", "+12025550105,E", "+12025550106,F", "+12025550107,G", "+12025550108,H")})
	h.startWorkers(2)
	for _, c := range []campaign.Campaign{typed, quick} {
		done := h.waitCampaign(c.ID, 2*time.Minute, "settled", func(c campaign.Campaign) bool {
			return c.Counts.Queued == 0 && c.Counts.Sending == 0 && c.Counts.Unconfirmed == 0
		})
		if done.Counts.Sent != 4 || done.Status != campaign.StatusCompleted {
			t.Fatalf("campaign %s: %s %+v; want all 4 sent: a typing gateway must not time out", c.Name, done.Status, done.Counts)
		}
	}
	for account, gw := range gateways {
		msgs := gw.Messages()
		if len(msgs) != 4 {
			t.Errorf("instance of %s got %d messages, want 4", account, len(msgs))
			continue
		}
		slices.SortFunc(msgs, func(a, b sandbox.Message) int { return a.SentAt.Compare(b.SentAt) })
		for i := 1; i < len(msgs); i++ {
			if gap := msgs[i].SentAt.Sub(msgs[i-1].SentAt); gap < interval {
				t.Errorf("account %s sent %q and %q %s apart, under SEND_INTERVAL %s", account, msgs[i-1].Text, msgs[i].Text, gap, interval)
			}
		}
	}
}

// TestTimelinesCampaignOfGroupsAndChats: a JID column (a group, a contact)
// and a chat_id column reach POST /messages/to_jid and
// POST /chats/{chat_id}/messages; the recipients and the report name each
// recipient's key and kind.
func TestTimelinesCampaignOfGroupsAndChats(t *testing.T) {
	const account = "+14155550101"
	h := newHarness(t, func(sb *sandbox.Config, _ *app.Config) { sb.Accounts = []string{account} })
	if _, ok := h.sandbox.Receive(account, "+12025550109", "hello"); !ok { // chat 1, with a contact who wrote first
		t.Fatal("the sandbox refused a received message")
	}
	h.startWorkers(1)
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hi {{.name}}"}, {"accounts", account}},
		contacts: csvLines("jid,chat_id,name", "120363025551234567@g.us,,Team", ",1,Chat", "14155550177@s.whatsapp.net,,Contact")})
	h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })

	msgs := h.sandbox.Messages()
	if len(msgs) != 3 {
		t.Fatalf("the sandbox got %d messages, want 3", len(msgs))
	}
	got := map[string]sandbox.Message{}
	for _, m := range msgs {
		got[m.Text] = m
	}
	if m := got["Hi Team"]; m.JID != "120363025551234567@g.us" || m.Phone != "" || m.AccountPhone != account {
		t.Errorf("the group's message %+v; want POST /messages/to_jid from %s", m, account)
	}
	if m := got["Hi Chat"]; m.ChatID != 1 || m.JID != "" || m.Phone != "" {
		t.Errorf("the chat's message %+v; want POST /chats/1/messages", m)
	}
	if m := got["Hi Contact"]; m.JID != "14155550177@s.whatsapp.net" || m.Recipient != "+14155550177" {
		t.Errorf("the contact's message %+v; want POST /messages/to_jid", m)
	}
	for _, r := range h.recipients(c.ID, "") {
		if r.Phone != "" || (r.Kind != campaign.KindJID && r.Kind != campaign.KindChatID) || r.State != campaign.StateSent {
			t.Errorf("recipient %+v", r)
		}
	}

	res, err := http.DefaultClient.Do(h.request(http.MethodGet, "/v1/campaigns/"+c.ID+"/report.csv", nil, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	rows, err := csv.NewReader(res.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || strings.Join(rows[0][:4], ",") != "phone,key,kind,name" || rows[2][1] != "1" || rows[2][2] != "chat_id" {
		t.Errorf("report %q; want phone,key,kind,name… with each recipient's key and kind", rows)
	}
}

// TestExhaustedAPICallsWaitAndResumeEndToEnd: the workspace's API calls
// run out in the middle of a campaign. The rest waits, with its own reason
// (not the quota's), nobody fails; when the calls renew, it completes.
func TestExhaustedAPICallsWaitAndResumeEndToEnd(t *testing.T) {
	h := newHarness(t, func(sb *sandbox.Config, _ *app.Config) { sb.APICalls = 3 }) // a quota read and two sends
	h.startWorker(app.WithAPICallsWait(300 * time.Millisecond))
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hi"}}, contacts: csvLines(append([]string{"phone"}, generatedPhones(5)...)...)})
	waiting := h.waitCampaign(c.ID, time.Minute, "waiting for API calls", func(c campaign.Campaign) bool {
		return c.Reason == campaign.ReasonWaitingForAPICalls && c.Counts.Sending == 0
	})
	if waiting.Status != campaign.StatusRunning || waiting.Counts.Sent != 2 || waiting.Counts.Queued != 3 || waiting.Counts.Failed != 0 {
		t.Fatalf("while the calls are spent: %s %+v; want running, 2 sent, 3 queued", waiting.Status, waiting.Counts)
	}
	h.sandbox.RenewAPICalls(0)
	done := h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
	if done.Counts.Sent != 5 || done.Reason != "" || len(h.sandbox.Messages()) != 5 {
		t.Errorf("after the renewal: %+v %q, the sandbox got %d", done.Counts, done.Reason, len(h.sandbox.Messages()))
	}
}

// TestSandboxWebhookSettlesAnUnconfirmedSend: the sandbox accepts a
// message and the answer is lost (the connection drops): the send is
// unconfirmed. Reconciliation is an hour away; the sandbox's
// message:sent:new, posted to the API's receiver, makes the recipient sent
// with the message's uid, and the campaign completes.
func TestSandboxWebhookSettlesAnUnconfirmedSend(t *testing.T) {
	const secret = "hook-secret"
	const account = "+14155550101"
	h := newHarness(t, func(sb *sandbox.Config, cfg *app.Config) {
		sb.Accounts = []string{account}
		cfg.WebhookSecret = secret
		cfg.ReconcileAfter, cfg.ReconcileMaxAge = time.Hour, 2*time.Hour
	})
	h.sandbox.SetWebhookURL(h.api.URL + "/v1/webhooks/timelines/" + secret)
	h.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Process: true, Drop: true, Times: 1})
	h.startWorkers(1)
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hi"}, {"accounts", account}}, contacts: csvLines("phone", "+12025550101", "+12025550102")})
	done := h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
	msgs := h.sandbox.Messages()
	if done.Counts.Sent != 2 || len(msgs) != 2 {
		t.Fatalf("counts %+v, the sandbox got %d messages; want two, sent", done.Counts, len(msgs))
	}
	uidTo := map[string]string{}
	for _, m := range msgs {
		uidTo[m.Recipient] = m.UID
	}
	var lost, answered *campaign.Recipient // the send whose answer was lost, the other
	for _, r := range h.recipients(c.ID, "") {
		if r.MessageUID != uidTo[r.Phone] {
			t.Errorf("recipient %s has uid %q, the sandbox's is %q", r.Phone, r.MessageUID, uidTo[r.Phone])
		}
		if slices.ContainsFunc(r.History, func(e campaign.HistoryEntry) bool { return e.State == campaign.StateUnconfirmed }) {
			lost = &r
		} else {
			answered = &r
		}
	}
	if lost == nil || answered == nil {
		t.Fatalf("no send was unconfirmed, or both were: the webhook settled nothing (lost %v)", lost)
	}
	for _, task := range h.statusTasks() {
		if task.Type == campaign.TypeReconcile && task.NextProcessAt.Before(time.Now().Add(30*time.Minute)) {
			t.Errorf("a reconciliation due at %s: the webhook, not a lookup, must have settled it", task.NextProcessAt)
		}
	}
	// The other was answered as usual; the sandbox's event (which may come
	// before the answer is recorded, or after) adds the provider's Sent to
	// its history either way.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := h.recipients(c.ID, "")[answered.Seq]
		if hasProviderStatus(r, "Sent") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history %+v: the webhook's Sent never arrived", r.History)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hasProviderStatus(r campaign.Recipient, word string) bool {
	for _, e := range r.History {
		if e.ProviderStatus == word {
			return true
		}
	}
	return false
}

// TestTimelinesRefusesSimulation: TimelinesAI has no typing or presence
// simulation: asking for either is a 400 naming the field.
func TestTimelinesRefusesSimulation(t *testing.T) {
	h := newHarness(t)
	for _, field := range []string{"typing_simulation", "presence_simulation"} {
		res := h.upload(form{fields: [][2]string{{"template", "Hi"}, {field, "on"}}, contacts: csvLines("phone", "+12025550101")})
		if res.Code != http.StatusBadRequest || len(res.Errors) == 0 || res.Errors[0].Fields[0] != field {
			t.Errorf("%s on TimelinesAI: %d %s", field, res.Code, res.Raw)
		}
	}
	res := h.upload(form{fields: [][2]string{{"template", "Hi"}, {"typing_simulation", "maybe"}}, contacts: csvLines("phone", "+12025550101")})
	if res.Code != http.StatusBadRequest || !strings.Contains(res.Message, "is not true or false") {
		t.Errorf("typing_simulation=maybe: %d %s", res.Code, res.Raw)
	}
}

// TestSequenceEnrolsByKind: a sequence enrols a contact by phone, a group
// by JID and a chat by chat id, keeps each under its key, and finds each
// enrolment by it.
func TestSequenceEnrolsByKind(t *testing.T) {
	h := newHarness(t)
	var seq struct {
		ID         string   `json:"id"`
		KeyColumns []string `json:"key_columns"`
	}
	res := h.call(http.MethodPost, "/v1/sequences", `{"name":"Kinds","steps":[{"template":"Hi {{.name}}","delay":"1h"}]}`)
	if err := json.Unmarshal(res.Data, &seq); err != nil || res.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", res.Code, res.Raw)
	}
	if strings.Join(seq.KeyColumns, ",") != "phone,jid,chat_id" {
		t.Errorf("key columns %v", seq.KeyColumns)
	}
	for body, want := range map[string]string{
		`{"phone":"+12025550101","fields":{"name":"Ann"}}`:           "+12025550101",
		`{"jid":"120363025551234567@g.us","fields":{"name":"Team"}}`: "120363025551234567@g.us",
		`{"chat_id":42,"fields":{"name":"Chat"}}`:                    "42",
	} {
		res := h.call(http.MethodPost, "/v1/sequences/"+seq.ID+"/enrollments", body)
		var e struct{ Key, Kind string }
		if err := json.Unmarshal(res.Data, &e); err != nil || res.Code != http.StatusCreated || e.Key != want {
			t.Errorf("enrol %s: %d %s", body, res.Code, res.Raw)
		}
		path := "/v1/sequences/" + seq.ID + "/enrollments/" + strings.ReplaceAll(want, "+", "%2B")
		if got := h.call(http.MethodGet, path, ""); got.Code != http.StatusOK || !strings.Contains(got.Raw, fmt.Sprintf("%q", want)) {
			t.Errorf("GET %s: %d %s", path, got.Code, got.Raw)
		}
	}
	if res := h.call(http.MethodPost, "/v1/sequences/"+seq.ID+"/enrollments", `{"jid":"nonsense","fields":{"name":"X"}}`); res.Code != http.StatusBadRequest || res.Errors[0].Fields[0] != "jid" {
		t.Errorf("a bad jid: %d %s", res.Code, res.Raw)
	}
}

// GET /v1/provider says what each provider can do, so that a client offers
// only what a campaign may ask for: TimelinesAI meters credits, polls
// statuses and takes every recipient key; the gateway simulates typing and
// takes phones and JIDs only.
func TestProviderSaysWhatItCanDo(t *testing.T) {
	type provider struct {
		Name             string   `json:"name"`
		MeteredCredits   bool     `json:"metered_credits"`
		StatusHistory    bool     `json:"status_history"`
		Attachments      bool     `json:"attachments"`
		TypingSimulation bool     `json:"typing_simulation"`
		RecipientKeys    []string `json:"recipient_keys"`
		MaxTextLength    int      `json:"max_text_length"`
	}
	read := func(h *harness) provider {
		res := h.call("GET", "/v1/provider", "")
		var p provider
		if res.Code != http.StatusOK || json.Unmarshal(res.Data, &p) != nil {
			t.Fatalf("GET /v1/provider: %d %s", res.Code, res.Raw)
		}
		return p
	}
	timelines := read(newHarness(t))
	if !timelines.MeteredCredits || !timelines.StatusHistory || !timelines.Attachments || timelines.TypingSimulation ||
		strings.Join(timelines.RecipientKeys, ",") != "phone,jid,chat_id" || timelines.MaxTextLength != 2000 {
		t.Errorf("TimelinesAI (the sandbox): %+v", timelines)
	}
	gw, _ := gatewayHarness(t, -1, []string{"+14155550101"})
	gateway := read(gw)
	if gateway.MeteredCredits || gateway.StatusHistory || gateway.Attachments || !gateway.TypingSimulation ||
		strings.Join(gateway.RecipientKeys, ",") != "phone,jid" {
		t.Errorf("the gateway: %+v", gateway)
	}
}
