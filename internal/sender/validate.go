package sender

import (
	"fmt"
	"unicode/utf8"
)

// ValidateMessage checks msg against the provider's documented rules, the
// ones that can be checked without asking it: exactly one address, the field
// length limits (counted in Unicode code points), and some content (text, a
// file or an attachment template). It returns the problems in the provider's
// errors[] shape, or nil when there are none.
//
// Whether a phone number or JID exists, or an account is connected, only the
// provider knows.
func ValidateMessage(msg Message) []FieldError {
	var problems []FieldError
	add := func(msg string, fields ...string) {
		problems = append(problems, FieldError{Fields: fields, Msg: msg})
	}

	addresses := 0
	if msg.Phone != "" {
		addresses++
	}
	if msg.ChatID != 0 {
		addresses++
	}
	if msg.JID != "" {
		addresses++
	}
	if addresses != 1 {
		add(fmt.Sprintf("exactly one of phone, chat_id and jid must be set, got %d", addresses), "phone", "chat_id", "jid")
	}
	if msg.ChatID < 0 {
		add("must be a positive chat id", "chat_id")
	}
	// POST /messages has no reply_to field: the provider would silently drop
	// it, and a reply that arrives as a plain message is a surprise.
	if msg.Phone != "" && msg.ReplyTo != "" {
		add("reply_to needs a chat_id or jid address, not a phone", "reply_to")
	}

	if n := utf8.RuneCountInString(msg.Text); n > MaxTextLength {
		add(tooLong(MaxTextLength, n), "text")
	}
	if n := utf8.RuneCountInString(msg.Label); n > MaxLabelLength {
		add(tooLong(MaxLabelLength, n), "label")
	}
	if n := utf8.RuneCountInString(msg.ChatName); n > MaxChatNameLength {
		add(tooLong(MaxChatNameLength, n), "chat_name")
	}
	if msg.Text == "" && !msg.HasAttachment() {
		add("a message needs text, file_uid or attachment_template_id", "text", "file_uid", "attachment_template_id")
	}
	return problems
}

func tooLong(limit, got int) string {
	return fmt.Sprintf("ensure this value has at most %d characters (it has %d)", limit, got)
}
