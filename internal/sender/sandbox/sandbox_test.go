package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAuth(t *testing.T) {
	tests := []struct {
		name          string
		json401       bool // Config.JSON401; default: plain text, as the real API answers
		authorization string
		wantStatus    int
		wantCode      string
	}{
		{"right token", false, "Bearer " + testToken, 200, ""},
		{"scheme in lower case", false, "bearer " + testToken, 200, ""},
		{"no header, JSON 401", true, "", 401, "missing_credentials"},
		{"not a Bearer token, JSON 401", true, "Basic " + testToken, 401, "missing_credentials"},
		{"Bearer without token, JSON 401", true, "Bearer ", 401, "missing_credentials"},
		{"wrong token, JSON 401", true, "Bearer nope", 401, "invalid_token"},
		{"wrong token", false, "Bearer nope", 401, ""},
		{"no header", false, "", 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := start(t, Config{JSON401: tt.json401, Credits: 10})
			r := callWithAuth(t, ts, "POST", "/messages", tt.authorization, text("+14155550100", "hi"))
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantStatus == 200 {
				return
			}
			if !tt.json401 {
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || string(r.body) != "Unauthorized" {
					t.Errorf("plain-text 401 = %q %q, want text/plain \"Unauthorized\"", ct, r.body)
				}
			} else if code := r.errorCode(t); code != tt.wantCode {
				t.Errorf("error_code %q, want %q", code, tt.wantCode)
			}
			if n := len(s.Messages()); n != 0 {
				t.Errorf("%d messages recorded for an unauthenticated send", n)
			}
			if used := s.APICallsUsed(); used != 0 {
				t.Errorf("unauthenticated request counted as %d API calls", used)
			}
			if s.Answers()[401] != 1 {
				t.Errorf("answers %v, want one 401", s.Answers())
			}
		})
	}
}

