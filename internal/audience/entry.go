package audience

import (
	"fmt"
	"time"
)

// Source is where a suppression came from.
type Source string

const (
	SourceKeyword Source = "keyword" // the person wrote an opt-out keyword
	SourceAPI     Source = "api"     // POST /v1/suppressions with JSON
	SourceImport  Source = "import"  // a CSV uploaded to POST /v1/suppressions
	SourceBounce  Source = "bounce"  // the provider cannot deliver to the address
)

// Sources lists every source, as the API names them.
var Sources = []Source{SourceKeyword, SourceAPI, SourceImport, SourceBounce}

// ValidSource reports whether s names a source.
func ValidSource(s string) bool {
	for _, v := range Sources {
		if string(v) == s {
			return true
		}
	}
	return false
}

// Entry is one suppressed address: who, why, where from, since when, and a
// sentence a person can read ("replied "Stop" on 2026-11-30 04:31 UTC to
// campaign X").
type Entry struct {
	Address  string    `json:"address"` // E.164 phone, or a group's JID
	Reason   string    `json:"reason"`
	Source   Source    `json:"source"`
	At       time.Time `json:"at"`
	Why      string    `json:"why"`
	Campaign string    `json:"campaign,omitempty"` // the campaign the opt-out answered, when known
}

// Describe fills Why when the caller gave none, from the source and reason.
func (e *Entry) Describe() {
	if e.Why != "" {
		return
	}
	at := e.At.UTC().Format("2006-01-02 15:04 UTC")
	switch e.Source {
	case SourceKeyword:
		e.Why = fmt.Sprintf("replied %q on %s", e.Reason, at)
	case SourceImport:
		e.Why = fmt.Sprintf("imported from a suppression file on %s", at)
	case SourceBounce:
		e.Why = fmt.Sprintf("the provider could not deliver to it on %s", at)
	default:
		e.Why = fmt.Sprintf("added through the API on %s", at)
	}
	if e.Reason != "" && e.Source != SourceKeyword {
		e.Why += ": " + e.Reason
	}
	if e.Campaign != "" {
		e.Why += " to campaign " + e.Campaign
	}
}

// LastMessage is the latest message sent to an address: the campaign (or
// sequence step) and the account it went from, which an incoming reply is
// attributed to.
type LastMessage struct {
	Campaign string    `json:"c"`
	Seq      int64     `json:"n"`
	Account  string    `json:"a,omitempty"` // the sender account: whose health a reply or an opt-out speaks for
	At       time.Time `json:"t"`
}
