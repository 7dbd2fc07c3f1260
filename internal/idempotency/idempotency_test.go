package idempotency

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wacampaign/wacampaign/internal/redistest"
)

const idemAuth = "Bearer idem-test-key"

// idemFixture is the middleware on a throwaway Redis around a fake API whose
// handlers count their calls and create numbered "things".
type idemFixture struct {
	t       *testing.T
	rdb     *redis.Client
	st      *Middleware
	h       http.Handler
	logs    *observer.ObservedLogs
	calls   atomic.Int32
	started chan struct{} // a blocking handler has started
	unblock chan struct{} // closing it lets blocking handlers answer
}

// idemGoneKey holds the cancel func of a request whose client goes away
// while the handler runs.
type idemGoneKey struct{}

func newIdemFixture(t *testing.T) *idemFixture {
	t.Helper()
	f := &idemFixture{t: t, rdb: redistest.Start(t).Client(t), started: make(chan struct{}, 8), unblock: make(chan struct{})}
	core, logs := observer.New(zapcore.DebugLevel)
	f.logs = logs
	f.st = New(f.rdb, 0, writeTestError, zap.New(core))

	mux := http.NewServeMux()
	create := func(w http.ResponseWriter, r *http.Request) {
		n := f.calls.Add(1)
		if r.Header.Get("X-Test-Block") != "" {
			f.started <- struct{}{}
			<-f.unblock
		}
		id := fmt.Sprintf("thing-%d", n)
		w.Header().Set("Location", "/things/"+id)
		w.Header().Set("X-Not-Kept", "1")
		writeOK(w, http.StatusCreated, map[string]string{"id": id})
	}
	mux.HandleFunc("POST /things", create)
	mux.HandleFunc("POST /other", create)
	mux.HandleFunc("GET /things", func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		writeOK(w, http.StatusOK, []string{})
	})
	mux.HandleFunc("PUT /things/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		writeOK(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
	})
	mux.HandleFunc("POST /bad", func(w http.ResponseWriter, r *http.Request) {
		n := f.calls.Add(1)
		writeError(w, http.StatusBadRequest, "validation_error", fmt.Sprintf("bad input (call %d)", n), nil, "")
	})
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) {
		n := f.calls.Add(1)
		writeError(w, http.StatusInternalServerError, "internal_error", fmt.Sprintf("failed (call %d)", n), nil, "")
	})
	mux.HandleFunc("POST /limited", func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		writeError(w, http.StatusTooManyRequests, "rate_limited", "slow down", nil, "")
	})
	mux.HandleFunc("POST /big", func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range (defaultMaxBody / len(chunk)) + 1 {
			_, _ = w.Write(chunk)
		}
	})
	mux.HandleFunc("POST /panic", func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		panic("handler bug")
	})
	mux.HandleFunc("POST /silent", func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1) // the client went away: nothing to answer
	})
	f.h = f.st.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gone, ok := r.Context().Value(idemGoneKey{}).(context.CancelFunc); ok {
			gone()
		}
		mux.ServeHTTP(w, r)
	}))
	return f
}

type idemReq struct {
	method, path string
	key          string   // "" : no header
	keys         []string // several headers
	auth         string   // "" : idemAuth
	contentType  string
	block        bool
	clientGone   bool // the request's context is cancelled
}

