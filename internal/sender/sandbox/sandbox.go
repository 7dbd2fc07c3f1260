// Package sandbox is an in-process stand-in for the WhatsApp providers: an
// http.Handler that behaves like the TimelinesAI Public API (it
// authenticates, validates, charges credits, paces and reports message
// statuses the way the provider's pages and the facts sheet (shared/spec)
// describe), or, in ModeGateway, like one instance of the self-hosted
// WhatsApp gateway (spec/gateway-send-chat-message.txt); and that can be
// told to misbehave (Inject).
//
// Tests run it behind httptest.Server and check what it recorded;
// `make run` serves it when PROVIDER=sandbox, so the whole product can be
// tried without an account. Inspection endpoints under /_sandbox/ (no auth)
// show what it received and let a test that drives a separate process
// change its state. Several gateway instances (one per account) are several
// sandbox servers.
//
// Decisions where the provider's behaviour is unknown are the documented
// defaults below; they are the contract the rest of the product is tested
// against.
//
//   - Statuses are "Sent", "Delivered", "Read" and "Failed". A message has no
//     history until its Sent time; GET /messages/{uid} calls it "Queued" then.
//   - A message the provider cannot deliver (OutcomeFailed) is Sent first and
//     Failed DeliverAfter later; its credits return RefundAfter after that.
//   - Credits are charged from the monthly quota first, then from the
//     non-recurring balance, and refunded to where they came from.
//   - Every authenticated API request counts as an API call. With
//     Config.APICalls set, a request beyond it is answered 403
//     {"error_code":"quota_exceeded","message":"API calls quota exceeded…"}
//     and not counted; that includes the quota endpoints. A shortage of
//     credits says "Messaging quota exceeded…" instead: the message names
//     the quota. Requests refused by auth or the rate limit are not API
//     calls.
//   - A wrong or missing token gets a plain-text 401 "Unauthorized", as the
//     real API has been seen to answer (Config.JSON401: the documented JSON).
//   - Durations in Config: zero means the realistic default, negative means
//     none (at once).
//   - Chats: one per (sending account, recipient), created by the first
//     message either way, numbered from 1. GET /chats lists them oldest
//     first and follows the phone and whatsapp_account_id filters (other
//     filters are ignored). GET /chats/{chat_id}/messages lists a chat's
//     history newest first (sorting_order=asc: oldest first) and follows
//     from_me, after and before (inclusive; a date, "YYYY-MM-DD HH:MM:SS",
//     RFC 3339 or the API's "YYYY-MM-DD HH:MM:SS +ZZZZ"; times without a
//     zone are UTC, a bare date as before includes its day). A sent message
//     is in the history from the moment it was accepted, stamped with that
//     moment, even while the provider's pacing still holds it. Both list
//     Config.PageSize (default 50) a page, with has_more_pages. Received
//     messages (from_me false) come only from Receive.
//   - Webhooks (Config.WebhookURL): message:sent:new when a message is
//     accepted, message:received:new for Receive, whatsapp:account:connected
//     and :disconnected when an account changes, in the payload shapes of the
//     facts sheet §6, POSTed asynchronously in order, each tried up to
//     WebhookAttempts times.
//   - Config.StateFile keeps messages, chats, accounts, credits and API
//     calls across restarts, so statuses of messages sent before a restart
//     still arrive.
//
// The gateway mode is described at ModeGateway.
package sandbox

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Outcome is what finally happens to a sent message.
type Outcome int

const (
	// OutcomeByRates lets Config.ReadRate and Config.FailRate decide.
	OutcomeByRates Outcome = iota
	// OutcomeDelivered: Sent, then Delivered.
	OutcomeDelivered
	// OutcomeRead: Sent, Delivered, then Read.
	OutcomeRead
	// OutcomeFailed: Sent, then Failed (number not on WhatsApp, say); the
	// credits come back RefundAfter later.
	OutcomeFailed
	// OutcomeSent: Sent and nothing after (a phone that stays off).
	OutcomeSent
)

