package sender

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Operation names carried in Error.Op.
const (
	OpSend          = "send"
	OpStatusHistory = "status_history"
	OpQuota         = "quota"
	OpFindSent      = "find_sent" // the requests of a FindSent lookup
)

// Kind classifies a provider error by what the caller must do about it. It is
// the error table of DESIGN.md ("Errors the provider returns") as values.
type Kind uint8

const (
	// Transient: the request had no effect, or may be repeated without harm:
	// a send that was never written (connection refused, a timeout before
	// the request left), or any failure of a read-only request (a 5xx, a
	// timeout, internal_error to a status poll, a quota read, a lookup).
	// Retry with backoff.
	Transient Kind = iota + 1
	// RateLimited: 429, rate_limit_exceeded, or a 403 from a burst. Back off
	// (RetryAfter when the provider gave one); not a failure.
	RateLimited
	// QuotaExceeded: the workspace has no credits left (403 quota_exceeded
	// about messages). Resync the ledger and wait for quota. An exhausted
	// API-call quota is CallsExhausted instead.
	QuotaExceeded
	// AuthFailed: 401, invalid_token, missing_credentials. Retrying cannot
	// help until someone fixes the token: pause, don't storm.
	AuthFailed
	// Forbidden: permission_denied, plan_feature_unavailable,
	// member_not_found, not_supported. Fails the campaign step with the reason.
	Forbidden
	// Invalid: 400 validation_error (Fields says which) or another 4xx about
	// this one message. Fails the recipient, no retry.
	Invalid
	// NotFound: the addressed object (a message UID, a chat) does not exist.
	NotFound
	// Unconfirmed: the request may have reached the provider and no definite
	// answer came back: a timeout or a lost connection after the send was
	// written, any 5xx to a send (the provider documents nothing about what
	// internal_error leaves behind, and a proxy's 502/503/504 may follow an
	// accepted message), or a 2xx without a readable message_uid. The
	// message may have been sent: the caller must not resend it blindly but
	// reconcile (see MessageFinder).
	Unconfirmed
	// CallsExhausted: the workspace's monthly API-call quota is spent
	// (TimelinesAI: quota_exceeded about API calls, see timelines_errors.go).
	// No request gets through until the period renews or calls are bought,
	// whatever the credits: wait for API calls, and leave the credit ledger
	// alone (it is not short of credits).
	CallsExhausted
)

var kindNames = map[Kind]string{
	Transient:      "transient",
	RateLimited:    "rate_limited",
	QuotaExceeded:  "quota_exceeded",
	AuthFailed:     "auth_failed",
	Forbidden:      "forbidden",
	Invalid:        "invalid",
	NotFound:       "not_found",
	Unconfirmed:    "unconfirmed",
	CallsExhausted: "calls_exhausted",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// FieldError is one item of the provider's errors[] list.
type FieldError struct {
	Fields []string `json:"fields"`
	Msg    string   `json:"msg"`
}

// Error is what every Provider method returns on failure. It never holds the
// provider token.
type Error struct {
	Kind       Kind
	Op         string        // OpSend, OpStatusHistory, OpQuota, OpFindSent
	HTTPStatus int           // 0 when no answer came back
	Code       string        // the provider's error_code, when it gave one
	Message    string        // the provider's message, or what went wrong
	Fields     []FieldError  // per-field diagnostics of a validation error
	RetryAfter time.Duration // from a Retry-After header; 0 when absent
	Err        error         // the transport error underneath, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("provider ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(" ")
	}
	b.WriteString(e.Kind.String())
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " (HTTP %d", e.HTTPStatus)
		if e.Code != "" {
			b.WriteString(", ")
			b.WriteString(e.Code)
		}
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	for _, f := range e.Fields {
		fmt.Fprintf(&b, "; %s: %s", strings.Join(f.Fields, "."), f.Msg)
	}
	if e.Err != nil && e.Message == "" {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Reason is a one-line explanation fit for a recipient's record and the
// campaign report: the provider's message and per-field diagnostics.
func (e *Error) Reason() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if msg == "" {
		msg = e.Kind.String()
	}
	for _, f := range e.Fields {
		msg += fmt.Sprintf("; %s: %s", strings.Join(f.Fields, "."), f.Msg)
	}
	return msg
}

// KindOf returns the Kind of a provider error anywhere in err's chain, and
// false when err is not a provider error.
func KindOf(err error) (Kind, bool) {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind, true
	}
	return 0, false
}
