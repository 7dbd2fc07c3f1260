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
)

// request is one HTTP call to the API.
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
}

// answer is a 2xx response, its body read (at most maxResponseBody bytes).
type answer struct {
	status int
	header http.Header
	body   []byte
}

// do performs one HTTP request and returns its 2xx answer, or the error that
// classifies everything else. Errors are sealed (see seal).
//
// A request that may have an effect runs the BeforeDispatch hook of ctx last
// before it is written: after the limiter's wait and after the request was
// built, so that nothing but the write itself follows the hook.
func (t *Timelines) do(ctx context.Context, req request) (answer, *Error) {
	if t.limiter != nil {
		if err := t.limiter.Wait(ctx); err != nil {
			return answer{}, t.seal(limiterError(req.op, err))
		}
	}
	hreq, perr := t.newHTTPRequest(ctx, req)
	if perr != nil {
		return answer{}, t.seal(perr)
	}
	if req.mayHaveEffect {
		if err := runDispatchHook(ctx); err != nil {
			return answer{}, t.seal(&Error{Kind: Transient, Op: req.op, Message: "before dispatch: " + errorText(err), Err: err})
		}
	}

	// The timeout starts here, so that neither the limiter nor the hook
	// uses up the time the request has.
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
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

	resp, err := t.httpClient.Do(hreq)
	if err != nil {
		return answer{}, t.seal(transportError(req, err, written.Load()))
	}
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	resp.Body.Close()

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if readErr != nil {
			kind := Transient
			if req.mayHaveEffect {
				kind = Unconfirmed
			}
			return answer{}, t.seal(&Error{
				Kind:       kind,
				Op:         req.op,
				HTTPStatus: resp.StatusCode,
				Message:    "reading the answer: " + errorText(readErr),
				Err:        readErr,
			})
		}
		return answer{status: resp.StatusCode, header: resp.Header, body: data}, nil
	}

	// Even a partly read error answer says what the provider decided.
	e := classifyResponse(req, resp.StatusCode, resp.Header, data, time.Now())
	if readErr != nil && e.Err == nil {
		e.Err = readErr
	}
	if resp.StatusCode == http.StatusForbidden && e.Kind == RateLimited && e.Code == "" {
		// The CDN answers bursts with 403 on kept-alive connections, and
		// fresh connections get through: start the next request on one.
		t.httpClient.CloseIdleConnections()
	}
	return answer{}, t.seal(e)
}

// newHTTPRequest builds req's HTTP request, headers included.
func (t *Timelines) newHTTPRequest(ctx context.Context, req request) (*http.Request, *Error) {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, t.baseURL+req.path, body)
	if err != nil {
		// A malformed base URL: nothing was sent, and retrying cannot help,
		// but the message itself is fine. Transient keeps it from being
		// failed for a configuration mistake.
		return nil, &Error{Kind: Transient, Op: req.op, Message: "building the request: " + errorText(err), Err: err}
	}
	hreq.Header.Set("Authorization", "Bearer "+t.token)
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", t.userAgent)
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

// seal makes sure the token appears nowhere in e: not in its texts, not in
// the error it wraps. A provider (or a proxy) echoing the request would
// otherwise put it into logs and recipient records.
func (t *Timelines) seal(e *Error) *Error {
	if t.token == "" {
		return e
	}
	scrub := func(s string) string { return strings.ReplaceAll(s, t.token, "[redacted]") }
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
	if e.Err != nil && strings.Contains(e.Err.Error(), t.token) {
		e.Err = redactedError{text: scrub(e.Err.Error()), cause: e.Err}
	}
	return e
}

// redactedError stands in for an error whose text held the token. It keeps
// errors.Is working (context.DeadlineExceeded, say) but does not unwrap to
// the original, whose text would give the token away.
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