func TestSendValidation(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) } // 2 bytes, 1 code point each
	tests := []struct {
		name       string
		path       string
		body       any
		wantFields [][]string // nil: accepted
		wantMsg    string     // part of the first msg
	}{
		{"text of 2000 code points", "/messages", text("+14155550100", long(2000)), nil, ""},
		{"text of 2001 code points", "/messages", text("+14155550100", long(2001)), [][]string{{"text"}}, "2000"},
		{"label of 64", "/messages", map[string]any{"phone": "+14155550100", "text": "hi", "label": long(64)}, nil, ""},
		{"label of 65", "/messages", map[string]any{"phone": "+14155550100", "text": "hi", "label": long(65)}, [][]string{{"label"}}, "64"},
		{"chat_name of 256", "/messages", map[string]any{"phone": "+14155550100", "text": "hi", "chat_name": long(256)}, nil, ""},
		{"chat_name of 257", "/messages", map[string]any{"phone": "+14155550100", "text": "hi", "chat_name": long(257)}, [][]string{{"chat_name"}}, "256"},
		{"no phone", "/messages", map[string]any{"text": "hi"}, [][]string{{"phone"}}, "required"},
		{"phone written with separators", "/messages", text("+1 (415) 555-01.00", "hi"), nil, ""},
		{"phone without plus", "/messages", text("14155550100", "hi"), nil, ""},
		{"phone of 6 digits", "/messages", text("+123456", "hi"), [][]string{{"phone"}}, "international"},
		{"phone of 16 digits", "/messages", text("+1234567890123456", "hi"), [][]string{{"phone"}}, "international"},
		{"phone with letters", "/messages", text("+1415CALLNOW", "hi"), [][]string{{"phone"}}, "international"},
		{"no content", "/messages", map[string]any{"phone": "+14155550100"}, [][]string{{"text", "file_uid", "attachment_template_id"}}, "text"},
		{"file only", "/messages", map[string]any{"phone": "+14155550100", "file_uid": "f-1"}, nil, ""},
		{"template only", "/messages", map[string]any{"phone": "+14155550100", "attachment_template_id": 7}, nil, ""},
		{"text is a number", "/messages", map[string]any{"phone": "+14155550100", "text": 5}, [][]string{{"text"}, {"text", "file_uid", "attachment_template_id"}}, "str"},
		{"template id is a string", "/messages", map[string]any{"phone": "+14155550100", "text": "hi", "attachment_template_id": "x"}, [][]string{{"attachment_template_id"}}, "integer"},
		{"malformed JSON", "/messages", `{"phone": "+14155550100", "text": `, [][]string{{"body"}}, "JSON"},
		{"not an object", "/messages", `["+14155550100"]`, [][]string{{"body"}}, "JSON"},
		{"several problems at once", "/messages", map[string]any{"phone": "x", "label": long(65)}, [][]string{{"phone"}, {"label"}, {"text", "file_uid", "attachment_template_id"}}, ""},
		{"account not in the workspace", "/messages", map[string]any{"phone": "+14155550100", "text": "hi", "whatsapp_account_phone": "+19995550000"}, [][]string{{"whatsapp_account_phone"}}, "not connected"},
		{"account written differently", "/messages", map[string]any{"phone": "+14155550100", "text": "hi", "whatsapp_account_phone": "1 415 555 0001"}, nil, ""},
		{"disconnected account", "/messages", map[string]any{"phone": "+14155550100", "text": "hi", "whatsapp_account_phone": "+14155550002"}, [][]string{{"whatsapp_account_phone"}}, "disconnected"},
		{"jid", "/messages/to_jid", map[string]any{"jid": "14155550100@s.whatsapp.net", "text": "hi"}, nil, ""},
		{"group jid", "/messages/to_jid", map[string]any{"jid": "14155550100-1600000000@g.us", "text": "hi"}, nil, ""},
		{"no jid", "/messages/to_jid", map[string]any{"text": "hi"}, [][]string{{"jid"}}, "required"},
		{"malformed jid", "/messages/to_jid", map[string]any{"jid": "+14155550100", "text": "hi"}, [][]string{{"jid"}}, "WhatsApp ID"},
		{"reply_to an unknown message", "/messages/to_jid", map[string]any{"jid": "14155550100@s.whatsapp.net", "text": "hi", "reply_to": "nope"}, [][]string{{"reply_to"}}, "not found"},
		{"reply_to null is ignored", "/messages/to_jid", map[string]any{"jid": "14155550100@s.whatsapp.net", "text": "hi", "reply_to": nil}, nil, ""},
		{"reply_to empty is ignored", "/messages/to_jid", map[string]any{"jid": "14155550100@s.whatsapp.net", "text": "hi", "reply_to": ""}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := start(t, Config{Credits: 10, Accounts: []string{"+14155550001", "+14155550002"}})
			s.DisconnectAccount("+14155550002")
			r := call(t, ts, "POST", tt.path, tt.body)
			if tt.wantFields == nil {
				r.uid(t)
				if n := len(s.Messages()); n != 1 {
					t.Errorf("%d messages recorded, want 1", n)
				}
				return
			}
			if r.status != http.StatusBadRequest || r.errorCode(t) != "validation_error" {
				t.Fatalf("answer %d %s, want 400 validation_error", r.status, r.body)
			}
			var got [][]string
			for _, fe := range r.fieldErrors(t) {
				got = append(got, fe.Fields)
				if fe.Msg == "" {
					t.Errorf("field error %v has no msg", fe.Fields)
				}
			}
			if !reflect.DeepEqual(got, tt.wantFields) {
				t.Errorf("fields %v, want %v (%s)", got, tt.wantFields, r.body)
			}
			if msg := r.fieldErrors(t)[0].Msg; !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("msg %q does not mention %q", msg, tt.wantMsg)
			}
			if n := len(s.Messages()); n != 0 {
				t.Errorf("%d messages recorded for a refused send", n)
			}
			if used := s.CreditsUsed(); used != 0 {
				t.Errorf("refused send charged %d credits", used)
			}
		})
	}
}

func TestRecordsEveryField(t *testing.T) {
	clock := newClock()
	s, ts := start(t, Config{Credits: 10, Accounts: []string{"+14155550001"}, Now: clock.Now})
	body := map[string]any{
		"phone":                  "+14155550100",
		"whatsapp_account_phone": "+14155550001",
		"text":                   "hello",
		"file_uid":               "file-1",
		"label":                  "spring",
		"chat_name":              "Ann",
		"attachment_template_id": 42,
		"reply_to":               "ignored: not a field of POST /messages",
	}
	uid := call(t, ts, "POST", "/messages", body).uid(t)
	got, ok := s.Message(uid)
	if !ok {
		t.Fatal("accepted message not recorded")
	}
	want := Message{
		UID: uid, Phone: "+14155550100", AccountPhone: "+14155550001", Text: "hello", FileUID: "file-1",
		Label: "spring", ChatName: "Ann", AttachmentTemplateID: 42,
		Sender: "+14155550001", Recipient: "+14155550100", Chat: 1, Credits: 2,
		ReceivedAt: clock.Now(), SentAt: clock.Now(), Status: StatusSent,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("recorded\n%+v\nwant\n%+v", got, want)
	}
}

