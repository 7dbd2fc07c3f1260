//go:build linux

package main

import (
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// sandboxToken is the token the sandbox wants and the children send.
const sandboxToken = "campaign-bench-sandbox-token"

// sandboxMessage is a message the sandbox accepted.
type sandboxMessage = sandbox.Message

// newSandbox serves a fresh TimelinesAI sandbox in this process: credits
// that never run out, no rate limit or API-call cap, its own pacing 1 ms (it
// only moves the simulated Sent time; acceptance is immediate), and
// delivery far off so no status changes during a figure.
func newSandbox() (*sandbox.Server, *httptest.Server) {
	sb := sandbox.New(sandbox.Config{
		Token:        sandboxToken,
		Credits:      1 << 40,
		SendInterval: time.Millisecond,
		DeliverAfter: 24 * time.Hour,
		ReadAfter:    48 * time.Hour,
	})
	return sb, httptest.NewServer(sb)
}

// newSlowSandbox is newSandbox answering each send (a POST) after latency,
// as a provider across a network does.
func newSlowSandbox(latency time.Duration) (*sandbox.Server, *httptest.Server) {
	sb, plain := newSandbox()
	plain.Close()
	return sb, httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			time.Sleep(latency)
		}
		sb.ServeHTTP(w, r)
	}))
}

// newServer serves sb in this process.
func newServer(sb *sandbox.Server) *httptest.Server { return httptest.NewServer(sb) }
