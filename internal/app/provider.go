package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// The values of PROVIDER (and, but for sandbox, of SANDBOX_AS).
const (
	ProviderTimelines = "timelines"
	ProviderGateway   = "gateway"
	ProviderSandbox   = "sandbox"
)

// maxGatewayTypingMax bounds GATEWAY_TYPING_MAX: a send's claim lasts this
// much longer, and a recipient whose worker died waits that long.
const maxGatewayTypingMax = 2 * time.Minute

// ErrNoProvider is ProviderKind's answer when nothing says where messages
// go. The built-in sandbox is never chosen silently: a production process
// without its token would otherwise "send" into it.
var ErrNoProvider = errors.New("PROVIDER: no provider configured: set TIMELINES_API_TOKEN to send through TimelinesAI " +
	"(or GATEWAY_BASE_URL or GATEWAY_ACCOUNTS, with GATEWAY_API_KEY, for self-hosted WhatsApp gateways), " +
	"or PROVIDER=sandbox to try the product with the built-in sandbox (nothing reaches WhatsApp)")

// ProviderKind is where messages go: PROVIDER when set; else timelines
// when TIMELINES_API_TOKEN is set, gateway when GATEWAY_BASE_URL or
// GATEWAY_ACCOUNTS is; else ErrNoProvider. A kind without what it needs
// (timelines without a token, gateway without an instance or a key, both
// configured and PROVIDER unset, SANDBOX_AS=gateway without
// PROVIDER=sandbox) is an error naming the variable to set.
func (c Config) ProviderKind() (string, error) {
	kind := c.Provider
	hasGateway := c.GatewayBaseURL != "" || len(c.GatewayAccounts) > 0
	if kind == "" {
		switch {
		case c.TimelinesToken != "" && hasGateway:
			return "", errors.New("PROVIDER: both TIMELINES_API_TOKEN and a gateway (GATEWAY_BASE_URL or GATEWAY_ACCOUNTS) are set: say which sends with PROVIDER=timelines or PROVIDER=gateway")
		case c.TimelinesToken != "":
			kind = ProviderTimelines
		case hasGateway:
			kind = ProviderGateway
		default:
			return "", ErrNoProvider
		}
	}
	switch {
	case kind == ProviderTimelines && c.TimelinesToken == "":
		return "", errors.New("TIMELINES_API_TOKEN: PROVIDER=timelines needs the TimelinesAI token")
	case kind == ProviderGateway && !hasGateway:
		return "", errors.New("GATEWAY_BASE_URL: PROVIDER=gateway needs a gateway: GATEWAY_BASE_URL, or GATEWAY_ACCOUNTS mapping sender accounts to instances")
	case kind == ProviderGateway && c.GatewayAPIKey == "":
		return "", errors.New("GATEWAY_API_KEY: PROVIDER=gateway needs the gateway's key (sent as the Authorization header)")
	case kind != ProviderSandbox && c.SandboxAs == ProviderGateway:
		return "", fmt.Errorf("SANDBOX_AS: gateway only applies to the built-in sandbox (PROVIDER=sandbox), and the provider is %s", kind)
	}
	return kind, nil
}

// TypingAllowance is how much longer than PROVIDER_TIMEOUT a send may take:
// GATEWAY_TYPING_MAX when messages go through a gateway client (a gateway,
// or the sandbox playing one), else nothing.
func (c Config) TypingAllowance() time.Duration {
	kind, err := c.ProviderKind()
	if err == nil && (kind == ProviderGateway || kind == ProviderSandbox && c.SandboxAs == ProviderGateway) {
		return c.GatewayTypingMax
	}
	return 0
}

// Capabilities are what the configured provider can do, known without
// opening it: the API, which never sends, refuses at creation what the
// provider cannot do and shows credits as its workers will spend them.
// TimelinesAI's when no provider is configured (the process refuses to
// start then anyway).
func (c Config) Capabilities() sender.Capabilities {
	kind, _ := c.ProviderKind()
	if kind == ProviderGateway || kind == ProviderSandbox && c.SandboxAs == ProviderGateway {
		return sender.GatewayCapabilities()
	}
	return sender.TimelinesCapabilities()
}

// parseGatewayAccounts reads GATEWAY_ACCOUNTS:
// "+14155550100=http://gw1:7001,+14155550101=http://gw2:7001".
func parseGatewayAccounts(v string) (map[string]string, error) {
	accounts := map[string]string{}
	for _, pair := range splitList(v) {
		phone, baseURL, ok := strings.Cut(pair, "=")
		phone, baseURL = strings.TrimSpace(phone), strings.TrimSpace(baseURL)
		if !ok || phone == "" || baseURL == "" {
			return nil, fmt.Errorf("%q is not phone=URL (like +14155550100=http://gw1:7001)", pair)
		}
		num, err := phonenumbers.Parse(phone, "")
		if !strings.HasPrefix(phone, "+") || err != nil || !phonenumbers.IsValidNumber(num) {
			return nil, fmt.Errorf("%q is not a phone number with + and its country code", phone)
		}
		e164 := phonenumbers.Format(num, phonenumbers.E164)
		if _, dup := accounts[e164]; dup {
			return nil, fmt.Errorf("account %s is mapped twice", e164)
		}
		if err := sender.CheckBaseURL(baseURL); err != nil {
			return nil, fmt.Errorf("account %s: %w", e164, err)
		}
		accounts[e164] = strings.TrimRight(baseURL, "/")
	}
	if len(accounts) == 0 {
		return nil, errors.New("give at least one phone=URL")
	}
	return accounts, nil
}