// Status names as the sandbox writes them in status histories.
const (
	StatusQueued    = "Queued" // only in GET /messages/{uid}, before Sent
	StatusSent      = "Sent"
	StatusDelivered = "Delivered"
	StatusRead      = "Read"
	StatusFailed    = "Failed"
)

// TimestampLayout is how the provider writes times in its bodies.
const TimestampLayout = "2006-01-02 15:04:05 -0700"

// Mode is which provider the sandbox plays.
type Mode string

const (
	// ModeTimelines (the default) plays the TimelinesAI Public API.
	ModeTimelines Mode = ""
	// ModeGateway plays one instance of the self-hosted WhatsApp gateway: it
	// serves only POST /chats/{chat_jid}/messages, wants Config.Token as the
	// whole Authorization header (the raw key, or "Bearer <jwt>"), answers
	// with the gateway's {status:bool,code,message,data|error} envelope
	// after TypingDelay when typing simulation is on, and sends from its
	// own number (Accounts[0]; none: the recipient's chat has no sender).
	// It charges no credits and does its own pacing never: a message is
	// Sent when it answers. Its answers are those of the gateway's page:
	// 200 with data; 400 "Text field is required" (no text) or "Bad
	// request" (a body it cannot read); 401 "Invalid or expired JWT token"
	// (a wrong "Bearer …") or "Invalid or missing authentication"; 500
	// "Failed to send message" (its number is disconnected). The page's
	// other 500 (code 400) is a Fault with GatewayErrorBody. Faults, the
	// rate limit, statuses (StatusHistory, no endpoint) and the state file
	// work as in the TimelinesAI mode; credits, API calls and webhooks do
	// not apply.
	ModeGateway Mode = "gateway"
)

// Config shapes a sandbox. The zero value of every field but Token is usable.
type Config struct {
	// Token is what requests must carry; required. TimelinesAI mode: the
	// Bearer token. ModeGateway: the whole Authorization header, exactly.
	Token string
	Mode  Mode

	// DefaultRegion is the region (ISO 3166) of phones written without +
	// and a country code; "": DefaultRegion (US).
	DefaultRegion string

	// TypingDelay is how long a gateway "types" before it sends and
	// answers, when the message's typing simulation is on (ModeGateway);
	// 0: DefaultTypingDelay.
	TypingDelay time.Duration

	// WebhookURL receives the provider's webhook events (see the package
	// doc); "": none. POST /_sandbox/webhook changes it.
	WebhookURL string

	// StateFile keeps the sandbox's messages, chats, accounts, credits and
	// API calls across restarts (JSON, written atomically soon after a
	// change and on Close, read by Open); "": in memory only. What it holds
	// wins over Credits and Accounts.
	StateFile string

	// Accounts are the workspace's WhatsApp account phones (E.164). The
	// first is the default sender ("the most recently connected account")
	// until ConnectAccount names another. Empty: any whatsapp_account_phone
	// is accepted.
	Accounts []string

	Credits             int64 // messaging_quota.total; 0: none, every send is refused with quota_exceeded
	NonRecurringCredits int64 // non_recurring_quota.remaining_balance at start
	APICalls            int64 // api_calls_quota.total; 0: unlimited (reported as a large total)

	RateLimit  float64 // requests per second per client IP; 0: no limit
	RateBurst  int     // token bucket size; 0: 10
	RetryAfter bool    // send Retry-After with a 429 (the real API may not)
	BurstAs403 bool    // answer a burst with 403 and an HTML page, as the CDN in front of the real API does

	JSON401   bool   // answer 401 with the documented JSON error instead of text/plain "Unauthorized" (observed)
	QuotaPath string // "": serve GET /quotas and GET /workspace/quotas; otherwise only this path

	PageSize int // chats or messages a page of GET /chats and chat histories; 0: 50

	SendInterval time.Duration // the provider's pacing per account: least gap between two Sent times; 0: 2s
	DeliverAfter time.Duration // Delivered (or Failed) this long after Sent; 0: 2s
	ReadAfter    time.Duration // Read this long after Sent; 0: 5s
	RefundAfter  time.Duration // a Failed message's credits return this long after it failed; 0: 2h

	ReadRate float64 // fraction of recipients who read the message
	FailRate float64 // fraction of recipients whose message fails
	Seed     int64   // makes the rates pick the same recipients every run

	// Outcome, when set, decides per recipient (E.164 phone, or a group's
	// JID); OutcomeByRates defers to the rates. It is called with the
	// sandbox locked: it must not call the Server.
	Outcome func(phone string) Outcome
	// MessageOutcome, when set, decides first, from the recipient and the
	// message's text (an A/B test whose variant B is read more often);
	// OutcomeByRates defers to Outcome and the rates. Called locked too.
	MessageOutcome func(phone, text string) Outcome

	Now func() time.Time // the clock; nil: time.Now
}

