package main

import (
	"net/http"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// providerView is GET /v1/provider: what the configured provider can do, so
// that a client (the console's new-campaign form, say) offers only what a
// campaign may ask for.
type providerView struct {
	Name             string          `json:"name"`
	MeteredCredits   bool            `json:"metered_credits"`
	StatusHistory    bool            `json:"status_history"`
	MessageLookup    bool            `json:"message_lookup"`
	Attachments      bool            `json:"attachments"`
	Labels           bool            `json:"labels"`
	ChatNames        bool            `json:"chat_names"`
	TypingSimulation bool            `json:"typing_simulation"`
	RecipientKeys    []campaign.Kind `json:"recipient_keys"` // the key columns a contacts file may use
	MaxTextLength    int             `json:"max_text_length"`
	MaxLabelLength   int             `json:"max_label_length,omitempty"`
}

func (s *server) getProvider(w http.ResponseWriter, _ *http.Request) {
	c := s.services.Caps
	v := providerView{
		Name: c.Name, MeteredCredits: c.MeteredCredits, StatusHistory: c.StatusHistory, MessageLookup: c.MessageLookup,
		Attachments: c.Attachments, Labels: c.Labels, ChatNames: c.ChatNames, TypingSimulation: c.TypingSimulation,
		RecipientKeys: []campaign.Kind{}, MaxTextLength: c.MaxTextLength, MaxLabelLength: c.MaxLabelLength,
	}
	for _, k := range []struct {
		kind campaign.Kind
		can  bool
	}{{campaign.KindPhone, c.AddressByPhone}, {campaign.KindJID, c.AddressByJID}, {campaign.KindChatID, c.AddressByChatID}} {
		if k.can {
			v.RecipientKeys = append(v.RecipientKeys, k.kind)
		}
	}
	writeOK(w, http.StatusOK, v)
}
