package sender_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// token is distinctive so that a leak into an error text is easy to spot.
const token = "tl-token-7d3e91c4-never-in-errors"

// clock is a sandbox clock the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingLimiter counts Wait calls and can refuse.
type countingLimiter struct {
	calls atomic.Int64
	err   error
}

func (l *countingLimiter) Wait(context.Context) error {
	l.calls.Add(1)
	return l.err
}

// fixture is a sandbox behind a loopback server and a client pointed at it.
type fixture struct {
	box     *sandbox.Server
	server  *httptest.Server
	client  *sender.Timelines
	limiter *countingLimiter
}

func newFixture(t *testing.T, cfg sandbox.Config, opts ...sender.TimelinesOption) *fixture {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = token
	}
	box := sandbox.New(cfg)
	server := httptest.NewServer(box)
	t.Cleanup(server.Close)
	limiter := &countingLimiter{}
	opts = append([]sender.TimelinesOption{sender.WithBaseURL(server.URL + "/"), sender.WithCallLimiter(limiter)}, opts...)
	return &fixture{box: box, server: server, client: sender.NewTimelines(token, opts...), limiter: limiter}
}

// providerError asserts err is a *sender.Error without the token in any of
// its texts, and returns it.
func providerError(t *testing.T, err error) *sender.Error {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	var pe *sender.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %T %v is not a *sender.Error", err, err)
	}
	for _, text := range []string{err.Error(), pe.Reason(), fmt.Sprintf("%+v", pe), fmt.Sprint(errors.Unwrap(err))} {
		if strings.Contains(text, token) {
			t.Errorf("the token leaked into an error text: %s", text)
		}
	}
	return pe
}

func TestSendRecordsTheMessage(t *testing.T) {
	const account = "+14155550001"
	tests := []struct {
		name string
		msg  sender.Message
		want sandbox.Message // the fields the provider received
	}{
		{
			name: "to a phone, every field",
			msg: sender.Message{
				Phone: "+14155550100", AccountPhone: account, Text: "Hello Ann ✓", FileUID: "file-1",
				AttachmentTemplateID: 77, Label: "spring-sale", ChatName: "Ann",
			},
			want: sandbox.Message{
				Phone: "+14155550100", AccountPhone: account, Text: "Hello Ann ✓", FileUID: "file-1",
				AttachmentTemplateID: 77, Label: "spring-sale", ChatName: "Ann", Credits: 2,
			},
		},
		{
			name: "to a phone, text only, account left to the provider",
			msg:  sender.Message{Phone: "+14155550100", Text: "hi"},
			want: sandbox.Message{Phone: "+14155550100", Text: "hi", Credits: 1},
		},
		{
			name: "to an existing chat: no account phone on the wire",
			msg:  sender.Message{ChatID: 1, AccountPhone: account, Text: "again", ReplyTo: "$first", Label: "l"},
			want: sandbox.Message{ChatID: 1, Text: "again", ReplyTo: "$first", Label: "l", Credits: 1},
		},
		{
			name: "to a JID",
			msg:  sender.Message{JID: "14155550100@s.whatsapp.net", AccountPhone: account, FileUID: "f", ReplyTo: "$first", ChatName: "c"},
			want: sandbox.Message{JID: "14155550100@s.whatsapp.net", AccountPhone: account, FileUID: "f", ReplyTo: "$first", ChatName: "c", Credits: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, sandbox.Config{Credits: 10, Accounts: []string{account}})
			first, err := f.client.Send(context.Background(), sender.Message{Phone: "+14155550100", Text: "first"})
			if err != nil {
				t.Fatal(err)
			}
			if tt.msg.ReplyTo == "$first" {
				tt.msg.ReplyTo, tt.want.ReplyTo = first.MessageUID, first.MessageUID
			}

			receipt, err := f.client.Send(context.Background(), tt.msg)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := f.box.Messages()
			if len(msgs) != 2 {
				t.Fatalf("sandbox recorded %d messages, want 2", len(msgs))
			}
			got := msgs[1]
			if got.UID != receipt.MessageUID {
				t.Errorf("receipt UID %q, sandbox gave %q", receipt.MessageUID, got.UID)
			}
			sent := sandbox.Message{
				Phone: got.Phone, ChatID: got.ChatID, JID: got.JID, AccountPhone: got.AccountPhone, Text: got.Text,
				FileUID: got.FileUID, AttachmentTemplateID: got.AttachmentTemplateID, Label: got.Label,
				ChatName: got.ChatName, ReplyTo: got.ReplyTo, Credits: got.Credits,
			}
			if !reflect.DeepEqual(sent, tt.want) {
				t.Errorf("sandbox received\n%+v\nwant\n%+v", sent, tt.want)
			}
			if want := sender.TimelinesCapabilities().Credits(tt.msg); got.Credits != want {
				t.Errorf("sandbox charged %d, the TimelinesAI capabilities say %d", got.Credits, want)
			}
		})
	}
}