// Provider is the provider a process sends through.
type Provider struct {
	sender.Provider
	// Kind is ProviderTimelines, ProviderGateway or ProviderSandbox.
	Kind string
	// SandboxURL is where the built-in sandbox listens (PROVIDER=sandbox;
	// "" otherwise): GET SandboxURL/_sandbox/messages shows what it "sent".
	SandboxURL string
	close      func()
}

// Close stops a built-in sandbox, writing its state file.
func (p *Provider) Close() {
	if p.close != nil {
		p.close()
	}
}

// OpenProvider returns the provider cfg.ProviderKind names: the TimelinesAI
// client, a router over the gateway instances, or a built-in sandbox served
// on a loopback port and reached through the same client as the provider
// it plays (SANDBOX_AS), so that development exercises the real code path.
// Without a provider it refuses (ErrNoProvider). limiter is the API-call
// ceiling shared by all processes.
func OpenProvider(cfg Config, limiter sender.CallLimiter, log *zap.Logger) (*Provider, error) {
	kind, err := cfg.ProviderKind()
	if err != nil {
		return nil, err
	}
	opts := []sender.Option{sender.WithCallLimiter(limiter), sender.WithTimeout(cfg.ProviderTimeout)}
	switch kind {
	case ProviderTimelines:
		opts = append(opts, sender.WithBaseURL(cfg.TimelinesBaseURL))
		log.Info("sending through TimelinesAI", zap.String("base_url", cfg.TimelinesBaseURL))
		return &Provider{Provider: sender.NewTimelines(cfg.TimelinesToken, opts...), Kind: kind}, nil
	case ProviderGateway:
		routes := sender.GatewayRoutes{Default: cfg.GatewayBaseURL, Accounts: cfg.GatewayAccounts}
		router, err := sender.NewGatewayRouter(routes, cfg.GatewayAPIKey, append(opts, sender.WithTypingAllowance(cfg.GatewayTypingMax))...)
		if err != nil {
			return nil, fmt.Errorf("GATEWAY_ACCOUNTS / GATEWAY_BASE_URL: %w", err)
		}
		log.Info("sending through self-hosted WhatsApp gateways",
			zap.String("default_instance", redactURL(cfg.GatewayBaseURL)), zap.Int("account_instances", len(cfg.GatewayAccounts)))
		return &Provider{Provider: router, Kind: kind}, nil
	}
	return openSandbox(cfg, opts, log)
}

// openSandbox starts the built-in sandbox on a loopback port, playing
// SANDBOX_AS, and a client of it.
func openSandbox(cfg Config, opts []sender.Option, log *zap.Logger) (*Provider, error) {
	key := randomToken()
	sbCfg := sandboxConfig(cfg, key)
	sb, err := sandbox.Open(sbCfg)
	if err != nil {
		return nil, fmt.Errorf("SANDBOX_STATE_FILE: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = sb.Close()
		return nil, fmt.Errorf("start the sandbox provider: %w", err)
	}
	srv := &http.Server{Handler: sb, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("sandbox provider stopped", zap.Error(err))
		}
	}()
	sandboxURL := "http://" + ln.Addr().String()
	opts = append(opts, sender.WithBaseURL(sandboxURL))
	p := &Provider{Kind: ProviderSandbox, SandboxURL: sandboxURL, close: func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := sb.Close(); err != nil {
			log.Error("sandbox state not saved", zap.Error(err))
		}
	}}
	plays := "TimelinesAI"
	if cfg.SandboxAs == ProviderGateway {
		plays = "a WhatsApp gateway"
		p.Provider = sender.NewGateway(sandboxURL, key, append(opts, sender.WithTypingAllowance(cfg.GatewayTypingMax))...)
	} else {
		p.Provider = sender.NewTimelines(key, opts...)
	}
	log.Warn("PROVIDER=sandbox: sending to the built-in SANDBOX provider; no real WhatsApp message leaves this machine",
		zap.String("plays", plays), zap.String("sandbox", sandboxURL), zap.String("sent_messages", sandboxURL+"/_sandbox/messages"),
		zap.String("state_file", cfg.SandboxStateFile))
	return p, nil
}

// sandboxConfig is the built-in sandbox's configuration, its token key.
func sandboxConfig(cfg Config, key string) sandbox.Config {
	sbCfg := sandbox.Config{
		Token:         key,
		Credits:       10_000,
		APICalls:      200_000,
		RateLimit:     30,
		SendInterval:  cfg.SendInterval,
		DeliverAfter:  3 * time.Second,
		ReadAfter:     20 * time.Second,
		ReadRate:      0.6,
		FailRate:      0.03,
		DefaultRegion: cfg.DefaultRegion,
		StateFile:     cfg.SandboxStateFile,
	}
	if cfg.WebhookSecret != "" {
		// The sandbox posts its webhooks to this process's own receiver,
		// so that `make run` exercises the webhook path end to end.
		sbCfg.WebhookURL = ownWebhookURL(cfg.Addr, cfg.WebhookSecret)
	}
	if cfg.SandboxAs == ProviderGateway {
		sbCfg.Mode = sandbox.ModeGateway
		// Typing well within what the client allows, so that it never
		// times out (negative: none; zero would be the default).
		sbCfg.TypingDelay = min(sandbox.DefaultTypingDelay, cfg.GatewayTypingMax/2)
		if sbCfg.TypingDelay <= 0 {
			sbCfg.TypingDelay = -1
		}
	}
	return sbCfg
}

// ownWebhookURL is the API's webhook receiver at addr (a wildcard host is
// reached on loopback).
func ownWebhookURL(addr, secret string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/v1/webhooks/timelines/" + url.PathEscape(secret)
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