// Defaults of Config's durations.
const (
	DefaultSendInterval = 2 * time.Second
	DefaultDeliverAfter = 2 * time.Second
	DefaultReadAfter    = 5 * time.Second
	DefaultRefundAfter  = 2 * time.Hour
	DefaultRateBurst    = 10
	DefaultPageSize     = 50 // the facts sheet's chats a page; used for histories too
	DefaultTypingDelay  = time.Second

	// unlimitedAPICalls is what api_calls_quota.total says when Config.APICalls is 0.
	unlimitedAPICalls = 1_000_000_000
)

// Ops name the kinds of API request, for Fault.Op.
const (
	OpSend     = "send"     // POST /messages, /chats/{chat_id}/messages, /messages/to_jid; the gateway's POST /chats/{chat_jid}/messages
	OpQuota    = "quota"    // GET /quotas, /workspace/quotas
	OpStatus   = "status"   // GET /messages/{uid}/status_history, GET /messages/{uid}
	OpAccounts = "accounts" // GET /whatsapp_accounts
	OpChats    = "chats"    // GET /chats, GET /chats/{chat_id}/messages
)

// Message is one accepted message as the sandbox recorded it: the request's
// fields as received, and what the sandbox resolved them to.
type Message struct {
	UID string `json:"uid"`

	// The request's fields. Fields the endpoint does not have (reply_to of
	// POST /messages, whatsapp_account_phone of a chat send) stay empty.
	Phone                string `json:"phone,omitempty"`
	ChatID               int64  `json:"chat_id,omitempty"`
	JID                  string `json:"jid,omitempty"`
	AccountPhone         string `json:"whatsapp_account_phone,omitempty"`
	Text                 string `json:"text,omitempty"`
	FileUID              string `json:"file_uid,omitempty"`
	AttachmentTemplateID int64  `json:"attachment_template_id,omitempty"`
	Label                string `json:"label,omitempty"`
	ChatName             string `json:"chat_name,omitempty"`
	ReplyTo              string `json:"reply_to,omitempty"` // the gateway's reply_to_message_id too

	// The gateway's simulation flags as received (nil: not in the request).
	TypingSimulation   *bool `json:"typing_simulation,omitempty"`
	PresenceSimulation *bool `json:"presence_simulation,omitempty"`
	// Authorization is the header the request carried. Tests read it from
	// Messages; it is never in an answer or the state file.
	Authorization string `json:"-"`

	// Resolved by the sandbox.
	Sender    string `json:"sender"`    // the sending account's phone (E.164); "" when Accounts is empty and none was named
	Recipient string `json:"recipient"` // the recipient's phone (E.164), or a group's JID
	Chat      int64  `json:"chat"`      // the chat the message went to

	Credits    int       `json:"credits"` // charged at acceptance: 1, or 2 for text with an attachment (the gateway: 0)
	ReceivedAt time.Time `json:"received_at"`
	SentAt     time.Time `json:"sent_at"` // when the provider's pacing lets it out (may be in the future)
	Status     string    `json:"status"`  // the latest status when the snapshot was taken
}

// StatusEvent is one entry of a message's status history.
type StatusEvent struct {
	Status string
	At     time.Time
}

