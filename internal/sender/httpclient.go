package sender

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wacampaign/wacampaign/internal/metrics"
)

const (
	defaultTimeout   = 30 * time.Second
	idleConnTimeout  = 20 * time.Second
	defaultUserAgent = "wacampaign (+https://github.com/wacampaign/wacampaign)"
	// maxResponseBody caps what is read of any answer: the APIs' answers
	// are small, and a proxy's error page must not fill memory.
	maxResponseBody = 1 << 20
)

// CallLimiter paces API calls. The clients call Wait before every HTTP
// request they make (sends, status polls, quota reads, each page of a
// FindSent lookup), so a shared ceiling on API calls can plug in here.
//
// An error from Wait stops the call before anything is sent. A *Error is
// returned to the caller as it is; an error with a RetryAfter() time.Duration
// method becomes a RateLimited *Error carrying that wait; any other error
// becomes a Transient *Error wrapping it.
type CallLimiter interface {
	Wait(ctx context.Context) error
}

// Option configures a provider client: NewTimelines, NewGateway and
// NewGatewayRouter take the same options.
type Option func(*clientSettings)

// TimelinesOption is the Option of NewTimelines (every Option is one).
type TimelinesOption = Option

// clientSettings are what Options set.
type clientSettings struct {
	baseURL         string
	httpClient      *http.Client
	timeout         time.Duration
	limiter         CallLimiter
	userAgent       string
	typingAllowance time.Duration
}

// WithBaseURL sets the API root (TimelinesAI: default
// DefaultTimelinesBaseURL), for example a sandbox server's URL.
func WithBaseURL(baseURL string) Option {
	return func(s *clientSettings) { s.baseURL = trimTrailingSlashes(baseURL) }
}

// WithHTTPClient sets the HTTP client. The default one does not follow
// redirects: an API answer is never a redirect, and following one would turn
// a POST into a GET.
func WithHTTPClient(c *http.Client) Option {
	return func(s *clientSettings) {
		if c != nil {
			s.httpClient = c
		}
	}
}

// WithTimeout bounds each HTTP request, from before connecting to the end of
// reading the answer (default 30s). Zero or negative keeps the default. A
// gateway send gets the typing allowance on top (WithTypingAllowance).
func WithTimeout(d time.Duration) Option {
	return func(s *clientSettings) {
		if d > 0 {
			s.timeout = d
		}
	}
}

// WithCallLimiter makes every HTTP request wait for l first.
func WithCallLimiter(l CallLimiter) Option {
	return func(s *clientSettings) { s.limiter = l }
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(s *clientSettings) {
		if ua != "" {
			s.userAgent = ua
		}
	}
}

// newSettings applies opts over the defaults.
func newSettings(baseURL string, opts []Option) clientSettings {
	s := clientSettings{
		baseURL:         trimTrailingSlashes(baseURL),
		timeout:         defaultTimeout,
		userAgent:       defaultUserAgent,
		typingAllowance: DefaultTypingAllowance,
	}
	for _, opt := range opts {
		opt(&s)
	}
	if s.httpClient == nil {
		s.httpClient = newHTTPClient()
	}
	return s
}

// newHTTPClient is the default HTTP client of the provider clients.
func newHTTPClient() *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// A kept-alive connection that the server closed while idle fails a
	// POST in a way that looks like "written, then dropped" (Unconfirmed).
	// Retiring idle connections well before servers do keeps that rare.
	transport.IdleConnTimeout = idleConnTimeout
	// A worker sends from many goroutines to one host; Go's default keeps
	// two idle connections per host and opens a new one for every other
	// request, which costs both ends a TCP handshake per message.
	transport.MaxIdleConnsPerHost = 64
	transport.MaxIdleConns = 128
	return &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// request is one HTTP call to an API.
type request struct {
	op     string
	method string
	path   string
	body   []byte // nil: no body

	// mayHaveEffect marks a request that is not safe to repeat (a send):
	// when it was written but no clear answer came back, the provider may
	// have acted on it, and the error says Unconfirmed instead of
	// Transient.
	mayHaveEffect bool
	// timeout replaces the client's timeout when set (a gateway send, which
	// is answered only after the gateway has "typed").
	timeout time.Duration
}