func TestCredits(t *testing.T) {
	tests := []struct {
		name string
		body map[string]any
		want int
	}{
		{"text", map[string]any{"text": "hi"}, 1},
		{"file", map[string]any{"file_uid": "f"}, 1},
		{"template", map[string]any{"attachment_template_id": 3}, 1},
		{"text and file", map[string]any{"text": "hi", "file_uid": "f"}, 2},
		{"text and template", map[string]any{"text": "hi", "attachment_template_id": 3}, 2},
		{"empty text and file", map[string]any{"text": "", "file_uid": "f"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := start(t, Config{Credits: 10})
			tt.body["phone"] = "+14155550100"
			uid := call(t, ts, "POST", "/messages", tt.body).uid(t)
			if m, _ := s.Message(uid); m.Credits != tt.want {
				t.Errorf("message costs %d, want %d", m.Credits, tt.want)
			}
			if used := readQuota(t, ts).Data.Messaging.Used; used != int64(tt.want) {
				t.Errorf("messaging_quota.used = %d, want %d", used, tt.want)
			}
		})
	}
}

func TestQuotaExceededRecordsNothing(t *testing.T) {
	s, ts := start(t, Config{Credits: 2, NonRecurringCredits: 1})
	call(t, ts, "POST", "/messages", map[string]any{"phone": "+14155550100", "text": "hi", "file_uid": "f"}).uid(t)
	// One credit left, in the non-recurring balance: a 2-credit message does
	// not fit, a 1-credit one does.
	r := call(t, ts, "POST", "/messages", map[string]any{"phone": "+14155550101", "text": "hi", "file_uid": "f"})
	if r.status != http.StatusForbidden || r.errorCode(t) != "quota_exceeded" {
		t.Fatalf("answer %d %s, want 403 quota_exceeded", r.status, r.body)
	}
	call(t, ts, "POST", "/messages", text("+14155550102", "hi")).uid(t)
	r = call(t, ts, "POST", "/messages", text("+14155550103", "hi"))
	if r.status != http.StatusForbidden || r.errorCode(t) != "quota_exceeded" {
		t.Fatalf("answer %d %s, want 403 quota_exceeded", r.status, r.body)
	}

	if n := len(s.Messages()); n != 2 {
		t.Errorf("%d messages recorded, want 2", n)
	}
	q := readQuota(t, ts)
	if q.Data.Messaging.Used != 2 || q.Data.NonRecurring.RemainingBalance != 0 {
		t.Errorf("quota used %d, non-recurring %d; want 2 and 0", q.Data.Messaging.Used, q.Data.NonRecurring.RemainingBalance)
	}
	if s.CreditsUsed() != 3 {
		t.Errorf("CreditsUsed %d, want 3", s.CreditsUsed())
	}

	s.SetCredits(3)
	call(t, ts, "POST", "/messages", text("+14155550104", "hi")).uid(t)
}

func TestRefundAfterFailure(t *testing.T) {
	clock := newClock()
	s, ts := start(t, Config{
		Credits: 5, NonRecurringCredits: 1, Now: clock.Now,
		SendInterval: -1, DeliverAfter: 10 * time.Second, RefundAfter: time.Hour,
		Outcome: func(phone string) Outcome {
			if phone == "+14155550199" {
				return OutcomeFailed
			}
			return OutcomeDelivered
		},
	})
	s.SetCredits(2)
	call(t, ts, "POST", "/messages", text("+14155550100", "ok")).uid(t)
	// Two credits: one from the quota, one from the non-recurring balance.
	failed := call(t, ts, "POST", "/messages", map[string]any{"phone": "+14155550199", "text": "x", "file_uid": "f"}).uid(t)
	if s.CreditsUsed() != 3 {
		t.Fatalf("CreditsUsed %d, want 3", s.CreditsUsed())
	}

	clock.Advance(10*time.Second + time.Hour - time.Second)
	if got := statuses(readHistory(t, ts, failed)); !reflect.DeepEqual(got, []string{"Sent", "Failed"}) {
		t.Fatalf("history %v, want Sent, Failed", got)
	}
	if s.CreditsUsed() != 3 {
		t.Errorf("credits refunded before RefundAfter: used %d", s.CreditsUsed())
	}

	clock.Advance(time.Second)
	if s.CreditsUsed() != 1 {
		t.Errorf("CreditsUsed %d after the refund, want 1", s.CreditsUsed())
	}
	q := readQuota(t, ts)
	if q.Data.Messaging.Used != 1 || q.Data.NonRecurring.RemainingBalance != 1 {
		t.Errorf("quota used %d, non-recurring %d after the refund; want 1 and 1", q.Data.Messaging.Used, q.Data.NonRecurring.RemainingBalance)
	}
}

