package sandbox

import (
	"bytes"
	"container/heap"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// Field limits of the provider's spec pages (OpenAPI maxLength), counted in
// Unicode code points.
const (
	maxTextLength     = 2000
	maxLabelLength    = 64
	maxChatNameLength = 256
)

// fieldError is one item of the provider's errors[] list.
type fieldError struct {
	Fields []string `json:"fields"`
	Msg    string   `json:"msg"`
}

// sendEndpoint is one of the three ways to address a message.
type sendEndpoint int

const (
	toPhone sendEndpoint = iota // POST /messages
	toChat                      // POST /chats/{chat_id}/messages
	toJID                       // POST /messages/to_jid
)

// sendFields are a send request's body fields, typed.
type sendFields struct {
	phone, jid, account, replyTo   string
	text, fileUID, label, chatName string
	attachmentTemplateID           int64
}

// parseSendBody reads and checks a send body the way the provider's
// validator does: types first, then required fields, formats and limits.
// Fields the endpoint does not define are ignored.
func (s *Server) parseSendBody(endpoint sendEndpoint, body []byte) (sendFields, []fieldError) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil || raw == nil || dec.More() {
		reason := "a JSON object is required"
		if err != nil {
			reason = "invalid JSON: " + err.Error()
		}
		return sendFields{}, []fieldError{{Fields: []string{"body"}, Msg: reason}}
	}
	f, problems := decodeSendFields(endpoint, raw)
	return f, append(problems, s.checkSendFields(endpoint, f)...)
}

// fieldProblems collects a request's field errors in the provider's shape.
type fieldProblems []fieldError

func (p *fieldProblems) add(msg string, fields ...string) {
	*p = append(*p, fieldError{Fields: fields, Msg: msg})
}

// decodeSendFields takes the endpoint's fields out of a JSON object,
// answering a type error for each field of the wrong JSON type.
func decodeSendFields(endpoint sendEndpoint, raw map[string]json.RawMessage) (sendFields, []fieldError) {
	var f sendFields
	var problems fieldProblems
	str := func(name string, into *string) {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			return
		}
		if err := json.Unmarshal(v, into); err != nil {
			problems.add("str type expected", name)
		}
	}
	switch endpoint {
	case toPhone:
		str("phone", &f.phone)
		str("whatsapp_account_phone", &f.account)
	case toJID:
		str("jid", &f.jid)
		str("whatsapp_account_phone", &f.account)
		str("reply_to", &f.replyTo)
	case toChat:
		str("reply_to", &f.replyTo)
	}
	str("text", &f.text)
	str("file_uid", &f.fileUID)
	str("label", &f.label)
	str("chat_name", &f.chatName)
	if v, ok := raw["attachment_template_id"]; ok && string(v) != "null" {
		n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil {
			problems.add("value is not a valid integer", "attachment_template_id")
		}
		f.attachmentTemplateID = n
	}
	return f, problems
}

// checkSendFields answers what the provider's validator says of typed
// fields: the endpoint's required address, its format, and the limits.
func (s *Server) checkSendFields(endpoint sendEndpoint, f sendFields) []fieldError {
	var problems fieldProblems
	switch endpoint {
	case toPhone:
		if f.phone == "" {
			problems.add("field required", "phone")
		} else if _, ok := s.normalizePhone(f.phone); !ok {
			problems.add("must be a phone number in international format: [+][country code][area code][local phone number], 7 to 15 digits", "phone")
		}
	case toJID:
		if f.jid == "" {
			problems.add("field required", "jid")
		} else if _, ok := parseJID(f.jid); !ok {
			problems.add("must be a WhatsApp ID such as 14840000000@s.whatsapp.net or a group's @g.us ID", "jid")
		}
	}
	for _, limit := range []struct {
		name  string
		value string
		max   int
	}{
		{"text", f.text, maxTextLength},
		{"label", f.label, maxLabelLength},
		{"chat_name", f.chatName, maxChatNameLength},
	} {
		if n := utf8.RuneCountInString(limit.value); n > limit.max {
			problems.add(fmt.Sprintf("ensure this value has at most %d characters", limit.max), limit.name)
		}
	}
	if f.text == "" && f.fileUID == "" && f.attachmentTemplateID == 0 {
		problems.add("a message needs text, file_uid or attachment_template_id", "text", "file_uid", "attachment_template_id")
	}
	return problems
}

// credits is what a message costs: 1, or 2 with text and an attachment.
func (f sendFields) credits() int {
	if f.text != "" && (f.fileUID != "" || f.attachmentTemplateID != 0) {
		return 2
	}
	return 1
}

