package main

// What the API says about itself: one access-log line and one counter per
// request, the per-key request rate limit, and one log line per campaign
// lifecycle event.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/idempotency"
	"github.com/wacampaign/wacampaign/internal/metrics"
)

// keyID names an API key in logs: the first 12 hex digits of its SHA-256,
// enough to tell keys apart and useless for finding the key.
func keyID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:6])
}

// requestKeyID is the key id of the request's bearer token, "" without one.
func requestKeyID(r *http.Request) string {
	if key, ok := idempotency.BearerToken(r.Header.Get("Authorization")); ok && key != "" {
		return keyID(key)
	}
	return ""
}

// observed logs one line per request (method, route pattern, status,
// duration, key id; never the key, the query or a body) and counts it.
// Probes and scrapes (/healthz, /metrics) log at debug level.
func (s *server) observed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		status := rec.statusOr200()
		route := r.Pattern // set by the mux on this request; "" when nothing matched
		metrics.APIRequest(route, status)
		level := zap.InfoLevel
		if route == "GET /healthz" || route == "GET /metrics" {
			level = zap.DebugLevel
		}
		if ce := s.log.Check(level, "request"); ce != nil {
			ce.Write(zap.String("method", r.Method), zap.String("route", route), zap.Int("status", status),
				zap.Duration("duration", time.Since(start)), zap.String("key_id", requestKeyID(r)))
		}
	})
}

// statusRecorder remembers the status a handler wrote. It passes Flush and
// Hijack through (and Unwrap, for http.ResponseController), so streams
// (events, reports) keep working.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		if s.status == 0 {
			s.status = http.StatusOK
		}
		f.Flush()
	}
}

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := s.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijacking is not supported")
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) statusOr200() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// keyLimiter is API_RATE_LIMIT: a token bucket per API key, in this
// process (each API replica allows the rate on its own).
type keyLimiter struct {
	limit app.RateLimit
	mu    sync.Mutex
	keys  map[string]*rate.Limiter // by key id; only valid keys get here
}

func newKeyLimiter(l app.RateLimit) *keyLimiter {
	return &keyLimiter{limit: l, keys: map[string]*rate.Limiter{}}
}

// wait answers 0 when the key may make a request now, else how long until
// it may (nothing is taken then).
func (k *keyLimiter) wait(id string, now time.Time) time.Duration {
	if k == nil || k.limit.Off() {
		return 0
	}
	k.mu.Lock()
	l, ok := k.keys[id]
	if !ok {
		l = rate.NewLimiter(k.limit.PerSecond, k.limit.Burst)
		k.keys[id] = l
	}
	k.mu.Unlock()
	res := l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}

// tooManyRequests answers 429 with Retry-After in whole seconds (at least 1).
func (s *server) tooManyRequests(w http.ResponseWriter, wait time.Duration) {
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(max(1, secs)))
	writeError(w, http.StatusTooManyRequests, "rate_limit_exceeded",
		fmt.Sprintf("too many requests with this API key: at most %s a second (bursts of %d); retry after %ds",
			strconv.FormatFloat(float64(s.limiter.limit.PerSecond), 'f', -1, 64), s.limiter.limit.Burst, max(1, secs)), nil)
}

// Lifecycle events of a campaign, each logged once where it happens:
// created, started (a draft), resumed, paused, cancelled and deleted (by
// a user) here; started (a scheduled campaign's time came) by the worker's
// control handler; completed and deleted (its retention ended) by the
// worker's retention pass.
const (
	eventCreated   = "created"
	eventStarted   = "started"
	eventPaused    = "paused"
	eventResumed   = "resumed"
	eventCancelled = "cancelled"
	eventDeleted   = "deleted"
)

// lifecycle logs a lifecycle event of campaign c, with who asked (the key
// id) and why.
func (s *server) lifecycle(r *http.Request, event string, c *campaign.Campaign, reason string) {
	campaign.LogLifecycle(s.log, event, c, zap.String("key_id", requestKeyID(r)), zap.String("reason", reason))
}
