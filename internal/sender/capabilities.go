package sender

// Capabilities say what a provider can do, so that the rest of the product
// follows the provider instead of assuming TimelinesAI: whether messages
// cost credits (and how many), whether statuses can be polled and sent
// messages looked up, what a message may carry, how recipients may be
// addressed, and the providers' field limits.
//
// A false flag means the provider lacks the feature: its operation answers
// ErrNotSupported (Quota, StatusHistory), the provider does not implement
// MessageFinder, or ValidateMessage refuses a message that uses it.
type Capabilities struct {
	// Name is the provider as people know it ("TimelinesAI", "the
	// gateway"), for messages that say what it cannot do.
	Name string

	// MeteredCredits: messages cost credits that Quota reports. Without
	// it Quota answers ErrNotSupported and Credits is 0: there is no
	// ledger to keep.
	MeteredCredits bool
	// StatusHistory: delivery statuses can be polled (StatusHistory).
	StatusHistory bool
	// MessageLookup: the messages an account sent can be looked up (the
	// provider implements MessageFinder), so that an unconfirmed send can
	// be reconciled.
	MessageLookup bool
	// Attachments: Message.FileUID and AttachmentTemplateID.
	Attachments bool
	// Labels: Message.Label.
	Labels bool
	// ChatNames: Message.ChatName.
	ChatNames bool
	// TypingSimulation: Message.TypingSimulation and PresenceSimulation.
	TypingSimulation bool
	// AnswersAfterSending: the provider answers a send only once the
	// message has gone out (the gateway, after it has "typed" it), so an
	// account's gap to its next message counts from the answer
	// (Receipt.AnsweredAt), not from the request.
	AnswersAfterSending bool

	// How a recipient may be addressed.
	AddressByPhone  bool
	AddressByJID    bool
	AddressByChatID bool
	// ReplyToPhone: a reply (Message.ReplyTo) may be addressed by phone.
	// TimelinesAI's POST /messages has no reply_to; the gateway turns a
	// phone into a JID and can.
	ReplyToPhone bool

	// Field limits in Unicode code points; 0 where the field is not
	// supported.
	MaxTextLength     int
	MaxLabelLength    int
	MaxChatNameLength int

	// CreditRule is what one message costs when MeteredCredits is set; nil
	// means 1 a message. It is the provider's rule, kept beside its client.
	CreditRule func(Message) int
}

// Credits is what the provider charges for msg: 0 when it does not meter
// messages, else its CreditRule (1 when it has none).
func (c Capabilities) Credits(msg Message) int {
	switch {
	case !c.MeteredCredits:
		return 0
	case c.CreditRule == nil:
		return 1
	}
	return c.CreditRule(msg)
}

// Addresses reports whether the provider can address msg's recipient the way
// msg does (by phone, JID or chat id). A message without an address, or with
// more than one, is addressed by none of them.
func (c Capabilities) Addresses(msg Message) bool {
	if msg.addressCount() != 1 {
		return false
	}
	switch {
	case msg.Phone != "":
		return c.AddressByPhone
	case msg.JID != "":
		return c.AddressByJID
	default:
		return c.AddressByChatID
	}
}