// errorCase is one row of DESIGN.md's error table, provoked in the sandbox.
type errorCase struct {
	name        string
	cfg         sandbox.Config
	clientToken string
	opts        []sender.TimelinesOption
	prepare     func(t *testing.T, f *fixture)
	msg         sender.Message // default: a valid text to +14155550100

	wantKind       sender.Kind
	wantStatus     int
	wantCode       string
	wantRetryAfter time.Duration
	wantFields     [][]string // when set, the Fields' names
	wantMessage    string     // part of Message
	wantRecorded   int        // messages the sandbox accepted
}

func TestSendErrors(t *testing.T) {
	fixed := newClock()
	jsonError := func(code, message string) string {
		return fmt.Sprintf(`{"status":"error","message":%q,"error_code":%q}`, message, code)
	}
	useUpTheBurst := func(t *testing.T, f *fixture) {
		if _, err := f.client.Quota(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	burst := func(extra sandbox.Config) sandbox.Config {
		extra.RateLimit, extra.RateBurst, extra.Now, extra.Credits = 1, 1, fixed.Now, 10
		return extra
	}
	inject := func(f sandbox.Fault) func(*testing.T, *fixture) {
		return func(_ *testing.T, fx *fixture) { fx.box.Inject(f) }
	}

	tests := []errorCase{
		{
			name: "400 validation_error: the provider's fields and msg", msg: sender.Message{Phone: "+12 34", Text: "hi"},
			wantKind: sender.Invalid, wantStatus: 400, wantCode: "validation_error", wantFields: [][]string{{"phone"}}, wantMessage: "Validation",
		},
		{
			name: "400 validation_error: account not in the workspace", cfg: sandbox.Config{Accounts: []string{"+14155550001"}},
			msg:      sender.Message{Phone: "+14155550100", Text: "hi", AccountPhone: "+14155550009"},
			wantKind: sender.Invalid, wantStatus: 400, wantCode: "validation_error", wantFields: [][]string{{"whatsapp_account_phone"}},
		},
		{
			name: "401 invalid_token (JSON)", cfg: sandbox.Config{JSON401: true}, clientToken: "wrong-" + token,
			wantKind: sender.AuthFailed, wantStatus: 401, wantCode: "invalid_token",
		},
		{
			name: "401 plain text (the default)", clientToken: "wrong",
			wantKind: sender.AuthFailed, wantStatus: 401, wantMessage: "Unauthorized",
		},
		{
			name: "403 quota_exceeded", cfg: sandbox.Config{Credits: -1},
			wantKind: sender.QuotaExceeded, wantStatus: 403, wantCode: "quota_exceeded",
		},
		{
			name:     "403 permission_denied",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 403, Body: jsonError("permission_denied", "Access denied")}),
			wantKind: sender.Forbidden, wantStatus: 403, wantCode: "permission_denied", wantMessage: "Access denied",
		},
		{
			name:     "403 plan_feature_unavailable",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 403, Body: jsonError("plan_feature_unavailable", "Not on your plan")}),
			wantKind: sender.Forbidden, wantStatus: 403, wantCode: "plan_feature_unavailable",
		},
		{
			name:     "403 JSON without error_code",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 403, Body: `{"status":"error","message":"Access denied"}`}),
			wantKind: sender.Forbidden, wantStatus: 403, wantMessage: "Access denied",
		},
		{
			name: "403 HTML page from the CDN during a burst", cfg: burst(sandbox.Config{BurstAs403: true}), prepare: useUpTheBurst,
			wantKind: sender.RateLimited, wantStatus: 403, wantMessage: "non-JSON answer (text/html",
		},
		{
			name:     "403 rate_limit_exceeded",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 403, Body: jsonError("rate_limit_exceeded", "slow down")}),
			wantKind: sender.RateLimited, wantStatus: 403, wantCode: "rate_limit_exceeded",
		},
		{
			name: "429 without Retry-After", cfg: burst(sandbox.Config{}), prepare: useUpTheBurst,
			wantKind: sender.RateLimited, wantStatus: 429, wantCode: "rate_limit_exceeded",
		},
		{
			name: "429 with Retry-After in seconds", cfg: burst(sandbox.Config{RetryAfter: true}), prepare: useUpTheBurst,
			wantKind: sender.RateLimited, wantStatus: 429, wantCode: "rate_limit_exceeded", wantRetryAfter: time.Second,
		},
		{
			name: "429 with Retry-After as an HTTP-date", cfg: sandbox.Config{Now: fixed.Now},
			prepare: inject(sandbox.Fault{Op: sandbox.OpSend, Status: 429, Body: jsonError("rate_limit_exceeded", "later"),
				Header: http.Header{"Retry-After": {fixed.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)}}}),
			wantKind: sender.RateLimited, wantStatus: 429, wantCode: "rate_limit_exceeded", wantRetryAfter: 2 * time.Minute,
		},
		{
			name:     "429 with an unreadable Retry-After",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 429, Body: "Too Many Requests", Header: http.Header{"Retry-After": {"soon"}}}),
			wantKind: sender.RateLimited, wantStatus: 429, wantMessage: "Too Many Requests",
		},
		{
			name:     "400 with quota_exceeded: error_code wins",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 400, Body: jsonError("quota_exceeded", "no credits")}),
			wantKind: sender.QuotaExceeded, wantStatus: 400, wantCode: "quota_exceeded",
		},
		{
			name:     "other 4xx",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 422, Body: `{"status":"error","message":"unprocessable"}`}),
			wantKind: sender.Invalid, wantStatus: 422,
		},
		{
			name:     "408: the provider gave up before processing",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 408, Body: "Request Timeout"}),
			wantKind: sender.Transient, wantStatus: 408,
		},
		{
			name: "404 unknown chat", msg: sender.Message{ChatID: 99, Text: "hi"},
			wantKind: sender.NotFound, wantStatus: 404, wantMessage: "Chat not found",
		},
		{
			name:     "500 internal_error before processing: the client cannot tell, so unconfirmed",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 500, Body: jsonError("internal_error", "oops")}),
			wantKind: sender.Unconfirmed, wantStatus: 500, wantCode: "internal_error", wantMessage: "oops",
		},
		{
			name:     "500 internal_error after the message was accepted",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 500, Body: jsonError("internal_error", "oops"), Process: true}),
			wantKind: sender.Unconfirmed, wantStatus: 500, wantCode: "internal_error", wantRecorded: 1,
		},
		{
			name:     "504 with the provider's error body, no code",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 504, Body: `{"status":"error","message":"try again"}`}),
			wantKind: sender.Unconfirmed, wantStatus: 504, wantMessage: "try again",
		},
		{
			name:     "503 with the provider's rate_limit_exceeded: a 5xx to a send is unconfirmed whatever its code",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 503, Body: jsonError("rate_limit_exceeded", "busy")}),
			wantKind: sender.Unconfirmed, wantStatus: 503, wantCode: "rate_limit_exceeded",
		},
		{
			name:     "503 HTML after the message was accepted",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 503, Body: "<html>maintenance</html>", ContentType: "text/html", Process: true}),
			wantKind: sender.Unconfirmed, wantStatus: 503, wantMessage: "non-JSON answer (text/html", wantRecorded: 1,
		},
		{
			name:     "502 HTML from the proxy after the message was accepted",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 502, Body: "<html><h1>502 Bad Gateway</h1></html>", ContentType: "text/html", Process: true}),
			wantKind: sender.Unconfirmed, wantStatus: 502, wantRecorded: 1,
		},
		{
			name:     "502 plain text from the proxy",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 502, Body: "Bad Gateway"}),
			wantKind: sender.Unconfirmed, wantStatus: 502, wantMessage: "Bad Gateway",
		},
		{
			name:     "500 with a plain body: the provider may have crashed after accepting",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 500, Body: "Internal Server Error", Process: true}),
			wantKind: sender.Unconfirmed, wantStatus: 500, wantRecorded: 1,
		},
		{
			name:     "504 from a gateway whose JSON is not the provider's",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 504, Body: `{"message":"Endpoint request timed out"}`, Process: true}),
			wantKind: sender.Unconfirmed, wantStatus: 504, wantMessage: "Endpoint request timed out", wantRecorded: 1,
		},
		{
			name:     "2xx with internal_error: nothing says what the provider did",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 200, Body: jsonError("internal_error", "oops")}),
			wantKind: sender.Unconfirmed, wantStatus: 200, wantCode: "internal_error",
		},
		{
			name:     "2xx without message_uid",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 200, Body: `{"status":"ok","data":{}}`, Process: true}),
			wantKind: sender.Unconfirmed, wantStatus: 200, wantRecorded: 1,
		},
		{
			name:     "2xx with an error envelope",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 200, Body: jsonError("quota_exceeded", "none left")}),
			wantKind: sender.QuotaExceeded, wantStatus: 200, wantCode: "quota_exceeded",
		},
		{
			name:     "2xx with a body over 1 MiB",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Status: 200, Body: `{"status":"ok","data":{"message_uid":"u"},"pad":"` + strings.Repeat("x", 2<<20) + `"}`}),
			wantKind: sender.Unconfirmed, wantStatus: 200,
		},
		{
			name: "slow answer after the message was accepted", opts: []sender.TimelinesOption{sender.WithTimeout(300 * time.Millisecond)},
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Process: true, Delay: time.Hour}),
			wantKind: sender.Unconfirmed, wantMessage: "may have been processed", wantRecorded: 1,
		},
		{
			name:     "connection dropped after the message was accepted",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Process: true, Drop: true}),
			wantKind: sender.Unconfirmed, wantRecorded: 1,
		},
		{
			// The client cannot tell this from the row above: the request
			// was written and no answer came. Unknown is the safe answer.
			name:     "connection dropped before processing",
			prepare:  inject(sandbox.Fault{Op: sandbox.OpSend, Drop: true}),
			wantKind: sender.Unconfirmed, wantRecorded: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runErrorCase(t, tt) })
	}
}