// handleSend returns the handler of one send endpoint.
func (s *Server) handleSend(endpoint sendEndpoint) func(*apiRequest) reply {
	return func(req *apiRequest) reply {
		s.mu.Lock()
		defer s.mu.Unlock()
		now := s.now()
		s.applyRefundsLocked(now)

		var target *chat
		if endpoint == toChat {
			id, err := strconv.ParseInt(req.r.PathValue("chat_id"), 10, 64)
			if target = s.chatLocked(id); err != nil || target == nil {
				return errorReply(http.StatusNotFound, "", "Chat not found", nil)
			}
		}

		f, problems := s.parseSendBody(endpoint, req.body)
		if len(problems) > 0 && problems[0].Fields[0] == "body" {
			return validationReply(problems)
		}

		sender, recipient, more := s.resolveSendLocked(endpoint, target, f)
		problems = append(problems, more...)
		if len(problems) > 0 {
			return validationReply(problems)
		}

		cost := f.credits()
		if int64(cost) > s.remainingLocked() {
			return errorReply(http.StatusForbidden, "quota_exceeded", "Messaging quota exceeded: not enough credits to send this message", nil)
		}

		s.learnAccountLocked(sender, now)
		if target == nil {
			target = s.chatForLocked(sender, recipient, now)
		}
		msg := Message{
			AccountPhone:         f.account,
			Text:                 f.text,
			FileUID:              f.fileUID,
			AttachmentTemplateID: f.attachmentTemplateID,
			Label:                f.label,
			ChatName:             f.chatName,
			ReplyTo:              f.replyTo,
			Sender:               sender,
			Recipient:            recipient,
			Chat:                 target.id,
			Credits:              cost,
			ReceivedAt:           req.receivedAt,
		}
		switch endpoint {
		case toPhone:
			msg.Phone = f.phone
		case toChat:
			msg.ChatID = target.id
		case toJID:
			msg.JID = f.jid
		}
		rec := s.acceptLocked(now, msg)
		return jsonReply(http.StatusOK, map[string]any{
			"status": "ok",
			"data":   map[string]string{"message_uid": rec.msg.UID},
		})
	}
}

// resolveSendLocked says who sends a message and to whom (target: the chat
// of a chat send), and what the provider would refuse about them.
func (s *Server) resolveSendLocked(endpoint sendEndpoint, target *chat, f sendFields) (sender, recipient string, problems []fieldError) {
	switch endpoint {
	case toChat:
		sender, recipient = target.sender, target.recipient
		if acc := s.findAccountLocked(sender); acc != nil && !acc.connected {
			problems = append(problems, fieldError{Fields: []string{"chat_id"}, Msg: "the chat's WhatsApp account " + sender + " is disconnected"})
		}
	default:
		var problem *fieldError
		if sender, problem = s.resolveSenderLocked(f.account); problem != nil {
			problems = append(problems, *problem)
		}
		if endpoint == toPhone {
			recipient, _ = s.normalizePhone(f.phone)
		} else {
			recipient, _ = parseJID(f.jid)
		}
	}
	if f.replyTo != "" {
		if original, ok := s.byUID[f.replyTo]; !ok {
			problems = append(problems, fieldError{Fields: []string{"reply_to"}, Msg: "message " + f.replyTo + " not found"})
		} else if original.msg.Sender != sender {
			problems = append(problems, fieldError{Fields: []string{"reply_to"}, Msg: "message " + f.replyTo + " belongs to another WhatsApp account"})
		}
	}
	return sender, recipient, problems
}

// acceptLocked records msg (its ReceivedAt set by the caller), charges its
// credits and plans its statuses. A message with its UID and SentAt set (a
// gateway's, sent when it answers) keeps them; the others get a UID and
// the provider's pacing.
func (s *Server) acceptLocked(now time.Time, msg Message) *record {
	if msg.SentAt.IsZero() {
		// The provider's own pacing: one message per SendInterval per
		// account; the excess waits in its queue (already charged).
		msg.SentAt = now
		if last, ok := s.lastSentAt[msg.Sender]; ok && last.Add(s.cfg.SendInterval).After(msg.SentAt) {
			msg.SentAt = last.Add(s.cfg.SendInterval)
		}
		s.lastSentAt[msg.Sender] = msg.SentAt
	}
	if msg.UID == "" {
		msg.UID = newUID()
	}

	cost := int64(msg.Credits)
	fromQuota := min(cost, max(0, s.creditsTotal-s.creditsUsed))
	fromNonRecurring := cost - fromQuota
	s.creditsUsed += fromQuota
	if fromNonRecurring > 0 {
		s.nonRecurringCredit -= fromNonRecurring
		s.nonRecurringAt = now
	}

	rec := &record{
		msg:              msg,
		outcome:          s.outcomeLocked(msg.Recipient, msg.Text),
		fromQuota:        fromQuota,
		fromNonRecurring: fromNonRecurring,
	}
	if rec.outcome == OutcomeFailed && cost > 0 {
		rec.refundAt = msg.SentAt.Add(s.cfg.DeliverAfter).Add(s.cfg.RefundAfter)
		heap.Push(&s.refunds, rec)
	}
	s.messages = append(s.messages, rec)
	s.byUID[msg.UID] = rec
	s.addSentLocked(rec)
	if s.cfg.Mode != ModeGateway {
		s.emitLocked(s.sentEventLocked(rec))
	}
	s.changedLocked()
	return rec
}

// newUID returns a random (version 4) UUID, as the provider's message UIDs
// are.
func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
