package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/idempotency"
	"github.com/wacampaign/wacampaign/internal/redistest"
)

// The wiring the routes use: auth first, then the Idempotency-Key
// (internal/idempotency tests the middleware itself).
func TestIdempotencyBehindAuth(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	s := newServer(app.Config{APIKeys: []string{"idem-test-key"}}, rdb, zap.NewNop())
	t.Cleanup(s.Close)
	var calls atomic.Int32
	h := s.auth(s.idempotent(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		writeOK(w, http.StatusCreated, map[string]int32{"n": n})
	}))
	do := func(auth, key string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/things", strings.NewReader(""))
		r.Header.Set("Authorization", auth)
		r.Header.Set(idempotency.Header, key)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := do("Bearer wrong", "k"); w.Code != http.StatusUnauthorized {
		t.Fatalf("wrong key: %d %s", w.Code, w.Body)
	}
	first := do("Bearer idem-test-key", "k")
	again := do("Bearer idem-test-key", "k")
	if first.Code != http.StatusCreated || again.Body.String() != first.Body.String() || again.Header().Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("first %d %s; again %d %s", first.Code, first.Body, again.Code, again.Body)
	}
	if w := do("Bearer idem-test-key", "bad\x01key"); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"fields":["Idempotency-Key"]`) {
		t.Errorf("a bad key: %d %s; want 400 naming the header in the API's error shape", w.Code, w.Body)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the handler ran %d times, want 1", n)
	}
}
