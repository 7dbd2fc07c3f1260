package main

import (
	"context"
	"crypto/subtle"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/audience"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
)

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
	ev, err := sender.ParseTimelinesWebhook(body)
	if err != nil {
		writeProblem(w, fieldProblem("body", err.Error()))
		return
	}

	res := webhookResult{EventType: ev.Type}
	if ev.Kind == sender.WebhookMessageReceived {
		res.Handled, res.Confirmation, err = s.onMessageReceived(ctx, ev, s.phoneOrEmpty(ev.Account))
	} else {
		res.Handled, err = s.handleEvent(ctx, ev)
	}
	if err != nil {
		s.log.Error("webhook event not handled", zap.String("event_type", ev.Type), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the event could not be recorded now; send it again", nil)
		return
	}
	writeOK(w, http.StatusOK, res)
}

// webhookResult is what the receiver answers of an event.
type webhookResult struct {
	EventType string `json:"event_type"`
	Handled   bool   `json:"handled"` // whether it changed anything
	// Confirmation is the campaign of the confirmation reply to an opt-out
	// or opt-in keyword, queued now or by an earlier delivery.
	Confirmation string `json:"confirmation,omitempty"`
}

func (s *server) handleEvent(ctx context.Context, ev sender.WebhookEvent) (bool, error) {
	account := s.phoneOrEmpty(ev.Account)
	switch ev.Kind {
	case sender.WebhookMessageSent:
		return s.onMessageSent(ctx, ev, account)
	case sender.WebhookAccountDisconnected:
		if account == "" {
			return false, nil
		}
		return true, s.accounts.MarkDisconnected(ctx, account, "the provider reported "+ev.Suspension())
	case sender.WebhookAccountConnected:
		if account == "" {
			return false, nil
		}
		return true, s.accounts.MarkConnected(ctx, account)
	}
	return false, nil
}

func (s *server) onMessageSent(ctx context.Context, ev sender.WebhookEvent, account string) (bool, error) {
	if ev.MessageUID == "" {
		return false, nil
	}
	recipient := s.phoneOrEmpty(ev.Recipient)
	if recipient == "" {
		recipient = s.phoneOrEmpty(ev.ChatPhone)
	}
	at := ev.At
	if at.IsZero() {
		at = time.Now()
	}
	sent := campaign.SentEvent{MessageUID: ev.MessageUID, Recipient: recipient, Account: account, Origin: ev.Origin, At: at}
	id, seq, resolved, err := s.store.ConfirmSent(ctx, sent)
	if err != nil || id == "" {
		return false, err
	}
	if resolved {
		s.log.Info("a webhook resolved an unknown send outcome", zap.String("campaign", id), zap.Int64("seq", seq))
		if err := s.inbound.NoteResolved(ctx, sent, id, seq); err != nil {
			// The send is settled: a retried event would not resolve it again.
			s.log.Warn("note the resolved send for replies", zap.Error(err))
		}
		if err := s.queue.TrackSent(ctx, id, seq, at, s.polls); err != nil {
			return true, err
		}
	}
	return true, nil
}

// onMessageReceived hands a message a person wrote to the audience:
// opt-out and opt-in keywords (and their confirmation replies), and replies
// to our messages.
func (s *server) onMessageReceived(ctx context.Context, ev sender.WebhookEvent, account string) (handled bool, confirmation string, err error) {
	from := s.phoneOrEmpty(ev.Sender)
	if from == "" && !ev.Group {
		from = s.phoneOrEmpty(ev.ChatPhone)
	}
	if from == "" || ev.Group {
		return false, "", nil // a group's message answers no message of ours to a person
	}
	at := ev.At
	if at.IsZero() {
		at = time.Now()
	}
	res, err := s.inbound.Handle(ctx, campaign.InboundMessage{ID: ev.MessageUID, From: from, Account: account, Text: ev.Text, At: at})
	if err != nil {
		return false, "", err
	}
	s.noteHealth(ctx, res)
	handled = res.Suppressed || res.Lifted || res.Attributed != nil || res.Confirmation != ""
	if handled {
		s.log.Info("incoming message", zap.Bool("opted_out", res.Suppressed), zap.Bool("opted_in", res.Lifted),
			zap.Bool("reply", res.Attributed != nil), zap.String("confirmation", res.Confirmation))
	}
	return handled, res.Confirmation, nil
}

// noteHealth hands a reply or an opt-out, the first time it is recorded, to
// the health of the account whose message it answers: opt-outs count
// against an account, replies for it.
func (s *server) noteHealth(ctx context.Context, res campaign.InboundResult) {
	if res.Attributed == nil || !res.Recorded || s.services.Health == nil {
		return
	}
	outcome := quota.OutcomeReply
	if res.Verdict == audience.OptOut {
		outcome = quota.OutcomeOptOut
	}
	if err := s.services.Health.Note(ctx, res.Attributed.Account, outcome); err != nil {
		s.log.Warn("note a reply in the account's health", zap.Error(err))
	}
}

// phoneOrEmpty normalises a phone from a payload; "" when it is not one.
func (s *server) phoneOrEmpty(raw string) string {
	p, err := campaign.NormalizePhone(raw, s.region)
	if err != nil {
		return ""
	}
	return p
}
