package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/audience"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/campaign/recurring"
	"github.com/wacampaign/wacampaign/internal/campaign/sequence"
	"github.com/wacampaign/wacampaign/internal/idempotency"
	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// server is the v1 HTTP API: handlers are functions of the request that
// answer in the provider's envelope, {"status":"ok","data":...} or
// {"status":"error","message","error_code","errors":[{"fields","msg"}]}.
type server struct {
	services       *app.Services // built once, shared with a worker in this process
	queue          *campaign.Enqueuer
	store          *campaign.Store
	campaigns      *campaign.Service
	sequences      *sequence.Service
	recurring      *recurring.Store
	pacer          *quota.Pacer
	accounts       *quota.Accounts
	ledger         *quota.CreditLedger
	importer       *campaign.Importer
	forecast       *campaign.Forecaster // ETAs, waits and credits against the ledger, on every campaign answered
	previews       *campaign.Previewer
	audience       *audience.Store   // the suppression list
	inbound        *campaign.Inbound // incoming messages: keywords and replies
	rdb            redis.UniversalClient
	apiKeys        [][32]byte // SHA-256 of each key: compared in constant time
	maxUploadBytes int64
	templates      templating.Library // templates/<name>.tmpl, for template_name
	region         string
	webhookSecret  string
	polls          campaign.PollSchedule
	eventsEvery    time.Duration // how often an events stream looks for changes
	idem           *idempotency.Middleware
	limiter        *keyLimiter  // API_RATE_LIMIT, per API key
	metrics        http.Handler // GET /metrics
	log            *zap.Logger
}

// newServer builds the API on a Redis client.
func newServer(cfg app.Config, rdb redis.UniversalClient, log *zap.Logger) *server {
	svc := app.NewServices(cfg, rdb, log)
	srv := &server{
		services:       svc,
		queue:          svc.Enqueuer,
		store:          svc.Store,
		campaigns:      svc.Campaigns,
		sequences:      svc.Sequences,
		recurring:      svc.Recurring,
		importer:       svc.Importer,
		pacer:          svc.Pacer,
		accounts:       svc.Accounts,
		ledger:         svc.Ledger,
		audience:       svc.Audience,
		inbound:        svc.Inbound,
		rdb:            rdb,
		apiKeys:        hashKeys(cfg.APIKeys),
		maxUploadBytes: cfg.MaxUploadBytes,
		templates:      templating.Library{Dir: cfg.TemplatesDir},
		region:         cfg.DefaultRegion,
		webhookSecret:  cfg.WebhookSecret,
		polls:          svc.Polls,
		eventsEvery:    time.Second,
		log:            log.Named("api"),
	}
	srv.forecast = campaign.NewForecaster(campaign.ForecastDeps{Store: svc.Store, Pacer: svc.Pacer, Accounts: svc.Accounts,
		Ledger: svc.Ledger, Caps: providerCapabilities(cfg), QuotaSyncEvery: cfg.QuotaSyncInterval})
	srv.previews = campaign.NewPreviewer(svc.Store, providerCapabilities(cfg), srv.forecast)
	srv.idem = idempotency.New(rdb, 0, writeIdempotencyError, srv.log)
	srv.limiter = newKeyLimiter(cfg.APIRateLimit)
	var err error
	if srv.metrics, err = app.APIMetricsHandler(cfg, rdb, svc); err != nil {
		srv.log.Error("metrics are not served", zap.Error(err)) // a programming error: two collectors clash
		srv.metrics = http.NotFoundHandler()
	}
	return srv
}

// providerCapabilities are those of the provider the workers send through,
// as the configuration names it: the API process has no client of its own,
// yet a preview must know the provider's length limit and credits.
func providerCapabilities(cfg app.Config) sender.Capabilities {
	kind, _ := cfg.ProviderKind() // checked when the process started
	if kind == app.ProviderGateway || (kind == app.ProviderSandbox && cfg.SandboxAs == app.ProviderGateway) {
		return sender.GatewayCapabilities()
	}
	return sender.TimelinesCapabilities()
}

