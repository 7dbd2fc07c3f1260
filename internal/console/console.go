package console

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Options are what the console is built from.
type Options struct {
	// API is the v1 API's handler. Every console action is a request served
	// by it, with the session's API key as the Bearer token.
	API http.Handler
	// Redis keeps the sessions.
	Redis redis.UniversalClient
	Log   *zap.Logger
	// SessionTTL is how long an unused session lasts; 0: DefaultSessionTTL.
	SessionTTL time.Duration
	// ListEvery is how often the campaigns list looks for changes while a
	// browser watches it; 0: two seconds.
	ListEvery time.Duration
	// Monitor is the queue monitor, served at /monitor to signed-in
	// browsers only; nil: none.
	Monitor http.Handler
}

// Console serves the web console, and hands /v1/ and /healthz to the API,
// so that one handler serves the whole API process.
type Console struct {
	api       http.Handler
	sessions  *sessionStore
	pages     pages
	mux       *http.ServeMux
	log       *zap.Logger
	listEvery time.Duration
}

// New builds the console.
func New(o Options) (*Console, error) {
	if o.API == nil || o.Redis == nil {
		return nil, errors.New("console: Options.API and Options.Redis are required")
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.ListEvery <= 0 {
		o.ListEvery = 2 * time.Second
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	static, err := staticHandler()
	if err != nil {
		return nil, err
	}
	c := &Console{
		api:       o.API,
		sessions:  &sessionStore{rdb: o.Redis, ttl: o.SessionTTL},
		pages:     p,
		log:       o.Log.Named("console"),
		listEvery: o.ListEvery,
	}
	c.mux = c.routes(static)
	if o.Monitor != nil {
		// Not a console page (asynqmon's own app, its API under
		// /monitor/api), but behind the same sign-in.
		guarded := c.signedInOnly(o.Monitor)
		c.mux.Handle("/monitor", guarded)
		c.mux.Handle("/monitor/", guarded)
	}
	return c, nil
}

// ServeHTTP sends the API's paths to the API and the rest to the console.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/v1/") || r.URL.Path == "/healthz" || r.URL.Path == "/metrics" {
		c.api.ServeHTTP(w, r)
		return
	}
	h := w.Header()
	csp := "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	if r.URL.Path == "/monitor" || strings.HasPrefix(r.URL.Path, "/monitor/") {
		// asynqmon's page configures itself in inline scripts and styles
		// its components inline; nothing else is loosened.
		csp = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

// handler is a console page for a signed-in browser.
type handler func(w http.ResponseWriter, r *http.Request, s *session)

// route is one page or action of a signed-in browser. An upload's form is
// relayed to the API as it arrives, so its handler checks the CSRF token,
// which comes first in the form, before anything reaches the API.
type route struct {
	pattern string
	handler handler
	upload  bool
}

// routes is the console's one list of pages and actions. Every route but
// sign-in and the static files needs a session; every POST among them, the
// session's CSRF token.
func (c *Console) routes(static http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", static)
	mux.HandleFunc("GET /signin", c.signinPage)
	mux.HandleFunc("POST /signin", c.signin)
	mux.HandleFunc("/", c.notFound)
	for _, rt := range []route{
		{"GET /{$}", c.home, false},
		{"POST /signout", c.signout, false},
		{"GET /campaigns", c.campaignsPage, false},
		{"GET /campaigns/events", c.campaignsEvents, false},
		{"GET /campaigns/new", c.newCampaignPage, false},
		{"POST /campaigns/new", c.createCampaign, true},
		{"GET /campaigns/{id}", c.campaignPage, false},
		{"GET /campaigns/{id}/events", c.campaignEvents, false},
		{"GET /campaigns/{id}/report.csv", c.report, false},
		{"POST /campaigns/{id}/{action}", c.campaignAction, false},
		{"GET /sequences", c.sequencesPage, false},
		{"GET /sequences/new", c.newSequencePage, false},
		{"POST /sequences/new", c.createSequence, false},
		{"GET /sequences/{id}", c.sequencePage, false},
		{"POST /sequences/{id}/enrollments", c.enroll, true},
		{"GET /sequences/{id}/enrollments/{phone}", c.enrollmentPage, false},
		{"POST /sequences/{id}/enrollments/{phone}/unenroll", c.unenroll, false},
		{"GET /accounts", c.accountsPage, false},
		{"POST /accounts/interval", c.setInterval, false},
		{"POST /accounts/{phone}/{action}", c.accountAction, false},
		{"GET /suppressions", c.suppressionsPage, false},
		{"POST /suppressions", c.addSuppression, false},
		{"POST /suppressions/{phone}/remove", c.removeSuppression, false},
	} {
		mux.Handle(rt.pattern, c.signedIn(rt))
	}
	return mux
}

func (c *Console) home(w http.ResponseWriter, r *http.Request, _ *session) {
	http.Redirect(w, r, "/campaigns", http.StatusSeeOther)
}

// signedIn lets a request through with a live session (and, for a POST, its
// CSRF token); a browser without one is sent to sign in.
func (c *Console) signedIn(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.currentSession(r)
		if err != nil {
			c.log.Error("read a console session", zap.Error(err))
			c.problem(w, r, nil, http.StatusServiceUnavailable, "The console cannot reach its session store (Redis). Try again in a moment.")
			return
		}
		if s == nil {
			c.signedOut(w, r)
			return
		}
		formChecked := rt.upload && isMultipart(r) // by the handler, as the form arrives
		if r.Method == http.MethodPost && !formChecked && !s.validCSRF(r.PostFormValue("csrf")) {
			c.csrfRefused(w, r, s)
			return
		}
		rt.handler(w, r, s)
	})
}

// signedInOnly lets through requests of a browser with a live session
// (what is not the console's own, like the queue monitor); others are sent
// to sign in, or get 401 when they are not a page.
func (c *Console) signedInOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.currentSession(r)
		if err != nil {
			c.log.Error("read a console session", zap.Error(err))
			http.Error(w, "the session store (Redis) does not answer", http.StatusServiceUnavailable)
			return
		}
		if s == nil {
			if r.Method != http.MethodGet || strings.HasPrefix(r.URL.Path, "/monitor/api/") {
				http.Error(w, "sign in to the console first", http.StatusUnauthorized)
				return
			}
			c.signedOut(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// signedOut answers a request without a session: pages redirect to the
// sign-in page (and back afterwards), streams and actions get 401/303.
func (c *Console) signedOut(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		http.Error(w, "signed out", http.StatusUnauthorized)
		return
	}
	target := "/signin"
	if r.Method == http.MethodGet && r.URL.Path != "/" {
		target += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (c *Console) csrfRefused(w http.ResponseWriter, r *http.Request, s *session) {
	c.problem(w, r, s, http.StatusForbidden,
		"This form was not sent from a page of this console, or the page is older than your sign-in. Go back, reload the page and try again.")
}

// currentSession is the request's session, nil when it has none.
func (c *Console) currentSession(r *http.Request) (*session, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, nil
	}
	return c.sessions.load(r.Context(), ck.Value)
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	s, _ := c.currentSession(r)
	c.problem(w, r, s, http.StatusNotFound, "There is no page at "+r.URL.Path+".")
}

func isMultipart(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "multipart/form-data"
}
