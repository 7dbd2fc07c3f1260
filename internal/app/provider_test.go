package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

func TestProviderChoice(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		wantKind string
	}{
		{"a TimelinesAI token", map[string]string{"TIMELINES_API_TOKEN": "tok"}, ProviderTimelines},
		{"a gateway base URL and key", map[string]string{"GATEWAY_BASE_URL": "http://gw:7001", "GATEWAY_API_KEY": "k"}, ProviderGateway},
		{"gateway accounts and key", map[string]string{"GATEWAY_ACCOUNTS": "+14155550100=http://gw1:7001", "GATEWAY_API_KEY": "k"}, ProviderGateway},
		{"PROVIDER=sandbox, token or not", map[string]string{"PROVIDER": "sandbox", "TIMELINES_API_TOKEN": "tok"}, ProviderSandbox},
		{"PROVIDER=sandbox playing a gateway", map[string]string{"PROVIDER": "sandbox", "SANDBOX_AS": "gateway"}, ProviderSandbox},
		{"both, and PROVIDER says which", map[string]string{"PROVIDER": "gateway", "TIMELINES_API_TOKEN": "tok", "GATEWAY_BASE_URL": "http://gw:7001", "GATEWAY_API_KEY": "k"}, ProviderGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if kind, err := c.ProviderKind(); kind != tt.wantKind || err != nil {
				t.Errorf("provider %q (%v), want %q", kind, err, tt.wantKind)
			}
		})
	}
}

func TestProviderRefusalsNameTheVariable(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string
	}{
		{"an unknown provider", map[string]string{"PROVIDER": "twilio"}, "PROVIDER"},
		{"timelines without a token", map[string]string{"PROVIDER": "timelines"}, "TIMELINES_API_TOKEN"},
		{"gateway without an instance", map[string]string{"PROVIDER": "gateway", "GATEWAY_API_KEY": "k"}, "GATEWAY_BASE_URL"},
		{"gateway without a key", map[string]string{"GATEWAY_BASE_URL": "http://gw:7001"}, "GATEWAY_API_KEY"},
		{"a token and a gateway, no PROVIDER", map[string]string{"TIMELINES_API_TOKEN": "tok", "GATEWAY_BASE_URL": "http://gw:7001", "GATEWAY_API_KEY": "k"}, "PROVIDER"},
		{"the sandbox's role without the sandbox", map[string]string{"TIMELINES_API_TOKEN": "tok", "SANDBOX_AS": "gateway"}, "SANDBOX_AS"},
		{"an unknown sandbox role", map[string]string{"PROVIDER": "sandbox", "SANDBOX_AS": "twilio"}, "SANDBOX_AS"},
		{"a base URL without scheme", map[string]string{"GATEWAY_BASE_URL": "gw:7001"}, "GATEWAY_BASE_URL"},
		{"an account without +", map[string]string{"GATEWAY_ACCOUNTS": "14155550100=http://gw1:7001"}, "GATEWAY_ACCOUNTS"},
		{"an account without URL", map[string]string{"GATEWAY_ACCOUNTS": "+14155550100"}, "GATEWAY_ACCOUNTS"},
		{"an account twice", map[string]string{"GATEWAY_ACCOUNTS": "+14155550100=http://a:1, +1 415 555 0100=http://b:1"}, "GATEWAY_ACCOUNTS"},
		{"an instance that is not http", map[string]string{"GATEWAY_ACCOUNTS": "+14155550100=ftp://gw1"}, "GATEWAY_ACCOUNTS"},
		{"typing longer than 2m", map[string]string{"GATEWAY_TYPING_MAX": "5m"}, "GATEWAY_TYPING_MAX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(env(tt.env))
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantVar+": ") {
				t.Errorf("error %v, want one naming %s", err, tt.wantVar)
			}
		})
	}
}