// idempotent wraps a handler behind auth with the Idempotency-Key
// behaviour, keeping responses 24h:
//
//	mux.Handle("POST /v1/campaigns", s.auth(s.idempotent(s.createCampaign)))
func (s *server) idempotent(next http.HandlerFunc) http.HandlerFunc {
	return s.idem.Wrap(next).ServeHTTP
}

// writeIdempotencyError answers the idempotency middleware's errors in the
// API's shape.
func writeIdempotencyError(w http.ResponseWriter, status int, code, message, headerMsg string) {
	var problems []campaign.Problem
	if headerMsg != "" {
		problems = []campaign.Problem{{Fields: []string{idempotency.Header}, Msg: headerMsg}}
	}
	writeError(w, status, code, message, problems)
}

// Close releases the server's queue client (not the Redis client it shares).
func (s *server) Close() { _ = s.services.Close() }

// route is one endpoint of the API. The table below is the one list of
// endpoints: the mux is built from it, and a test checks the OpenAPI
// document against it.
type route struct {
	pattern string // "METHOD /path/{param}"
	handler http.HandlerFunc
	// public routes need no API key: health, the OpenAPI document, and the
	// webhook, whose URL carries its own secret.
	public bool
}

func (s *server) table() []route {
	return []route{
		{"GET /healthz", s.health, true},
		{"GET /v1/openapi.json", s.openAPI, true},
		{"POST /v1/webhooks/timelines/{secret}", s.timelinesWebhook, true},

		{"POST /v1/campaigns", s.createCampaign, false},
		{"GET /v1/campaigns", s.listCampaigns, false},
		{"GET /v1/campaigns/{id}", s.getCampaign, false},
		{"PATCH /v1/campaigns/{id}", s.patchCampaign, false},
		{"DELETE /v1/campaigns/{id}", s.deleteCampaign, false},
		{"GET /v1/campaigns/{id}/preview", s.previewCampaign, false},
		{"POST /v1/campaigns/{id}/test", s.testCampaign, false},
		{"GET /v1/campaigns/{id}/test", s.listTests, false},
		{"POST /v1/campaigns/{id}/start", s.startCampaign, false},
		{"GET /v1/campaigns/{id}/recipients", s.listRecipients, false},
		{"POST /v1/campaigns/{id}/pause", s.pauseCampaign, false},
		{"POST /v1/campaigns/{id}/resume", s.resumeCampaign, false},
		{"POST /v1/campaigns/{id}/cancel", s.cancelCampaign, false},
		{"POST /v1/campaigns/{id}/retry-failed", s.retryFailed, false},
		{"POST /v1/campaigns/{id}/reschedule", s.rescheduleCampaign, false},
		{"GET /v1/campaigns/{id}/report.csv", s.report, false},
		{"GET /v1/campaigns/{id}/events", s.events, false},
		{"GET /v1/templates", s.listTemplates, false},

		{"POST /v1/sequences", s.createSequence, false},
		{"GET /v1/sequences", s.listSequences, false},
		{"GET /v1/sequences/{id}", s.getSequence, false},
		{"POST /v1/sequences/{id}/enrollments", s.enroll, false},
		{"GET /v1/sequences/{id}/enrollments/{phone}", s.getEnrollment, false},
		{"DELETE /v1/sequences/{id}/enrollments/{phone}", s.unenroll, false},

		{"POST /v1/recurring", s.createRecurring, false},
		{"GET /v1/recurring", s.listRecurring, false},
		{"GET /v1/recurring/{id}", s.getRecurring, false},
		{"DELETE /v1/recurring/{id}", s.stopRecurring, false},

		{"GET /v1/provider", s.getProvider, false},
		{"GET /v1/quota", s.getQuota, false},
		{"GET /v1/accounts", s.listAccounts, false},
		{"PUT /v1/accounts/{phone}", s.updateAccount, false},

		{"GET /v1/suppressions", s.listSuppressions, false},
		{"POST /v1/suppressions", s.addSuppressions, false},
		{"DELETE /v1/suppressions/{phone}", s.removeSuppression, false},
		{"POST /v1/accounts/{phone}/pause", s.pauseAccount, false},
		{"POST /v1/accounts/{phone}/resume", s.resumeAccount, false},
	}
}

