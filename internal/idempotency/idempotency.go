// Package idempotency makes any POST of the API safe to retry: the
// Idempotency-Key store (its keys and scripts) and the HTTP middleware.
// A client may retry any POST safely. A replay answers the
// first result and creates nothing.
//
// Which requests: POST requests with a non-empty Idempotency-Key header.
// Every other request, and a POST without the header, passes through
// untouched. DELETE is not covered: the API has no DELETE route, and DELETE
// and PUT are idempotent by their HTTP meaning (a retried PUT sets the same
// value again). The middleware goes inside auth (it scopes keys by the
// caller's credentials) and only on routes that need an API key: on a route
// without one, all anonymous callers would share one scope.
//
// The key: 1 to 255 printable ASCII characters (space to '~'), sent once;
// anything else is answered 400 validation_error naming Idempotency-Key.
//
// Where it is kept: Redis key wac:idem:<scope>:<sha256(key)>, where scope is
// the SHA-256 of the caller's credential (the Authorization value, the token
// alone when it is "Bearer <token>", so that spacing differences do not
// split one caller): two API keys never share an idempotency key. Neither the
// Authorization value nor the raw key is stored or logged.
//
// The first request with a key claims it atomically (SET NX) with a record
// "in progress", its method, path and a fingerprint, for claimTTL (15
// minutes: a process that dies mid-request does not hold the key for long).
// The handler runs while its status, its Content-Type, Content-Disposition,
// Location and X-Content-Type-Options headers, and its body are captured
// (and written to the client as usual). Then:
//   - status < 500: the response is stored under the key for ttl (24h by
//     default), counted from the end of the first request;
//   - status >= 500, 408 or 429 (transient: try again), a panic, no answer at
//     all (the handler wrote nothing, e.g. the client went away), or a 4xx
//     while the client had already gone (it never saw the answer): the key is
//     released, and a retry runs the handler again;
//   - a body over maxBody (1 MiB) is not stored: the key is released and a
//     line is logged.
//
// A later request with the same key:
//   - same method and path, response stored: the stored status, headers and
//     body exactly, plus "Idempotent-Replayed: true"; the handler does not
//     run;
//   - same method and path, first still running: 409 conflict (retry later);
//   - another method, path, query or body media type: 422 validation_error
//     naming Idempotency-Key ("this key was used for POST /v1/campaigns; use
//     a new key for another request").
//
// The fingerprint is method + path + query + the Content-Type's media type
// without parameters (a multipart boundary differs between two sends of the
// same upload). The body is not compared: uploads are streamed files of up to
// hundreds of MB that the handler reads as they arrive, and hashing them
// first would mean reading them twice. A retry with the same key and another
// body gets the first answer.
//
// When Redis cannot be asked, a request with a key is answered 503 and not
// run: running it would lose the guarantee the client asked for.
package idempotency

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Middleware is the Idempotency-Key store and middleware.
type Middleware struct {
	rdb      redis.UniversalClient
	ttl      time.Duration // a stored response
	claimTTL time.Duration // a request in progress
	maxBody  int           // the largest response body stored
	errors   ErrorWriter
	log      *zap.Logger
}

// ErrorWriter writes an error answer in the API's envelope: its status,
// error code and message and, when headerMsg is not "", a problem naming
// the Idempotency-Key header with headerMsg.
type ErrorWriter func(w http.ResponseWriter, status int, code, message, headerMsg string)

func (st *Middleware) answer(w http.ResponseWriter, status int, code, message, headerMsg string) {
	st.errors(w, status, code, message, headerMsg)
}

const (
	Header         = "Idempotency-Key"
	ReplayedHeader = "Idempotent-Replayed"
	maxKeyLen      = 255

	defaultTTL      = 24 * time.Hour
	defaultClaimTTL = 15 * time.Minute
	defaultMaxBody  = 1 << 20

	idemInProgress = "in_progress"
	idemDone       = "done"
)

// storedHeaders are the response headers a replay repeats.
var storedHeaders = []string{"Content-Type", "Content-Disposition", "Location", "X-Content-Type-Options"}

// New keeps responses in rdb for ttl (0: 24h), answering errors with
// writeErr.
func New(rdb redis.UniversalClient, ttl time.Duration, writeErr ErrorWriter, log *zap.Logger) *Middleware {
	if ttl <= 0 {
		ttl = defaultTTL
	}
	return &Middleware{
		rdb:      rdb,
		ttl:      ttl,
		claimTTL: defaultClaimTTL,
		maxBody:  defaultMaxBody,
		errors:   writeErr,
		log:      log.Named("idempotency"),
	}
}

// idemRecord is what the Redis key holds, as JSON.
type idemRecord struct {
	State       string      `json:"state"`           // idemInProgress or idemDone
	Claim       string      `json:"claim,omitempty"` // random: which request holds the key
	Method      string      `json:"method"`
	Target      string      `json:"target"` // path and canonical query, for messages
	Fingerprint string      `json:"fingerprint"`
	Started     time.Time   `json:"started"`
	Status      int         `json:"status,omitempty"`
	Header      http.Header `json:"header,omitempty"`
	Body        []byte      `json:"body,omitempty"`
}

