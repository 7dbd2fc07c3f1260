// Package sender is the seam between campaigns and the WhatsApp providers that
// deliver their messages: the Provider interface with each provider's
// Capabilities, the TimelinesAI Public API client, the self-hosted WhatsApp
// gateway client (and a router over one gateway instance per sender
// account), and the error taxonomy the worker branches on (see errors.go).
// The sandbox subpackage is an HTTP server that behaves like TimelinesAI, or
// like the gateway, for tests and for trying the product without an account.
//
// A send may reach the provider without a definite answer (Unconfirmed);
// providers that can look up what an account sent implement MessageFinder, so
// that such a send is reconciled instead of resent, and BeforeDispatch lets
// the caller record the moment a send may reach the provider.
//
// Providers differ: the gateway meters no credits, keeps no status history
// and addresses no chat ids. Capabilities says so, and the operations a
// provider lacks answer ErrNotSupported.
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

	// Capabilities says what the provider can do: credits, status
	// history, lookups, the fields and addresses it accepts, its limits.
	Capabilities() Capabilities
}

// ErrNotSupported is returned by providers that lack an operation (a gateway
// without quotas or status history, for example); their Capabilities say so
// beforehand.
var ErrNotSupported = errors.New("sender: operation not supported by this provider")

// Message is one outgoing WhatsApp message. Exactly one of Phone, ChatID and
// JID addresses the recipient, of a kind the provider's Capabilities allow
// (TimelinesAI: POST /messages, POST /chats/{chat_id}/messages and
// POST /messages/to_jid respectively; the gateway: phones and JIDs).
type Message struct {
	Phone  string // recipient in E.164, e.g. +14155550100
	ChatID int64  // an existing chat's id
	JID    string // a contact's or group's JID, e.g. 14155550100@s.whatsapp.net

	// AccountPhone is the sending WhatsApp account (whatsapp_account_phone;
	// for the gateway router, the account whose instance sends). Empty lets
	// the provider pick its most recently connected account. TimelinesAI
	// does not take it with ChatID, whose chat already belongs to an account.
	AccountPhone string

	Text                 string // at most Capabilities.MaxTextLength characters
	FileUID              string // an uploaded file to attach (Capabilities.Attachments)
	AttachmentTemplateID int64  // an attachment template to attach (0: none)
	Label                string // at most Capabilities.MaxLabelLength characters
	ChatName             string // at most Capabilities.MaxChatNameLength characters
	ReplyTo              string // UID of the message this one replies to

	// TypingSimulation and PresenceSimulation override the gateway's typing
	// indicator and presence wrapping for this message (nil: the gateway's
	// default, enabled). Only for providers with
	// Capabilities.TypingSimulation.
	TypingSimulation   *bool
	PresenceSimulation *bool
}

// HasAttachment reports whether the message carries a file or an attachment
// template.
func (m Message) HasAttachment() bool {
	return m.FileUID != "" || m.AttachmentTemplateID != 0
}

// Receipt is the provider's acknowledgement of an accepted message.
type Receipt struct {
	MessageUID string
	// Status is the provider's word for the message in its answer
	// ("sent" from the gateway); "" when it gave none (TimelinesAI only
	// says "accepted for async sending").
	Status string
	// SentAt is when the provider says it sent the message (the gateway's
	// data.timestamp); zero when it did not say.
	SentAt time.Time
	// AnsweredAt is when the answer arrived, by this process's clock. The
	// gateway answers after it has sent (and "typed"), so an account's gap
	// to its next message is measured from here.
	AnsweredAt time.Time
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
// after After; or, with ChatID, those sent in that one chat (a group's, say,
// which has no phone).
type SentQuery struct {
	Phone        string // the recipient, E.164
	ChatID       int64  // the chat to look in instead of the chats with Phone; 0: none
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