func TestPacingPerAccount(t *testing.T) {
	clock := newClock()
	a, b := "+14155550001", "+14155550002"
	s, ts := start(t, Config{Credits: 100, Accounts: []string{a, b}, SendInterval: 2 * time.Second, Now: clock.Now})
	send := func(account, phone string) Message {
		uid := call(t, ts, "POST", "/messages", map[string]any{"phone": phone, "text": "hi", "whatsapp_account_phone": account}).uid(t)
		m, _ := s.Message(uid)
		return m
	}
	t0 := clock.Now()
	tests := []struct {
		account  string
		advance  time.Duration // before sending
		wantSent time.Time
	}{
		{a, 0, t0},
		{a, 0, t0.Add(2 * time.Second)},
		{b, 0, t0}, // another account is not held back by a's queue
		{a, 0, t0.Add(4 * time.Second)},
		{b, 500 * time.Millisecond, t0.Add(2 * time.Second)},
		{a, 10 * time.Second, t0.Add(10500 * time.Millisecond)}, // queue drained: sent at once
		{a, 0, t0.Add(12500 * time.Millisecond)},
	}
	for i, tt := range tests {
		clock.Advance(tt.advance)
		m := send(tt.account, fmt.Sprintf("+1415555%04d", i))
		if !m.SentAt.Equal(tt.wantSent) {
			t.Errorf("message %d via %s: Sent at +%v, want +%v", i, tt.account, m.SentAt.Sub(t0), tt.wantSent.Sub(t0))
		}
	}

	// A queued message has no history yet, and is Queued in GET /messages/{uid}.
	queued := s.Messages()[len(tests)-1]
	if h := readHistory(t, ts, queued.UID); len(h) != 0 {
		t.Errorf("queued message has history %v", h)
	}
	r := call(t, ts, "GET", "/messages/"+queued.UID, nil)
	if got := r.json(t)["data"].(map[string]any)["status"]; got != StatusQueued {
		t.Errorf("GET /messages/{uid} status %v, want Queued", got)
	}
}

func TestStatusProgression(t *testing.T) {
	clock := newClock()
	outcomes := map[string]Outcome{
		"+14155550101": OutcomeRead,
		"+14155550102": OutcomeDelivered,
		"+14155550103": OutcomeFailed,
		"+14155550104": OutcomeSent,
	}
	s, ts := start(t, Config{
		Credits: 10, Now: clock.Now,
		SendInterval: -1, DeliverAfter: 2 * time.Second, ReadAfter: 5 * time.Second,
		Outcome: func(phone string) Outcome { return outcomes[phone] },
	})
	uids := map[string]string{}
	for phone := range outcomes {
		uids[phone] = call(t, ts, "POST", "/messages", text(phone, "hi")).uid(t)
	}
	t0 := clock.Now()

	steps := []struct {
		at   time.Duration
		want map[string][]string
	}{
		{0, map[string][]string{
			"+14155550101": {"Sent"}, "+14155550102": {"Sent"}, "+14155550103": {"Sent"}, "+14155550104": {"Sent"},
		}},
		{2 * time.Second, map[string][]string{
			"+14155550101": {"Sent", "Delivered"}, "+14155550102": {"Sent", "Delivered"},
			"+14155550103": {"Sent", "Failed"}, "+14155550104": {"Sent"},
		}},
		{time.Hour, map[string][]string{
			"+14155550101": {"Sent", "Delivered", "Read"}, "+14155550102": {"Sent", "Delivered"},
			"+14155550103": {"Sent", "Failed"}, "+14155550104": {"Sent"},
		}},
	}
	for _, step := range steps {
		clock.Advance(t0.Add(step.at).Sub(clock.Now()))
		for phone, want := range step.want {
			h := readHistory(t, ts, uids[phone])
			if got := statuses(h); !reflect.DeepEqual(got, want) {
				t.Errorf("+%v %s: history %v, want %v", step.at, phone, got, want)
			}
		}
	}

	h := readHistory(t, ts, uids["+14155550101"])
	wantTimes := []time.Time{t0, t0.Add(2 * time.Second), t0.Add(5 * time.Second)}
	for i, e := range h {
		at, err := time.Parse(TimestampLayout, e.Timestamp)
		if err != nil {
			t.Fatalf("timestamp %q not in the provider's layout: %v", e.Timestamp, err)
		}
		if !at.Equal(wantTimes[i]) {
			t.Errorf("%s at %v, want %v", e.Status, at, wantTimes[i])
		}
	}
	if h[0].Timestamp != "2025-03-10 09:00:00 +0200" {
		t.Errorf("timestamp written as %q", h[0].Timestamp)
	}
	if direct, _ := s.StatusHistory(uids["+14155550101"]); len(direct) != 3 || !direct[2].At.Equal(wantTimes[2]) {
		t.Errorf("Server.StatusHistory %v disagrees with the API", direct)
	}

	r := call(t, ts, "GET", "/messages/no-such-uid/status_history", nil)
	if r.status != http.StatusNotFound || r.json(t)["status"] != "error" {
		t.Errorf("unknown message: %d %s, want a 404 JSON error", r.status, r.body)
	}
}

