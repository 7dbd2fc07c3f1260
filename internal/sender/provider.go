// Package sender is the seam between campaigns and the WhatsApp providers that
// deliver their messages: the Provider interface, the TimelinesAI Public API
// client, and the error taxonomy the worker branches on (see errors.go). The
// sandbox subpackage is an HTTP server that behaves like TimelinesAI, for tests
// and for trying the product without an account.
//
// A send may reach the provider without a definite answer (Unconfirmed);
// providers that can look up what an account sent implement MessageFinder, so
// that such a send is reconciled instead of resent, and BeforeDispatch lets
// the caller record the moment a send may reach the provider.
//
// The interface is shaped so that a second provider (a self-hosted WhatsApp
// gateway with POST /chats/{chat_jid}/messages and a {status:bool,code,...}
// envelope) can plug in behind it: a message is addressed by phone, chat id or
// JID, and providers without quotas or status history answer ErrNotSupported.
package sender

import (
	"context"
	"errors"
	"time"
)

// Provider sends messages and reports on them. Implementations are safe for
// concurrent use.
type Provider interface {
	// Send hands one message to the provider. A nil error means the provider
	// accepted it for (asynchronous) sending and gave it a message UID. Errors
	// are *Error values; their Kind tells the caller whether the message may
	// have been sent.
	Send(ctx context.Context, msg Message) (Receipt, error)

	// StatusHistory returns the provider's status changes for a message,
	// oldest first.
	StatusHistory(ctx context.Context, messageUID string) ([]StatusEvent, error)

	// Quota reads the workspace's message credits and API-call budget.
	Quota(ctx context.Context) (Quota, error)
}

// ErrNotSupported is returned by providers that lack an operation (a gateway
// without quotas, for example).
var ErrNotSupported = errors.New("sender: operation not supported by this provider")

// Message is one outgoing WhatsApp message. Exactly one of Phone, ChatID and
// JID addresses the recipient; they select POST /messages,
// POST /chats/{chat_id}/messages and POST /messages/to_jid respectively.
type Message struct {
	Phone  string // recipient in E.164, e.g. +14155550100
	ChatID int64  // an existing chat's id
	JID    string // a contact's or group's JID, e.g. 14155550100@s.whatsapp.net

	// AccountPhone is the sending WhatsApp account (whatsapp_account_phone).
	// Empty lets the provider pick its most recently connected account. It is
	// not sent with ChatID, whose chat already belongs to an account.
	AccountPhone string

	Text                 string // at most MaxTextLength characters
	FileUID              string // an uploaded file to attach
	AttachmentTemplateID int64  // an attachment template to attach (0: none)
	Label                string // at most MaxLabelLength characters
	ChatName             string // at most MaxChatNameLength characters
	ReplyTo              string // UID of the message this one replies to (ChatID and JID only)
}

// Field limits of the provider's spec pages.
const (
	MaxTextLength     = 2000
	MaxLabelLength    = 64
	MaxChatNameLength = 256
)

// HasAttachment reports whether the message carries a file or an attachment
// template.
func (m Message) HasAttachment() bool {
	return m.FileUID != "" || m.AttachmentTemplateID != 0
}

// Credits is what the provider charges for the message: 1, or 2 when it has
// both non-empty text and an attachment.
func (m Message) Credits() int {
	if m.Text != "" && m.HasAttachment() {
		return 2
	}
	return 1
}

// Receipt is the provider's acknowledgement of an accepted message.
type Receipt struct {
	MessageUID string
}

// StatusEvent is one entry of a message's status history, in the provider's
// words ("Sent", "Delivered", "Read", "Failed", ...).
type StatusEvent struct {
	Status string
	At     time.Time
}

// Quota is the workspace's usage as GET /quotas reports it.
type Quota struct {
	MessagingTotal      int64
	MessagingUsed       int64
	MessagingPeriodEnd  time.Time // zero when the provider did not say
	NonRecurringBalance int64
	APICallsTotal       int64
	APICallsUsed        int64
	APICallsPeriodEnd   time.Time
}

// CreditsRemaining is what may still be spent on messages: the rest of the
// recurring messaging quota plus the non-recurring balance.
func (q Quota) CreditsRemaining() int64 {
	return max(0, q.MessagingTotal-q.MessagingUsed) + max(0, q.NonRecurringBalance)
}

// APICallsRemaining is what is left of the monthly API-call budget.
func (q Quota) APICallsRemaining() int64 {
	return max(0, q.APICallsTotal-q.APICallsUsed)
}

// MessageFinder is implemented by providers that can look up the messages an account
// sent to a recipient (TimelinesAI: its chats and their history). Reconciliation uses it
// to learn whether an unconfirmed send went out.
type MessageFinder interface {
	FindSent(ctx context.Context, q SentQuery) ([]SentMessage, error)
}

// SentQuery asks for the messages sent to Phone from AccountPhone ("" any account) at or
// after After.
type SentQuery struct {
	Phone        string // the recipient, E.164
	AccountPhone string // the sending WhatsApp account, E.164; "" any
	After        time.Time
}

// SentMessage is one message the provider has as sent (from_me) in a chat.
type SentMessage struct {
	UID           string
	Text          string
	AccountPhone  string // the sender, E.164 ("" when the provider did not say)
	At            time.Time
	HasAttachment bool
}