func TestNoProviderRefusesToStart(t *testing.T) {
	// Loading succeeds (tools and tests fill the provider in), but a process
	// that sends refuses, saying what to set.
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenProvider(c, nil, zaptest.NewLogger(t))
	if !errors.Is(err, ErrNoProvider) {
		t.Fatalf("OpenProvider without a provider: %v, want ErrNoProvider", err)
	}
	for _, hint := range []string{"TIMELINES_API_TOKEN", "GATEWAY_BASE_URL", "PROVIDER=sandbox"} {
		if !strings.Contains(err.Error(), hint) {
			t.Errorf("%q does not say to set %s", err, hint)
		}
	}
}

// sandboxMessages reads GET <sandbox>/_sandbox/messages.
func sandboxMessages(t *testing.T, sandboxURL string) []sandbox.Message {
	t.Helper()
	resp, err := http.Get(sandboxURL + "/_sandbox/messages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var doc struct {
		Data []sandbox.Message `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("GET /_sandbox/messages: %v: %s", err, body)
	}
	return doc.Data
}

func TestTheSandboxPlaysEitherProvider(t *testing.T) {
	tests := []struct {
		as          string
		wantMetered bool
		wantJID     string // what the sandbox records of a message to a phone
	}{
		{"timelines", true, ""},
		{"gateway", false, "12025550143@s.whatsapp.net"},
	}
	for _, tt := range tests {
		t.Run(tt.as, func(t *testing.T) {
			c, err := Load(env(map[string]string{"PROVIDER": "sandbox", "SANDBOX_AS": tt.as}))
			if err != nil {
				t.Fatal(err)
			}
			p, err := OpenProvider(c, nil, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if p.Kind != ProviderSandbox || p.SandboxURL == "" || p.Capabilities().MeteredCredits != tt.wantMetered {
				t.Errorf("kind %q, sandbox %q, metered %v", p.Kind, p.SandboxURL, p.Capabilities().MeteredCredits)
			}
			receipt, err := p.Send(context.Background(), sender.Message{Phone: "+12025550143", Text: "hello from the sandbox"})
			if err != nil {
				t.Fatal(err)
			}
			got := sandboxMessages(t, p.SandboxURL)
			if len(got) != 1 || got[0].UID != receipt.MessageUID || got[0].JID != tt.wantJID || got[0].Recipient != "+12025550143" {
				t.Errorf("the sandbox recorded %+v for %+v", got, receipt)
			}
			if _, err := p.Quota(context.Background()); errors.Is(err, sender.ErrNotSupported) == tt.wantMetered {
				t.Errorf("Quota: %v", err)
			}
		})
	}
}

func TestGatewayAccountsGoToTheirInstances(t *testing.T) {
	const a, b = "+14155550100", "+14155550101"
	instance := func(account string) (*sandbox.Server, string) {
		box := sandbox.New(sandbox.Config{Mode: sandbox.ModeGateway, Token: "shared-key", Accounts: []string{account}, TypingDelay: -1})
		srv := httptest.NewServer(box)
		t.Cleanup(srv.Close)
		return box, srv.URL
	}
	gw1, url1 := instance(a)
	gw2, url2 := instance(b)
	c, err := Load(env(map[string]string{"GATEWAY_ACCOUNTS": a + "=" + url1 + "," + b + "=" + url2, "GATEWAY_API_KEY": "shared-key"}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := OpenProvider(c, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, account := range []string{a, b, b} {
		if _, err := p.Send(context.Background(), sender.Message{Phone: "+12025550143", AccountPhone: account, Text: "from " + account}); err != nil {
			t.Fatal(err)
		}
	}
	if len(gw1.Messages()) != 1 || len(gw2.Messages()) != 2 || gw1.Messages()[0].Text != "from "+a {
		t.Errorf("instance of %s got %+v, of %s %+v", a, gw1.Messages(), b, gw2.Messages())
	}
	if _, err := p.Send(context.Background(), sender.Message{Phone: "+12025550143", AccountPhone: "+14155550199", Text: "x"}); err == nil {
		t.Error("an account no instance serves was not refused (no GATEWAY_BASE_URL)")
	}
}

func TestClaimLeaseCoversTheTyping(t *testing.T) {
	gateway, err := Load(env(map[string]string{"GATEWAY_BASE_URL": "http://gw:7001", "GATEWAY_API_KEY": "k", "PROVIDER_TIMEOUT": "10s"}))
	if err != nil {
		t.Fatal(err)
	}
	timelines, err := Load(env(map[string]string{"TIMELINES_API_TOKEN": "tok", "PROVIDER_TIMEOUT": "10s"}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := gateway.ClaimLease(), 10*time.Second+30*time.Second+15*time.Second; got != want {
		t.Errorf("gateway claim lease %v, want %v (timeout, typing, margin)", got, want)
	}
	if got, want := timelines.ClaimLease(), 25*time.Second; got != want {
		t.Errorf("TimelinesAI claim lease %v, want %v", got, want)
	}
}

func TestSandboxStateFileKeepsMessagesAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sandbox.json")
	c, err := Load(env(map[string]string{"PROVIDER": "sandbox", "SANDBOX_STATE_FILE": path}))
	if err != nil {
		t.Fatal(err)
	}
	first, err := OpenProvider(c, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	receipt, err := first.Send(context.Background(), sender.Message{Phone: "+12025550143", Text: "before the restart"})
	if err != nil {
		t.Fatal(err)
	}
	first.Close()

	second, err := OpenProvider(c, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if got := sandboxMessages(t, second.SandboxURL); len(got) != 1 || got[0].UID != receipt.MessageUID {
		t.Errorf("after the restart the sandbox holds %+v, want %s", got, receipt.MessageUID)
	}
}

// TestSandboxPostsWebhooksToTheAPIsReceiver: with WEBHOOK_SECRET set, the
// built-in sandbox posts its webhooks to this process's receiver at ADDR
// (a wildcard address reached on loopback), as `make run` wires it.
func TestSandboxPostsWebhooksToTheAPIsReceiver(t *testing.T) {
	got := make(chan string, 4)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- r.URL.Path + " " + string(body)
	}))
	defer api.Close()
	_, port, _ := net.SplitHostPort(api.Listener.Addr().String())
	c, err := Load(env(map[string]string{"PROVIDER": "sandbox", "WEBHOOK_SECRET": "s3cret-for-the-sandbox", "ADDR": "0.0.0.0:" + port}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := OpenProvider(c, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Send(context.Background(), sender.Message{Phone: "+12025550143", Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	select {
	case post := <-got:
		if !strings.HasPrefix(post, "/v1/webhooks/timelines/s3cret-for-the-sandbox ") || !strings.Contains(post, `"message:sent:new"`) {
			t.Errorf("the receiver got %q", post)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sandbox posted no webhook to the API's receiver")
	}
}

// TestConfigCapabilitiesFollowTheProvider: the API knows what the
// configured provider can do without opening it.
func TestConfigCapabilitiesFollowTheProvider(t *testing.T) {
	for _, tt := range []struct {
		env     map[string]string
		metered bool
	}{
		{map[string]string{"TIMELINES_API_TOKEN": "tok"}, true},
		{map[string]string{"GATEWAY_BASE_URL": "http://gw:7001", "GATEWAY_API_KEY": "k"}, false},
		{map[string]string{"PROVIDER": "sandbox"}, true},
		{map[string]string{"PROVIDER": "sandbox", "SANDBOX_AS": "gateway"}, false},
	} {
		c, err := Load(env(tt.env))
		if err != nil {
			t.Fatal(err)
		}
		caps := c.Capabilities()
		if caps.MeteredCredits != tt.metered || caps.StatusHistory != tt.metered || caps.AddressByChatID != tt.metered || caps.TypingSimulation == tt.metered {
			t.Errorf("%v: capabilities %+v", tt.env, caps)
		}
	}
}