// routes builds the mux: every route but the public ones needs an API key,
// and every authenticated POST honours an Idempotency-Key.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.table() {
		h := rt.handler
		if !rt.public {
			if strings.HasPrefix(rt.pattern, "POST ") {
				h = s.idempotent(h)
			}
			mux.Handle(rt.pattern, s.auth(h))
			continue
		}
		mux.HandleFunc(rt.pattern, h)
	}
	// Prometheus's, not the v1 API's: outside the table and the OpenAPI
	// document, and without a key (a scraper has none).
	mux.Handle("GET /metrics", s.metrics)
	return s.observed(s.withJSONFallbacks(mux))
}

// withJSONFallbacks answers unknown paths and wrong methods in the API's
// error shape instead of the mux's plain text.
func (s *server) withJSONFallbacks(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r) // not h: only the mux sets the path values
			return
		}
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				r.Method+" is not allowed here; allowed: "+probe.header.Get("Allow"), nil)
			return
		}
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path, nil)
	})
}

// statusProbe records what the mux's fallback handler would answer.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(status int)      { p.status = status }

// auth lets a request through with a valid "Authorization: Bearer <key>".
func (s *server) auth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		if h == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="v1"`)
			writeError(w, http.StatusUnauthorized, "missing_credentials", "send the API key as Authorization: Bearer <key>", nil)
			return
		}
		key, ok := idempotency.BearerToken(h)
		if !ok || !s.validKey(key) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="v1", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid_token", "the API key is not valid", nil)
			return
		}
		if wait := s.limiter.wait(keyID(key), time.Now()); wait > 0 {
			s.tooManyRequests(w, wait)
			return
		}
		next(w, r)
	})
}

func (s *server) validKey(key string) bool {
	sum := sha256.Sum256([]byte(key))
	valid := 0
	for _, k := range s.apiKeys {
		valid |= subtle.ConstantTimeCompare(sum[:], k[:])
	}
	return valid == 1
}

func hashKeys(keys []string) [][32]byte {
	out := make([][32]byte, 0, len(keys))
	for _, k := range keys {
		out = append(out, sha256.Sum256([]byte(k)))
	}
	return out
}

// openAPI serves the OpenAPI 3 document of the v1 API (openapi.go).
func (s *server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(openAPIDocument)
}

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "Redis does not answer", nil)
		return
	}
	writeOK(w, http.StatusOK, map[string]string{"redis": "ok"})
}

type okEnvelope struct {
	Status string `json:"status"`
	Data   any    `json:"data"`
}

type errorEnvelope struct {
	Status    string             `json:"status"`
	Message   string             `json:"message"`
	ErrorCode string             `json:"error_code"`
	Errors    []campaign.Problem `json:"errors,omitempty"`
}

func writeOK(w http.ResponseWriter, status int, data any) {
	writeJSON(w, status, okEnvelope{Status: "ok", Data: data})
}

func writeError(w http.ResponseWriter, status int, code, msg string, problems []campaign.Problem) {
	writeJSON(w, status, errorEnvelope{Status: "error", Message: msg, ErrorCode: code, Errors: problems})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// internalError logs the cause and answers without it: internals (and any
// secret inside them) stay out of answers.
func (s *server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	writeError(w, http.StatusInternalServerError, "internal_error", "internal error; it has been logged", nil)
}
