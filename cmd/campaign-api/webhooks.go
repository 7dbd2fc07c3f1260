package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/sender"
)

// timelinesEvent is the part of a TimelinesAI webhook payload this receiver
// reads (spec/timelines-api-facts.md §6: no "data" wrapper).
type timelinesEvent struct {
	EventType       string `json:"event_type"`
	WhatsAppAccount *struct {
		Phone string `json:"phone"`
	} `json:"whatsapp_account"`
	Chat *struct {
		Phone string `json:"phone"`
	} `json:"chat"`
	Message *struct {
		MessageUID string `json:"message_uid"`
		Direction  string `json:"direction"`
		Origin     string `json:"origin"`
		Timestamp  string `json:"timestamp"`
		Recipient  *struct {
			Phone string `json:"phone"`
		} `json:"recipient"`
	} `json:"message"`
}

// webhookBudget keeps the answer inside the 5 s the provider waits.
const webhookBudget = 4 * time.Second

// timelinesWebhook receives the provider's webhooks at
// POST /v1/webhooks/timelines/{secret}. TimelinesAI does not sign them, so
// the secret in the URL is the protection: a wrong one is a 404, as if
// nothing were there. message:sent:new confirms a send (or resolves an
// unknown outcome); whatsapp:account:disconnected/connected (and
// suspended/resumed) stop and restart sends from that account. Other events
// are answered 200 and ignored.
func (s *server) timelinesWebhook(w http.ResponseWriter, r *http.Request) {
	got := r.PathValue("secret")
	if s.webhookSecret == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.webhookSecret)) != 1 {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" /v1/webhooks/timelines/…", nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), webhookBudget)
	defer cancel()
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil || len(body) > 1<<20 {
		writeProblem(w, fieldProblem("body", "the body cannot be read, or is over 1 MiB"))
		return
	}
	var ev timelinesEvent
	if err := json.Unmarshal(body, &ev); err != nil || ev.EventType == "" {
		msg := "the body is not a TimelinesAI webhook event (JSON with event_type)"
		if err != nil {
			msg += ": " + err.Error()
		}
		writeProblem(w, fieldProblem("body", msg))
		return
	}

	handled, err := s.handleEvent(ctx, ev)
	if err != nil {
		s.log.Error("webhook event not handled", zap.String("event_type", ev.EventType), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the event could not be recorded now; send it again", nil)
		return
	}
	writeOK(w, http.StatusOK, map[string]any{"event_type": ev.EventType, "handled": handled})
}

func (s *server) handleEvent(ctx context.Context, ev timelinesEvent) (bool, error) {
	account := ""
	if ev.WhatsAppAccount != nil {
		account = s.phoneOrEmpty(ev.WhatsAppAccount.Phone)
	}
	switch ev.EventType {
	case "message:sent:new":
		return s.onMessageSent(ctx, ev, account)
	case "whatsapp:account:disconnected", "whatsapp:account:suspended":
		if account == "" {
			return false, nil
		}
		return true, s.accounts.MarkDisconnected(ctx, account, "the provider reported "+strings.TrimPrefix(ev.EventType, "whatsapp:account:"))
	case "whatsapp:account:connected", "whatsapp:account:resumed":
		if account == "" {
			return false, nil
		}
		return true, s.accounts.MarkConnected(ctx, account)
	}
	return false, nil
}

func (s *server) onMessageSent(ctx context.Context, ev timelinesEvent, account string) (bool, error) {
	m := ev.Message
	if m == nil || m.MessageUID == "" {
		return false, nil
	}
	recipient := ""
	if m.Recipient != nil {
		recipient = s.phoneOrEmpty(m.Recipient.Phone)
	}
	if recipient == "" && ev.Chat != nil {
		recipient = s.phoneOrEmpty(ev.Chat.Phone)
	}
	at, err := sender.ParseTimestamp(m.Timestamp)
	if err != nil {
		at = time.Now()
	}
	id, seq, resolved, err := s.store.ConfirmSent(ctx, campaign.SentEvent{
		MessageUID: m.MessageUID, Recipient: recipient, Account: account, Origin: m.Origin, At: at,
	})
	if err != nil || id == "" {
		return false, err
	}
	if resolved {
		s.log.Info("a webhook resolved an unknown send outcome", zap.String("campaign", id), zap.Int64("seq", seq))
		if err := s.queue.TrackSent(ctx, id, seq, at, s.polls); err != nil {
			return true, err
		}
	}
	return true, nil
}

// phoneOrEmpty normalises a phone from a payload; "" when it is not one.
func (s *server) phoneOrEmpty(raw string) string {
	p, err := campaign.NormalizePhone(raw, s.region)
	if err != nil {
		return ""
	}
	return p
}
