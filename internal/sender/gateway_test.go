package sender_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// gatewayKey is distinctive so that a leak into an error text is easy to spot.
const gatewayKey = "gw-key-5f1c2e8a-never-in-errors"

// The answers on the gateway's page (spec/gateway-send-chat-message.txt),
// verbatim.
const (
	spec200a = `{
  "code": 200,
  "data": {
    "status": "sent",
    "timestamp": 1702129024,
    "message_id": "3EB0ABC123DEF456789"
  },
  "status": true,
  "message": "Message sent successfully"
}`
	spec200b = `{
  "status": true,
  "code": 200,
  "message": "Message sent successfully",
  "data": {
    "message_id": "3EB0ABC123DEF456789",
    "status": "sent",
    "timestamp": 1702129024
  }
}`
	spec400a = `{"code": 400, "error": "Text field is required", "status": false, "message": "Bad request"}`
	spec400b = `{"status": false, "code": 400, "message": "Bad request", "error": "Bad request"}`
	spec401a = `{"code": 401, "error": "Invalid or expired JWT token", "status": false, "message": "Unauthorized"}`
	spec401b = `{"status": false, "code": 401, "message": "Unauthorized", "error": "Invalid or missing authentication"}`
	spec500a = `{"code": 500, "error": "Failed to send message", "status": false, "message": "Internal server error"}`
	spec500b = `{"status": false, "code": 400, "message": "Bad request", "error": "Bad request"}` // with HTTP 500
)

// gatewayFixture is a sandbox playing a gateway instance and a client of it.
type gatewayFixture struct {
	box     *sandbox.Server
	server  *httptest.Server
	client  *sender.Gateway
	limiter *countingLimiter
}

func newGatewayFixture(t *testing.T, cfg sandbox.Config, opts ...sender.Option) *gatewayFixture {
	t.Helper()
	cfg.Mode = sandbox.ModeGateway
	if cfg.Token == "" {
		cfg.Token = gatewayKey
	}
	if cfg.TypingDelay == 0 {
		cfg.TypingDelay = -1 // no typing unless the test wants it
	}
	box := sandbox.New(cfg)
	server := httptest.NewServer(box)
	t.Cleanup(server.Close)
	limiter := &countingLimiter{}
	opts = append([]sender.Option{sender.WithCallLimiter(limiter)}, opts...)
	return &gatewayFixture{box: box, server: server, client: sender.NewGateway(server.URL, cfg.Token, opts...), limiter: limiter}
}

// gatewayError asserts err is a *sender.Error in which no secret appears,
// and returns it.
func gatewayError(t *testing.T, err error, secrets ...string) *sender.Error {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	var pe *sender.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %T %v is not a *sender.Error", err, err)
	}
	for _, secret := range append(secrets, gatewayKey) {
		if secret == "" {
			continue
		}
		for _, text := range []string{err.Error(), pe.Reason(), fmt.Sprintf("%+v", pe), fmt.Sprint(errors.Unwrap(err))} {
			if strings.Contains(text, secret) {
				t.Errorf("a secret leaked into an error text: %s", text)
			}
		}
	}
	return pe
}

var hello = sender.Message{Phone: "+6281234567890", Text: "Hello, World!"}

func TestGatewayReadsEveryAnswerOfItsPage(t *testing.T) {
	specTime := time.Unix(1702129024, 0)
	tests := []struct {
		name       string
		status     int
		body       string
		wantKind   sender.Kind // 0: a receipt
		wantReason string
	}{
		{name: "200, first shape", status: 200, body: spec200a},
		{name: "200, second shape", status: 200, body: spec200b},
		{name: "400 Text field is required", status: 400, body: spec400a, wantKind: sender.Invalid, wantReason: "Text field is required"},
		{name: "400 Bad request", status: 400, body: spec400b, wantKind: sender.Invalid, wantReason: "Bad request"},
		{name: "401 Invalid or expired JWT token", status: 401, body: spec401a, wantKind: sender.AuthFailed, wantReason: "Invalid or expired JWT token"},
		{name: "401 Invalid or missing authentication", status: 401, body: spec401b, wantKind: sender.AuthFailed, wantReason: "Invalid or missing authentication"},
		{name: "500 Failed to send message: it may have gone out", status: 500, body: spec500a, wantKind: sender.Unconfirmed, wantReason: "Failed to send message"},
		{name: "500 carrying code 400: the HTTP status decides", status: 500, body: spec500b, wantKind: sender.Unconfirmed, wantReason: "Bad request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newGatewayFixture(t, sandbox.Config{})
			f.box.Inject(sandbox.Fault{Op: sandbox.OpSend, Status: tt.status, Body: tt.body})
			receipt, err := f.client.Send(context.Background(), hello)
			if tt.wantKind == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if receipt.MessageUID != "3EB0ABC123DEF456789" || receipt.Status != "sent" || !receipt.SentAt.Equal(specTime) || receipt.AnsweredAt.IsZero() {
					t.Errorf("receipt %+v, want 3EB0ABC123DEF456789, sent, at %v", receipt, specTime)
				}
				return
			}
			pe := gatewayError(t, err)
			if pe.Kind != tt.wantKind || pe.HTTPStatus != tt.status || pe.Op != sender.OpSend {
				t.Errorf("got %v HTTP %d op %q, want %v HTTP %d send (%v)", pe.Kind, pe.HTTPStatus, pe.Op, tt.wantKind, tt.status, err)
			}
			if pe.Reason() != tt.wantReason {
				t.Errorf("reason %q, want %q", pe.Reason(), tt.wantReason)
			}
		})
	}
}

