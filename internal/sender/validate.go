package sender

import (
	"fmt"
	"unicode/utf8"
)

// ValidateMessage checks msg against what the provider with caps accepts,
// the rules that can be checked without asking it: exactly one address, of a
// kind the provider can address; only fields it supports; its field length
// limits (counted in Unicode code points); and some content. It returns the
// problems in the provider's errors[] shape (each naming the fields), or nil
// when there are none.
//
// Whether a phone number or JID exists, or an account is connected, only the
// provider knows.
func ValidateMessage(msg Message, caps Capabilities) []FieldError {
	var problems []FieldError
	add := func(msg string, fields ...string) {
		problems = append(problems, FieldError{Fields: fields, Msg: msg})
	}

	if n := msg.addressCount(); n != 1 {
		add(fmt.Sprintf("exactly one of phone, chat_id and jid must be set, got %d", n), "phone", "chat_id", "jid")
	} else if !caps.Addresses(msg) {
		field := msg.addressField()
		add(fmt.Sprintf("this provider cannot address a recipient by %s; use %s", field, caps.addressKinds()), field)
	}
	if msg.ChatID < 0 {
		add("must be a positive chat id", "chat_id")
	}
	// A provider without reply_to on its phone endpoint would silently drop
	// it, and a reply that arrives as a plain message is a surprise.
	if msg.Phone != "" && msg.ReplyTo != "" && !caps.ReplyToPhone {
		add("reply_to needs a chat_id or jid address, not a phone", "reply_to")
	}

	checkLength(add, "text", msg.Text, caps.MaxTextLength, true)
	checkLength(add, "label", msg.Label, caps.MaxLabelLength, caps.Labels)
	checkLength(add, "chat_name", msg.ChatName, caps.MaxChatNameLength, caps.ChatNames)
	if msg.HasAttachment() && !caps.Attachments {
		add("this provider cannot send attachments", "file_uid", "attachment_template_id")
	}
	if (msg.TypingSimulation != nil || msg.PresenceSimulation != nil) && !caps.TypingSimulation {
		add("this provider has no typing or presence simulation", "typing_simulation", "presence_simulation")
	}
	switch {
	case msg.Text != "" || caps.Attachments && msg.HasAttachment():
	case caps.Attachments:
		add("a message needs text, file_uid or attachment_template_id", "text", "file_uid", "attachment_template_id")
	default:
		add("a message needs text", "text")
	}
	return problems
}

// refuseInvalid is the Invalid error of a message that fails
// ValidateMessage, or nil: a client refuses it without a request, which
// saves an API call.
func refuseInvalid(msg Message, caps Capabilities) *Error {
	fields := ValidateMessage(msg, caps)
	if len(fields) == 0 {
		return nil
	}
	return &Error{Kind: Invalid, Op: OpSend, Code: "validation_error", Message: "message refused before sending", Fields: fields}
}

// checkLength adds a problem when value is set but the provider lacks the
// field, or when it is longer than limit (0: no limit).
func checkLength(add func(string, ...string), field, value string, limit int, supported bool) {
	if value == "" {
		return
	}
	if !supported {
		add("this provider cannot set "+field, field)
		return
	}
	if n := utf8.RuneCountInString(value); limit > 0 && n > limit {
		add(fmt.Sprintf("ensure this value has at most %d characters (it has %d)", limit, n), field)
	}
}

// addressCount is how many of Phone, ChatID and JID are set.
func (m Message) addressCount() int {
	n := 0
	for _, set := range []bool{m.Phone != "", m.ChatID != 0, m.JID != ""} {
		if set {
			n++
		}
	}
	return n
}

// addressField names the field that addresses a message with one address.
func (m Message) addressField() string {
	switch {
	case m.Phone != "":
		return "phone"
	case m.JID != "":
		return "jid"
	}
	return "chat_id"
}

// addressKinds lists the address fields the provider accepts, for messages.
func (c Capabilities) addressKinds() string {
	var kinds []string
	for _, k := range []struct {
		ok   bool
		name string
	}{{c.AddressByPhone, "phone"}, {c.AddressByJID, "jid"}, {c.AddressByChatID, "chat_id"}} {
		if k.ok {
			kinds = append(kinds, k.name)
		}
	}
	switch len(kinds) {
	case 0:
		return "another provider"
	case 1:
		return kinds[0]
	}
	out := kinds[0]
	for i, k := range kinds[1:] {
		if i == len(kinds)-2 {
			out += " or " + k
		} else {
			out += ", " + k
		}
	}
	return out
}