// Server is the sandbox. It is an http.Handler and safe for concurrent use.
type Server struct {
	cfg        Config // durations and burst with defaults applied
	now        func() time.Time
	api        *http.ServeMux
	inspection *http.ServeMux

	mu       sync.Mutex
	messages []*record
	byUID    map[string]*record

	chats     []*chat // chats[i] has id i+1
	chatByKey map[chatKey]*chat

	accounts         []*account // in the order the sandbox learnt of them
	accountSeq       int64      // increases with every connection; the highest is the default sender
	restrictAccounts bool       // Config.Accounts was set: unknown accounts are refused

	lastSentAt map[string]time.Time // per sending account: the latest Sent time handed out

	creditsTotal       int64 // messaging_quota.total
	creditsUsed        int64 // messaging_quota.used
	nonRecurringCredit int64 // non_recurring_quota.remaining_balance
	nonRecurringAt     time.Time
	refunds            refundQueue

	apiCallsUsed int64
	answers      map[int]int
	faults       []*activeFault
	buckets      map[string]*tokenBucket

	webhookURL string
	hooks      *webhooks

	state stateSaver // Config.StateFile
}

// New returns a sandbox configured by cfg. It panics when cfg.Token is
// empty (a sandbox that accepts anything would hide auth bugs) or when
// cfg.StateFile cannot be read; Open returns those as errors.
func New(cfg Config) *Server {
	s, err := Open(cfg)
	if err != nil {
		panic("sandbox: " + err.Error())
	}
	return s
}

// Open returns a sandbox configured by cfg, with the state cfg.StateFile
// holds (none when the file does not exist yet). Close it to write the state
// and stop delivering webhooks.
func Open(cfg Config) (*Server, error) {
	if cfg.Token == "" {
		return nil, errors.New("Config.Token is required")
	}
	cfg = withDefaults(cfg)
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	s := &Server{
		cfg:                cfg,
		now:                now,
		byUID:              map[string]*record{},
		chatByKey:          map[chatKey]*chat{},
		lastSentAt:         map[string]time.Time{},
		creditsTotal:       cfg.Credits,
		nonRecurringCredit: cfg.NonRecurringCredits,
		nonRecurringAt:     now(),
		answers:            map[int]int{},
		buckets:            map[string]*tokenBucket{},
		restrictAccounts:   len(cfg.Accounts) > 0,
		webhookURL:         strings.TrimSpace(cfg.WebhookURL),
		hooks:              newWebhooks(),
		state:              stateSaver{path: cfg.StateFile},
	}
	if err := s.loadState(); err != nil {
		return nil, err
	}
	s.connectConfigAccounts()
	if cfg.Mode == ModeGateway {
		s.api = s.gatewayRoutes()
	} else {
		s.api = s.apiRoutes()
	}
	s.inspection = s.inspectionRoutes()
	s.state.enabled = cfg.StateFile != ""
	return s, nil
}

// withDefaults fills in Config's defaults.
func withDefaults(cfg Config) Config {
	cfg.SendInterval = durationOr(cfg.SendInterval, DefaultSendInterval)
	cfg.DeliverAfter = durationOr(cfg.DeliverAfter, DefaultDeliverAfter)
	cfg.ReadAfter = max(durationOr(cfg.ReadAfter, DefaultReadAfter), cfg.DeliverAfter)
	cfg.RefundAfter = durationOr(cfg.RefundAfter, DefaultRefundAfter)
	cfg.TypingDelay = durationOr(cfg.TypingDelay, DefaultTypingDelay)
	if cfg.QuotaPath != "" && !strings.HasPrefix(cfg.QuotaPath, "/") {
		cfg.QuotaPath = "/" + cfg.QuotaPath
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = DefaultRateBurst
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.DefaultRegion == "" {
		cfg.DefaultRegion = DefaultRegion
	}
	return cfg
}

// connectConfigAccounts connects Config.Accounts that the sandbox does not
// know yet (a state file may know them already), keeping the configured
// order for listings: Accounts[0] gets the highest sequence, so it is the
// default sender.
func (s *Server) connectConfigAccounts() {
	known := len(s.accounts)
	at := s.now()
	for i := len(s.cfg.Accounts) - 1; i >= 0; i-- {
		if phone, ok := s.normalizePhone(s.cfg.Accounts[i]); ok && s.findAccountLocked(phone) == nil {
			s.connectLocked(phone, at)
		}
	}
	added := s.accounts[known:]
	slices.Reverse(added)
}

func durationOr(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// apiPrefix is the real API's path root. The sandbox serves its routes both
// at its own root and under this prefix, so that a base URL copied from the
// real one (with the host swapped) works too.
const apiPrefix = "/integrations/api"

// ServeHTTP serves the API and the /_sandbox/ inspection endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sandbox/") {
		s.inspection.ServeHTTP(w, r)
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, apiPrefix); ok && (rest == "" || rest[0] == '/') {
		r2 := r.Clone(r.Context())
		r2.URL.Path = rest
		r2.URL.RawPath = ""
		r = r2
	}
	s.serveAPI(w, r)
}

