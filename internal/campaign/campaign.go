// Package campaign is the heart of the product: the campaign model and its
// lifecycle, the streaming CSV import that turns an upload into recipients,
// the enqueueing of one asynq task per recipient, the send path the worker
// runs for each task, and the Redis store that holds all of it.
//
// Redis is the only state. A campaign is one hash (metadata and exact
// counters); each recipient is a row (its CSV fields, written at import) and,
// once a worker has touched it, a state record. Every state change happens in
// one Lua script that also moves the counters, so the counters always add up
// to the total, whatever number of workers run.
package campaign

import (
	"time"
)

// Status is where a campaign is in its lifecycle.
type Status string

const (
	StatusDraft     Status = "draft"
	StatusScheduled Status = "scheduled"
	StatusRunning   Status = "running"
	StatusPaused    Status = "paused"
	StatusCompleted Status = "completed"
	StatusCancelled Status = "cancelled"
)

// State is where one recipient is.
type State string

const (
	StateQueued  State = "queued"  // imported, waiting for a worker
	StateSending State = "sending" // claimed by a worker, provider call in flight
	// StateUnconfirmed: the send may have reached the provider, but no
	// definite answer came back; reconciliation asks the provider before
	// anything is sent again.
	StateUnconfirmed State = "unconfirmed"
	StateSent        State = "sent"      // accepted by the provider (message_uid known)
	StateDelivered   State = "delivered" // the provider reports it delivered
	StateRead        State = "read"      // the provider reports it read
	StateFailed      State = "failed"    // definitely not delivered; Reason says why
	StateSkipped     State = "skipped"   // never sent on purpose (cancelled, ...); Reason says why
	StateUnknown     State = "unknown"   // may or may not have been sent, and reconciliation could not tell; never resent
)

// States lists every recipient state in funnel order; the counters of a
// campaign are kept under these names.
var States = []State{StateQueued, StateSending, StateUnconfirmed, StateSent, StateDelivered, StateRead, StateFailed, StateSkipped, StateUnknown}

// ValidState reports whether s names a recipient state.
func ValidState(s string) bool {
	for _, st := range States {
		if string(st) == s {
			return true
		}
	}
	return false
}

// Counts are the recipients of a campaign by state. Every recipient is in
// exactly one state, so the states add up to Total.
type Counts struct {
	Total   int64 `json:"total"`
	Queued  int64 `json:"queued"`
	Sending int64 `json:"sending"`
	// Unconfirmed are sends whose answer was lost; they are being checked
	// with the provider (see StateUnconfirmed).
	Unconfirmed int64 `json:"unconfirmed"`
	Sent        int64 `json:"sent"`
	Delivered   int64 `json:"delivered"`
	Read        int64 `json:"read"`
	Failed      int64 `json:"failed"`
	Skipped     int64 `json:"skipped"`
	Unknown     int64 `json:"unknown"`
}

// Sum is every state's count: Total when the counts add up, as they must.
func (c Counts) Sum() int64 {
	return c.Queued + c.Sending + c.Unconfirmed + c.Sent + c.Delivered + c.Read + c.Failed + c.Skipped + c.Unknown
}

// Settled is the number of recipients whose send attempt is over.
func (c Counts) Settled() int64 {
	return c.Sent + c.Delivered + c.Read + c.Failed + c.Skipped + c.Unknown
}

// RejectedRow is a CSV row that was not imported, and why.
type RejectedRow struct {
	Row int    `json:"row"` // as a spreadsheet numbers it: the header is row 1
	Msg string `json:"msg"`
}

// Credits is what a campaign costs in provider credits (TimelinesAI: 1 a
// message, 2 for text with an attachment). A provider that meters no
// credits (a gateway) costs none: Metered is false and the figures 0.
type Credits struct {
	Metered   bool   `json:"metered"`
	Status    string `json:"status,omitempty"` // "not metered" when Metered is false
	Estimated int64  `json:"estimated"`        // for every recipient
	Spent     int64  `json:"spent"`            // charged by the provider so far
	Needed    int64  `json:"needed"`           // still to spend on the queued recipients (estimated)
	// Available is what the credit ledger holds now, and Shortfall how much
	// of Needed it does not cover (forecast.go); both absent when the
	// provider meters no credits or its quota has not been read yet.
	Available *int64 `json:"available,omitempty"`
	Shortfall *int64 `json:"shortfall,omitempty"`
}

// CreditsNotMetered is Credits.Status for a provider that meters none.
const CreditsNotMetered = "not metered"