// Wrap applies the Idempotency-Key behaviour (see the package doc) to next.
func (st *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		values := r.Header.Values(Header)
		if len(values) == 0 || (len(values) == 1 && values[0] == "") {
			next.ServeHTTP(w, r)
			return
		}
		if msg := invalidIdempotencyKey(values); msg != "" {
			st.answer(w, http.StatusBadRequest, "validation_error", "the "+Header+" header is not valid: "+msg, msg)
			return
		}
		st.serve(w, r, next, values[0])
	})
}

// invalidIdempotencyKey says what is wrong with the header's values, or "".
func invalidIdempotencyKey(values []string) string {
	if len(values) > 1 {
		return "send one Idempotency-Key header, not several"
	}
	key := values[0]
	if len(key) > maxKeyLen {
		return fmt.Sprintf("the key has %d characters; at most %d", len(key), maxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return "use 1 to 255 printable ASCII characters (a UUID is a good key)"
		}
	}
	return ""
}

func (st *Middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler, idemKey string) {
	key := idempotencyRedisKey(r.Header.Get("Authorization"), idemKey)
	keyHash := key[len(key)-12:] // enough to follow one key through the logs
	target := idempotencyTarget(r)
	rec := idemRecord{
		State:       idemInProgress,
		Claim:       rand.Text(),
		Method:      r.Method,
		Target:      target,
		Fingerprint: idempotencyFingerprint(r.Method, target, r.Header.Get("Content-Type")),
		Started:     time.Now().UTC(),
	}
	claimJSON, err := json.Marshal(rec)
	if err != nil {
		st.fail(w, r, keyHash, err)
		return
	}
	claim := string(claimJSON)

	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	prev, err := st.claim(ctx, key, claim)
	cancel()
	if err != nil {
		st.log.Error("cannot claim an idempotency key", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.String("key_hash", keyHash), zap.Error(err))
		st.answer(w, http.StatusServiceUnavailable, "unavailable",
			"the Idempotency-Key cannot be checked now (Redis does not answer); nothing was done, retry later", "")
		return
	}
	if prev != nil {
		st.answerExisting(w, r, keyHash, &rec, prev)
		return
	}

	rw := &idemRecorder{w: w, max: st.maxBody}
	finished := false
	defer func() {
		if !finished { // the handler panicked: let the client retry
			st.release(r, key, claim, keyHash, "the handler panicked")
		}
	}()
	next.ServeHTTP(rw, r)
	finished = true

	switch {
	case rw.status == 0:
		st.release(r, key, claim, keyHash, "the handler answered nothing")
		return
	case rw.status >= 500 || rw.status == http.StatusRequestTimeout || rw.status == http.StatusTooManyRequests:
		st.release(r, key, claim, keyHash, "")
		return
	case rw.status >= 400 && r.Context().Err() != nil:
		st.release(r, key, claim, keyHash, "the client went away before the answer")
		return
	case rw.overflow:
		st.log.Warn("a response too large to keep for Idempotency-Key replays; the key is released",
			zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("key_hash", keyHash),
			zap.Int("status", rw.status), zap.Int64("bytes", rw.written), zap.Int("max_bytes", st.maxBody))
		st.release(r, key, claim, keyHash, "")
		return
	}

	rec.State, rec.Claim = idemDone, ""
	rec.Status, rec.Header, rec.Body = rw.status, rw.header, rw.body.Bytes()
	st.keep(r, key, claim, keyHash, &rec)
}

// keep stores the answer rec for replays, if the key still holds this
// request's claim.
func (st *Middleware) keep(r *http.Request, key, claim, keyHash string, rec *idemRecord) {
	done, err := json.Marshal(rec)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		var stored int
		stored, err = idemStoreScript.Run(ctx, st.rdb, []string{key}, claim, string(done), st.ttl.Milliseconds()).Int()
		cancel()
		if err == nil && stored == 0 {
			st.log.Warn("the Idempotency-Key claim expired during the request and another request took the key; this response is not kept",
				zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("key_hash", keyHash))
		}
	}
	if err != nil {
		// The claim stays until claimTTL: retries get 409 until then,
		// never a second run of a request that did its work.
		st.log.Error("cannot store a response for Idempotency-Key replays", zap.String("method", r.Method),
			zap.String("path", r.URL.Path), zap.String("key_hash", keyHash), zap.Error(err))
	}
}