func TestOutcomesFollowRatesAndSeed(t *testing.T) {
	fates := func(seed int64) map[Outcome]int {
		s, ts := start(t, Config{Credits: 1000, ReadRate: 0.5, FailRate: 0.2, Seed: seed, Outcome: func(string) Outcome { return OutcomeByRates }})
		counts := map[Outcome]int{}
		for i := range 200 {
			uid := call(t, ts, "POST", "/messages", text(fmt.Sprintf("+1415550%04d", i), "hi")).uid(t)
			s.mu.Lock()
			counts[s.byUID[uid].outcome]++
			s.mu.Unlock()
		}
		return counts
	}
	first, again := fates(7), fates(7)
	if !reflect.DeepEqual(first, again) {
		t.Errorf("same seed, different fates: %v and %v", first, again)
	}
	// The hash is fixed, so these bounds cannot flake; they check the rates
	// are applied, not the hash's quality.
	if first[OutcomeFailed] < 20 || first[OutcomeFailed] > 60 || first[OutcomeRead] < 70 || first[OutcomeRead] > 130 {
		t.Errorf("fates %v for 200 recipients, want about 40 failed and 100 read", first)
	}
}

func TestRateLimit(t *testing.T) {
	tests := []struct {
		name           string
		cfg            Config
		wantStatus     int
		wantRetryAfter string
	}{
		{"429 without Retry-After", Config{}, 429, ""},
		{"429 with Retry-After", Config{RetryAfter: true}, 429, "1"},
		{"burst answered by the CDN", Config{BurstAs403: true}, 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			tt.cfg.Now, tt.cfg.RateLimit, tt.cfg.RateBurst, tt.cfg.Credits = clock.Now, 2, 3, 10
			s, ts := start(t, tt.cfg)
			for range 3 {
				if r := call(t, ts, "GET", "/quotas", nil); r.status != 200 {
					t.Fatalf("within the burst: %d", r.status)
				}
			}
			r := call(t, ts, "GET", "/quotas", nil)
			if r.status != tt.wantStatus {
				t.Fatalf("over the burst: %d %s, want %d", r.status, r.body, tt.wantStatus)
			}
			if got := r.header.Get("Retry-After"); got != tt.wantRetryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.wantRetryAfter)
			}
			if tt.cfg.BurstAs403 {
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
					t.Errorf("CDN answer has Content-Type %q", ct)
				}
			} else if r.errorCode(t) != "rate_limit_exceeded" {
				t.Errorf("error_code %q", r.errorCode(t))
			}

			clock.Advance(500 * time.Millisecond) // one token back at 2/s
			if r := call(t, ts, "GET", "/quotas", nil); r.status != 200 {
				t.Errorf("after the refill: %d", r.status)
			}
			if r := call(t, ts, "GET", "/quotas", nil); r.status != tt.wantStatus {
				t.Errorf("refill gave more than one token: %d", r.status)
			}
			if got := s.Answers(); got[200] != 4 || got[tt.wantStatus] != 2 {
				t.Errorf("answers %v", got)
			}
			if s.APICallsUsed() != 4 {
				t.Errorf("API calls %d, want 4: rate-limited requests are not API calls", s.APICallsUsed())
			}
		})
	}
}

func TestAPICallsQuota(t *testing.T) {
	s, ts := start(t, Config{Credits: 10, APICalls: 3})
	if q := readQuota(t, ts); q.Data.APICalls.Total != 3 || q.Data.APICalls.Used != 1 {
		t.Errorf("api_calls_quota %+v, want total 3 used 1", q.Data.APICalls)
	}
	call(t, ts, "POST", "/messages", text("+14155550100", "hi")).uid(t)
	call(t, ts, "GET", "/whatsapp_accounts", nil)
	r := call(t, ts, "POST", "/messages", text("+14155550100", "hi"))
	if r.status != http.StatusForbidden || r.errorCode(t) != "quota_exceeded" || !strings.Contains(string(r.body), "API calls") {
		t.Errorf("over the API-call quota: %d %s", r.status, r.body)
	}
	if len(s.Messages()) != 1 || s.APICallsUsed() != 3 {
		t.Errorf("%d messages, %d API calls; want 1 and 3", len(s.Messages()), s.APICallsUsed())
	}

	_, unlimited := start(t, Config{})
	if q := readQuota(t, unlimited); q.Data.APICalls.Total < 1_000_000 {
		t.Errorf("unlimited API calls reported as total %d", q.Data.APICalls.Total)
	}
}

