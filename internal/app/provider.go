package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// Provider is the provider a process sends through.
type Provider struct {
	sender.Provider
	// SandboxURL is where the built-in sandbox listens when no provider token
	// is set ("" otherwise): GET SandboxURL/_sandbox/messages shows what it
	// "sent".
	SandboxURL string
	close      func()
}

// Close stops a built-in sandbox.
func (p *Provider) Close() {
	if p.close != nil {
		p.close()
	}
}

// OpenProvider returns the TimelinesAI client when TIMELINES_API_TOKEN is
// set, else a built-in sandbox that behaves like TimelinesAI (credits,
// pacing, statuses, errors), served on a loopback port and reached through
// the same client, so development exercises the real code path. limiter is
// the API-call ceiling shared by all processes.
func OpenProvider(cfg Config, limiter sender.CallLimiter, log *zap.Logger) (*Provider, error) {
	opts := []sender.TimelinesOption{sender.WithCallLimiter(limiter), sender.WithTimeout(cfg.ProviderTimeout)}
	if cfg.TimelinesToken != "" {
		opts = append(opts, sender.WithBaseURL(cfg.TimelinesBaseURL))
		log.Info("sending through TimelinesAI", zap.String("base_url", cfg.TimelinesBaseURL))
		return &Provider{Provider: sender.NewTimelines(cfg.TimelinesToken, opts...)}, nil
	}

	token := randomToken()
	sb := sandbox.New(sandbox.Config{
		Token:        token,
		Credits:      10_000,
		APICalls:     200_000,
		RateLimit:    30,
		SendInterval: cfg.SendInterval,
		DeliverAfter: 3 * time.Second,
		ReadAfter:    20 * time.Second,
		ReadRate:     0.6,
		FailRate:     0.03,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start the sandbox provider: %w", err)
	}
	srv := &http.Server{Handler: sb, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("sandbox provider stopped", zap.Error(err))
		}
	}()
	url := "http://" + ln.Addr().String()
	log.Warn("no TIMELINES_API_TOKEN: sending to the built-in SANDBOX provider; no real WhatsApp message leaves this machine",
		zap.String("sandbox", url), zap.String("sent_messages", url+"/_sandbox/messages"))
	opts = append(opts, sender.WithBaseURL(url))
	return &Provider{
		Provider:   sender.NewTimelines(token, opts...),
		SandboxURL: url,
		close: func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		},
	}, nil
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
