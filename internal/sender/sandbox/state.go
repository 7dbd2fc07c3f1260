package sandbox

import (
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// stateSaveDelay is how long after a change the state file is written:
// changes in a burst (a campaign sending) are written together.
const stateSaveDelay = time.Second

// stateVersion is the state file's format.
const stateVersion = 1

// stateSaver writes Config.StateFile. Its fields but path and writeMu are
// guarded by Server.mu.
type stateSaver struct {
	path      string
	enabled   bool        // false until the state is loaded, and after Close
	timer     *time.Timer // a write is planned
	snapshots uint64      // snapshots taken; numbers them

	writeMu sync.Mutex // one write at a time
	written uint64     // the newest snapshot written; guarded by writeMu
	lastErr error      // of the last write; guarded by writeMu
}

// savedState is the state file.
type savedState struct {
	Version            int                  `json:"version"`
	Messages           []savedMessage       `json:"messages"`
	Chats              []savedChat          `json:"chats"`
	Accounts           []savedAccount       `json:"accounts"`
	AccountSeq         int64                `json:"account_seq"`
	LastSentAt         map[string]time.Time `json:"last_sent_at"`
	CreditsTotal       int64                `json:"credits_total"`
	CreditsUsed        int64                `json:"credits_used"`
	NonRecurringCredit int64                `json:"non_recurring_credit"`
	NonRecurringAt     time.Time            `json:"non_recurring_at"`
	APICallsUsed       int64                `json:"api_calls_used"`
	WebhookURL         string               `json:"webhook_url,omitempty"`
}

type savedMessage struct {
	Message
	Outcome          Outcome   `json:"outcome"`
	FromQuota        int64     `json:"from_quota"`
	FromNonRecurring int64     `json:"from_non_recurring"`
	RefundAt         time.Time `json:"refund_at"`
	Refunded         bool      `json:"refunded"`
}

type savedChat struct {
	ID        int64        `json:"id"`
	Sender    string       `json:"sender"`
	Recipient string       `json:"recipient"`
	JID       string       `json:"jid"`
	Name      string       `json:"name"`
	CreatedAt time.Time    `json:"created_at"`
	Entries   []savedEntry `json:"entries"`
}

type savedEntry struct {
	UID  string    `json:"uid"`
	At   time.Time `json:"at"`
	Sent bool      `json:"sent"` // a message the account sent (its record has the rest)
	Text string    `json:"text,omitempty"`
}

type savedAccount struct {
	Phone       string    `json:"phone"`
	Connected   bool      `json:"connected"`
	Seq         int64     `json:"seq"`
	ConnectedOn time.Time `json:"connected_on"`
}

// changedLocked plans a write of the state file, soon, unless one is
// planned already.
func (s *Server) changedLocked() {
	if !s.state.enabled || s.state.timer != nil {
		return
	}
	s.state.timer = time.AfterFunc(stateSaveDelay, func() {
		s.mu.Lock()
		s.state.timer = nil
		if !s.state.enabled {
			s.mu.Unlock()
			return // closed meanwhile: Close wrote it
		}
		st, n := s.snapshotLocked()
		s.mu.Unlock()
		s.writeState(st, n)
	})
}

// snapshotLocked is the state to write and its number.
func (s *Server) snapshotLocked() (savedState, uint64) {
	s.state.snapshots++
	return s.stateLocked(), s.state.snapshots
}

// Close writes the state file (when there is one) and stops delivering
// webhooks. The sandbox still answers requests, but remembers nothing more
// in the file. It returns the last error writing the file.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.state.timer != nil {
		s.state.timer.Stop()
		s.state.timer = nil
	}
	wasEnabled := s.state.enabled
	s.state.enabled = false
	var st savedState
	var n uint64
	if wasEnabled {
		st, n = s.snapshotLocked()
	}
	s.mu.Unlock()

	s.hooks.close()
	if !wasEnabled {
		return nil
	}
	s.writeState(st, n)
	s.state.writeMu.Lock()
	defer s.state.writeMu.Unlock()
	return s.state.lastErr
}

// writeState writes snapshot n, st, to the state file atomically: a
// temporary file in the same folder, renamed over the old one, so that a
// crash leaves the old state or the new one, never half of one. A snapshot
// older than one written already (a planned write that lost the race with
// Close) is not written.
func (s *Server) writeState(st savedState, n uint64) {
	s.state.writeMu.Lock()
	defer s.state.writeMu.Unlock()
	if n <= s.state.written {
		return
	}
	s.state.lastErr = writeFileAtomic(s.state.path, st)
	if s.state.lastErr == nil {
		s.state.written = n
	}
}

