//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// faultKind is one way the proxy spoils a provider request. Before
// forwarding, the sandbox never sees the request; after, the sandbox has
// processed it (a message accepted, a poll counted) and the proxy replaces
// or withholds its answer. The client cannot tell the two apart: that is
// the point.
type faultKind struct {
	name       string
	status     int  // the answer the proxy gives instead (0: none, see hang and reset)
	after      bool // forward to the sandbox first
	retryAfter bool // a 429 that says when to come back
	hang       bool // answer nothing until the client gives up (its PROVIDER_TIMEOUT)
	reset      bool // close the connection with a TCP reset
}

// faultKinds is the mix: each faulted request gets one of them, at random
// and evenly.
var faultKinds = []faultKind{
	{name: "500 HTML, not forwarded", status: http.StatusInternalServerError},
	{name: "500 HTML, after the sandbox answered", status: http.StatusInternalServerError, after: true},
	{name: "502 HTML, not forwarded", status: http.StatusBadGateway},
	{name: "502 HTML, after the sandbox answered", status: http.StatusBadGateway, after: true},
	{name: "503 HTML, not forwarded", status: http.StatusServiceUnavailable},
	{name: "503 HTML, after the sandbox answered", status: http.StatusServiceUnavailable, after: true},
	{name: "429 with Retry-After, not forwarded", status: http.StatusTooManyRequests, retryAfter: true},
	{name: "429 without Retry-After, not forwarded", status: http.StatusTooManyRequests},
	{name: "hang past PROVIDER_TIMEOUT, after the sandbox answered", after: true, hang: true},
	{name: "connection reset, not forwarded", reset: true},
	{name: "connection reset, after the sandbox answered", after: true, reset: true},
}

// faultProxy stands between the workers and the sandbox and spoils a share
// of all provider requests (sends, status polls, quota reads, chat
// lookups). It logs what it did to each request, one line each, and counts
// it.
type faultProxy struct {
	upstream string      // the sandbox's root URL
	rate     float64     // share of requests faulted, 0 to 1
	kinds    []faultKind // drawn from evenly for a faulted request
	hangCap  time.Duration
	client   *http.Client

	mu       sync.Mutex
	rng      *rand.Rand
	log      io.Writer
	requests map[string]int // by op
	faulted  map[string]int // by op
	applied  map[string]int // by fault kind
}

// newFaultProxy is a proxy to upstream that faults a share rate of the
// requests, each with one of kinds, drawn with seed, and logs to log.
func newFaultProxy(upstream string, rate float64, kinds []faultKind, seed uint64, log io.Writer) *faultProxy {
	return &faultProxy{
		upstream: strings.TrimRight(upstream, "/"),
		rate:     rate,
		kinds:    kinds,
		hangCap:  time.Minute,
		client:   &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		rng:      rand.New(rand.NewPCG(seed, seed>>1|1)),
		log:      log,
		requests: map[string]int{},
		faulted:  map[string]int{},
		applied:  map[string]int{},
	}
}

// upstreamAnswer is the sandbox's answer, read whole.
type upstreamAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The whole request arrives first, as it would at the provider: a fault
	// "before forwarding" still comes after the client wrote its request.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	op := opOf(r)
	kind := p.pick()
	var up *upstreamAnswer
	if kind == nil || kind.after {
		if up, err = p.forward(r, body); err != nil {
			p.record(op, r, nil, "sandbox unreachable: "+err.Error())
			http.Error(w, "campaign-chaos proxy: sandbox unreachable", http.StatusBadGateway)
			return
		}
	}
	outcome := "passed"
	if up != nil {
		outcome = fmt.Sprintf("sandbox answered %d", up.status)
	}
	p.record(op, r, kind, outcome)
	if kind == nil {
		writeAnswer(w, up)
		return
	}
	p.apply(w, r, kind)
}

// pick draws whether a request is faulted and how; nil: passed through.
func (p *faultProxy) pick() *faultKind {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rng.Float64() >= p.rate {
		return nil
	}
	return &p.kinds[p.rng.IntN(len(p.kinds))]
}

