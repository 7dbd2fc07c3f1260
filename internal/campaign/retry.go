package campaign

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// The retry policy of every campaign task: waits (pacing, quota, windows,
// the provider's rate limit) are not failures and retry when the wait
// ends; failures back off exponentially.

// WaitError is a send that must wait (pacing, quota, a sender account, the
// provider's rate limit). It is not a failure: asynq retries it after Delay
// without spending one of the task's retries.
type WaitError struct {
	Delay  time.Duration
	Reason string
	// NotEarlier marks a wait that must not be cut short (the provider's
	// Retry-After). Pacing waits may be: the send path sleeps off the rest.
	NotEarlier bool
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("waiting %s: %s", e.Delay.Round(time.Millisecond), e.Reason)
}

// IsFailure is the asynq server's IsFailure: waits are not failures.
func IsFailure(err error) bool {
	var w *WaitError
	return !errors.As(err, &w)
}

// RetryDelay is the asynq server's RetryDelayFunc: a wait retries when the
// limiter said; a failure backs off exponentially (1s, 2s, 4s ... 10 min)
// with jitter, so a provider outage is not met by a synchronized storm.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var w *WaitError
	if errors.As(err, &w) {
		if w.NotEarlier {
			return notEarlier(w.Delay)
		}
		return max(w.Delay, 10*time.Millisecond)
	}
	backoff := time.Second << min(n, 10)
	backoff = min(backoff, 10*time.Minute)
	return notEarlier(backoff/2 + rand.N(backoff/2+1))
}

// notEarlier stretches a delay to the next whole second: asynq keeps retry
// and schedule times in whole seconds, rounded down, so a task due at
// 12:00:00.9 runs at 12:00:00, almost a second early.
func notEarlier(d time.Duration) time.Duration {
	now := time.Now()
	return wholeSecondAfter(now.Add(d)).Sub(now)
}

// wholeSecondAfter is t, or the next whole second after it: the earliest
// time asynq can hold for a task that must not run before t.
func wholeSecondAfter(t time.Time) time.Time {
	if t.Equal(t.Truncate(time.Second)) {
		return t
	}
	return t.Truncate(time.Second).Add(time.Second)
}

// waitText finds a WaitError's text in an error's text ("waiting 2s:
// pacing"), also inside an error that wraps it, as asynq keeps it.
var waitText = regexp.MustCompile(`waiting [0-9][0-9.hmsuµn]*: (.*)`)

// waitLabels map the start of a WaitError's reason to a label of a small
// fixed set, for metrics and the queue monitor.
var waitLabels = []struct{ prefix, label string }{
	{"pacing", "pacing"},
	{ReasonWaitingForQuota, "quota"},
	{"the credit ledger has not read the quota yet", "quota"},
	{ReasonWaitingForAccount, "account"},
	{"sender account refused", "account"},
	{"outside the send window", "window"},
	{"waiting for API calls", "api_calls"},
	{"reconciliation waits for the API-call budget", "api_calls"},
	{"status poll budget", "poll_budget"},
	{"provider refused status polls", "poll_budget"},
	{"provider rate limit", "rate_limit"},
	{"the upload is still arriving", "upload"},
	{"another attempt holds the recipient", "claim"},
}

// WaitLabel names the kind of wait an error's text is (a WaitError's, as
// asynq keeps a retried task's last error): pacing, quota, account,
// window, api_calls, poll_budget, rate_limit, upload, claim or other; ""
// when the text is not a wait (a failure being retried).
func WaitLabel(text string) string {
	m := waitText.FindStringSubmatch(text)
	if m == nil {
		return ""
	}
	for _, w := range waitLabels {
		if strings.HasPrefix(m[1], w.prefix) {
			return w.label
		}
	}
	return "other"
}