func writeFileAtomic(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode the sandbox state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write the sandbox state: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write the sandbox state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write the sandbox state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write the sandbox state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write the sandbox state: %w", err)
	}
	return nil
}

// stateLocked is what the state file keeps.
func (s *Server) stateLocked() savedState {
	st := savedState{
		Version:            stateVersion,
		Messages:           make([]savedMessage, 0, len(s.messages)),
		Chats:              make([]savedChat, 0, len(s.chats)),
		Accounts:           make([]savedAccount, 0, len(s.accounts)),
		AccountSeq:         s.accountSeq,
		LastSentAt:         maps.Clone(s.lastSentAt), // written after the lock is released
		CreditsTotal:       s.creditsTotal,
		CreditsUsed:        s.creditsUsed,
		NonRecurringCredit: s.nonRecurringCredit,
		NonRecurringAt:     s.nonRecurringAt,
		APICallsUsed:       s.apiCallsUsed,
		WebhookURL:         s.webhookURL,
	}
	for _, rec := range s.messages {
		st.Messages = append(st.Messages, savedMessage{
			Message: rec.msg, Outcome: rec.outcome, FromQuota: rec.fromQuota, FromNonRecurring: rec.fromNonRecurring,
			RefundAt: rec.refundAt, Refunded: rec.refunded,
		})
	}
	for _, c := range s.chats {
		sc := savedChat{ID: c.id, Sender: c.sender, Recipient: c.recipient, JID: c.jid, Name: c.name, CreatedAt: c.createdAt}
		for _, e := range c.entries {
			sc.Entries = append(sc.Entries, savedEntry{UID: e.uid, At: e.at, Sent: e.sent != nil, Text: e.text})
		}
		st.Chats = append(st.Chats, sc)
	}
	for _, acc := range s.accounts {
		st.Accounts = append(st.Accounts, savedAccount{Phone: acc.phone, Connected: acc.connected, Seq: acc.seq, ConnectedOn: acc.connectedOn})
	}
	return st
}

// loadState restores the state file, when there is one.
func (s *Server) loadState() error {
	if s.state.path == "" {
		return nil
	}
	data, err := os.ReadFile(s.state.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the sandbox state: %w", err)
	}
	var st savedState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("read the sandbox state %s: %w", s.state.path, err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("read the sandbox state %s: format %d, want %d (remove the file to start afresh)", s.state.path, st.Version, stateVersion)
	}
	s.restore(st)
	return nil
}

// restore makes st the sandbox's state.
func (s *Server) restore(st savedState) {
	for _, m := range st.Messages {
		rec := &record{msg: m.Message, outcome: m.Outcome, fromQuota: m.FromQuota, fromNonRecurring: m.FromNonRecurring,
			refundAt: m.RefundAt, refunded: m.Refunded}
		rec.msg.Status = "" // it follows from the clock
		s.messages = append(s.messages, rec)
		s.byUID[rec.msg.UID] = rec
		if !rec.refundAt.IsZero() && !rec.refunded {
			heap.Push(&s.refunds, rec)
		}
	}
	for _, sc := range st.Chats {
		c := &chat{id: int64(len(s.chats)) + 1, sender: sc.Sender, recipient: sc.Recipient, jid: sc.JID, name: sc.Name, createdAt: sc.CreatedAt}
		for _, e := range sc.Entries {
			entry := chatEntry{uid: e.UID, at: e.At, text: e.Text}
			if e.Sent {
				if entry.sent = s.byUID[e.UID]; entry.sent == nil {
					continue
				}
			}
			c.entries = append(c.entries, entry)
		}
		s.chats = append(s.chats, c)
		s.chatByKey[chatKey{c.sender, c.recipient}] = c
	}
	for _, a := range st.Accounts {
		s.accounts = append(s.accounts, &account{phone: a.Phone, connected: a.Connected, seq: a.Seq, connectedOn: a.ConnectedOn})
	}
	s.accountSeq = st.AccountSeq
	for account, at := range st.LastSentAt {
		s.lastSentAt[account] = at
	}
	s.creditsTotal, s.creditsUsed = st.CreditsTotal, st.CreditsUsed
	s.nonRecurringCredit, s.nonRecurringAt = st.NonRecurringCredit, st.NonRecurringAt
	s.apiCallsUsed = st.APICallsUsed
	if s.webhookURL == "" {
		s.webhookURL = st.WebhookURL
	}
}