func (f *idemFixture) do(q idemReq) *httptest.ResponseRecorder {
	f.t.Helper()
	if q.method == "" {
		q.method = http.MethodPost
	}
	r := httptest.NewRequest(q.method, q.path, strings.NewReader(`{"a":1}`))
	if q.auth == "" {
		q.auth = idemAuth
	}
	r.Header.Set("Authorization", q.auth)
	if q.contentType != "" {
		r.Header.Set("Content-Type", q.contentType)
	}
	if q.key != "" {
		r.Header.Set(Header, q.key)
	}
	for _, k := range q.keys {
		r.Header.Add(Header, k)
	}
	if q.block {
		r.Header.Set("X-Test-Block", "1")
	}
	if q.clientGone {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		r = r.WithContext(context.WithValue(ctx, idemGoneKey{}, cancel))
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func (f *idemFixture) wantCalls(n int32) {
	f.t.Helper()
	if got := f.calls.Load(); got != n {
		f.t.Fatalf("handler ran %d times, want %d", got, n)
	}
}

// idemKeys lists the idempotency keys in Redis.
func (f *idemFixture) idemKeys() []string {
	f.t.Helper()
	keys, err := f.rdb.Keys(context.Background(), "wac:idem:*").Result()
	if err != nil {
		f.t.Fatal(err)
	}
	return keys
}

func idemEnvelope(t *testing.T, w *httptest.ResponseRecorder) errorEnvelope {
	t.Helper()
	var env errorEnvelope
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, w.Body)
	}
	return env
}

func TestIdempotencyReplayAnswersTheFirstResult(t *testing.T) {
	f := newIdemFixture(t)
	const key = "order-7f3c2a"
	first := f.do(idemReq{path: "/things", key: key})
	if first.Code != http.StatusCreated || first.Header().Get(ReplayedHeader) != "" {
		t.Fatalf("first: %d %v %s", first.Code, first.Header(), first.Body)
	}
	f.wantCalls(1)

	for i := range 3 {
		again := f.do(idemReq{path: "/things", key: key})
		if again.Code != first.Code || again.Body.String() != first.Body.String() {
			t.Fatalf("replay %d: %d %s, want %d %s", i, again.Code, again.Body, first.Code, first.Body)
		}
		for _, h := range []string{"Content-Type", "Location", "X-Content-Type-Options"} {
			if again.Header().Get(h) != first.Header().Get(h) || first.Header().Get(h) == "" {
				t.Errorf("replay %s = %q, first %q", h, again.Header().Get(h), first.Header().Get(h))
			}
		}
		if again.Header().Get(ReplayedHeader) != "true" {
			t.Errorf("replay lacks %s: true: %v", ReplayedHeader, again.Header())
		}
		if again.Header().Get("X-Not-Kept") != "" {
			t.Errorf("replay repeats a header that is not kept: %v", again.Header())
		}
	}
	f.wantCalls(1)

	// A new key is a new request.
	if w := f.do(idemReq{path: "/things", key: key + "-2"}); w.Code != http.StatusCreated || !strings.Contains(w.Body.String(), "thing-2") {
		t.Fatalf("new key: %d %s", w.Code, w.Body)
	}
	f.wantCalls(2)

	// The Redis key: hashed scope and key, nothing raw, kept 24h.
	keys := f.idemKeys()
	if len(keys) != 2 {
		t.Fatalf("keys %v", keys)
	}
	ctx := context.Background()
	for _, k := range keys {
		parts := strings.Split(k, ":")
		if len(parts) != 4 || len(parts[2]) != 64 || len(parts[3]) != 64 {
			t.Errorf("key %q is not wac:idem:<sha256>:<sha256>", k)
		}
		val, err := f.rdb.Get(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{key, "idem-test-key"} {
			if strings.Contains(k, secret) || strings.Contains(val, secret) {
				t.Errorf("Redis holds %q in the clear: %s = %s", secret, k, val)
			}
		}
		ttl, err := f.rdb.TTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < 23*time.Hour || ttl > 24*time.Hour {
			t.Errorf("stored response TTL %v, want about 24h", ttl)
		}
	}
}

func TestIdempotencyStoresOrReleases(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		status     int
		stored     bool // a retry replays; otherwise it runs the handler again
		panics     bool
		clientGone bool
	}{
		{name: "201 stored", path: "/things", status: http.StatusCreated, stored: true},
		{name: "400 stored", path: "/bad", status: http.StatusBadRequest, stored: true},
		{name: "500 released", path: "/fail", status: http.StatusInternalServerError},
		{name: "429 released", path: "/limited", status: http.StatusTooManyRequests},
		{name: "over the cap released", path: "/big", status: http.StatusCreated},
		{name: "panic released", path: "/panic", panics: true},
		{name: "no answer released", path: "/silent", status: http.StatusOK},
		{name: "400 to a client gone released", path: "/bad", status: http.StatusBadRequest, clientGone: true},
		{name: "201 to a client gone stored", path: "/things", status: http.StatusCreated, clientGone: true, stored: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newIdemFixture(t)
			call := func() (w *httptest.ResponseRecorder, panicked bool) {
				defer func() {
					if recover() != nil {
						panicked = true
					}
				}()
				return f.do(idemReq{path: tc.path, key: "k-" + tc.name, clientGone: tc.clientGone}), false
			}
			first, panicked := call()
			if panicked != tc.panics {
				t.Fatalf("panicked %v", panicked)
			}
			if !tc.panics && first.Code != tc.status {
				t.Fatalf("first: %d %s", first.Code, first.Body)
			}
			if tc.path == "/big" && first.Body.Len() <= defaultMaxBody {
				t.Fatalf("the client got %d bytes of a response over the cap", first.Body.Len())
			}
			second, _ := call()
			if tc.stored {
				f.wantCalls(1)
				if second.Code != first.Code || second.Body.String() != first.Body.String() || second.Header().Get(ReplayedHeader) != "true" {
					t.Fatalf("replay: %d %v %s; first %d %s", second.Code, second.Header(), second.Body, first.Code, first.Body)
				}
				if len(f.idemKeys()) != 1 {
					t.Fatalf("keys %v", f.idemKeys())
				}
				return
			}
			f.wantCalls(2)
			if second != nil && second.Header().Get(ReplayedHeader) != "" {
				t.Fatalf("a released key was replayed: %v", second.Header())
			}
			if !tc.panics && second.Code != tc.status {
				t.Fatalf("retry: %d %s", second.Code, second.Body)
			}
			if keys := f.idemKeys(); len(keys) != 0 {
				t.Fatalf("released key still in Redis: %v", keys)
			}
			if tc.path == "/big" {
				logged := f.logs.FilterMessageSnippet("too large").All()
				if len(logged) != 2 {
					t.Fatalf("want a log line per over-cap response, got %v", f.logs.All())
				}
			}
		})
	}
}