func TestUnconfirmedIsNamedSo(t *testing.T) {
	// Logs, metrics and recipient records show this name.
	if got := sender.Unconfirmed.String(); got != "unconfirmed" {
		t.Errorf("Unconfirmed.String() = %q", got)
	}
}

func runErrorCase(t *testing.T, tt errorCase) {
	t.Helper()
	if tt.cfg.Credits == 0 {
		tt.cfg.Credits = 10
	}
	if tt.cfg.Credits < 0 {
		tt.cfg.Credits = 0
	}
	f := newFixture(t, tt.cfg, tt.opts...)
	client := f.client
	if tt.clientToken != "" {
		client = sender.NewTimelines(tt.clientToken, append([]sender.TimelinesOption{sender.WithBaseURL(f.server.URL)}, tt.opts...)...)
	}
	if tt.prepare != nil {
		tt.prepare(t, f)
	}
	msg := tt.msg
	if msg == (sender.Message{}) {
		msg = sender.Message{Phone: "+14155550100", Text: "hi"}
	}

	receipt, err := client.Send(context.Background(), msg)
	if err == nil {
		t.Fatalf("Send succeeded with %+v", receipt)
	}
	pe := providerError(t, err)
	if pe.Kind != tt.wantKind || pe.HTTPStatus != tt.wantStatus || pe.Code != tt.wantCode {
		t.Errorf("got %v / HTTP %d / code %q, want %v / HTTP %d / code %q (%v)",
			pe.Kind, pe.HTTPStatus, pe.Code, tt.wantKind, tt.wantStatus, tt.wantCode, err)
	}
	if kind, ok := sender.KindOf(fmt.Errorf("wrapped: %w", err)); !ok || kind != tt.wantKind {
		t.Errorf("KindOf through wrapping = %v, %v", kind, ok)
	}
	if pe.Op != sender.OpSend {
		t.Errorf("Op %q, want %q", pe.Op, sender.OpSend)
	}
	if !strings.Contains(err.Error(), tt.wantKind.String()) {
		t.Errorf("error text %q does not name its kind %q", err, tt.wantKind)
	}
	if pe.RetryAfter != tt.wantRetryAfter {
		t.Errorf("RetryAfter %v, want %v", pe.RetryAfter, tt.wantRetryAfter)
	}
	if tt.wantFields != nil {
		var names [][]string
		for _, fe := range pe.Fields {
			names = append(names, fe.Fields)
			if fe.Msg == "" {
				t.Errorf("field error %v without msg", fe.Fields)
			}
		}
		if !reflect.DeepEqual(names, tt.wantFields) {
			t.Errorf("fields %v, want %v", names, tt.wantFields)
		}
		if !strings.Contains(pe.Reason(), pe.Fields[0].Msg) {
			t.Errorf("Reason %q lacks the provider's msg", pe.Reason())
		}
	}
	if !strings.Contains(pe.Message, tt.wantMessage) {
		t.Errorf("Message %q does not contain %q", pe.Message, tt.wantMessage)
	}
	f.server.Close() // waits for handlers still delaying
	if n := len(f.box.Messages()); n != tt.wantRecorded {
		t.Errorf("sandbox accepted %d messages, want %d", n, tt.wantRecorded)
	}
}

