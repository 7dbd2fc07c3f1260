package sender

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// codeKinds maps the provider's error_code values to what the caller must
// do. When a code is present it decides, whatever the HTTP status says,
// except for a send's internal_error and 5xx answers (Unconfirmed).
var codeKinds = map[string]Kind{
	"missing_credentials":      AuthFailed,
	"invalid_token":            AuthFailed,
	"quota_exceeded":           QuotaExceeded,
	"permission_denied":        Forbidden,
	"plan_feature_unavailable": Forbidden,
	"member_not_found":         Forbidden,
	"not_supported":            Forbidden,
	"rate_limit_exceeded":      RateLimited,
	"validation_error":         Invalid,
	// Only for requests without an effect: a 5xx to a send is Unconfirmed
	// whatever its code (see classifyResponse).
	"internal_error": Transient,
}

// errorBody is the provider's error envelope. Other front-ends' fields
// ("error", "detail") are read too so that their text is not lost.
type errorBody struct {
	Status    string          `json:"status"`
	Message   string          `json:"message"`
	ErrorCode string          `json:"error_code"`
	Errors    json.RawMessage `json:"errors"`
	Error     json.RawMessage `json:"error"`
	Detail    json.RawMessage `json:"detail"`
}

// parseErrorBody reads body as a JSON object. ok is false for anything else
// (HTML, plain text, empty), which matters: a JSON answer comes from the API
// itself, anything else from a proxy or CDN in front of it.
func parseErrorBody(body []byte) (eb errorBody, fields []FieldError, ok bool) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errorBody{}, nil, false
	}
	if err := json.Unmarshal(trimmed, &eb); err != nil {
		return errorBody{}, nil, false
	}
	// errors[] items are {fields, msg}; an item in another shape is kept as
	// its JSON text rather than dropped.
	var items []json.RawMessage
	if json.Unmarshal(eb.Errors, &items) == nil {
		for _, item := range items {
			var f FieldError
			if json.Unmarshal(item, &f) == nil && (len(f.Fields) > 0 || f.Msg != "") {
				fields = append(fields, f)
			} else {
				fields = append(fields, FieldError{Msg: string(item)})
			}
		}
	}
	if eb.Message == "" {
		eb.Message = firstString(eb.Error, eb.Detail)
	}
	return eb, fields, true
}

func firstString(raws ...json.RawMessage) string {
	for _, raw := range raws {
		var s string
		if json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

// classifyResponse turns a non-2xx answer into an Error (the table in
// DESIGN.md, "Errors the provider returns").
func classifyResponse(req request, status int, header http.Header, body []byte, now time.Time) *Error {
	e := &Error{Op: req.op, HTTPStatus: status, RetryAfter: parseRetryAfter(header, now)}
	eb, fields, isJSON := parseErrorBody(body)
	if isJSON {
		e.Code, e.Message, e.Fields = eb.ErrorCode, eb.Message, fields
	} else {
		e.Message = describeBody(header, body)
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	// Any 5xx to a send is Unconfirmed, whoever wrote it and whatever
	// error_code it carries: an HTTP answer means the request reached a
	// server, the provider documents nothing about what internal_error
	// leaves behind, and a proxy's 502/503/504 may follow a message the API
	// had already accepted.
	if req.mayHaveEffect && status >= 500 && status < 600 {
		e.Kind = Unconfirmed
		return e
	}
	if kind, ok := codeKinds[e.Code]; ok {
		e.Kind = kind
		return e
	}
	e.Kind = kindOfStatus(status, isJSON)
	if status < 400 || status >= 600 {
		// 1xx or an unfollowed 3xx: not an answer from the API endpoint, so
		// nothing was processed there.
		e.Message = "unexpected HTTP status: " + e.Message
	}
	return e
}

// kindOfStatus classifies an answer without a known error_code by its HTTP
// status. The 5xx answers that reach it are to requests without an effect
// (a send's are settled in classifyResponse): repeating them is harmless.
func kindOfStatus(status int, isJSON bool) Kind {
	switch {
	case status == http.StatusUnauthorized:
		return AuthFailed
	case status == http.StatusForbidden && isJSON:
		return Forbidden // {"status":"error","message":"Access denied"}
	case status == http.StatusForbidden:
		return RateLimited // the CDN's HTML page during a burst
	case status == http.StatusTooManyRequests:
		return RateLimited
	case status == http.StatusNotFound:
		return NotFound
	case status == http.StatusRequestTimeout:
		// The server gave up waiting for the request: it was not processed.
		return Transient
	case status >= 400 && status < 500:
		return Invalid
	default:
		return Transient
	}
}

// classifyErrorCode reads a 2xx answer to a send that carries the error
// envelope with a known error_code. It returns nil for anything else.
func classifyErrorCode(op string, ans answer) *Error {
	eb, fields, ok := parseErrorBody(ans.body)
	if !ok || eb.Status != "error" {
		return nil
	}
	kind, known := codeKinds[eb.ErrorCode]
	if !known {
		return nil
	}
	if eb.ErrorCode == "internal_error" {
		// Nothing says what the provider did before it went wrong.
		kind = Unconfirmed
	}
	return &Error{Kind: kind, Op: op, HTTPStatus: ans.status, Code: eb.ErrorCode, Message: eb.Message, Fields: fields}
}

// describeBody says what a non-JSON answer was. Short plain text (the real
// 401's "Unauthorized") is quoted; markup and long bodies are only described,
// so that a CDN's page does not end up in a recipient's record.
func describeBody(header http.Header, body []byte) string {
	text := strings.TrimSpace(string(body))
	if text == "" {
		return ""
	}
	if len(text) <= 200 && utf8.ValidString(text) && !strings.ContainsAny(text, "<>{") &&
		strings.IndexFunc(text, func(r rune) bool { return unicode.IsControl(r) }) < 0 {
		return text
	}
	contentType := "no content type"
	if mt, _, err := mime.ParseMediaType(header.Get("Content-Type")); err == nil {
		contentType = mt
	}
	return fmt.Sprintf("non-JSON answer (%s, %d bytes)", contentType, len(body))
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date.
// A date is measured from the answer's own Date header when it has one, so
// that a skewed local clock does not distort the wait. Absent, unreadable or
// past values give 0.
func parseRetryAfter(header http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 || secs > int64((1<<63-1)/time.Second) {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	if date, err := http.ParseTime(header.Get("Date")); err == nil {
		now = date
	}
	return max(0, at.Sub(now))
}