// forward sends the request to the sandbox and reads its answer. It does
// not stop when the client goes away: the sandbox finishes what it began.
func (p *faultProxy) forward(r *http.Request, body []byte) (*upstreamAnswer, error) {
	ctx := context.WithoutCancel(r.Context())
	req, err := http.NewRequestWithContext(ctx, r.Method, p.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for _, h := range []string{"Authorization", "Content-Type", "Accept"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &upstreamAnswer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func writeAnswer(w http.ResponseWriter, up *upstreamAnswer) {
	for _, h := range []string{"Content-Type", "Retry-After", "Date"} {
		if v := up.header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(up.status)
	_, _ = w.Write(up.body)
}

// apply answers as the fault says.
func (p *faultProxy) apply(w http.ResponseWriter, r *http.Request, kind *faultKind) {
	switch {
	case kind.hang:
		timer := time.NewTimer(p.hangCap)
		defer timer.Stop()
		select {
		case <-r.Context().Done(): // the client timed out and closed
		case <-timer.C:
		}
		resetConnection(w)
	case kind.reset:
		resetConnection(w)
	case kind.status == http.StatusTooManyRequests:
		if kind.retryAfter {
			w.Header().Set("Retry-After", "1")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(kind.status)
		_, _ = io.WriteString(w, `{"status":"error","message":"Too many requests","error_code":"rate_limit_exceeded"}`)
	default:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(kind.status)
		_, _ = io.WriteString(w, htmlErrorPage(kind.status))
	}
}

// htmlErrorPage is what a load balancer in front of an API answers: not the
// provider's JSON error, so the client cannot read a reason out of it.
func htmlErrorPage(status int) string {
	title := fmt.Sprintf("%d %s", status, http.StatusText(status))
	return "<html>\r\n<head><title>" + title + "</title></head>\r\n<body>\r\n<center><h1>" + title +
		"</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
}

// resetConnection takes the connection from the HTTP server and closes it
// with SO_LINGER 0: the client reads a TCP reset, not an answer.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not a hijackable connection (HTTP/2): net/http's documented way
		// to drop it instead.
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// opOf names the kind of provider request, for the counts.
func opOf(r *http.Request) string {
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/messages"),
		r.Method == http.MethodPost && strings.HasSuffix(path, "/messages/to_jid"):
		return "send"
	case strings.Contains(path, "/messages/"):
		return "status"
	case strings.HasSuffix(path, "/quotas"):
		return "quota"
	case strings.Contains(path, "/chats"):
		return "chats"
	case strings.HasSuffix(path, "/whatsapp_accounts"):
		return "accounts"
	}
	return "other"
}

// record logs and counts what the proxy did to one request. The log has
// the path without its query (a chat lookup's query names a phone) and no
// header (the token).
func (p *faultProxy) record(op string, r *http.Request, kind *faultKind, outcome string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests[op]++
	action := "passed through"
	if kind != nil {
		p.faulted[op]++
		p.applied[kind.name]++
		action = "FAULT " + kind.name
	}
	fmt.Fprintf(p.log, "%s %-8s %s %s: %s (%s)\n", time.Now().UTC().Format("15:04:05.000"), op, r.Method, r.URL.Path, action, outcome)
}

// mix describes what the proxy did: requests and faults by kind of request,
// and faults by kind.
func (p *faultProxy) mix() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	total, faulted := 0, 0
	var ops []string
	for op, n := range p.requests {
		total += n
		faulted += p.faulted[op]
		ops = append(ops, fmt.Sprintf("%s %d/%d", op, p.faulted[op], n))
	}
	sort.Strings(ops)
	if total == 0 {
		return []string{"no provider requests"}
	}
	lines := []string{fmt.Sprintf("%d provider requests, %d faulted (%.1f%%); faulted/all by kind of request: %s",
		total, faulted, 100*float64(faulted)/float64(total), strings.Join(ops, ", "))}
	for _, k := range p.kinds {
		if n := p.applied[k.name]; n > 0 {
			lines = append(lines, fmt.Sprintf("%5d × %s", n, k.name))
		}
	}
	return lines
}