// serveAPI runs what stands in front of every API route: the answer
// counter, the per-IP rate limit (the CDN's), and the router's HTML 404.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	cw := &countingWriter{ResponseWriter: w, server: s}
	// The provider's clock, so that a Retry-After date is read against it.
	cw.Header().Set("Date", now.UTC().Format(http.TimeFormat))

	if allowed, wait := s.allowRequest(clientIP(r), now); !allowed {
		s.rateLimited(wait).write(cw)
		return
	}
	// The real API answers a trailing slash with its web app's 404 page.
	if s.cfg.Mode != ModeGateway && r.URL.Path != "/" && strings.HasSuffix(r.URL.Path, "/") {
		notFoundPage().write(cw)
		return
	}
	s.api.ServeHTTP(cw, r)
}

// countingWriter counts each answer's status once, in Server.answers.
type countingWriter struct {
	http.ResponseWriter
	server  *Server
	counted bool
}

func (c *countingWriter) WriteHeader(status int) {
	if !c.counted && status >= 200 {
		c.counted = true
		c.server.mu.Lock()
		c.server.answers[status]++
		c.server.mu.Unlock()
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if !c.counted {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (Fault.Drop).
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// Messages returns every accepted message in arrival order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]Message, len(s.messages))
	for i, rec := range s.messages {
		out[i] = rec.snapshot(now, s.cfg)
	}
	return out
}

// Message returns the accepted message with the given UID.
func (s *Server) Message(uid string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byUID[uid]
	if !ok {
		return Message{}, false
	}
	return rec.snapshot(s.now(), s.cfg), true
}

// StatusHistory returns a message's status history as of now, oldest
// first, as GET /messages/{uid}/status_history would (without spending an
// API call).
func (s *Server) StatusHistory(uid string) ([]StatusEvent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byUID[uid]
	if !ok {
		return nil, false
	}
	return rec.history(s.now(), s.cfg), true
}

// Answers counts the API's answers by HTTP status (not those of /_sandbox/,
// and not dropped connections).
func (s *Server) Answers() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]int, len(s.answers))
	for status, n := range s.answers {
		out[status] = n
	}
	return out
}

// APICallsUsed is api_calls_quota.used.
func (s *Server) APICallsUsed() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiCallsUsed
}

// SetCredits sets messaging_quota.total (a plan change or a top-up).
func (s *Server) SetCredits(total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creditsTotal = total
	s.changedLocked()
}

// RenewAPICalls starts a new API-call period: none used, and total calls in
// it (0: unlimited), as a plan's renewal or a top-up does.
func (s *Server) RenewAPICalls(total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.APICalls = total
	s.apiCallsUsed = 0
	s.changedLocked()
}

// CreditsUsed is what accepted messages cost and has not been refunded, from
// the monthly quota and the non-recurring balance together.
func (s *Server) CreditsUsed() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyRefundsLocked(s.now())
	return s.creditsUsed + (s.cfg.NonRecurringCredits - s.nonRecurringCredit)
}

// CreditsRemaining is what may still be spent: the rest of the monthly
// quota plus the non-recurring balance.
func (s *Server) CreditsRemaining() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyRefundsLocked(s.now())
	return s.remainingLocked()
}

func (s *Server) remainingLocked() int64 {
	return max(0, s.creditsTotal-s.creditsUsed) + max(0, s.nonRecurringCredit)
}