func TestIdempotencyInProgressConflict(t *testing.T) {
	f := newIdemFixture(t)
	const key = "slow-1"
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- f.do(idemReq{path: "/things", key: key, block: true}) }()
	<-f.started

	// The claim is short-lived while the request runs.
	keys := f.idemKeys()
	if len(keys) != 1 {
		t.Fatalf("keys %v", keys)
	}
	ttl, err := f.rdb.TTL(context.Background(), keys[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > defaultClaimTTL {
		t.Errorf("in-progress TTL %v, want at most %v", ttl, defaultClaimTTL)
	}

	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := f.do(idemReq{path: "/things", key: key})
			env := idemEnvelope(t, w)
			if w.Code != http.StatusConflict || env.ErrorCode != "conflict" || !strings.Contains(env.Message, "still in progress") {
				t.Errorf("duplicate while running: %d %s", w.Code, w.Body)
			}
		}()
	}
	wg.Wait()
	f.wantCalls(1)

	close(f.unblock)
	first := <-done
	if first.Code != http.StatusCreated {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	again := f.do(idemReq{path: "/things", key: key})
	if again.Code != http.StatusCreated || again.Body.String() != first.Body.String() || again.Header().Get(ReplayedHeader) != "true" {
		t.Fatalf("replay after the first finished: %d %s", again.Code, again.Body)
	}
	f.wantCalls(1)
}