// answer is a 2xx response, its body read (at most maxResponseBody bytes).
type answer struct {
	status int
	header http.Header
	body   []byte
	at     time.Time // when it arrived
}

// classifier turns a non-2xx answer into the Error it means; each provider
// has its own (timelines_errors.go, gateway.go).
type classifier func(req request, status int, header http.Header, body []byte, now time.Time) *Error

// apiClient makes the HTTP requests of a provider client: the CallLimiter's
// wait, the BeforeDispatch hook, the timeout, and whether a request without
// an answer may have been processed. What an answer means is the provider's
// business (classify).
type apiClient struct {
	clientSettings
	authorization string   // the Authorization header; "" sends none
	secrets       []string // scrubbed from every error (see seal)
	classify      classifier
}

// do performs one HTTP request and returns its 2xx answer, or the error that
// classifies everything else. Errors are sealed (see seal).
//
// A request that may have an effect runs the BeforeDispatch hook of ctx last
// before it is written: after the limiter's wait and after the request was
// built, so that nothing but the write itself follows the hook.
func (c *apiClient) do(ctx context.Context, req request) (answer, *Error) {
	if c.limiter != nil {
		waitStart := time.Now()
		err := c.limiter.Wait(ctx)
		metrics.APICallWait(time.Since(waitStart))
		if err != nil {
			return answer{}, c.seal(limiterError(req.op, err))
		}
	}
	hreq, perr := c.newHTTPRequest(ctx, req)
	if perr != nil {
		return answer{}, c.seal(perr)
	}
	if req.mayHaveEffect {
		if err := runDispatchHook(ctx); err != nil {
			return answer{}, c.seal(&Error{Kind: Transient, Op: req.op, Message: "before dispatch: " + errorText(err), Err: err})
		}
	}

	// The timeout starts here, so that neither the limiter nor the hook
	// uses up the time the request has.
	timeout := c.timeout
	if req.timeout > 0 {
		timeout = req.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Whether the request left this process decides between "certainly not
	// sent" and "maybe sent" when no answer comes back.
	var written atomic.Bool
	trace := &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				written.Store(true)
			}
		},
	}
	hreq = hreq.WithContext(httptrace.WithClientTrace(ctx, trace))

	start := time.Now()
	resp, err := c.httpClient.Do(hreq)
	if err != nil {
		metrics.ProviderRequest(req.op, 0, time.Since(start))
		return answer{}, c.seal(counted(transportError(req, err, written.Load())))
	}
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	resp.Body.Close()
	arrived := time.Now()
	metrics.ProviderRequest(req.op, resp.StatusCode, arrived.Sub(start))

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if readErr != nil {
			return answer{}, c.seal(counted(unfinishedAnswer(req, resp.StatusCode, readErr)))
		}
		return answer{status: resp.StatusCode, header: resp.Header, body: data, at: arrived}, nil
	}

	// Even a partly read error answer says what the provider decided.
	e := counted(c.classify(req, resp.StatusCode, resp.Header, data, arrived))
	if readErr != nil && e.Err == nil {
		e.Err = readErr
	}
	if resp.StatusCode == http.StatusForbidden && e.Kind == RateLimited && e.Code == "" {
		// TimelinesAI's CDN answers bursts with 403 on kept-alive
		// connections, and fresh connections get through: start the next
		// request on one.
		c.httpClient.CloseIdleConnections()
	}
	return answer{}, c.seal(e)
}

// counted counts an error the provider's answer (or its absence) made, by
// kind: 401s, 429s and unconfirmed sends are what an operator watches.
func counted(e *Error) *Error {
	metrics.ProviderError(e.Op, e.Kind.String())
	return e
}