func TestReadErrors(t *testing.T) {
	// GETs are safe to repeat: every failure to get an answer is Transient.
	tests := []struct {
		name     string
		fault    sandbox.Fault
		wantKind sender.Kind
	}{
		{"500 plain body", sandbox.Fault{Status: 500, Body: "Internal Server Error"}, sender.Transient},
		{"500 internal_error", sandbox.Fault{Status: 500, Body: `{"status":"error","message":"oops","error_code":"internal_error"}`}, sender.Transient},
		{"502 HTML", sandbox.Fault{Status: 502, Body: "<html>bad gateway</html>", ContentType: "text/html"}, sender.Transient},
		{"503 HTML", sandbox.Fault{Status: 503, Body: "<html>maintenance</html>", ContentType: "text/html"}, sender.Transient},
		{"504 plain body", sandbox.Fault{Status: 504, Body: "Gateway Timeout"}, sender.Transient},
		{"dropped connection", sandbox.Fault{Drop: true}, sender.Transient},
		{"401 plain", sandbox.Fault{Status: 401, Body: "Unauthorized"}, sender.AuthFailed},
		{"403 HTML", sandbox.Fault{Status: 403, Body: "<html>blocked</html>", ContentType: "text/html"}, sender.RateLimited},
		{"429", sandbox.Fault{Status: 429, Body: `{"status":"error","message":"x","error_code":"rate_limit_exceeded"}`}, sender.RateLimited},
		{"unreadable 200", sandbox.Fault{Status: 200, Body: "<html>ok</html>"}, sender.Transient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, sandbox.Config{Credits: 10})
			receipt, err := f.client.Send(context.Background(), sender.Message{Phone: "+14155550100", Text: "hi"})
			if err != nil {
				t.Fatal(err)
			}
			f.box.Inject(tt.fault)

			_, err = f.client.Quota(context.Background())
			if pe := providerError(t, err); pe.Kind != tt.wantKind || pe.Op != sender.OpQuota {
				t.Errorf("Quota: %v (%s), want %v", pe.Kind, err, tt.wantKind)
			}
			_, err = f.client.StatusHistory(context.Background(), receipt.MessageUID)
			if pe := providerError(t, err); pe.Kind != tt.wantKind || pe.Op != sender.OpStatusHistory {
				t.Errorf("StatusHistory: %v (%s), want %v", pe.Kind, err, tt.wantKind)
			}
		})
	}
}

