package sender

import (
	"bytes"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// What both clients read from an answer beyond the provider's own error
// body: the HTTP status, a body that is not the provider's JSON, and
// Retry-After.

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

// looksLikeJSONObject reports whether body is (at least at its start) a JSON
// object: an answer from the API itself rather than a proxy's page.
func looksLikeJSONObject(body []byte) bool {
	trimmed := bytes.TrimSpace(body)
	return len(trimmed) > 0 && trimmed[0] == '{'
}