// Campaign is a campaign as the API shows it.
type Campaign struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Status       Status     `json:"status"`
	Reason       string     `json:"reason,omitempty"` // why it is paused, waiting, or ended early
	CreatedAt    time.Time  `json:"created_at"`
	SendAt       *time.Time `json:"send_at,omitempty"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
	Importing    bool       `json:"importing"` // rows are still being read from the upload
	Template     string     `json:"template"`
	TemplateName string     `json:"template_name,omitempty"`
	// Variants are the A/B templates (Template is the first's); Winner the
	// test-then-winner mode and its choice.
	Variants    []Variant `json:"variants,omitempty"`
	Winner      *Winner   `json:"winner,omitempty"`
	Accounts    []string  `json:"accounts"` // sender WhatsApp accounts; empty: the provider's default
	Label       string    `json:"label,omitempty"`
	Window      *Window   `json:"window,omitempty"` // send window in each recipient's local time
	FileUID     string    `json:"file_uid,omitempty"`
	Columns     []string  `json:"columns"`      // template field names, in CSV order
	PhoneColumn string    `json:"phone_column"` // the one holding the phone, in E.164 ("": none)
	// KeyColumns are the columns a recipient is addressed by (address.go):
	// a row's key is the first of them that is filled.
	KeyColumns []string `json:"key_columns"`
	// TypingSimulation and PresenceSimulation are the gateway's typing
	// indicator and presence around each message; absent for a provider
	// without them.
	TypingSimulation   *bool `json:"typing_simulation,omitempty"`
	PresenceSimulation *bool `json:"presence_simulation,omitempty"`

	// SequenceID and SequenceStep name the onboarding sequence step this
	// campaign is (steps are campaigns that keep taking recipients).
	SequenceID   string `json:"sequence_id,omitempty"`
	SequenceStep int    `json:"sequence_step,omitempty"`

	Counts        Counts        `json:"counts"`
	Duplicates    int64         `json:"duplicates"`     // rows dropped because their phone came earlier
	Suppressed    int64         `json:"suppressed"`     // rows not queued because their address is on the suppression list
	RejectedCount int64         `json:"rejected_count"` // rows not imported
	Rejected      []RejectedRow `json:"rejected"`       // the first MaxRejectedListed of them
	Credits       Credits       `json:"credits"`
	// ETA is when the last queued recipient is expected to go out, from its
	// accounts' pacing and backlog, the send window and what the campaign
	// waits for (forecast.go); absent when nothing is queued, or when a wait
	// has no end anyone can name (credits to be added, a paused account).
	ETA      *time.Time `json:"eta,omitempty"`
	Funnel   Funnel     `json:"funnel"`
	Tracking Tracking   `json:"tracking"`
	// Waiting says, for each thing the queued recipients wait for, why and
	// until when; Queue splits them into those due now and those waiting
	// for their send window.
	Waiting []Wait      `json:"waiting,omitempty"`
	Queue   *QueueSplit `json:"queue,omitempty"`
	// TestOf names the campaign a test send (POST …/test) belongs to.
	TestOf string `json:"test_of,omitempty"`
	// CapPolicy is what FREQUENCY_CAP does to a recipient it holds back:
	// skip (the default) or defer (sent when the cap frees).
	CapPolicy string `json:"cap_policy,omitempty"`
	// Transactional messages are exempt from FREQUENCY_CAP (a sequence
	// marked transactional, and its steps).
	Transactional bool `json:"transactional,omitempty"`
	// Confirms says the campaign is the confirmation reply to an opt-out
	// or opt-in keyword (ConfirmOptOut, ConfirmOptIn; confirm.go).
	Confirms string `json:"confirms,omitempty"`
}

// Funnel is how far the campaign's messages got, with rates.
type Funnel struct {
	Accepted     int64   `json:"accepted"`      // taken by the provider (later failures included)
	Delivered    int64   `json:"delivered"`     // delivered or read
	Read         int64   `json:"read"`          // read
	Failed       int64   `json:"failed"`        // failed before or after the provider took them
	Undelivered  int64   `json:"undelivered"`   // of those, failed after the provider took them
	DeliveryRate float64 `json:"delivery_rate"` // delivered / accepted
	ReadRate     float64 `json:"read_rate"`     // read / delivered
	FailureRate  float64 `json:"failure_rate"`  // failed / (accepted + failed before)
	Replied      int64   `json:"replied"`       // recipients who wrote back within REPLY_WINDOW
	OptedOut     int64   `json:"opted_out"`     // of those, who wrote an opt-out keyword
	ReplyRate    float64 `json:"reply_rate"`    // replied / accepted
	OptOutRate   float64 `json:"opt_out_rate"`  // opted out / accepted
}

// audienceFigures are the funnel's replies and opt-outs.
type audienceFigures struct{ replied, optedOut int64 }

func newFunnel(c Counts, undelivered int64, a audienceFigures) Funnel {
	f := Funnel{
		Replied:     a.replied,
		OptedOut:    a.optedOut,
		Accepted:    c.Sent + c.Delivered + c.Read + undelivered,
		Delivered:   c.Delivered + c.Read,
		Read:        c.Read,
		Failed:      c.Failed,
		Undelivered: undelivered,
	}
	ratio := func(a, b int64) float64 {
		if b == 0 {
			return 0
		}
		return float64(int(float64(a)/float64(b)*10000+0.5)) / 10000
	}
	f.DeliveryRate = ratio(f.Delivered, f.Accepted)
	f.ReadRate = ratio(f.Read, f.Delivered)
	f.FailureRate = ratio(f.Failed, f.Accepted+f.Failed-undelivered)
	f.ReplyRate = ratio(f.Replied, f.Accepted)
	f.OptOutRate = ratio(f.OptedOut, f.Accepted)
	return f
}

// Tracking says how the delivery statuses are being followed.
type Tracking struct {
	// Polling is "normal", or "slowed" while status polls wait for the
	// API-call budget (Reason says which and why).
	Polling string `json:"polling"`
	Reason  string `json:"reason,omitempty"`
}

// MaxRejectedListed caps the rejected rows kept per campaign: a broken
// million-row file must not become a million-entry error list.
const MaxRejectedListed = 1000

// Recipient is one recipient as the API shows it.
type Recipient struct {
	Seq        int64             `json:"seq"`
	Phone      string            `json:"phone"` // the phone of a recipient addressed by phone ("" otherwise)
	Key        string            `json:"key"`   // what it is addressed by: a phone, a JID or a chat id
	Kind       Kind              `json:"kind"`  // phone, jid or chat_id
	Fields     map[string]string `json:"fields"`
	State      State             `json:"state"`
	Reason     string            `json:"reason,omitempty"`
	Account    string            `json:"account,omitempty"`
	MessageUID string            `json:"message_uid,omitempty"`
	UpdatedAt  *time.Time        `json:"updated_at,omitempty"`
	History    []HistoryEntry    `json:"history"`
}