func TestIdempotencyKeyUsedForAnotherRequest(t *testing.T) {
	f := newIdemFixture(t)
	const key = "reuse-me"
	const multipart = "multipart/form-data; boundary=aaa"
	if w := f.do(idemReq{path: "/things", key: key, contentType: multipart}); w.Code != http.StatusCreated {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	for _, tc := range []struct {
		name string
		q    idemReq
	}{
		{"another path", idemReq{path: "/other", key: key, contentType: multipart}},
		{"a query", idemReq{path: "/things?dry_run=1", key: key, contentType: multipart}},
		{"another content type", idemReq{path: "/things", key: key, contentType: "application/json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(tc.q)
			env := idemEnvelope(t, w)
			if w.Code != http.StatusUnprocessableEntity || env.ErrorCode != "validation_error" ||
				!strings.Contains(env.Message, "this key was used for POST /things") || !strings.Contains(env.Message, "use a new key") ||
				len(env.Errors) != 1 || env.Errors[0].Fields[0] != Header {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
		})
	}
	// Another multipart boundary is the same upload sent again.
	w := f.do(idemReq{path: "/things", key: key, contentType: `multipart/form-data; boundary="bbb"`})
	if w.Code != http.StatusCreated || w.Header().Get(ReplayedHeader) != "true" {
		t.Fatalf("same upload, new boundary: %d %v %s", w.Code, w.Header(), w.Body)
	}
	f.wantCalls(1)
}

func TestIdempotencyInvalidKeys(t *testing.T) {
	f := newIdemFixture(t)
	for _, tc := range []struct {
		name string
		q    idemReq
	}{
		{"too long", idemReq{key: strings.Repeat("k", 256)}},
		{"not ASCII", idemReq{key: "clé-1"}},
		{"control character", idemReq{key: "a\x01b"}},
		{"DEL", idemReq{key: "a\x7fb"}},
		{"two headers", idemReq{keys: []string{"a", "b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.path = "/things"
			w := f.do(tc.q)
			env := idemEnvelope(t, w)
			if w.Code != http.StatusBadRequest || env.ErrorCode != "validation_error" || !strings.Contains(env.Message, Header) ||
				len(env.Errors) != 1 || len(env.Errors[0].Fields) != 1 || env.Errors[0].Fields[0] != Header {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
		})
	}
	f.wantCalls(0)
	if keys := f.idemKeys(); len(keys) != 0 {
		t.Fatalf("keys %v", keys)
	}
	// The limits themselves are fine.
	for _, key := range []string{"k", strings.Repeat("k", 255), " ~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}"} {
		if w := f.do(idemReq{path: "/things", key: key}); w.Code != http.StatusCreated {
			t.Fatalf("key %q: %d %s", key, w.Code, w.Body)
		}
	}
	f.wantCalls(3)
}

func TestIdempotencyPassesThroughUnaffectedRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		q    idemReq
		code int
	}{
		{"POST without the header", idemReq{path: "/things"}, http.StatusCreated},
		{"POST with an empty header", idemReq{path: "/things", keys: []string{""}}, http.StatusCreated},
		{"GET with a key", idemReq{method: http.MethodGet, path: "/things", key: "k1"}, http.StatusOK},
		{"GET with an invalid key", idemReq{method: http.MethodGet, path: "/things", key: strings.Repeat("k", 300)}, http.StatusOK},
		{"PUT with a key", idemReq{method: http.MethodPut, path: "/things/a", key: "k1"}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newIdemFixture(t)
			for range 2 {
				w := f.do(tc.q)
				if w.Code != tc.code || w.Header().Get(ReplayedHeader) != "" {
					t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
				}
			}
			f.wantCalls(2)
			if keys := f.idemKeys(); len(keys) != 0 {
				t.Fatalf("keys %v", keys)
			}
		})
	}
}

func TestIdempotencyCallersAreIndependent(t *testing.T) {
	f := newIdemFixture(t)
	const key = "shared-key"
	a := f.do(idemReq{path: "/things", key: key, auth: "Bearer key-a"})
	b := f.do(idemReq{path: "/things", key: key, auth: "Bearer key-b"})
	if a.Code != http.StatusCreated || b.Code != http.StatusCreated || a.Body.String() == b.Body.String() ||
		b.Header().Get(ReplayedHeader) != "" {
		t.Fatalf("a: %d %s; b: %d %s", a.Code, a.Body, b.Code, b.Body)
	}
	f.wantCalls(2)
	// Each caller replays its own answer; spacing after Bearer is the same caller.
	for _, tc := range []struct {
		auth string
		want *httptest.ResponseRecorder
	}{{"Bearer key-a", a}, {"Bearer  key-a ", a}, {"Bearer key-b", b}} {
		w := f.do(idemReq{path: "/things", key: key, auth: tc.auth})
		if w.Body.String() != tc.want.Body.String() || w.Header().Get(ReplayedHeader) != "true" {
			t.Fatalf("%q: %d %s, want %s", tc.auth, w.Code, w.Body, tc.want.Body)
		}
	}
	f.wantCalls(2)
}

func TestIdempotencyExpiredClaimDoesNotOverwrite(t *testing.T) {
	f := newIdemFixture(t)
	f.st.claimTTL = 100 * time.Millisecond // a process died, or a very long request
	const key = "long-upload"
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- f.do(idemReq{path: "/things", key: key, block: true}) }()
	<-f.started
	time.Sleep(300 * time.Millisecond)

	second := f.do(idemReq{path: "/things", key: key})
	if second.Code != http.StatusCreated || second.Header().Get(ReplayedHeader) != "" {
		t.Fatalf("after the claim expired: %d %s", second.Code, second.Body)
	}
	close(f.unblock)
	if first := <-done; first.Code != http.StatusCreated {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	f.wantCalls(2)
	// The key keeps the answer of the request that held it.
	replay := f.do(idemReq{path: "/things", key: key})
	if replay.Body.String() != second.Body.String() || replay.Header().Get(ReplayedHeader) != "true" {
		t.Fatalf("replay %s, want %s", replay.Body, second.Body)
	}
}

func TestIdempotencyWithoutRedisRunsNothing(t *testing.T) {
	f := newIdemFixture(t)
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = down.Close() })
	f.h = New(down, 0, writeTestError, zap.NewNop()).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
	}))
	w := f.do(idemReq{path: "/things", key: "k"})
	if env := idemEnvelope(t, w); w.Code != http.StatusServiceUnavailable || env.ErrorCode != "unavailable" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	f.wantCalls(0)
}

