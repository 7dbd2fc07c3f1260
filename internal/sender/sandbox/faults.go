package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Fault makes matching API requests misbehave. A request matches when every
// non-empty selector matches; faults are tried in the order they were
// injected, and the first match applies. Account and Phone match a send's
// account and recipient, those of the message a status request names, of
// the chat a history request names, or GET /chats's filters.
//
// What happens, in order: Delay, then Drop (close the connection, no
// answer), else the Status/Body answer, else the normal answer. Without
// Process the request is not processed at all unless the fault ends in the
// normal answer; with Process it is processed first (a message accepted,
// charged and recorded) and the fault then applies to its answer: a slow
// answer or a lost one after the provider acted.
type Fault struct {
	Op      string `json:"op,omitempty"`      // OpSend, OpQuota, OpStatus, OpAccounts, OpChats; "": any
	Account string `json:"account,omitempty"` // the sending account's phone; "": any
	Phone   string `json:"phone,omitempty"`   // the recipient's phone (or a JID); "": any
	Times   int    `json:"times,omitempty"`   // how many requests it applies to; 0: until cleared

	Status      int         `json:"status,omitempty"`       // answer with this status instead (0: the normal answer)
	Body        string      `json:"body,omitempty"`         // ... and this body
	ContentType string      `json:"content_type,omitempty"` // "": application/json for a body that looks like JSON, else text/plain
	Header      http.Header `json:"header,omitempty"`       // extra answer headers (Retry-After, say)

	Delay   time.Duration `json:"delay,omitempty"`   // wait before answering (ends early when the client goes away); JSON: "2s" or nanoseconds
	Process bool          `json:"process,omitempty"` // process the request before applying the fault
	Drop    bool          `json:"drop,omitempty"`    // close the connection without answering
}

// UnmarshalJSON accepts delay as a Go duration string ("1.5s") or a number
// of nanoseconds, for tests that inject faults over /_sandbox/faults.
func (f *Fault) UnmarshalJSON(b []byte) error {
	type plain Fault
	var aux struct {
		plain
		Delay json.RawMessage `json:"delay"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*f = Fault(aux.plain)
	f.Delay = 0
	if len(aux.Delay) == 0 || string(aux.Delay) == "null" {
		return nil
	}
	var text string
	if json.Unmarshal(aux.Delay, &text) == nil {
		d, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("fault delay: %w", err)
		}
		f.Delay = d
		return nil
	}
	var ns int64
	if err := json.Unmarshal(aux.Delay, &ns); err != nil {
		return fmt.Errorf("fault delay: %w", err)
	}
	f.Delay = time.Duration(ns)
	return nil
}

// activeFault is an injected fault and how many more requests it takes.
type activeFault struct {
	Fault
	remaining int // when Times > 0
}

// Inject adds a fault after those already injected.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &activeFault{Fault: f, remaining: f.Times})
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// takeFault returns the first fault matching a request, using up one of its
// Times, or nil.
func (s *Server) takeFault(op, account, recipient string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, af := range s.faults {
		if !s.faultMatches(af, op, account, recipient) {
			continue
		}
		f := af.Fault
		if af.Times > 0 {
			af.remaining--
			if af.remaining <= 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return &f
	}
	return nil
}

func (s *Server) faultMatches(af *activeFault, op, account, recipient string) bool {
	if af.Op != "" && af.Op != op {
		return false
	}
	if af.Account != "" {
		want, ok := s.normalizePhone(af.Account)
		if !ok || want != account {
			return false
		}
	}
	if af.Phone != "" && s.normalizeRecipient(af.Phone) != recipient {
		return false
	}
	return true
}

// reply is the fault's own answer.
func (f *Fault) reply() reply {
	contentType := f.ContentType
	if contentType == "" {
		contentType = "text/plain; charset=utf-8"
		if json.Valid([]byte(f.Body)) {
			contentType = "application/json"
		}
	}
	return reply{status: f.Status, contentType: contentType, header: f.Header, body: []byte(f.Body)}
}