func TestTransportErrors(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		client := sender.NewTimelines(token, sender.WithBaseURL("http://"+addr))
		_, err = client.Send(context.Background(), sender.Message{Phone: "+14155550100", Text: "hi"})
		if pe := providerError(t, err); pe.Kind != sender.Transient || pe.HTTPStatus != 0 || !strings.Contains(pe.Message, "not sent") {
			t.Errorf("got %v %q, want Transient, not sent", pe.Kind, pe.Message)
		}
	})

	t.Run("context cancelled before writing", func(t *testing.T) {
		f := newFixture(t, sandbox.Config{Credits: 10})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := f.client.Send(ctx, sender.Message{Phone: "+14155550100", Text: "hi"})
		pe := providerError(t, err)
		if pe.Kind != sender.Transient || !errors.Is(err, context.Canceled) {
			t.Errorf("got %v (%v), want Transient wrapping context.Canceled", pe.Kind, err)
		}
		if len(f.box.Messages()) != 0 {
			t.Error("sandbox recorded a message that was never sent")
		}
	})

	t.Run("caller's deadline while waiting for the answer", func(t *testing.T) {
		f := newFixture(t, sandbox.Config{Credits: 10})
		f.box.Inject(sandbox.Fault{Op: sandbox.OpSend, Process: true, Delay: time.Hour})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := f.client.Send(ctx, sender.Message{Phone: "+14155550100", Text: "hi"})
		pe := providerError(t, err)
		if pe.Kind != sender.Unconfirmed || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v (%v), want Unconfirmed wrapping DeadlineExceeded", pe.Kind, err)
		}
	})

	t.Run("redirects are not followed", func(t *testing.T) {
		var hits atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}))
		defer srv.Close()
		client := sender.NewTimelines(token, sender.WithBaseURL(srv.URL))
		_, err := client.Send(context.Background(), sender.Message{Phone: "+14155550100", Text: "hi"})
		if pe := providerError(t, err); pe.Kind != sender.Transient || pe.HTTPStatus != http.StatusTemporaryRedirect || hits.Load() != 1 {
			t.Errorf("got %v HTTP %d after %d requests", pe.Kind, pe.HTTPStatus, hits.Load())
		}
	})
}

