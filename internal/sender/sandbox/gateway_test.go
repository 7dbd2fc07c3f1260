package sandbox

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

const gatewayKey = "gw-raw-key"

// startGateway serves a sandbox in ModeGateway with the raw key gatewayKey.
func startGateway(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	cfg.Mode = ModeGateway
	if cfg.Token == "" {
		cfg.Token = gatewayKey
	}
	if cfg.TypingDelay == 0 {
		cfg.TypingDelay = -1
	}
	return start(t, cfg)
}

// envelope is a gateway answer.
type envelope struct {
	Status  bool   `json:"status"`
	Code    int    `json:"code"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
	Data    *struct {
		MessageID string `json:"message_id"`
		Status    string `json:"status"`
		Timestamp int64  `json:"timestamp"`
	} `json:"data,omitempty"`
}

func (r response) envelope(t *testing.T) envelope {
	t.Helper()
	var e envelope
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("answer %d is not the gateway's envelope: %v: %s", r.status, err, r.body)
	}
	return e
}

func TestGatewayAnswersAsItsPageShows(t *testing.T) {
	const account = "+14155550001"
	tests := []struct {
		name          string
		authorization string
		path          string
		body          any
		prepare       func(*Server)
		want          envelope // Data is checked apart
		wantStatus    int
	}{
		{name: "sent", authorization: gatewayKey, body: map[string]any{"text": "Hello, World!"},
			wantStatus: 200, want: envelope{Status: true, Code: 200, Message: "Message sent successfully"}},
		{name: "no text", authorization: gatewayKey, body: map[string]any{"reply_to_message_id": "x"},
			wantStatus: 400, want: envelope{Code: 400, Message: "Bad request", Error: "Text field is required"}},
		{name: "blank text", authorization: gatewayKey, body: map[string]any{"text": " \n "},
			wantStatus: 400, want: envelope{Code: 400, Message: "Bad request", Error: "Text field is required"}},
		{name: "a body that is not JSON", authorization: gatewayKey, body: "text=hi",
			wantStatus: 400, want: envelope{Code: 400, Message: "Bad request", Error: "Bad request"}},
		{name: "a flag that is not a boolean", authorization: gatewayKey, body: map[string]any{"text": "hi", "typing_simulation": "yes"},
			wantStatus: 400, want: envelope{Code: 400, Message: "Bad request", Error: "Bad request"}},
		{name: "a wrong JWT", authorization: "Bearer expired.jwt", body: map[string]any{"text": "hi"},
			wantStatus: 401, want: envelope{Code: 401, Message: "Unauthorized", Error: "Invalid or expired JWT token"}},
		{name: "no Authorization", body: map[string]any{"text": "hi"},
			wantStatus: 401, want: envelope{Code: 401, Message: "Unauthorized", Error: "Invalid or missing authentication"}},
		{name: "the key as a Bearer token is not the raw key", authorization: "Bearer " + gatewayKey, body: map[string]any{"text": "hi"},
			wantStatus: 401, want: envelope{Code: 401, Message: "Unauthorized", Error: "Invalid or expired JWT token"}},
		{name: "its number is disconnected", authorization: gatewayKey, body: map[string]any{"text": "hi"},
			prepare:    func(s *Server) { s.DisconnectAccount(account) },
			wantStatus: 500, want: envelope{Code: 500, Message: "Internal server error", Error: "Failed to send message"}},
		{name: "not a JID", authorization: gatewayKey, path: "/chats/hello/messages", body: map[string]any{"text": "hi"},
			wantStatus: 400, want: envelope{Code: 400, Message: "Bad request", Error: "Invalid chat JID: hello"}},
		{name: "another route", authorization: gatewayKey, path: "/messages", body: map[string]any{"text": "hi"},
			wantStatus: 404, want: envelope{Code: 404, Message: "Not found", Error: "no route for POST /messages"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := startGateway(t, Config{Accounts: []string{account}})
			if tt.prepare != nil {
				tt.prepare(s)
			}
			path := tt.path
			if path == "" {
				path = "/chats/6281234567890@s.whatsapp.net/messages"
			}
			r := callWithAuth(t, ts, "POST", path, tt.authorization, tt.body)
			got := r.envelope(t)
			data := got.Data
			got.Data = nil
			if r.status != tt.wantStatus || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("answer %d %+v, want %d %+v", r.status, got, tt.wantStatus, tt.want)
			}
			msgs := s.Messages()
			if tt.wantStatus != 200 {
				if len(msgs) != 0 {
					t.Errorf("a refused request recorded %+v", msgs)
				}
				return
			}
			if len(msgs) != 1 || data == nil || data.MessageID != msgs[0].UID || data.Status != "sent" || data.Timestamp != msgs[0].SentAt.Unix() {
				t.Fatalf("data %+v for recorded %+v", data, msgs)
			}
			if !strings.HasPrefix(data.MessageID, "3EB0") {
				t.Errorf("message_id %q does not look like WhatsApp's", data.MessageID)
			}
		})
	}
}

func TestGatewayRecordsWhatArrived(t *testing.T) {
	s, ts := startGateway(t, Config{Accounts: []string{"+14155550001"}, Credits: 0, Token: "Bearer the.jwt"})
	call := func(jid string, body map[string]any) {
		if r := callWithAuth(t, ts, "POST", "/chats/"+jid+"/messages", "Bearer the.jwt", body); r.status != 200 {
			t.Fatalf("send: %d %s", r.status, r.body)
		}
	}
	call("6281234567890@s.whatsapp.net", map[string]any{"text": "one", "reply_to_message_id": "3EB0X", "typing_simulation": false, "presence_simulation": true})
	call("120363012345678901@g.us", map[string]any{"text": "two"})

	yes, no := true, false
	got := s.Messages()
	if len(got) != 2 {
		t.Fatalf("%d messages recorded, want 2", len(got))
	}
	want := []Message{
		{JID: "6281234567890@s.whatsapp.net", Text: "one", ReplyTo: "3EB0X", TypingSimulation: &no, PresenceSimulation: &yes,
			Authorization: "Bearer the.jwt", Sender: "+14155550001", Recipient: "+6281234567890", Chat: 1},
		{JID: "120363012345678901@g.us", Text: "two", Authorization: "Bearer the.jwt", Sender: "+14155550001", Recipient: "120363012345678901@g.us", Chat: 2},
	}
	for i := range want {
		g := got[i]
		g.UID, g.ReceivedAt, g.SentAt, g.Status = "", time.Time{}, time.Time{}, ""
		if !reflect.DeepEqual(g, want[i]) {
			t.Errorf("message %d recorded as %+v, want %+v", i, g, want[i])
		}
	}
	// A gateway charges nothing, even with no credits configured, and its
	// key is not in the inspection endpoint's answer.
	if s.CreditsUsed() != 0 {
		t.Errorf("credits used %d, want 0", s.CreditsUsed())
	}
	if r := callWithAuth(t, ts, "GET", "/_sandbox/messages", "", nil); r.status != 200 || strings.Contains(string(r.body), "the.jwt") {
		t.Errorf("GET /_sandbox/messages: %d %s", r.status, r.body)
	}
}

func TestGatewayTypesBeforeItAnswers(t *testing.T) {
	clock := newClock()
	s, ts := startGateway(t, Config{TypingDelay: 30 * time.Millisecond, Now: clock.Now})
	for _, body := range []map[string]any{
		{"text": "typed"},
		{"text": "typed too", "typing_simulation": true},
		{"text": "at once", "typing_simulation": false},
	} {
		r := callWithAuth(t, ts, "POST", "/chats/14155550100@s.whatsapp.net/messages", gatewayKey, body)
		if r.status != 200 {
			t.Fatalf("send: %d %s", r.status, r.body)
		}
	}
	var typing []time.Duration
	for _, m := range s.Messages() {
		typing = append(typing, m.SentAt.Sub(m.ReceivedAt))
	}
	if want := []time.Duration{30 * time.Millisecond, 30 * time.Millisecond, 0}; !reflect.DeepEqual(typing, want) {
		t.Errorf("sent after %v, want %v", typing, want)
	}
	// Nothing paces a gateway: the messages are sent as they come.
	if got := s.Messages(); !got[2].SentAt.Equal(clock.Now()) {
		t.Errorf("third message sent at %v, want %v", got[2].SentAt, clock.Now())
	}
}

func TestGatewayFaults(t *testing.T) {
	t.Run("the page's 500 with code 400", func(t *testing.T) {
		s, ts := startGateway(t, Config{})
		s.Inject(Fault{Op: OpSend, Status: 500, Body: GatewayErrorBody(400, "Bad request", "Bad request"), Times: 1})
		r := callWithAuth(t, ts, "POST", "/chats/14155550100@s.whatsapp.net/messages", gatewayKey, map[string]any{"text": "hi"})
		if got := r.envelope(t); r.status != 500 || got != (envelope{Code: 400, Message: "Bad request", Error: "Bad request"}) {
			t.Errorf("answer %d %+v", r.status, got)
		}
		if len(s.Messages()) != 0 {
			t.Error("an unprocessed fault recorded a message")
		}
	})
	t.Run("processed, then the connection drops", func(t *testing.T) {
		s, ts := startGateway(t, Config{})
		s.Inject(Fault{Phone: "+14155550100", Process: true, Drop: true})
		req, _ := http.NewRequest("POST", ts.URL+"/chats/14155550100@s.whatsapp.net/messages", strings.NewReader(`{"text":"hi"}`))
		req.Header.Set("Authorization", gatewayKey)
		if resp, err := ts.Client().Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("got an answer %d, want none", resp.StatusCode)
		}
		if len(s.Messages()) != 1 {
			t.Errorf("%d messages recorded, want the processed one", len(s.Messages()))
		}
	})
	t.Run("the rate limit answers in the gateway's shape", func(t *testing.T) {
		_, ts := startGateway(t, Config{RateLimit: 1, RateBurst: 1, Now: newClock().Now})
		callWithAuth(t, ts, "POST", "/chats/14155550100@s.whatsapp.net/messages", gatewayKey, map[string]any{"text": "hi"})
		r := callWithAuth(t, ts, "POST", "/chats/14155550100@s.whatsapp.net/messages", gatewayKey, map[string]any{"text": "hi"})
		if got := r.envelope(t); r.status != 429 || got.Code != 429 || got.Status || r.header.Get("Retry-After") == "" {
			t.Errorf("answer %d %+v Retry-After %q", r.status, got, r.header.Get("Retry-After"))
		}
	})
}