func TestIdempotencyLogsNoSecrets(t *testing.T) {
	f := newIdemFixture(t)
	const key = "secret-idem-key"
	f.do(idemReq{path: "/big", key: key})
	f.do(idemReq{path: "/silent", key: key})
	if len(f.logs.All()) == 0 {
		t.Fatal("nothing logged")
	}
	for _, e := range f.logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, secret := range []string{key, "idem-test-key"} {
			if strings.Contains(line, secret) {
				t.Errorf("log line holds %q: %s", secret, line)
			}
		}
	}
}

// The API's envelope, as the fake API and the middleware's errors answer in
// it here (cmd/campaign-api writes the real one).
type errorEnvelope struct {
	Status    string `json:"status"`
	Message   string `json:"message"`
	ErrorCode string `json:"error_code"`
	Errors    []struct {
		Fields []string `json:"fields"`
		Msg    string   `json:"msg"`
	} `json:"errors,omitempty"`
}

func writeOK(w http.ResponseWriter, status int, data any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok", "data": data})
}

func writeError(w http.ResponseWriter, status int, code, msg string, problemFields []string, problemMsg string) {
	env := errorEnvelope{Status: "error", Message: msg, ErrorCode: code}
	if len(problemFields) > 0 {
		env.Errors = append(env.Errors, struct {
			Fields []string `json:"fields"`
			Msg    string   `json:"msg"`
		}{problemFields, problemMsg})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(env)
}

// writeTestError is the middleware's ErrorWriter in these tests.
func writeTestError(w http.ResponseWriter, status int, code, message, headerMsg string) {
	var fields []string
	if headerMsg != "" {
		fields = []string{Header}
	}
	writeError(w, status, code, message, fields, headerMsg)
}