func TestRoutes(t *testing.T) {
	tests := []struct {
		name       string
		quotaPath  string
		method     string
		path       string
		wantStatus int
		wantHTML   bool
	}{
		{"quotas", "", "GET", "/quotas", 200, false},
		{"workspace quotas", "", "GET", "/workspace/quotas", 200, false},
		{"only /workspace/quotas: /quotas", "/workspace/quotas", "GET", "/quotas", 404, true},
		{"only /workspace/quotas", "/workspace/quotas", "GET", "/workspace/quotas", 200, false},
		{"only /quotas: /workspace/quotas", "/quotas", "GET", "/workspace/quotas", 404, true},
		{"under the real API's prefix", "", "GET", "/integrations/api/quotas", 200, false},
		{"trailing slash", "", "GET", "/quotas/", 404, true},
		{"trailing slash on a send", "", "POST", "/messages/", 404, true},
		{"unknown path", "", "GET", "/nothing", 404, true},
		{"accounts", "", "GET", "/whatsapp_accounts", 200, false},
		{"unknown chat", "", "POST", "/chats/99/messages", 404, false},
		{"chat id not a number", "", "POST", "/chats/abc/messages", 404, false},
		{"unknown message", "", "GET", "/messages/nope", 404, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ts := start(t, Config{QuotaPath: tt.quotaPath, Credits: 1})
			var body any
			if tt.method == "POST" {
				body = map[string]any{"text": "hi"}
			}
			r := call(t, ts, tt.method, tt.path, body)
			if r.status != tt.wantStatus {
				t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.path, r.status, r.body, tt.wantStatus)
			}
			isHTML := strings.HasPrefix(r.header.Get("Content-Type"), "text/html")
			if isHTML != tt.wantHTML {
				t.Errorf("Content-Type %q, want HTML %v", r.header.Get("Content-Type"), tt.wantHTML)
			}
		})
	}
}

func TestChats(t *testing.T) {
	a := "+14155550001"
	s, ts := start(t, Config{Credits: 20, Accounts: []string{a}})
	first := call(t, ts, "POST", "/messages", text("+14155550100", "one")).uid(t)
	call(t, ts, "POST", "/messages", text("14155550100", "two")).uid(t)
	call(t, ts, "POST", "/messages", text("+14155550200", "three")).uid(t)
	call(t, ts, "POST", "/messages/to_jid", map[string]any{"jid": "14155550200@s.whatsapp.net", "text": "four"}).uid(t)

	var chats []int64
	for _, m := range s.Messages() {
		chats = append(chats, m.Chat)
	}
	if !reflect.DeepEqual(chats, []int64{1, 1, 2, 2}) {
		t.Errorf("chats %v, want 1 1 2 2: one chat per recipient, numbered from 1", chats)
	}

	reply := call(t, ts, "POST", "/chats/1/messages", map[string]any{"text": "five", "reply_to": first, "whatsapp_account_phone": "+19990000000"}).uid(t)
	m, _ := s.Message(reply)
	want := Message{ChatID: 1, Chat: 1, Text: "five", ReplyTo: first, Sender: a, Recipient: "+14155550100"}
	if m.ChatID != want.ChatID || m.Chat != want.Chat || m.ReplyTo != want.ReplyTo || m.Sender != want.Sender ||
		m.Recipient != want.Recipient || m.AccountPhone != "" || m.Phone != "" {
		t.Errorf("chat send recorded as %+v", m)
	}

	s.DisconnectAccount(a)
	r := call(t, ts, "POST", "/chats/1/messages", map[string]any{"text": "six"})
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "disconnected") {
		t.Errorf("send to a chat of a disconnected account: %d %s", r.status, r.body)
	}
	s.ConnectAccount(a)
	call(t, ts, "POST", "/chats/1/messages", map[string]any{"text": "six"}).uid(t)
}