func TestGatewayAgainstTheSandbox(t *testing.T) {
	const account = "+14155550001"
	t.Run("sent: the receipt is what the gateway recorded", func(t *testing.T) {
		f := newGatewayFixture(t, sandbox.Config{Accounts: []string{account}})
		receipt, err := f.client.Send(context.Background(), hello)
		if err != nil {
			t.Fatal(err)
		}
		got := f.box.Messages()
		if len(got) != 1 || got[0].UID != receipt.MessageUID || got[0].JID != "6281234567890@s.whatsapp.net" || got[0].Text != hello.Text {
			t.Fatalf("gateway recorded %+v for receipt %+v", got, receipt)
		}
		if got[0].Sender != account || got[0].Recipient != "+6281234567890" || got[0].Credits != 0 {
			t.Errorf("sender %q recipient %q credits %d", got[0].Sender, got[0].Recipient, got[0].Credits)
		}
		if receipt.Status != "sent" || receipt.SentAt.Unix() != got[0].SentAt.Unix() {
			t.Errorf("receipt %+v, gateway sent at %v", receipt, got[0].SentAt)
		}
		if f.limiter.calls.Load() != 1 {
			t.Errorf("%d limiter waits, want 1", f.limiter.calls.Load())
		}
	})

	tests := []struct {
		name         string
		cfg          sandbox.Config
		clientKey    string
		msg          sender.Message
		prepare      func(*gatewayFixture)
		opts         []sender.Option
		wantKind     sender.Kind
		wantStatus   int
		wantReason   string
		wantRecorded int
	}{
		{name: "blank text: 400 Text field is required", msg: sender.Message{Phone: hello.Phone, Text: "   "},
			wantKind: sender.Invalid, wantStatus: 400, wantReason: "Text field is required"},
		{name: "wrong key: 401", clientKey: "gw-key-wrong",
			wantKind: sender.AuthFailed, wantStatus: 401, wantReason: "Invalid or missing authentication"},
		{name: "wrong JWT: 401", cfg: sandbox.Config{Token: "Bearer jwt-right"}, clientKey: "Bearer jwt-wrong",
			wantKind: sender.AuthFailed, wantStatus: 401, wantReason: "Invalid or expired JWT token"},
		{name: "its number disconnected: 500, unconfirmed", cfg: sandbox.Config{Accounts: []string{account}},
			prepare:  func(f *gatewayFixture) { f.box.DisconnectAccount(account) },
			wantKind: sender.Unconfirmed, wantStatus: 500, wantReason: "Failed to send message"},
		{name: "429 with Retry-After", prepare: func(f *gatewayFixture) {
			f.box.Inject(sandbox.Fault{Status: 429, Body: sandbox.GatewayErrorBody(429, "Too many requests", "slow down"), Header: http.Header{"Retry-After": {"7"}}})
		}, wantKind: sender.RateLimited, wantStatus: 429, wantReason: "slow down"},
		{name: "timeout after the request was written: unconfirmed",
			prepare:  func(f *gatewayFixture) { f.box.Inject(sandbox.Fault{Process: true, Delay: time.Hour}) },
			opts:     []sender.Option{sender.WithTimeout(300 * time.Millisecond), sender.WithTypingAllowance(0)},
			wantKind: sender.Unconfirmed, wantRecorded: 1},
		{name: "connection reset after the request was written: unconfirmed",
			prepare:  func(f *gatewayFixture) { f.box.Inject(sandbox.Fault{Process: true, Drop: true}) },
			wantKind: sender.Unconfirmed, wantRecorded: 1},
		{name: "a 502 page from a proxy: unconfirmed", prepare: func(f *gatewayFixture) {
			f.box.Inject(sandbox.Fault{Status: 502, Body: "<html>Bad Gateway</html>", ContentType: "text/html"})
		}, wantKind: sender.Unconfirmed, wantStatus: 502, wantReason: "non-JSON answer (text/html"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newGatewayFixture(t, tt.cfg, tt.opts...)
			client := f.client
			if tt.clientKey != "" {
				client = sender.NewGateway(f.server.URL, tt.clientKey)
			}
			if tt.prepare != nil {
				tt.prepare(f)
			}
			msg := tt.msg
			if msg.Text == "" {
				msg = hello
			}
			_, err := client.Send(context.Background(), msg)
			pe := gatewayError(t, err, tt.clientKey, "jwt-right", "jwt-wrong")
			if pe.Kind != tt.wantKind || pe.HTTPStatus != tt.wantStatus {
				t.Errorf("got %v HTTP %d, want %v HTTP %d (%v)", pe.Kind, pe.HTTPStatus, tt.wantKind, tt.wantStatus, err)
			}
			if !strings.Contains(pe.Reason(), tt.wantReason) {
				t.Errorf("reason %q does not contain %q", pe.Reason(), tt.wantReason)
			}
			if tt.wantKind == sender.RateLimited && pe.RetryAfter != 7*time.Second {
				t.Errorf("RetryAfter %v, want 7s", pe.RetryAfter)
			}
			f.server.Close() // waits for handlers still delaying
			if n := len(f.box.Messages()); n != tt.wantRecorded {
				t.Errorf("gateway recorded %d messages, want %d", n, tt.wantRecorded)
			}
		})
	}

	t.Run("connection refused: transient", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, err = sender.NewGateway("http://"+addr, gatewayKey).Send(context.Background(), hello)
		if pe := gatewayError(t, err); pe.Kind != sender.Transient || !strings.Contains(pe.Message, "not sent") {
			t.Errorf("got %v %q, want Transient, not sent", pe.Kind, pe.Message)
		}
	})
}

