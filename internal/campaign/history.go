package campaign

import (
	"strconv"
	"strings"
	"time"
)

// HistoryEntry is one thing that happened to a recipient.
type HistoryEntry struct {
	State State     `json:"state"` // where the recipient was after it
	At    time.Time `json:"at"`
	// ProviderStatus is the provider's own word, for a status it reported
	// ("Sent", "Delivered", "Read", "Failed", ...), kept as it came.
	ProviderStatus string `json:"provider_status,omitempty"`
	// Detail: the message_uid of a send, the account of an attempt, the reason
	// of a failure, a skip, a wait or an unknown outcome.
	Detail string `json:"detail,omitempty"`
	// Event is what the recipient did rather than where its message got:
	// "replied" (within REPLY_WINDOW) or "opted_out" (an opt-out keyword).
	// State stays what it was.
	Event string `json:"event,omitempty"`
}

// Events of a recipient's history (HistoryEntry.Event).
const (
	EventReplied  = "replied"
	EventOptedOut = "opted_out"
)

// eventOfCode are the history codes of events (replyScript).
var eventOfCode = map[byte]string{'y': EventReplied, 'o': EventOptedOut}

// A stored history is entries joined by ";". An entry is a code, the time
// in ms since the campaign was created, and ":" and a detail when there is
// one: "g1520:+14155550100;s1890:0f3c...;P61000:Delivered". Offsets keep an
// entry short; a million recipients' histories are a few dozen bytes each.
var stateOfCode = map[byte]State{
	'q': StateQueued, 'g': StateSending, 's': StateSent, 'd': StateDelivered,
	'r': StateRead, 'f': StateFailed, 'k': StateSkipped, 'u': StateUnknown,
	'c': StateUnconfirmed,
}

// decodeHistory reads a stored history. The recipient was queued when the
// campaign was created; that first entry is implied rather than stored.
func decodeHistory(stored string, created time.Time) []HistoryEntry {
	out := []HistoryEntry{{State: StateQueued, At: created}}
	if stored == "" {
		return out
	}
	state := StateQueued
	for _, e := range strings.Split(stored, ";") {
		if len(e) < 2 {
			continue
		}
		body, detail, _ := strings.Cut(e[1:], ":")
		ms, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			continue
		}
		entry := HistoryEntry{At: created.Add(time.Duration(ms) * time.Millisecond), Detail: detail}
		if e[0] == 'P' {
			entry.ProviderStatus, entry.Detail = detail, ""
			if to := ProviderState(detail); to != "" && advances(state, to) {
				state = to
			}
			entry.State = state
		} else if ev, ok := eventOfCode[e[0]]; ok {
			entry.State, entry.Event = state, ev
		} else if st, ok := stateOfCode[e[0]]; ok {
			state = st
			entry.State = st
		} else {
			continue
		}
		out = append(out, entry)
	}
	return out
}

// advances reports whether a provider report moves a recipient from one
// state to another: forward along sent → delivered → read, or to failed,
// never back.
func advances(from, to State) bool {
	rank := map[State]int{StateSent: 1, StateDelivered: 2, StateRead: 3, StateFailed: 4}
	return rank[from] > 0 && rank[to] > rank[from] && from != StateFailed
}

// ProviderState maps a provider's status word onto our states; "" for words
// that move nothing (a provider's "Pending" or "Queued", or one we do not
// know, which the history still keeps).
func ProviderState(word string) State {
	switch strings.ToLower(strings.TrimSpace(word)) {
	case "sent", "server_ack":
		return StateSent
	case "delivered", "delivery_ack":
		return StateDelivered
	case "read", "seen", "played":
		return StateRead
	case "failed", "error", "undelivered", "rejected":
		return StateFailed
	}
	return ""
}

// terminal says that no later provider report can change the state.
func terminal(s State) bool {
	return s == StateRead || s == StateFailed || s == StateSkipped || s == StateUnknown
}

// sentAt is when the recipient's message was accepted by the provider,
// from its history (zero if never).
func sentAt(h []HistoryEntry) time.Time {
	for _, e := range h {
		if e.State == StateSent && e.ProviderStatus == "" {
			return e.At
		}
	}
	return time.Time{}
}

// FirstAt is when a recipient first reached state s by a provider report
// (or, for sent, the acceptance by the provider); zero if never.
func FirstAt(h []HistoryEntry, s State) time.Time {
	if s == StateSent {
		return sentAt(h)
	}
	for _, e := range h {
		if e.ProviderStatus != "" && ProviderState(e.ProviderStatus) == s {
			return e.At
		}
	}
	return time.Time{}
}

// EventAt is when a recipient first did event (EventReplied,
// EventOptedOut); zero if never.
func EventAt(h []HistoryEntry, event string) time.Time {
	for _, e := range h {
		if e.Event == event {
			return e.At
		}
	}
	return time.Time{}
}
