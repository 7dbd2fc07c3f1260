package campaign

import (
	"fmt"
	"testing"
	"time"
)

func TestWaitLabelNamesEachWait(t *testing.T) {
	for text, want := range map[string]string{
		(&WaitError{Delay: time.Second, Reason: "pacing"}).Error():                                        "pacing",
		(&WaitError{Delay: time.Minute, Reason: ReasonWaitingForQuota}).Error():                           "quota",
		(&WaitError{Delay: 90 * time.Second, Reason: "outside the send window"}).Error():                  "window",
		(&WaitError{Delay: time.Second, Reason: ReasonWaitingForAccount}).Error():                         "account",
		(&WaitError{Delay: time.Hour, Reason: ReasonWaitingForAPICalls}).Error():                          "api_calls",
		(&WaitError{Delay: 5 * time.Second, Reason: "provider rate limit"}).Error():                       "rate_limit",
		fmt.Errorf("send: %w", &WaitError{Delay: time.Millisecond, Reason: "status poll budget"}).Error(): "poll_budget",
		(&WaitError{Delay: time.Second, Reason: "something new"}).Error():                                 "other",
		"the provider answered 500": "",
		"waiting for nothing":       "",
	} {
		if got := WaitLabel(text); got != want {
			t.Errorf("WaitLabel(%q) = %q, want %q", text, got, want)
		}
	}
}
