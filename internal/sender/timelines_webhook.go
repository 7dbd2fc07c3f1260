package sender

import (
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// WebhookKind is what a TimelinesAI webhook event reports, as far as the
// product acts on it.
type WebhookKind int

const (
	WebhookOther               WebhookKind = iota // answered and ignored
	WebhookMessageSent                            // message:sent:new: a message went out from an account
	WebhookAccountDisconnected                    // whatsapp:account:disconnected or :suspended
	WebhookAccountConnected                       // whatsapp:account:connected or :resumed
	WebhookMessageReceived                        // message:received:new: a person wrote to an account
)

// WebhookEvent is a TimelinesAI webhook body, parsed. Phones are as the
// provider wrote them (callers normalise them).
type WebhookEvent struct {
	Type    string // the event_type, as sent
	Kind    WebhookKind
	Account string // the WhatsApp account's phone

	// For WebhookMessageSent:
	MessageUID string
	Recipient  string    // the message's recipient
	ChatPhone  string    // the chat's phone: the recipient when the message names none
	Origin     string    // "Public API" for messages sent through the API
	At         time.Time // the message's timestamp; zero when it has none that parses

	// For WebhookMessageReceived (MessageUID, ChatPhone and At too):
	Sender string // who wrote it
	Text   string // what they wrote
	Group  bool   // written in a group chat: not a reply to one of our messages to a person
}

// timelinesEvent is the part of a webhook payload read here
// (spec/timelines-api-facts.md §6: no "data" wrapper).
type timelinesEvent struct {
	EventType       string `json:"event_type"`
	WhatsAppAccount *struct {
		Phone string `json:"phone"`
	} `json:"whatsapp_account"`
	Chat *struct {
		Phone   string `json:"phone"`
		IsGroup bool   `json:"is_group"`
	} `json:"chat"`
	Message *struct {
		MessageUID string `json:"message_uid"`
		Origin     string `json:"origin"`
		Timestamp  string `json:"timestamp"`
		Text       string `json:"text"`
		Recipient  *struct {
			Phone string `json:"phone"`
		} `json:"recipient"`
		Sender *struct {
			Phone string `json:"phone"`
		} `json:"sender"`
	} `json:"message"`
}

var webhookKinds = map[string]WebhookKind{
	"message:sent:new":              WebhookMessageSent,
	"message:received:new":          WebhookMessageReceived,
	"whatsapp:account:disconnected": WebhookAccountDisconnected,
	"whatsapp:account:suspended":    WebhookAccountDisconnected,
	"whatsapp:account:connected":    WebhookAccountConnected,
	"whatsapp:account:resumed":      WebhookAccountConnected,
}

// ParseTimelinesWebhook reads a webhook body. A body that is not JSON with
// an event_type is an error saying why.
func ParseTimelinesWebhook(body []byte) (WebhookEvent, error) {
	var raw timelinesEvent
	if err := json.Unmarshal(body, &raw); err != nil {
		return WebhookEvent{}, errors.New("the body is not a TimelinesAI webhook event (JSON with event_type): " + err.Error())
	}
	if raw.EventType == "" {
		return WebhookEvent{}, errors.New("the body is not a TimelinesAI webhook event (JSON with event_type)")
	}
	ev := WebhookEvent{Type: raw.EventType, Kind: webhookKinds[raw.EventType]}
	if raw.WhatsAppAccount != nil {
		ev.Account = raw.WhatsAppAccount.Phone
	}
	if m := raw.Message; m != nil {
		ev.MessageUID, ev.Origin, ev.Text = m.MessageUID, m.Origin, m.Text
		if m.Recipient != nil {
			ev.Recipient = m.Recipient.Phone
		}
		if m.Sender != nil {
			ev.Sender = m.Sender.Phone
		}
		if at, err := ParseTimestamp(m.Timestamp); err == nil {
			ev.At = at
		}
	}
	if raw.Chat != nil {
		ev.ChatPhone, ev.Group = raw.Chat.Phone, raw.Chat.IsGroup
	}
	return ev, nil
}

// Suspension is the word a disconnection event uses ("disconnected",
// "suspended"), for the reason an account shows.
func (e WebhookEvent) Suspension() string {
	return strings.TrimPrefix(e.Type, "whatsapp:account:")
}