// unfinishedAnswer is the error of a 2xx answer whose body broke off: a send
// may have been accepted.
func unfinishedAnswer(req request, status int, err error) *Error {
	kind := Transient
	if req.mayHaveEffect {
		kind = Unconfirmed
	}
	return &Error{Kind: kind, Op: req.op, HTTPStatus: status, Message: "reading the answer: " + errorText(err), Err: err}
}

// newHTTPRequest builds req's HTTP request, headers included.
func (c *apiClient) newHTTPRequest(ctx context.Context, req request) (*http.Request, *Error) {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, c.baseURL+req.path, body)
	if err != nil {
		// A malformed base URL: nothing was sent, and retrying cannot help,
		// but the message itself is fine. Transient keeps it from being
		// failed for a configuration mistake.
		return nil, &Error{Kind: Transient, Op: req.op, Message: "building the request: " + errorText(err), Err: err}
	}
	if c.authorization != "" {
		hreq.Header.Set("Authorization", c.authorization)
	}
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", c.userAgent)
	if req.body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	return hreq, nil
}

// transportError classifies a request that got no HTTP answer.
func transportError(req request, err error, written bool) *Error {
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err // the same without method and URL, for the message
	}
	if !written {
		return &Error{
			Kind:    Transient,
			Op:      req.op,
			Message: "request not sent: " + errorText(cause),
			Err:     err,
		}
	}
	kind, msg := Transient, "no answer: "
	if req.mayHaveEffect {
		kind, msg = Unconfirmed, "no answer after the request was sent (it may have been processed): "
	}
	return &Error{Kind: kind, Op: req.op, Message: msg + errorText(cause), Err: err}
}

// limiterError turns a CallLimiter's refusal into a provider error (see
// CallLimiter).
func limiterError(op string, err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		cp := *pe
		if cp.Op == "" {
			cp.Op = op
		}
		return &cp
	}
	var waiter interface{ RetryAfter() time.Duration }
	if errors.As(err, &waiter) {
		return &Error{Kind: RateLimited, Op: op, Message: "API call limiter: " + errorText(err), RetryAfter: max(0, waiter.RetryAfter()), Err: err}
	}
	return &Error{Kind: Transient, Op: op, Message: "API call limiter: " + errorText(err), Err: err}
}

// seal makes sure no secret appears in e: not in its texts, not in the error
// it wraps. A provider (or a proxy) echoing the request would otherwise put
// it into logs and recipient records.
func (c *apiClient) seal(e *Error) *Error {
	scrub := func(s string) string {
		for _, secret := range c.secrets {
			if secret != "" {
				s = strings.ReplaceAll(s, secret, "[redacted]")
			}
		}
		return s
	}
	e.Message = scrub(e.Message)
	e.Code = scrub(e.Code)
	if len(e.Fields) > 0 {
		fields := make([]FieldError, len(e.Fields))
		for i, f := range e.Fields {
			names := make([]string, len(f.Fields))
			for j, n := range f.Fields {
				names[j] = scrub(n)
			}
			fields[i] = FieldError{Fields: names, Msg: scrub(f.Msg)}
		}
		e.Fields = fields
	}
	if e.Err != nil {
		if text := e.Err.Error(); scrub(text) != text {
			e.Err = redactedError{text: scrub(text), cause: e.Err}
		}
	}
	return e
}

// redactedError stands in for an error whose text held a secret. It keeps
// errors.Is working (context.DeadlineExceeded, say) but does not unwrap to
// the original, whose text would give the secret away.
type redactedError struct {
	text  string
	cause error
}

func (r redactedError) Error() string        { return r.text }
func (r redactedError) Is(target error) bool { return errors.Is(r.cause, target) }

// errorText is err's text, or "unknown error" for a nil error.
func errorText(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

// unreadable is the error of a 2xx answer whose body cannot be read.
func unreadable(op string, status int, err error) *Error {
	return &Error{
		Kind:       Transient,
		Op:         op,
		HTTPStatus: status,
		Message:    "unreadable answer: " + err.Error(),
		Err:        err,
	}
}

func trimTrailingSlashes(s string) string {
	return strings.TrimRight(s, "/")
}
