package sandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// receiver is a webhook endpoint that records what it gets and can refuse
// the first deliveries.
type receiver struct {
	mu       sync.Mutex
	events   []map[string]any
	attempts int
	refuse   int // answer 500 to this many requests first
	srv      *httptest.Server
}

func newReceiver(t *testing.T, refuse int) *receiver {
	rc := &receiver{refuse: refuse}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.attempts++
		if rc.attempts <= rc.refuse {
			http.Error(w, "not now", http.StatusInternalServerError)
			return
		}
		var ev map[string]any
		if err := json.Unmarshal(body, &ev); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook body %q (%s) is not JSON: %v", body, r.Header.Get("Content-Type"), err)
		}
		rc.events = append(rc.events, ev)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// wait returns the first n events, failing the test when they do not come
// within a generous bound.
func (rc *receiver) wait(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		rc.mu.Lock()
		if len(rc.events) >= n {
			out := append([]map[string]any(nil), rc.events...)
			rc.mu.Unlock()
			return out
		}
		rc.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	t.Fatalf("%d webhook events arrived, want %d: %v", len(rc.events), n, rc.events)
	return nil
}

// field reads a nested field of a decoded payload: field(ev, "chat", "phone").
func field(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func TestWebhooksCarryTheVendorsPayloads(t *testing.T) {
	const account, ann = "+14155550001", "+12025550143"
	rc := newReceiver(t, 0)
	s, ts := start(t, Config{Credits: 10, Accounts: []string{account}, WebhookURL: rc.srv.URL + "/hook"})
	t.Cleanup(func() { _ = s.Close() })

	uid := call(t, ts, "POST", "/messages", map[string]any{"phone": ann, "text": "Hi Ann", "whatsapp_account_phone": account}).uid(t)
	replyUID, ok := s.Receive(account, ann, "STOP")
	if !ok {
		t.Fatal("Receive refused")
	}
	s.DisconnectAccount(account)
	s.ConnectAccount(account)

	events := rc.wait(t, 4)
	want := []struct {
		path  []string
		value any
	}{
		{[]string{"event_type"}, "message:sent:new"},
		{[]string{"message", "message_uid"}, uid},
		{[]string{"message", "direction"}, "sent"},
		{[]string{"message", "origin"}, "Public API"},
		{[]string{"message", "text"}, "Hi Ann"},
		{[]string{"message", "recipient", "phone"}, ann},
		{[]string{"message", "sender", "phone"}, account},
		{[]string{"chat", "phone"}, ann},
		{[]string{"chat", "chat_id"}, float64(1)},
		{[]string{"chat", "is_group"}, false},
		{[]string{"whatsapp_account", "phone"}, account},
	}
	for _, w := range want {
		if got := field(events[0], w.path...); got != w.value {
			t.Errorf("message:sent:new %v = %v, want %v", w.path, got, w.value)
		}
	}
	if ts := field(events[0], "message", "timestamp").(string); len(ts) != len(TimestampLayout) {
		t.Errorf("timestamp %q is not in the API's layout", ts)
	}

	for path, value := range map[string]any{
		"event_type": "message:received:new", "message.message_uid": replyUID, "message.direction": "received",
		"message.text": "STOP", "message.sender.phone": ann, "chat.phone": ann, "whatsapp_account.phone": account,
	} {
		if got := field(events[1], splitPath(path)...); got != value {
			t.Errorf("message:received:new %s = %v, want %v", path, got, value)
		}
	}
	for i, want := range []struct{ event, status string }{{"whatsapp:account:disconnected", "disconnected"}, {"whatsapp:account:connected", "active"}} {
		ev := events[2+i]
		if field(ev, "event_type") != want.event || field(ev, "whatsapp_account", "phone") != account ||
			field(ev, "whatsapp_account", "status") != want.status || field(ev, "whatsapp_account", "id") != "14155550001@s.whatsapp.net" {
			t.Errorf("event %d = %v, want %s of %s", 2+i, ev, want.event, account)
		}
	}
}

func splitPath(p string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '.' {
			out = append(out, p[start:i])
			start = i + 1
		}
	}
	return out
}

func TestWebhookDeliveryIsRetried(t *testing.T) {
	rc := newReceiver(t, 2) // the first two tries fail
	s, ts := start(t, Config{Credits: 10})
	t.Cleanup(func() { _ = s.Close() })
	if r := callWithAuth(t, ts, "POST", "/_sandbox/webhook", "", map[string]any{"url": rc.srv.URL}); r.status != 200 {
		t.Fatalf("POST /_sandbox/webhook: %d %s", r.status, r.body)
	}
	if r := callWithAuth(t, ts, "GET", "/_sandbox/webhook", "", nil); field(r.json(t), "data", "url") != rc.srv.URL {
		t.Errorf("GET /_sandbox/webhook: %s", r.body)
	}
	uid := call(t, ts, "POST", "/messages", text("+12025550143", "hi")).uid(t)

	events := rc.wait(t, 1)
	if field(events[0], "message", "message_uid") != uid {
		t.Errorf("delivered %v, want the event of %s", events[0], uid)
	}
	rc.mu.Lock()
	attempts := rc.attempts
	rc.mu.Unlock()
	if attempts != 3 {
		t.Errorf("%d tries, want 3 (two refused, one taken)", attempts)
	}
}

func TestNoWebhooksWithoutURLNorFromAGateway(t *testing.T) {
	rc := newReceiver(t, 0)
	gw, gts := startGateway(t, Config{WebhookURL: rc.srv.URL})
	t.Cleanup(func() { _ = gw.Close() })
	if r := callWithAuth(t, gts, "POST", "/chats/14155550100@s.whatsapp.net/messages", gatewayKey, map[string]any{"text": "hi"}); r.status != 200 {
		t.Fatalf("gateway send: %d", r.status)
	}
	gw.Receive("", "+14155550100", "hello") // no account: refused, but nothing to post either way
	plain, ts := start(t, Config{Credits: 10})
	call(t, ts, "POST", "/messages", text("+12025550143", "hi")).uid(t)
	plain.DisconnectAccount("+14155550001")
	if r := callWithAuth(t, ts, "POST", "/_sandbox/webhook", "", map[string]any{"url": "ftp://x"}); r.status != 400 {
		t.Errorf("a non-HTTP webhook URL: %d, want 400", r.status)
	}
	if n, m := gw.hooks.queued.Load(), plain.hooks.queued.Load(); n != 0 || m != 0 {
		t.Errorf("events queued: %d by the gateway, %d without a URL; want none", n, m)
	}
}
