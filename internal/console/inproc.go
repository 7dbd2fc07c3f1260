package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// apiBase is the origin of in-process API requests. Nothing dials it: the
// request is served by the API's http.Handler in this process.
const apiBase = "http://api.internal"

// maxAPIAnswer bounds what one buffered API answer may hold. The largest
// answers (a page of 1,000 recipients with their histories) are well under.
const maxAPIAnswer = 64 << 20

// APIError is the v1 API's error envelope, as the console shows it: the
// message, and each problem next to the form field it names.
type APIError struct {
	Status    int          `json:"-"`
	Message   string       `json:"message"`
	ErrorCode string       `json:"error_code"`
	Errors    []apiProblem `json:"errors"`
}

type apiProblem struct {
	Fields []string `json:"fields"`
	Msg    string   `json:"msg"`
}

func (e *APIError) Error() string { return e.Message }

// ForField is what the API said about a form field: the problems whose
// fields are name joined by "." ("steps.0.delay"), or start with it
// ("contacts" takes ["contacts","row 12","phone"]).
func (e *APIError) ForField(name string) string {
	if e == nil {
		return ""
	}
	var msgs []string
	for _, p := range e.Errors {
		if len(p.Fields) > 0 && (p.Fields[0] == name || strings.Join(p.Fields, ".") == name) {
			msgs = append(msgs, problemText(p))
		}
	}
	return strings.Join(msgs, "; ")
}

// Details are the problems that say more than the message.
func (e *APIError) Details() []apiProblem {
	var out []apiProblem
	for _, p := range e.Errors {
		if p.Msg != e.Message {
			out = append(out, p)
		}
	}
	return out
}

// problemText is a problem as a sentence, with the row it names, if any.
func problemText(p apiProblem) string {
	for _, f := range p.Fields[1:] {
		if strings.HasPrefix(f, "row ") && !strings.Contains(p.Msg, f) {
			return f + ": " + p.Msg
		}
	}
	return p.Msg
}

// apiRequest is one call of the v1 API on behalf of a signed-in user.
type apiRequest struct {
	method      string
	path        string // with its query
	key         string // the session's API key, sent as the Bearer token
	body        io.Reader
	contentType string
	header      http.Header // more headers (Idempotency-Key)
}

func (c *Console) newAPIRequest(ctx context.Context, ar apiRequest) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, ar.method, apiBase+ar.path, ar.body)
	if err != nil {
		return nil, fmt.Errorf("console: build %s %s: %w", ar.method, ar.path, err)
	}
	// As a server would hand it to a handler: a body that is never nil,
	// and the request line.
	if req.Body == nil {
		req.Body = http.NoBody
	}
	req.RequestURI = req.URL.RequestURI()
	req.RemoteAddr = "127.0.0.1:0"
	for k, vs := range ar.header {
		req.Header[k] = vs
	}
	req.Header.Set("Authorization", "Bearer "+ar.key)
	req.Header.Set("Accept", "application/json")
	if ar.contentType != "" {
		req.Header.Set("Content-Type", ar.contentType)
	}
	return req, nil
}

// call serves ar with the API handler and decodes the answer's data into
// out (nil: discard it). An error envelope comes back as *APIError.
func (c *Console) call(ctx context.Context, ar apiRequest, out any) error {
	req, err := c.newAPIRequest(ctx, ar)
	if err != nil {
		return err
	}
	rec := newRecorder()
	c.api.ServeHTTP(rec, req)
	return decodeEnvelope(rec.status, rec.body.Bytes(), out)
}

// callJSON sends body as JSON.
func (c *Console) callJSON(ctx context.Context, method, path, key string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("console: encode %s %s: %w", method, path, err)
	}
	return c.call(ctx, apiRequest{method: method, path: path, key: key, body: bytes.NewReader(b), contentType: "application/json"}, out)
}

// decodeEnvelope reads {"status":"ok","data":…} into out, or the error
// envelope into an *APIError.
func decodeEnvelope(status int, body []byte, out any) error {
	if status >= 400 {
		apiErr := &APIError{Status: status}
		if err := json.Unmarshal(body, apiErr); err != nil || apiErr.Message == "" {
			apiErr.Message = fmt.Sprintf("the API answered %d %s", status, http.StatusText(status))
		}
		return apiErr
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Status != "ok" {
		return fmt.Errorf("console: the API answered %d with no ok envelope", status)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("console: decode the API's answer: %w", err)
	}
	return nil
}

// recorder keeps a whole API answer.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	if r.body.Len()+len(b) > maxAPIAnswer {
		return 0, errors.New("console: the API's answer is too large")
	}
	return r.body.Write(b)
}

// apiStream is an API answer read while the API handler is still writing
// it: an event stream or a report of any size.
type apiStream struct {
	Status int
	Header http.Header
	Body   io.ReadCloser // closing it ends the API handler's writes
}

// stream serves ar with the API handler in a goroutine and answers once the
// handler has written its status: its body then arrives through a pipe, in
// the pieces the handler writes and flushes. The handler's request ends
// with ctx; closing Body stops it as well.
func (c *Console) stream(ctx context.Context, ar apiRequest) (*apiStream, error) {
	req, err := c.newAPIRequest(ctx, ar)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, pipe: pw, started: make(chan struct{})}
	go func() {
		defer func() {
			// Outside the server's goroutine, a panic of the handler would
			// end the process: end the stream with it instead.
			if p := recover(); p != nil {
				c.log.Error("the API handler panicked in a streamed call", zap.String("path", ar.path), zap.Any("panic", p))
				w.start(http.StatusInternalServerError)
				_ = pw.CloseWithError(fmt.Errorf("console: the API handler panicked: %v", p))
				return
			}
			w.start(http.StatusOK) // a handler that wrote nothing answered 200 with no body
			_ = pw.Close()
		}()
		c.api.ServeHTTP(w, req)
	}()
	<-w.started
	return &apiStream{Status: w.status, Header: w.sent, Body: pr}, nil
}

// pipeWriter is the ResponseWriter of a streamed API call: the status and
// headers are handed over at the first write, the body goes into a pipe.
// Every Write returns once the reader has taken it, so a Flush has nothing
// left to do; it exists because streaming handlers ask for an http.Flusher.
type pipeWriter struct {
	header http.Header
	pipe   *io.PipeWriter

	once    sync.Once
	started chan struct{}
	status  int
	sent    http.Header // the headers as they were at the status line
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) start(status int) {
	w.once.Do(func() {
		w.status, w.sent = status, w.header.Clone()
		close(w.started)
	})
}

func (w *pipeWriter) WriteHeader(status int) { w.start(status) }

func (w *pipeWriter) Write(b []byte) (int, error) {
	w.start(http.StatusOK)
	return w.pipe.Write(b)
}

func (w *pipeWriter) Flush() {}