func TestLocalValidation(t *testing.T) {
	tests := []struct {
		name       string
		msg        sender.Message
		wantFields [][]string
	}{
		{"no address", sender.Message{Text: "hi"}, [][]string{{"phone", "chat_id", "jid"}}},
		{"two addresses", sender.Message{Phone: "+14155550100", JID: "1@s.whatsapp.net", Text: "hi"}, [][]string{{"phone", "chat_id", "jid"}}},
		{"negative chat id", sender.Message{ChatID: -3, Text: "hi"}, [][]string{{"chat_id"}}},
		{"text of 2001 code points", sender.Message{Phone: "+14155550100", Text: strings.Repeat("ü", 2001)}, [][]string{{"text"}}},
		{"label of 65", sender.Message{Phone: "+14155550100", Text: "hi", Label: strings.Repeat("x", 65)}, [][]string{{"label"}}},
		{"chat_name of 257", sender.Message{Phone: "+14155550100", Text: "hi", ChatName: strings.Repeat("日", 257)}, [][]string{{"chat_name"}}},
		{"no content", sender.Message{Phone: "+14155550100"}, [][]string{{"text", "file_uid", "attachment_template_id"}}},
		{"reply_to with a phone", sender.Message{Phone: "+14155550100", Text: "hi", ReplyTo: "u"}, [][]string{{"reply_to"}}},
		{"everything wrong", sender.Message{Label: strings.Repeat("x", 65)}, [][]string{{"phone", "chat_id", "jid"}, {"label"}, {"text", "file_uid", "attachment_template_id"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, sandbox.Config{Credits: 10})
			_, err := f.client.Send(context.Background(), tt.msg)
			pe := providerError(t, err)
			if pe.Kind != sender.Invalid || pe.HTTPStatus != 0 {
				t.Errorf("got %v HTTP %d, want Invalid without a request", pe.Kind, pe.HTTPStatus)
			}
			var names [][]string
			for _, fe := range pe.Fields {
				names = append(names, fe.Fields)
			}
			if !reflect.DeepEqual(names, tt.wantFields) {
				t.Errorf("fields %v, want %v", names, tt.wantFields)
			}
			if n := f.limiter.calls.Load(); n != 0 || len(f.box.Answers()) != 0 {
				t.Errorf("a locally invalid message made %d limiter calls and answers %v", n, f.box.Answers())
			}
		})
	}

	// The limits are inclusive: the longest allowed values go out.
	f := newFixture(t, sandbox.Config{Credits: 10})
	_, err := f.client.Send(context.Background(), sender.Message{
		Phone: "+14155550100", Text: strings.Repeat("ü", 2000), Label: strings.Repeat("x", 64), ChatName: strings.Repeat("日", 256),
	})
	if err != nil {
		t.Errorf("longest allowed message refused: %v", err)
	}
}

