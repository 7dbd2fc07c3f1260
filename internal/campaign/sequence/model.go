// Package sequence runs onboarding sequences: ordered steps ("welcome" at
// once, "tips" a day later, "check-in" after three days) into which other
// apps enrol contacts one by one. Each step is a campaign of its own that
// never stops taking recipients, so every message goes through the same
// send path as a campaign's (claims, credits, pacing, windows, status
// history); enrolment number n is recipient n of every step, added with
// campaign.Service.AddRecipient and due at the enrolment time plus the
// step's delay.
package sequence

import (
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// Sequence is an onboarding sequence as the API shows it.
type Sequence struct {
	ID        string           `json:"id"`
	Name      string           `json:"name"`
	CreatedAt time.Time        `json:"created_at"`
	Accounts  []string         `json:"accounts"`
	Label     string           `json:"label,omitempty"`
	Window    *campaign.Window `json:"window,omitempty"`
	// KeyColumns are how an enrolment may address its contact: phone,
	// jid, chat_id, as far as the provider can (a sequence from before
	// recipient kinds: phone).
	KeyColumns []string `json:"key_columns"`
	Fields     []string `json:"fields"` // what an enrolment carries for the templates
	// TypingSimulation and PresenceSimulation, as a campaign's: absent for
	// a provider without them.
	TypingSimulation   *bool  `json:"typing_simulation,omitempty"`
	PresenceSimulation *bool  `json:"presence_simulation,omitempty"`
	Steps              []Step `json:"steps"`
	Enrolled           int64  `json:"enrolled"` // enrolments made (each contact counts once per enrolment)
	// Transactional messages (a receipt, a password reset) are exempt
	// from FREQUENCY_CAP; suppressions still apply.
	Transactional bool `json:"transactional,omitempty"`
}

// Step is one message of a sequence.
type Step struct {
	Name         string           `json:"name"`
	Delay        string           `json:"delay"` // after enrolment, like "24h0m0s"
	Template     string           `json:"template"`
	TemplateName string           `json:"template_name,omitempty"`
	FileUID      string           `json:"file_uid,omitempty"`
	CampaignID   string           `json:"campaign_id"` // its recipients, report and events are the campaign's
	Counts       *campaign.Counts `json:"counts,omitempty"`
	Funnel       *campaign.Funnel `json:"funnel,omitempty"`

	delay time.Duration
}

// Draft is the sequence a user asks for.
type Draft struct {
	Name     string
	Accounts []string
	Label    string
	Window   *campaign.Window
	Fields   []string // declared besides the templates' own
	Steps    []DraftStep
	// TypingSimulation and PresenceSimulation: nil is on (a provider
	// without them refuses either).
	TypingSimulation   *bool
	PresenceSimulation *bool
	Transactional      bool // exempt from FREQUENCY_CAP
}

// DraftStep is one step of a Draft.
type DraftStep struct {
	Name         string
	Delay        time.Duration
	Template     *templating.Template
	TemplateName string
	FileUID      string
}

// maxSteps bounds a sequence.
const maxSteps = 20

// Enrollment is one contact in a sequence.
type Enrollment struct {
	Phone      string         `json:"phone"` // "" for a contact addressed by JID or chat id
	Key        string         `json:"key"`   // the contact's address: a phone, a JID or a chat id
	Kind       campaign.Kind  `json:"kind"`
	Status     string         `json:"status"` // active, cancelled
	EnrolledAt time.Time      `json:"enrolled_at"`
	Steps      []EnrolledStep `json:"steps"`
	n          int64
}

// EnrolledStep is where one step of an enrolment is.
type EnrolledStep struct {
	Name       string         `json:"name"`
	CampaignID string         `json:"campaign_id"`
	DueAt      time.Time      `json:"due_at"`
	State      campaign.State `json:"state"`
	Reason     string         `json:"reason,omitempty"`
	MessageUID string         `json:"message_uid,omitempty"`
}

// EnrollReport is what enrolling a CSV did.
type EnrollReport struct {
	Enrolled        int64                  `json:"enrolled"`
	AlreadyEnrolled int64                  `json:"already_enrolled"`
	RejectedCount   int64                  `json:"rejected_count"`
	Rejected        []campaign.RejectedRow `json:"rejected"`
}

// storedEnrollment is an enrolment as the enrolled hash keeps it.
type storedEnrollment struct {
	N int64  `json:"n"`
	T string `json:"t"` // unix ms
	S string `json:"s"` // pending, active, cancelled
}