// claim takes the key for this request; when another request has it, it
// returns that one's record.
func (st *Middleware) claim(ctx context.Context, key, claim string) (*idemRecord, error) {
	for range 3 { // the key may expire or be released between SET NX and GET
		ok, err := st.rdb.SetNX(ctx, key, claim, st.claimTTL).Result()
		if err != nil {
			return nil, err
		}
		if ok {
			return nil, nil
		}
		raw, err := st.rdb.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var prev idemRecord
		if err := json.Unmarshal(raw, &prev); err != nil {
			return nil, fmt.Errorf("idempotency record %s: %w", key, err)
		}
		return &prev, nil
	}
	return nil, errors.New("the idempotency key keeps changing hands")
}

// answerExisting answers a request whose key another request has taken.
func (st *Middleware) answerExisting(w http.ResponseWriter, r *http.Request, keyHash string, rec, prev *idemRecord) {
	switch {
	case prev.Fingerprint != rec.Fingerprint:
		used := prev.Method + " " + prev.Target
		msg := "this key was used for " + used + "; use a new key for another request"
		if prev.Method == rec.Method && prev.Target == rec.Target {
			msg = "this key was used for " + used + " with another Content-Type; use a new key for another request"
		}
		st.answer(w, http.StatusUnprocessableEntity, "validation_error", msg, msg)
	case prev.State == idemInProgress:
		w.Header().Set("Retry-After", "1")
		st.answer(w, http.StatusConflict, "conflict",
			"a request with this Idempotency-Key is still in progress; retry later to get its answer", "")
	case prev.State == idemDone && prev.Status >= 100:
		h := w.Header()
		for k, v := range prev.Header {
			h[k] = v
		}
		h.Set(ReplayedHeader, "true")
		w.WriteHeader(prev.Status)
		_, _ = w.Write(prev.Body)
	default:
		st.fail(w, r, keyHash, fmt.Errorf("idempotency record in state %q with status %d", prev.State, prev.Status))
	}
}

// release gives the key back so that a retry runs the handler again.
func (st *Middleware) release(r *http.Request, key, claim, keyHash, why string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := idemReleaseScript.Run(ctx, st.rdb, []string{key}, claim).Err(); err != nil {
		st.log.Error("cannot release an Idempotency-Key; it expires with its claim", zap.String("method", r.Method),
			zap.String("path", r.URL.Path), zap.String("key_hash", keyHash), zap.Duration("claim_ttl", st.claimTTL), zap.Error(err))
		return
	}
	if why != "" {
		st.log.Info("Idempotency-Key released", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.String("key_hash", keyHash), zap.String("why", why))
	}
}

func (st *Middleware) fail(w http.ResponseWriter, r *http.Request, keyHash string, err error) {
	st.log.Error("idempotency failed", zap.String("method", r.Method), zap.String("path", r.URL.Path),
		zap.String("key_hash", keyHash), zap.Error(err))
	st.answer(w, http.StatusInternalServerError, "internal_error", "internal error; it has been logged", "")
}

// idempotencyTarget is the path, and the query in a canonical order.
func idempotencyTarget(r *http.Request) string {
	if q := r.URL.Query(); len(q) > 0 {
		return r.URL.Path + "?" + q.Encode()
	}
	return r.URL.Path
}

// idempotencyFingerprint identifies a request without reading its body.
func idempotencyFingerprint(method, target, contentType string) string {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mediaType, _, _ = strings.Cut(contentType, ";")
		mediaType = strings.ToLower(strings.TrimSpace(mediaType))
	}
	sum := sha256.Sum256([]byte(method + "\x00" + target + "\x00" + mediaType))
	return hex.EncodeToString(sum[:])
}

// idemRecorder passes a response through while keeping a copy of its
// status, the headers a replay repeats, and up to max bytes of body.
type idemRecorder struct {
	w        http.ResponseWriter
	max      int
	status   int
	header   http.Header
	body     bytes.Buffer
	written  int64
	overflow bool
}

func (c *idemRecorder) Header() http.Header { return c.w.Header() }

func (c *idemRecorder) WriteHeader(status int) {
	if c.status == 0 && status >= 200 {
		c.status = status
		c.header = http.Header{}
		for _, k := range storedHeaders {
			if v := c.w.Header().Values(k); len(v) > 0 {
				c.header[k] = append([]string(nil), v...)
			}
		}
	}
	c.w.WriteHeader(status)
}

func (c *idemRecorder) Write(p []byte) (int, error) {
	if c.status == 0 {
		if _, set := c.w.Header()["Content-Type"]; !set {
			// What net/http will send; a replay must say the same.
			c.w.Header().Set("Content-Type", http.DetectContentType(p))
		}
		c.WriteHeader(http.StatusOK)
	}
	c.written += int64(len(p))
	if !c.overflow {
		if c.body.Len()+len(p) > c.max {
			c.overflow = true
			c.body = bytes.Buffer{}
		} else {
			c.body.Write(p)
		}
	}
	return c.w.Write(p)
}

// Flush and Unwrap keep http.Flusher and http.ResponseController working.
func (c *idemRecorder) Flush() {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK) // what flushing does
	}
	_ = http.NewResponseController(c.w).Flush()
}

func (c *idemRecorder) Unwrap() http.ResponseWriter { return c.w }
