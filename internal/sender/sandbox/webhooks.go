package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// WebhookAttempts is how many times the sandbox tries to deliver one webhook
// event (a non-2xx answer or no answer is a failed try).
const WebhookAttempts = 4

// webhookRetryGaps are the waits between tries.
var webhookRetryGaps = [WebhookAttempts - 1]time.Duration{200 * time.Millisecond, time.Second, 3 * time.Second}

const (
	webhookTimeout = 5 * time.Second // the provider's receivers must answer within 5 s
	webhookBacklog = 4096            // events waiting to be delivered; more are dropped
)

// webhookEvent is one event to deliver, its URL fixed when it happened.
type webhookEvent struct {
	url  string
	body []byte
}

// webhooks delivers events in order, one at a time, from a goroutine that
// starts with the first event and ends with Close.
type webhooks struct {
	queue  chan webhookEvent
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	start  sync.Once
	done   chan struct{}
	queued atomic.Int64 // events handed to enqueue
}

func newWebhooks() *webhooks {
	ctx, cancel := context.WithCancel(context.Background())
	return &webhooks{
		queue:  make(chan webhookEvent, webhookBacklog),
		client: &http.Client{Timeout: webhookTimeout},
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
}

// enqueue hands an event to the delivery goroutine without waiting: a full
// backlog drops it, as a provider's lost webhook would be lost.
func (h *webhooks) enqueue(ev webhookEvent) {
	h.queued.Add(1)
	h.start.Do(func() { go h.run() })
	select {
	case h.queue <- ev:
	default:
	}
}

func (h *webhooks) run() {
	defer close(h.done)
	for {
		select {
		case <-h.ctx.Done():
			return
		case ev := <-h.queue:
			h.deliver(ev)
		}
	}
}

// deliver POSTs ev until a 2xx answer, at most WebhookAttempts times.
func (h *webhooks) deliver(ev webhookEvent) {
	for attempt := 0; attempt < WebhookAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-h.ctx.Done():
				return
			case <-time.After(webhookRetryGaps[attempt-1]):
			}
		}
		req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, ev.url, bytes.NewReader(ev.body))
		if err != nil {
			return // an unusable URL does not get better
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := h.client.Do(req)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return
		}
	}
}

// close stops delivering; events not yet delivered are dropped.
func (h *webhooks) close() {
	h.cancel()
	started := true
	h.start.Do(func() { started = false })
	if started {
		<-h.done
	}
}

// SetWebhookURL sets where webhook events go from now on ("": nowhere).
func (s *Server) SetWebhookURL(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhookURL = strings.TrimSpace(url)
	s.changedLocked()
}

// WebhookURL is where webhook events go ("": nowhere).
func (s *Server) WebhookURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.webhookURL
}

// emitLocked queues a webhook event when a URL is set.
func (s *Server) emitLocked(event map[string]any) {
	if s.webhookURL == "" || event == nil {
		return
	}
	body, err := json.Marshal(event)
	if err != nil {
		return // only our own maps are encoded
	}
	s.hooks.enqueue(webhookEvent{url: s.webhookURL, body: body})
}

// person is a {full_name, phone} object of a payload.
func person(phone string) map[string]any {
	return map[string]any{"full_name": displayName(phone), "phone": phone}
}

func displayName(phone string) string { return "Sandbox " + phone }

// chatPayload is a message event's chat object.
func chatPayload(c *chat) map[string]any {
	phone := ""
	if strings.HasPrefix(c.recipient, "+") {
		phone = c.recipient
	}
	name := c.name
	if name == "" {
		name = c.recipient
	}
	return map[string]any{
		"full_name":         name,
		"chat_url":          "https://app.timelines.ai/chat/" + strconv.FormatInt(c.id, 10) + "/messages/",
		"chat_id":           c.id,
		"is_group":          phone == "",
		"phone":             phone,
		"responsible_name":  "",
		"responsible_email": "",
	}
}

// messageEvent is the payload of message:sent:new and
// message:received:new (facts sheet §6: no data wrapper).
func messageEvent(eventType string, c *chat, message map[string]any) map[string]any {
	return map[string]any{
		"event_type": eventType,
		"chat":       chatPayload(c),
		"whatsapp_account": map[string]any{
			"full_name": displayName(c.sender),
			"email":     "",
			"phone":     c.sender,
		},
		"message": message,
	}
}

// sentEventLocked is message:sent:new for an accepted message.
func (s *Server) sentEventLocked(rec *record) map[string]any {
	c := s.chatLocked(rec.msg.Chat)
	if c == nil {
		return nil
	}
	m := rec.msg
	message := map[string]any{
		"text":        m.Text,
		"direction":   "sent",
		"origin":      "Public API",
		"timestamp":   formatTime(m.ReceivedAt),
		"message_uid": m.UID,
		"sender":      person(m.Sender),
		"recipient":   person(m.Recipient),
		"attachments": []any{},
	}
	if m.ReplyTo != "" {
		message["reply_to_uid"] = m.ReplyTo
	}
	return messageEvent("message:sent:new", c, message)
}

// receivedEvent is message:received:new for a message a contact wrote.
func receivedEvent(c *chat, e chatEntry) map[string]any {
	return messageEvent("message:received:new", c, map[string]any{
		"text":        e.text,
		"direction":   "received",
		"origin":      "WhatsApp",
		"timestamp":   formatTime(e.at),
		"message_uid": e.uid,
		"sender":      person(c.recipient),
		"recipient":   person(c.sender),
		"attachments": []any{},
	})
}

// accountEvent is whatsapp:account:connected or :disconnected.
func accountEvent(acc *account, now time.Time) map[string]any {
	eventType, status, disconnectedOn := "whatsapp:account:connected", "active", ""
	if !acc.connected {
		eventType, status, disconnectedOn = "whatsapp:account:disconnected", "disconnected", formatTime(now)
	}
	return map[string]any{
		"event_type": eventType,
		"whatsapp_account": map[string]any{
			"id":              jidOf(acc.phone),
			"phone":           acc.phone,
			"connected_on":    formatTime(acc.connectedOn),
			"disconnected_on": disconnectedOn,
			"status":          status,
			"account_name":    displayName(acc.phone),
			"owner_name":      "Sandbox",
			"owner_email":     "sandbox@example.com",
		},
	}
}
