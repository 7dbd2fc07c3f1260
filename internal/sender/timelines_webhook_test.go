package sender

import (
	"strings"
	"testing"
	"time"
)

// TestParseTimelinesWebhook: the provider's webhook bodies become typed
// events; what is not one is an error saying so.
func TestParseTimelinesWebhook(t *testing.T) {
	sent := `{"event_type":"message:sent:new","whatsapp_account":{"phone":"+14155550100"},
		"chat":{"phone":"+12025550199"},
		"message":{"message_uid":"m-1","direction":"sent","origin":"Public API","timestamp":"2026-11-30 10:20:30 +0000",
		"recipient":{"phone":"+12025550101"}}}`
	ev, err := ParseTimelinesWebhook([]byte(sent))
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 11, 30, 10, 20, 30, 0, time.UTC)
	if ev.Kind != WebhookMessageSent || ev.Account != "+14155550100" || ev.MessageUID != "m-1" || ev.Origin != "Public API" ||
		ev.Recipient != "+12025550101" || ev.ChatPhone != "+12025550199" || !ev.At.Equal(want) {
		t.Errorf("message:sent:new parsed as %+v", ev)
	}
	for body, kind := range map[string]WebhookKind{
		`{"event_type":"whatsapp:account:disconnected","whatsapp_account":{"phone":"+1"}}`: WebhookAccountDisconnected,
		`{"event_type":"whatsapp:account:suspended"}`:                                      WebhookAccountDisconnected,
		`{"event_type":"whatsapp:account:connected"}`:                                      WebhookAccountConnected,
		`{"event_type":"whatsapp:account:resumed"}`:                                        WebhookAccountConnected,
		`{"event_type":"message:received:new","message":{"timestamp":"yesterday"}}`:        WebhookMessageReceived,
		`{"event_type":"message:reaction","message":{"timestamp":"yesterday"}}`:            WebhookOther,
	} {
		ev, err := ParseTimelinesWebhook([]byte(body))
		if err != nil || ev.Kind != kind || !ev.At.IsZero() {
			t.Errorf("%s: kind %v at %v, %v; want kind %v", body, ev.Kind, ev.At, err, kind)
		}
	}
	received := `{"event_type":"message:received:new","chat":{"phone":"+12025550101","is_group":false},
		"whatsapp_account":{"phone":"+14155550100"},
		"message":{"text":"Stop","direction":"received","timestamp":"2026-11-30 10:20:30 +0000","message_uid":"m-2",
		"sender":{"phone":"+12025550101"},"recipient":{"phone":"+14155550100"}}}`
	if ev, err := ParseTimelinesWebhook([]byte(received)); err != nil || ev.Kind != WebhookMessageReceived || ev.Sender != "+12025550101" ||
		ev.Text != "Stop" || ev.MessageUID != "m-2" || ev.Account != "+14155550100" || ev.Group || !ev.At.Equal(want) {
		t.Errorf("message:received:new parsed as %+v, %v", ev, err)
	}
	if ev, _ := ParseTimelinesWebhook([]byte(`{"event_type":"whatsapp:account:suspended"}`)); ev.Suspension() != "suspended" {
		t.Errorf("suspension %q", ev.Suspension())
	}
	for _, body := range []string{``, `[]`, `{"event_type":""}`, `{"message":{}}`, `not json`} {
		if _, err := ParseTimelinesWebhook([]byte(body)); err == nil || !strings.Contains(err.Error(), "event_type") {
			t.Errorf("%q: %v; want an error naming event_type", body, err)
		}
	}
}
