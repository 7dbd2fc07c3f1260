package sender_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

func TestCapabilitiesOfEachProvider(t *testing.T) {
	timelines := sender.NewTimelines(token).Capabilities()
	gateway := sender.NewGateway("http://gw:7001", gatewayKey).Capabilities()

	type flags struct {
		metered, statuses, lookup, attachments, labels, chatNames, typing bool
		phone, jid, chatID, replyToPhone                                  bool
		text, label, chatName                                             int
	}
	read := func(c sender.Capabilities) flags {
		return flags{c.MeteredCredits, c.StatusHistory, c.MessageLookup, c.Attachments, c.Labels, c.ChatNames, c.TypingSimulation,
			c.AddressByPhone, c.AddressByJID, c.AddressByChatID, c.ReplyToPhone, c.MaxTextLength, c.MaxLabelLength, c.MaxChatNameLength}
	}
	if got, want := read(timelines), (flags{true, true, true, true, true, true, false, true, true, true, false, 2000, 64, 256}); got != want {
		t.Errorf("TimelinesAI: %+v, want %+v", got, want)
	}
	if got, want := read(gateway), (flags{false, false, false, false, false, false, true, true, true, false, true, 65536, 0, 0}); got != want {
		t.Errorf("gateway: %+v, want %+v", got, want)
	}

	// What the flags promise is what the clients do.
	var tl sender.Provider = sender.NewTimelines(token)
	if _, ok := tl.(sender.MessageFinder); !ok {
		t.Error("TimelinesAI says it looks messages up but is no MessageFinder")
	}
}

func TestCredits(t *testing.T) {
	timelines, gateway := sender.TimelinesCapabilities(), sender.GatewayCapabilities()
	tests := []struct {
		name                    string
		msg                     sender.Message
		wantTimelines, wantGate int
	}{
		{"text", sender.Message{Phone: "+14155550100", Text: "hi"}, 1, 0},
		{"a file alone", sender.Message{Phone: "+14155550100", FileUID: "f"}, 1, 0},
		{"text and a file", sender.Message{Phone: "+14155550100", Text: "hi", FileUID: "f"}, 2, 0},
		{"text and an attachment template", sender.Message{Phone: "+14155550100", Text: "hi", AttachmentTemplateID: 3}, 2, 0},
	}
	for _, tt := range tests {
		if got := timelines.Credits(tt.msg); got != tt.wantTimelines {
			t.Errorf("%s: TimelinesAI charges %d, want %d", tt.name, got, tt.wantTimelines)
		}
		if got := gateway.Credits(tt.msg); got != tt.wantGate {
			t.Errorf("%s: the gateway charges %d, want %d", tt.name, got, tt.wantGate)
		}
	}
	// A metered provider without a rule of its own charges 1.
	if got := (sender.Capabilities{MeteredCredits: true}).Credits(sender.Message{Text: "hi", FileUID: "f"}); got != 1 {
		t.Errorf("metered without a rule: %d, want 1", got)
	}
}

func TestValidateMessageAgainstEachProvidersLimits(t *testing.T) {
	yes := true
	phone := "+14155550100"
	tests := []struct {
		name                    string
		msg                     sender.Message
		wantTimelines, wantGate [][]string // the fields each refuses; nil: accepted
	}{
		{"plain text", sender.Message{Phone: phone, Text: "hi"}, nil, nil},
		{"2000 characters", sender.Message{Phone: phone, Text: strings.Repeat("ü", 2000)}, nil, nil},
		{"2001 characters", sender.Message{Phone: phone, Text: strings.Repeat("ü", 2001)}, [][]string{{"text"}}, nil},
		{"65537 characters", sender.Message{Phone: phone, Text: strings.Repeat("a", 65537)}, [][]string{{"text"}}, [][]string{{"text"}}},
		{"a chat id", sender.Message{ChatID: 7, Text: "hi"}, nil, [][]string{{"chat_id"}}},
		{"a JID", sender.Message{JID: "120363012345678901@g.us", Text: "hi"}, nil, nil},
		{"a reply to a phone", sender.Message{Phone: phone, Text: "hi", ReplyTo: "u"}, [][]string{{"reply_to"}}, nil},
		{"typing simulation", sender.Message{Phone: phone, Text: "hi", TypingSimulation: &yes}, [][]string{{"typing_simulation", "presence_simulation"}}, nil},
		{"a label of 64", sender.Message{Phone: phone, Text: "hi", Label: strings.Repeat("x", 64)}, nil, [][]string{{"label"}}},
		{"a label of 65", sender.Message{Phone: phone, Text: "hi", Label: strings.Repeat("x", 65)}, [][]string{{"label"}}, [][]string{{"label"}}},
		{"a file without text", sender.Message{Phone: phone, FileUID: "f"}, nil, [][]string{{"file_uid", "attachment_template_id"}, {"text"}}},
		{"no address", sender.Message{Text: "hi"}, [][]string{{"phone", "chat_id", "jid"}}, [][]string{{"phone", "chat_id", "jid"}}},
	}
	fieldsOf := func(problems []sender.FieldError) [][]string {
		var out [][]string
		for _, p := range problems {
			if p.Msg == "" {
				t.Errorf("a problem without a message: %v", p.Fields)
			}
			out = append(out, p.Fields)
		}
		return out
	}
	for _, tt := range tests {
		if got := fieldsOf(sender.ValidateMessage(tt.msg, sender.TimelinesCapabilities())); !reflect.DeepEqual(got, tt.wantTimelines) {
			t.Errorf("%s: TimelinesAI refuses %v, want %v", tt.name, got, tt.wantTimelines)
		}
		if got := fieldsOf(sender.ValidateMessage(tt.msg, sender.GatewayCapabilities())); !reflect.DeepEqual(got, tt.wantGate) {
			t.Errorf("%s: the gateway refuses %v, want %v", tt.name, got, tt.wantGate)
		}
	}
	// The reason says what the provider can do instead.
	problems := sender.ValidateMessage(sender.Message{ChatID: 7, Text: "hi"}, sender.GatewayCapabilities())
	if len(problems) != 1 || !strings.Contains(problems[0].Msg, "phone or jid") {
		t.Errorf("chat id refused with %+v; want the reason to name phone or jid", problems)
	}
}

func TestTimelinesRefusesTypingFlagsWithoutARequest(t *testing.T) {
	f := newFixture(t, sandbox.Config{Credits: 10})
	off := false
	_, err := f.client.Send(context.Background(), sender.Message{Phone: "+14155550100", Text: "hi", TypingSimulation: &off})
	var pe *sender.Error
	if !errors.As(err, &pe) || pe.Kind != sender.Invalid || f.limiter.calls.Load() != 0 {
		t.Errorf("got %v after %d requests, want Invalid before any", err, f.limiter.calls.Load())
	}
}
