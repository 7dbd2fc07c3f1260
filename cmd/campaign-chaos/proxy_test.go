//go:build linux

package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

const testToken = "proxy-test-token"

// proxiedSandbox serves a sandbox behind a proxy that faults every request
// with kind (nil: none), and answers the sandbox and the proxy's URL.
func proxiedSandbox(t *testing.T, kinds []faultKind, rate float64, log io.Writer) (*sandbox.Server, *faultProxy, string) {
	t.Helper()
	sb := sandbox.New(sandbox.Config{Token: testToken, Credits: 1000, SendInterval: time.Millisecond})
	sbSrv := httptest.NewServer(sb)
	t.Cleanup(sbSrv.Close)
	p := newFaultProxy(sbSrv.URL, rate, kinds, 7, log)
	pSrv := httptest.NewServer(p)
	t.Cleanup(func() { pSrv.CloseClientConnections(); pSrv.Close() })
	return sb, p, pSrv.URL
}

func sendThrough(t *testing.T, base string, timeout time.Duration) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/messages", strings.NewReader(`{"phone":"+14155550123","text":"Hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// Every kind of fault does what its name says: the sandbox sees the send
// or not, and the client gets the status, body and headers, a reset or a
// timeout.
func TestFaultKindsReachTheSandboxOrNotAndSpoilTheAnswer(t *testing.T) {
	for _, kind := range faultKinds {
		t.Run(kind.name, func(t *testing.T) {
			var log bytes.Buffer
			sb, p, base := proxiedSandbox(t, []faultKind{kind}, 1, &log)
			resp, body, err := sendThrough(t, base, 500*time.Millisecond)

			wantMessages := 0
			if kind.after {
				wantMessages = 1
			}
			if got := len(sb.Messages()); got != wantMessages {
				t.Errorf("the sandbox accepted %d messages, want %d", got, wantMessages)
			}
			switch {
			case kind.hang, kind.reset:
				if err == nil {
					t.Fatalf("the client got an answer (%d %s), want no answer", resp.StatusCode, body)
				}
				if timedOut := strings.Contains(err.Error(), "Timeout"); timedOut != kind.hang {
					t.Errorf("error %q: timed out %v, want %v", err, timedOut, kind.hang)
				}
			default:
				if err != nil {
					t.Fatalf("the client got no answer: %v", err)
				}
				if resp.StatusCode != kind.status {
					t.Errorf("status %d, want %d", resp.StatusCode, kind.status)
				}
				checkFaultBody(t, kind, resp, body)
			}
			p.mu.Lock()
			n := p.applied[kind.name]
			p.mu.Unlock()
			if n != 1 || !strings.Contains(log.String(), "FAULT "+kind.name) {
				t.Errorf("applied %d times, log %q; want once, logged", n, log.String())
			}
		})
	}
}

func checkFaultBody(t *testing.T, kind faultKind, resp *http.Response, body []byte) {
	t.Helper()
	if kind.status == http.StatusTooManyRequests {
		if got := resp.Header.Get("Retry-After"); (got != "") != kind.retryAfter {
			t.Errorf("Retry-After %q, want one: %v", got, kind.retryAfter)
		}
		if !strings.Contains(string(body), `"rate_limit_exceeded"`) {
			t.Errorf("429 body %q lacks the provider's error code", body)
		}
		return
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") || !strings.Contains(string(body), "<html>") {
		t.Errorf("Content-Type %q, body %q: want an HTML page", ct, body)
	}
}

// Without a fault the sandbox's own answer comes through, message uid and
// all.
func TestUnfaultedRequestsPassThrough(t *testing.T) {
	sb, p, base := proxiedSandbox(t, faultKinds, 0, io.Discard)
	resp, body, err := sendThrough(t, base, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	msgs := sb.Messages()
	if resp.StatusCode != http.StatusOK || len(msgs) != 1 || !strings.Contains(string(body), msgs[0].UID) {
		t.Fatalf("answer %d %s with %d messages at the sandbox; want 200 naming the one message", resp.StatusCode, body, len(msgs))
	}
	if mix := strings.Join(p.mix(), "\n"); !strings.Contains(mix, "1 provider requests, 0 faulted") || !strings.Contains(mix, "send 0/1") {
		t.Errorf("mix %q, want one send request, none faulted", mix)
	}
}

// The proxy faults about the share it is given, and draws every kind.
func TestFaultShareAndEveryKindDrawn(t *testing.T) {
	p := newFaultProxy("http://unused", 0.2, faultKinds, 42, io.Discard)
	const draws = 20000
	faulted := 0
	seen := map[string]int{}
	for i := 0; i < draws; i++ {
		if k := p.pick(); k != nil {
			faulted++
			seen[k.name]++
		}
	}
	if share := float64(faulted) / draws; share < 0.17 || share > 0.23 {
		t.Errorf("faulted %.3f of the requests, want about 0.2", share)
	}
	for _, k := range faultKinds {
		if seen[k.name] < faulted/len(faultKinds)/2 {
			t.Errorf("%q drawn %d times of %d faults: far from an even share", k.name, seen[k.name], faulted)
		}
	}
}

func TestOpOfNamesEveryKindOfProviderRequest(t *testing.T) {
	for _, tc := range []struct{ method, path, want string }{
		{"POST", "/messages", "send"},
		{"POST", "/integrations/api/chats/12/messages", "send"},
		{"POST", "/messages/to_jid", "send"},
		{"GET", "/messages/abc/status_history", "status"},
		{"GET", "/quotas", "quota"},
		{"GET", "/workspace/quotas", "quota"},
		{"GET", "/chats", "chats"},
		{"GET", "/chats/12/messages", "chats"},
		{"GET", "/whatsapp_accounts", "accounts"},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		if got := opOf(r); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}