func TestQuota(t *testing.T) {
	f := newFixture(t, sandbox.Config{Credits: 100, NonRecurringCredits: 7, APICalls: 500, Now: newClock().Now})
	if _, err := f.client.Send(context.Background(), sender.Message{Phone: "+14155550100", Text: "hi", FileUID: "f"}); err != nil {
		t.Fatal(err)
	}
	q, err := f.client.Quota(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	periodEnd := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	want := sender.Quota{
		MessagingTotal: 100, MessagingUsed: 2, MessagingPeriodEnd: periodEnd, NonRecurringBalance: 7,
		APICallsTotal: 500, APICallsUsed: 2, APICallsPeriodEnd: periodEnd,
	}
	if !q.MessagingPeriodEnd.Equal(periodEnd) || !q.APICallsPeriodEnd.Equal(periodEnd) {
		t.Errorf("period ends %v, %v; want %v", q.MessagingPeriodEnd, q.APICallsPeriodEnd, periodEnd)
	}
	q.MessagingPeriodEnd, q.APICallsPeriodEnd = want.MessagingPeriodEnd, want.APICallsPeriodEnd
	if q != want {
		t.Errorf("quota\n%+v\nwant\n%+v", q, want)
	}
	if q.CreditsRemaining() != 105 {
		t.Errorf("CreditsRemaining %d, want 105", q.CreditsRemaining())
	}
}

func TestQuotaTolerantParsing(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	f.box.Inject(sandbox.Fault{Op: sandbox.OpQuota, Status: 200, Body: `{"status":"ok","data":{
		"messaging_quota":{"total":"10","used":3.0,"period_end":"2025-02-22T00:00:00+01:00"},
		"api_calls_quota":{"total":null,"used":1,"period_end":"sometime"},
		"non_recurring_quota":{"remaining_balance":50,"last_updated_at":"2025-02-22 00:00:00 +0100"}}}`})
	q, err := f.client.Quota(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if q.MessagingTotal != 10 || q.MessagingUsed != 3 || q.NonRecurringBalance != 50 || q.APICallsTotal != 0 || q.APICallsUsed != 1 {
		t.Errorf("quota %+v", q)
	}
	if !q.MessagingPeriodEnd.Equal(time.Date(2025, 2, 21, 23, 0, 0, 0, time.UTC)) || !q.APICallsPeriodEnd.IsZero() {
		t.Errorf("period ends %v, %v", q.MessagingPeriodEnd, q.APICallsPeriodEnd)
	}
}

func TestQuotaFallsBackToWorkspaceQuotas(t *testing.T) {
	f := newFixture(t, sandbox.Config{Credits: 9, QuotaPath: "/workspace/quotas"})
	for i, wantCalls := range []int64{2, 3, 4} {
		q, err := f.client.Quota(context.Background())
		if err != nil {
			t.Fatalf("Quota #%d: %v", i+1, err)
		}
		if q.MessagingTotal != 9 {
			t.Errorf("MessagingTotal %d, want 9", q.MessagingTotal)
		}
		if got := f.limiter.calls.Load(); got != wantCalls {
			t.Errorf("after Quota #%d: %d requests, want %d (only the first tries /quotas)", i+1, got, wantCalls)
		}
	}
	if got := f.box.Answers(); got[404] != 1 || got[200] != 3 {
		t.Errorf("answers %v, want one 404 and three 200", got)
	}

	// The default path answers at once.
	plain := newFixture(t, sandbox.Config{Credits: 9})
	if _, err := plain.client.Quota(context.Background()); err != nil || plain.limiter.calls.Load() != 1 {
		t.Errorf("Quota on /quotas: %v after %d requests", err, plain.limiter.calls.Load())
	}

	// Neither path: NotFound, saying so.
	none := newFixture(t, sandbox.Config{})
	none.box.Inject(sandbox.Fault{Op: sandbox.OpQuota, Status: 404, Body: "<html>404</html>", ContentType: "text/html"})
	_, err := none.client.Quota(context.Background())
	if pe := providerError(t, err); pe.Kind != sender.NotFound || !strings.Contains(pe.Message, "neither") {
		t.Errorf("got %v %q, want NotFound naming both paths", pe.Kind, pe.Message)
	}
}

func TestStatusHistory(t *testing.T) {
	clock := newClock()
	f := newFixture(t, sandbox.Config{
		Credits: 10, Now: clock.Now, SendInterval: -1, DeliverAfter: 3 * time.Second, ReadAfter: time.Minute,
		Outcome: func(string) sandbox.Outcome { return sandbox.OutcomeRead },
	})
	receipt, err := f.client.Send(context.Background(), sender.Message{Phone: "+14155550100", Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clock.Now()
	clock.Advance(time.Hour)

	events, err := f.client.StatusHistory(context.Background(), receipt.MessageUID)
	if err != nil {
		t.Fatal(err)
	}
	want := []sender.StatusEvent{{"Sent", t0}, {"Delivered", t0.Add(3 * time.Second)}, {"Read", t0.Add(time.Minute)}}
	if len(events) != len(want) {
		t.Fatalf("events %v, want %v", events, want)
	}
	for i := range want {
		if events[i].Status != want[i].Status || !events[i].At.Equal(want[i].At) {
			t.Errorf("event %d = %v, want %v", i, events[i], want[i])
		}
	}

	_, err = f.client.StatusHistory(context.Background(), "no-such-message")
	if pe := providerError(t, err); pe.Kind != sender.NotFound || pe.Op != sender.OpStatusHistory {
		t.Errorf("unknown message: %v", err)
	}
	calls := f.limiter.calls.Load()
	_, err = f.client.StatusHistory(context.Background(), "")
	if pe := providerError(t, err); pe.Kind != sender.Invalid || f.limiter.calls.Load() != calls {
		t.Errorf("empty UID: %v, and a request was made", err)
	}
}

func TestStatusHistoryOrderAndFormats(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		want     []string // statuses in order
		wantKind sender.Kind
	}{
		{"sorted oldest first, stable for equal times", `{"status":"ok","data":[
			{"status":"Read","timestamp":"2025-03-10 09:00:09 +0000"},
			{"status":"Sent","timestamp":"2025-03-10T08:00:00-01:00"},
			{"status":"Delivered","timestamp":"2025-03-10 09:00:05 +0000"},
			{"status":"Seen","timestamp":"2025-03-10 09:00:09 +0000"}]}`, []string{"Sent", "Delivered", "Read", "Seen"}, 0},
		{"empty", `{"status":"ok","data":[]}`, []string{}, 0},
		{"null data", `{"status":"ok","data":null}`, []string{}, 0},

		{"not the documented shape", `{"status":"ok","data":{"history":[]}}`, nil, sender.Transient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, sandbox.Config{})
			f.box.Inject(sandbox.Fault{Op: sandbox.OpStatus, Status: 200, Body: tt.body})
			events, err := f.client.StatusHistory(context.Background(), "any")
			if tt.wantKind != 0 {
				if pe := providerError(t, err); pe.Kind != tt.wantKind {
					t.Errorf("got %v, want %v", pe.Kind, tt.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, e := range events {
				got = append(got, e.Status)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("statuses %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCallLimiter(t *testing.T) {
	f := newFixture(t, sandbox.Config{Credits: 10})
	ctx := context.Background()
	receipt, err := f.client.Send(ctx, sender.Message{Phone: "+14155550100", Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.StatusHistory(ctx, receipt.MessageUID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Quota(ctx); err != nil {
		t.Fatal(err)
	}
	f.box.Inject(sandbox.Fault{Op: sandbox.OpSend, Status: 500, Body: "x", Times: 1})
	_, _ = f.client.Send(ctx, sender.Message{Phone: "+14155550100", Text: "hi"})
	if calls, requests := f.limiter.calls.Load(), f.box.APICallsUsed(); calls != 4 || requests != 4 {
		t.Errorf("limiter called %d times for %d requests, want 4 and 4", calls, requests)
	}
}

// waitError is a limiter refusal that knows how long to wait.
type waitError struct{ wait time.Duration }

func (e waitError) Error() string             { return "API-call ceiling reached" }
func (e waitError) RetryAfter() time.Duration { return e.wait }

func TestCallLimiterRefusal(t *testing.T) {
	tests := []struct {
		name           string
		err            error
		wantKind       sender.Kind
		wantRetryAfter time.Duration
	}{
		{"a wait", waitError{3 * time.Second}, sender.RateLimited, 3 * time.Second},
		{"the limiter's own provider error", &sender.Error{Kind: sender.QuotaExceeded, Message: "monthly API calls spent"}, sender.QuotaExceeded, 0},
		{"anything else", errors.New("redis: connection refused"), sender.Transient, 0},
		{"an error holding the token", fmt.Errorf("limiter for %s: %w", token, context.Canceled), sender.Transient, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, sandbox.Config{Credits: 10})
			f.limiter.err = tt.err
			_, err := f.client.Send(context.Background(), sender.Message{Phone: "+14155550100", Text: "hi"})
			pe := providerError(t, err)
			if pe.Kind != tt.wantKind || pe.RetryAfter != tt.wantRetryAfter || pe.Op != sender.OpSend {
				t.Errorf("got %v RetryAfter %v Op %q, want %v %v send", pe.Kind, pe.RetryAfter, pe.Op, tt.wantKind, tt.wantRetryAfter)
			}
			if len(f.box.Answers()) != 0 {
				t.Errorf("a request went out: %v", f.box.Answers())
			}
			if errors.Is(tt.err, context.Canceled) && !errors.Is(err, context.Canceled) {
				t.Error("errors.Is(context.Canceled) lost")
			}
		})
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	echo := fmt.Sprintf(`{"status":"error","message":"bad token %s","error_code":"validation_error","errors":[{"fields":["%s"],"msg":"token %s"}]}`, token, token, token)
	for _, fault := range []sandbox.Fault{
		{Status: 400, Body: echo},
		{Status: 401, Body: "Unauthorized: " + token},
		{Status: 500, Body: "panic: Authorization: Bearer " + token},
		{Status: 200, Body: `{"status":"error","message":"` + token + `","error_code":"quota_exceeded"}`},
	} {
		f := newFixture(t, sandbox.Config{Credits: 10})
		f.box.Inject(fault)
		_, err := f.client.Send(context.Background(), sender.Message{Phone: "+14155550100", Text: "hi"})
		pe := providerError(t, err) // fails the test on a leak
		for _, fe := range pe.Fields {
			if strings.Contains(strings.Join(fe.Fields, ""), token) || strings.Contains(fe.Msg, token) {
				t.Errorf("token in Fields: %+v", fe)
			}
		}
	}
}

func TestRequestOnTheWire(t *testing.T) {
	type seen struct {
		method, path, auth, contentType, userAgent string
		body                                       map[string]any
	}
	var got []seen
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(data, &body)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), r.Header.Get("User-Agent"), body})
		mu.Unlock()
		_, _ = io.WriteString(w, `{"status":"ok","data":{"message_uid":"u-1"}}`)
	}))
	defer srv.Close()
	client := sender.NewTimelines(token, sender.WithBaseURL(srv.URL+"/integrations/api/"), sender.WithUserAgent("test-agent/1"))

	for _, msg := range []sender.Message{
		{Phone: "+14155550100", AccountPhone: "+14155550001", Text: "hi"},
		{ChatID: 12, AccountPhone: "+14155550001", Text: "hi", ReplyTo: "u-0"},
		{JID: "14155550100@s.whatsapp.net", FileUID: "f", AttachmentTemplateID: 5},
	} {
		if _, err := client.Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	want := []seen{
		{"POST", "/integrations/api/messages", "Bearer " + token, "application/json", "test-agent/1",
			map[string]any{"phone": "+14155550100", "whatsapp_account_phone": "+14155550001", "text": "hi"}},
		{"POST", "/integrations/api/chats/12/messages", "Bearer " + token, "application/json", "test-agent/1",
			map[string]any{"text": "hi", "reply_to": "u-0"}},
		{"POST", "/integrations/api/messages/to_jid", "Bearer " + token, "application/json", "test-agent/1",
			map[string]any{"jid": "14155550100@s.whatsapp.net", "file_uid": "f", "attachment_template_id": float64(5)}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("requests\n%+v\nwant\n%+v", got, want)
	}
}
