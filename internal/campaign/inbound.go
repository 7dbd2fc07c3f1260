package campaign

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wacampaign/wacampaign/internal/audience"
)

// Inbound acts on the messages people write to the workspace's accounts
// (the provider's message:received:new webhook): an opt-out keyword puts
// the writer on the suppression list, an opt-in keyword takes it off, and
// any message within REPLY_WINDOW of our latest message to that person is
// a reply to the campaign (or sequence step) that sent it.
type Inbound struct {
	store    *Store
	audience *audience.Store
	keywords *audience.Keywords
	window   time.Duration
	// confirm queues the keywords' confirmation replies (nil: none).
	confirm   *Service
	templates ConfirmTemplates
}

// WithConfirmations has in answer an opt-out or opt-in keyword with the
// confirmation reply of t (a template without a name: none) queued on svc.
func (in *Inbound) WithConfirmations(svc *Service, t ConfirmTemplates) *Inbound {
	in.confirm, in.templates = svc, t
	return in
}

// NewInbound returns the handler of incoming messages; window is
// REPLY_WINDOW.
func NewInbound(store *Store, aud *audience.Store, keywords *audience.Keywords, window time.Duration) *Inbound {
	return &Inbound{store: store, audience: aud, keywords: keywords, window: window}
}

// InboundMessage is a message a person wrote to one of our accounts.
type InboundMessage struct {
	ID      string    // the provider's message uid
	From    string    // the writer's normalised address (E.164)
	Account string    // the account written to
	Text    string    // what they wrote
	At      time.Time // when
}

// Attribution is the message of ours a reply answers.
type Attribution struct {
	Campaign string
	Seq      int64
	// Account sent the message replied to: the one whose health a reply
	// or an opt-out speaks for.
	Account string
	SentAt  time.Time
}

// InboundResult is what an incoming message did.
type InboundResult struct {
	Verdict audience.Verdict // an opt-out or opt-in keyword, or neither
	// Attributed is the message of ours it replies to (nil: none within
	// REPLY_WINDOW). Recorded is false when the reply was recorded before
	// (a retried webhook, a second reply of the same person).
	Attributed *Attribution
	Recorded   bool
	// Suppressed and Lifted say the suppression list changed.
	Suppressed, Lifted bool
	// Confirmation is the campaign of the keyword's confirmation reply
	// ("": none).
	Confirmation string
}

// Handle acts on m. Acting twice on the same message changes nothing
// more: a suppression is set again with the same entry, and a recipient's
// reply and opt-out count once each.
func (in *Inbound) Handle(ctx context.Context, m InboundMessage) (InboundResult, error) {
	res := InboundResult{Verdict: in.keywords.Match(m.Text)}
	last, ok, err := in.audience.LastMessaged(ctx, m.From)
	if err != nil {
		return res, err
	}
	if ok && in.inWindow(last.At, m.At) {
		res.Attributed = &Attribution{Campaign: last.Campaign, Seq: last.Seq, Account: last.Account, SentAt: last.At}
	}
	switch res.Verdict {
	case audience.OptOut:
		e := audience.Entry{Address: m.From, Reason: clipText(strings.TrimSpace(m.Text)), Source: audience.SourceKeyword, At: m.At}
		if res.Attributed != nil {
			e.Campaign = res.Attributed.Campaign
		}
		if _, err := in.audience.Suppress(ctx, e); err != nil {
			return res, err
		}
		res.Suppressed = true
	case audience.OptIn:
		if res.Lifted, err = in.audience.Unsuppress(ctx, m.From); err != nil {
			return res, err
		}
	}
	if a := res.Attributed; a != nil {
		if res.Recorded, err = in.store.recordReply(ctx, a.Campaign, a.Seq, res.Verdict == audience.OptOut, m.At); err != nil {
			return res, err
		}
	}
	res.Confirmation, err = in.confirmKeyword(ctx, res, m)
	return res, err
}

// confirmKeyword queues the confirmation reply of an opt-out that
// suppressed its writer, or of an opt-in that lifted it; also when the
// webhook comes again after a first delivery that changed the list (and
// maybe failed before the confirmation was queued): a START from someone
// never suppressed gets none.
func (in *Inbound) confirmKeyword(ctx context.Context, res InboundResult, m InboundMessage) (string, error) {
	if in.confirm == nil {
		return "", nil
	}
	c := Confirmation{InboundID: inboundKey(m), Phone: m.From, Account: m.Account}
	switch {
	case res.Suppressed:
		c.Kind, c.Template = ConfirmOptOut, in.templates.OptOut
	case res.Verdict == audience.OptIn:
		c.Kind, c.Template = ConfirmOptIn, in.templates.OptIn
		if !res.Lifted {
			made, err := in.confirm.confirmationMade(ctx, ConfirmOptIn, m)
			if err != nil || !made {
				return "", err
			}
		}
	}
	if c.Template.Name == "" {
		return "", nil
	}
	return in.confirm.Confirm(ctx, c, time.Now())
}

// inWindow says whether a message written at wrote answers one sent at
// sent: within REPLY_WINDOW after it (a minute before it too: the
// provider's clock and ours differ a little).
func (in *Inbound) inWindow(sent, wrote time.Time) bool {
	return !wrote.Before(sent.Add(-time.Minute)) && wrote.Sub(sent) <= in.window
}

// clipText keeps a keyword reply short enough to show in a list.
func clipText(s string) string {
	if utf8.RuneCountInString(s) <= 40 {
		return s
	}
	return string([]rune(s)[:40]) + "…"
}

// NoteResolved records the send a message:sent:new event resolved (it was
// unconfirmed: recipient seq of campaign id) as its recipient's latest
// message, as the send's answer would have, so that a reply to it is
// attributed. A keyword's confirmation records nothing (confirm.go).
func (in *Inbound) NoteResolved(ctx context.Context, ev SentEvent, id string, seq int64) error {
	c, err := in.store.Get(ctx, id)
	if err != nil || c.Confirms != "" {
		return err
	}
	m := audience.LastMessage{Campaign: id, Seq: seq, Account: ev.Account, At: ev.At}
	return AudienceConfig{Store: in.audience, ReplyWindow: in.window}.noteLastMessaged(ctx, ev.Recipient, m)
}