func TestDefaultSender(t *testing.T) {
	a, b := "+14155550001", "+14155550002"
	s, ts := start(t, Config{Credits: 20, Accounts: []string{a, b}})
	sender := func() string {
		t.Helper()
		uid := call(t, ts, "POST", "/messages", text("+14155550100", "hi")).uid(t)
		m, _ := s.Message(uid)
		return m.Sender
	}
	if got := sender(); got != a {
		t.Errorf("default sender %s, want the first account %s", got, a)
	}
	s.ConnectAccount(b)
	if got := sender(); got != b {
		t.Errorf("default sender %s, want the most recently connected %s", got, b)
	}
	s.DisconnectAccount(b)
	if got := sender(); got != a {
		t.Errorf("default sender %s with %s disconnected, want %s", got, b, a)
	}
	s.DisconnectAccount(a)
	r := call(t, ts, "POST", "/messages", text("+14155550100", "hi"))
	if fe := r.fieldErrors(t); r.status != 400 || len(fe) != 1 || fe[0].Fields[0] != "whatsapp_account_phone" {
		t.Errorf("no connected account: %d %s", r.status, r.body)
	}

	r = call(t, ts, "GET", "/whatsapp_accounts", nil)
	var list struct {
		Data struct {
			Accounts []struct {
				Phone  string `json:"phone"`
				Status string `json:"status"`
				ID     string `json:"id"`
			} `json:"whatsapp_accounts"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Data.Accounts) != 2 || list.Data.Accounts[0].Phone != a || list.Data.Accounts[0].Status != "Disconnected" ||
		list.Data.Accounts[0].ID != "14155550001@s.whatsapp.net" {
		t.Errorf("whatsapp_accounts %s", r.body)
	}
}

func TestReplyToOtherAccount(t *testing.T) {
	a, b := "+14155550001", "+14155550002"
	_, ts := start(t, Config{Credits: 20, Accounts: []string{a, b}})
	original := call(t, ts, "POST", "/messages", map[string]any{"phone": "+14155550100", "text": "hi", "whatsapp_account_phone": a}).uid(t)
	r := call(t, ts, "POST", "/messages/to_jid", map[string]any{"jid": "14155550100@s.whatsapp.net", "text": "re", "whatsapp_account_phone": b, "reply_to": original})
	if fe := r.fieldErrors(t); r.status != 400 || len(fe) != 1 || fe[0].Fields[0] != "reply_to" {
		t.Errorf("reply to another account's message: %d %s", r.status, r.body)
	}
	call(t, ts, "POST", "/messages/to_jid", map[string]any{"jid": "14155550100@s.whatsapp.net", "text": "re", "whatsapp_account_phone": a, "reply_to": original}).uid(t)
}

func TestFaults(t *testing.T) {
	s, ts := start(t, Config{Credits: 100})
	s.Inject(Fault{Op: OpSend, Phone: "+14155550199", Times: 2, Status: 500, Body: `{"status":"error","message":"boom","error_code":"internal_error"}`})
	s.Inject(Fault{Op: OpQuota, Status: 503, Body: "upstream down"})
	s.Inject(Fault{Op: OpSend, Phone: "+14155550177", Process: true, Status: 502, Body: "<html>bad gateway</html>", ContentType: "text/html"})
	s.Inject(Fault{Op: OpSend, Phone: "+14155550155", Header: http.Header{"X-Extra": {"yes"}}, Status: 429, Body: "{}"})

	tests := []struct {
		name        string
		method      string
		path        string
		body        any
		wantStatus  int
		wantRecords int // messages recorded after this request
	}{
		{"other recipients unaffected", "POST", "/messages", text("+14155550100", "hi"), 200, 1},
		{"fault 1 of 2", "POST", "/messages", text("1 415 555 0199", "hi"), 500, 1},
		{"fault 2 of 2", "POST", "/messages", text("+14155550199", "hi"), 500, 1},
		{"fault used up", "POST", "/messages", text("+14155550199", "hi"), 200, 2},
		{"quota fault until cleared", "GET", "/quotas", nil, 503, 2},
		{"quota fault still there", "GET", "/workspace/quotas", nil, 503, 2},
		{"processed, then 502", "POST", "/messages", text("+14155550177", "hi"), 502, 3},
		{"status not matched by a send fault", "GET", "/messages/x/status_history", nil, 404, 3},
		{"answer headers", "POST", "/messages", text("+14155550155", "hi"), 429, 3},
	}
	for _, tt := range tests {
		r := call(t, ts, tt.method, tt.path, tt.body)
		if r.status != tt.wantStatus {
			t.Errorf("%s: %d %s, want %d", tt.name, r.status, r.body, tt.wantStatus)
		}
		if n := len(s.Messages()); n != tt.wantRecords {
			t.Errorf("%s: %d messages recorded, want %d", tt.name, n, tt.wantRecords)
		}
		if tt.wantStatus == 429 && r.header.Get("X-Extra") != "yes" {
			t.Errorf("%s: fault header missing", tt.name)
		}
	}

	s.ClearFaults()
	if r := call(t, ts, "GET", "/quotas", nil); r.status != 200 {
		t.Errorf("after ClearFaults: %d", r.status)
	}
}

func TestFaultDrop(t *testing.T) {
	tests := []struct {
		name        string
		process     bool
		wantRecords int
	}{
		{"dropped before processing", false, 0},
		{"dropped after processing", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := start(t, Config{Credits: 10})
			s.Inject(Fault{Op: OpSend, Drop: true, Process: tt.process, Times: 1})
			req, _ := http.NewRequest("POST", ts.URL+"/messages", strings.NewReader(`{"phone":"+14155550100","text":"hi"}`))
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := ts.Client().Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got an answer %d, want a dropped connection", resp.StatusCode)
			}
			if n := len(s.Messages()); n != tt.wantRecords {
				t.Errorf("%d messages recorded, want %d", n, tt.wantRecords)
			}
			if len(s.Answers()) != 0 {
				t.Errorf("a dropped connection counted as an answer: %v", s.Answers())
			}
		})
	}
}

func TestFaultDelayEndsWhenClientLeaves(t *testing.T) {
	s, ts := start(t, Config{Credits: 10})
	s.Inject(Fault{Op: OpSend, Delay: time.Hour, Process: true})
	client := ts.Client()
	client.Timeout = 200 * time.Millisecond
	req, _ := http.NewRequest("POST", ts.URL+"/messages", strings.NewReader(`{"phone":"+14155550100","text":"hi"}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("got an answer from an hour-long delay")
	}
	ts.Close() // waits for the handler, which must end when the client leaves
	if n := len(s.Messages()); n != 1 {
		t.Errorf("%d messages recorded, want the processed one", n)
	}
}

func TestInspectionEndpoints(t *testing.T) {
	s, ts := start(t, Config{Credits: 1, RateLimit: 1, RateBurst: 1, Now: newClock().Now})
	call(t, ts, "POST", "/messages", text("+14155550100", "hi")).uid(t)

	for range 3 { // neither rate limited nor counted
		if r := callWithAuth(t, ts, "GET", "/_sandbox/messages", "", nil); r.status != 200 {
			t.Fatalf("GET /_sandbox/messages: %d", r.status)
		}
	}
	r := callWithAuth(t, ts, "GET", "/_sandbox/messages", "", nil)
	var msgs struct {
		Data []Message `json:"data"`
	}
	if err := json.Unmarshal(r.body, &msgs); err != nil || len(msgs.Data) != 1 || msgs.Data[0].Phone != "+14155550100" || msgs.Data[0].Status != StatusSent {
		t.Errorf("GET /_sandbox/messages: %v %s", err, r.body)
	}

	r = callWithAuth(t, ts, "POST", "/_sandbox/credits", "", `{"total": 5}`)
	if r.status != 200 || s.CreditsRemaining() != 4 {
		t.Errorf("POST /_sandbox/credits: %d %s; remaining %d", r.status, r.body, s.CreditsRemaining())
	}
	if r := callWithAuth(t, ts, "POST", "/_sandbox/credits", "", `{}`); r.status != 400 {
		t.Errorf("POST /_sandbox/credits without total: %d", r.status)
	}

	r = callWithAuth(t, ts, "POST", "/_sandbox/faults", "", `{"op":"quota","status":418,"delay":"1ms","times":1}`)
	if r.status != 200 {
		t.Fatalf("POST /_sandbox/faults: %d %s", r.status, r.body)
	}
	s.mu.Lock()
	injected := s.faults[0].Fault
	s.mu.Unlock()
	if injected.Delay != time.Millisecond || injected.Status != 418 || injected.Times != 1 {
		t.Errorf("fault injected as %+v", injected)
	}
	if r := callWithAuth(t, ts, "DELETE", "/_sandbox/faults", "", nil); r.status != 200 || len(s.faults) != 0 {
		t.Errorf("DELETE /_sandbox/faults: %d", r.status)
	}

	if r := callWithAuth(t, ts, "POST", "/_sandbox/accounts/+14155550009/disconnect", "", nil); r.status != 200 {
		t.Errorf("disconnect: %d %s", r.status, r.body)
	}

	r = callWithAuth(t, ts, "GET", "/_sandbox/answers", "", nil)
	var answers struct {
		Data map[string]int `json:"data"`
	}
	if err := json.Unmarshal(r.body, &answers); err != nil || !reflect.DeepEqual(answers.Data, map[string]int{"200": 1}) {
		t.Errorf("GET /_sandbox/answers: %s", r.body)
	}
}

func TestConcurrentSendsNeverOverspend(t *testing.T) {
	const credits, senders = 30, 60
	s, ts := start(t, Config{Credits: credits})
	var wg sync.WaitGroup
	statuses := make(chan int, senders)
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := call(t, ts, "POST", "/messages", text("+1415555"+strconv.Itoa(1000+i), "hi"))
			statuses <- r.status
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for st := range statuses {
		counts[st]++
	}
	if counts[200] != credits || counts[403] != senders-credits {
		t.Errorf("answers %v, want %d accepted and the rest 403", counts, credits)
	}
	seen := map[string]bool{}
	for _, m := range s.Messages() {
		if seen[m.UID] {
			t.Errorf("UID %s given twice", m.UID)
		}
		seen[m.UID] = true
	}
	if s.CreditsUsed() != credits {
		t.Errorf("CreditsUsed %d, want %d", s.CreditsUsed(), credits)
	}
}

func TestNewRequiresToken(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New accepted an empty token")
		}
	}()
	New(Config{})
}