func TestGatewayRequestOnTheWire(t *testing.T) {
	yes, no := true, false
	for _, key := range []string{gatewayKey, "Bearer eyJhbGciOi.jwt.sig"} {
		t.Run(key[:6], func(t *testing.T) {
			f := newGatewayFixture(t, sandbox.Config{Token: key})
			hooked := 0
			ctx := sender.BeforeDispatch(context.Background(), func(context.Context) error { hooked++; return nil })
			msgs := []sender.Message{
				{Phone: "+62 812-3456-7890", Text: "one", ReplyTo: "3EB0PREVIOUS", TypingSimulation: &no, PresenceSimulation: &yes},
				{JID: "120363012345678901@g.us", Text: "two"},
				{JID: "14155550100@s.whatsapp.net", Text: "three", TypingSimulation: &yes},
			}
			for _, m := range msgs {
				if _, err := f.client.Send(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			got := f.box.Messages()
			if len(got) != 3 || hooked != 3 {
				t.Fatalf("%d messages recorded, dispatch hook ran %d times; want 3 and 3", len(got), hooked)
			}
			type wire struct {
				auth, jid, text, replyTo string
				typing, presence         *bool
			}
			want := []wire{
				{key, "6281234567890@s.whatsapp.net", "one", "3EB0PREVIOUS", &no, &yes},
				{key, "120363012345678901@g.us", "two", "", nil, nil}, // unset flags are left to the gateway
				{key, "14155550100@s.whatsapp.net", "three", "", &yes, nil},
			}
			for i, m := range got {
				if g := (wire{m.Authorization, m.JID, m.Text, m.ReplyTo, m.TypingSimulation, m.PresenceSimulation}); !reflect.DeepEqual(g, want[i]) {
					t.Errorf("message %d arrived as %+v, want %+v", i, g, want[i])
				}
			}
		})
	}
}

func TestGatewayRefusesWhatItCannotSend(t *testing.T) {
	tests := []struct {
		name       string
		msg        sender.Message
		wantFields [][]string
	}{
		{"a chat id", sender.Message{ChatID: 12, Text: "hi"}, [][]string{{"chat_id"}}},
		{"an attachment", sender.Message{Phone: "+14155550100", Text: "hi", FileUID: "f"}, [][]string{{"file_uid", "attachment_template_id"}}},
		{"a label and a chat name", sender.Message{Phone: "+14155550100", Text: "hi", Label: "l", ChatName: "c"}, [][]string{{"label"}, {"chat_name"}}},
		{"no text", sender.Message{Phone: "+14155550100"}, [][]string{{"text"}}},
		{"a phone without its country code", sender.Message{Phone: "4155550100", Text: "hi"}, [][]string{{"phone"}}},
		{"a JID without a server", sender.Message{JID: "14155550100", Text: "hi"}, [][]string{{"jid"}}},
		{"text over 65536 characters", sender.Message{Phone: "+14155550100", Text: strings.Repeat("é", 65537)}, [][]string{{"text"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newGatewayFixture(t, sandbox.Config{})
			_, err := f.client.Send(context.Background(), tt.msg)
			pe := gatewayError(t, err)
			var names [][]string
			for _, fe := range pe.Fields {
				names = append(names, fe.Fields)
			}
			if pe.Kind != sender.Invalid || !reflect.DeepEqual(names, tt.wantFields) {
				t.Errorf("got %v fields %v, want Invalid %v", pe.Kind, names, tt.wantFields)
			}
			if n := f.limiter.calls.Load(); n != 0 || len(f.box.Answers()) != 0 {
				t.Errorf("a refused message made %d requests", n)
			}
		})
	}
}

func TestGatewayKeyNeverInErrors(t *testing.T) {
	const jwt = "eyJhbGciOiJIUzI1NiJ9.secret-claims.sig"
	// The key, and for "Bearer <jwt>" the JWT alone too, are secrets.
	for _, key := range []string{gatewayKey, "Bearer " + jwt} {
		credential := key[strings.LastIndex(key, " ")+1:]
		for _, fault := range []sandbox.Fault{
			{Status: 400, Body: sandbox.GatewayErrorBody(400, "Bad request", "bad header "+key)},
			{Status: 401, Body: sandbox.GatewayErrorBody(401, "Unauthorized", "token "+credential+" expired")},
			{Status: 500, Body: "panic: Authorization: " + key},
			{Status: 200, Body: `{"status":false,"code":500,"message":"` + key + `"}`},
		} {
			f := newGatewayFixture(t, sandbox.Config{Token: key})
			f.box.Inject(fault)
			_, err := f.client.Send(context.Background(), hello)
			gatewayError(t, err, key, credential) // fails the test on a leak
		}
	}
}

func TestGatewayLongTypingDoesNotTimeOut(t *testing.T) {
	// The gateway "types" for 3 s before it answers; a request may take 1 s.
	cfg := sandbox.Config{TypingDelay: 3 * time.Second}
	t.Run("with the typing allowance: sent", func(t *testing.T) {
		t.Parallel()
		f := newGatewayFixture(t, cfg, sender.WithTimeout(time.Second), sender.WithTypingAllowance(10*time.Second))
		receipt, err := f.client.Send(context.Background(), hello)
		if err != nil {
			t.Fatalf("a long typing simulation failed the send: %v", err)
		}
		got := f.box.Messages()
		if len(got) != 1 || got[0].UID != receipt.MessageUID || got[0].SentAt.Sub(got[0].ReceivedAt) != 3*time.Second {
			t.Errorf("gateway recorded %+v for %+v; want it sent 3s after it arrived", got, receipt)
		}
	})
	t.Run("without it: the answer is lost and the send unconfirmed", func(t *testing.T) {
		t.Parallel()
		f := newGatewayFixture(t, cfg, sender.WithTimeout(time.Second), sender.WithTypingAllowance(0))
		_, err := f.client.Send(context.Background(), hello)
		if pe := gatewayError(t, err); pe.Kind != sender.Unconfirmed || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v (%v), want Unconfirmed after the deadline", pe.Kind, err)
		}
	})
	t.Run("typing off: no typing time", func(t *testing.T) {
		t.Parallel()
		off := false
		f := newGatewayFixture(t, cfg, sender.WithTimeout(time.Second), sender.WithTypingAllowance(0))
		if _, err := f.client.Send(context.Background(), sender.Message{Phone: hello.Phone, Text: "quick", TypingSimulation: &off}); err != nil {
			t.Fatal(err)
		}
		if got := f.box.Messages(); len(got) != 1 || !got[0].SentAt.Equal(got[0].ReceivedAt) {
			t.Errorf("recorded %+v; want it sent the moment it arrived", got)
		}
	})
}

func TestGatewayHasNoQuotaNorStatuses(t *testing.T) {
	router, err := sender.NewGatewayRouter(sender.GatewayRoutes{Default: "http://127.0.0.1:1"}, gatewayKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []sender.Provider{sender.NewGateway("http://127.0.0.1:1", gatewayKey), router} {
		if _, err := p.Quota(context.Background()); !errors.Is(err, sender.ErrNotSupported) {
			t.Errorf("%T.Quota: %v, want ErrNotSupported", p, err)
		}
		if _, err := p.StatusHistory(context.Background(), "3EB0"); !errors.Is(err, sender.ErrNotSupported) {
			t.Errorf("%T.StatusHistory: %v, want ErrNotSupported", p, err)
		}
		if _, ok := p.(sender.MessageFinder); ok {
			t.Errorf("%T looks messages up, but the gateway cannot", p)
		}
	}
}
