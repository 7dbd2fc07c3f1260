package campaign

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// A keyword's confirmation reply (OPTOUT_CONFIRM_TEMPLATE,
// OPTIN_CONFIRM_TEMPLATE) goes through the send path like any message (the
// credits, the account's pacing, the claim and its dispatch mark,
// reconciliation, status polls) because it is a campaign of its own, as a
// test send is: unlisted, one recipient (the writer), from the account
// written to. Its id is derived from the incoming message's, so a retried
// webhook finds the campaign made and adds nothing (createOnce,
// addRecipientOnce, the send task's id): one confirmation per keyword
// message. It is transactional (exempt from FREQUENCY_CAP), and the
// confirmation of an opt-out, alone of all messages, is not held back by
// the suppression it confirms (admitAudience). It records no "last
// messaged" entry, so a later reply still goes to the campaign the person
// answered.

// What a confirmation confirms (the campaign's Confirms).
const (
	ConfirmOptOut = "opt-out"
	ConfirmOptIn  = "opt-in"
)

// confirmColumn is the one column of a confirmation's row: the writer's
// phone, all a confirmation template may use.
const confirmColumn = "phone"

// ConfirmTemplate is a template of the library a confirmation is made of.
type ConfirmTemplate struct {
	Name   string // in the template library; "": no confirmation
	Source string
}

// ConfirmTemplates are the confirmations of both keywords.
type ConfirmTemplates struct {
	OptOut, OptIn ConfirmTemplate
}

// LoadConfirmTemplate reads template name from lib and checks that a
// confirmation can be made of it: it parses and uses no column but phone.
// "" is no confirmation.
func LoadConfirmTemplate(lib templating.Library, name string) (ConfirmTemplate, error) {
	if name == "" {
		return ConfirmTemplate{}, nil
	}
	src, err := lib.Source(name)
	if err != nil {
		return ConfirmTemplate{}, fmt.Errorf("%w (in TEMPLATES_DIR %s)", err, lib.Dir)
	}
	tmpl, err := templating.Parse(name, src)
	if err != nil {
		return ConfirmTemplate{}, fmt.Errorf("template %q: %w", name, err)
	}
	if err := tmpl.CheckColumns([]string{confirmColumn}); err != nil {
		return ConfirmTemplate{}, fmt.Errorf("template %q: a confirmation knows only the phone of its recipient: %w", name, err)
	}
	return ConfirmTemplate{Name: name, Source: src}, nil
}

// Confirmation asks for the confirmation reply to one keyword message.
type Confirmation struct {
	Kind      string // ConfirmOptOut or ConfirmOptIn
	InboundID string // the keyword message's uid: one confirmation each
	Phone     string // its writer (E.164)
	Account   string // the account written to; "": the provider's default
	Template  ConfirmTemplate
}

// confirmationID is the campaign id of the confirmation of a keyword
// message.
func confirmationID(kind, inboundID string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + inboundID))
	return "confirm-" + hex.EncodeToString(sum[:12])
}

// inboundKey names an incoming message for its confirmation: its uid, or,
// for a payload without one, its writer and time.
func inboundKey(m InboundMessage) string {
	if m.ID != "" {
		return m.ID
	}
	return m.From + "@" + strconv.FormatInt(m.At.UnixMilli(), 10)
}

// Confirm queues the confirmation reply c asks for, unless it was queued
// before (the same kind and incoming message), and answers its campaign's
// id. Every step is idempotent, so a call after one that failed half-way
// finishes the job and a repeated call does nothing more.
func (s *Service) Confirm(ctx context.Context, c Confirmation, now time.Time) (string, error) {
	id := confirmationID(c.Kind, c.InboundID)
	tmpl, err := templating.Parse(c.Template.Name, c.Template.Source)
	if err != nil {
		return "", fmt.Errorf("confirmation template %q: %w", c.Template.Name, err)
	}
	name := c.Kind + " confirmation"
	text, err := tmpl.Render(map[string]string{confirmColumn: c.Phone}, templating.Campaign{ID: id, Name: name})
	if err != nil {
		return "", fmt.Errorf("confirmation template %q: %w", c.Template.Name, err)
	}
	camp := &Campaign{ID: id, Name: name, Status: StatusRunning, CreatedAt: now.UTC(),
		Template: c.Template.Source, TemplateName: c.Template.Name, Accounts: []string{},
		Columns: []string{confirmColumn}, KeyColumns: []string{confirmColumn},
		Transactional: true, Confirms: c.Kind, Credits: Credits{Metered: s.caps.MeteredCredits}}
	if c.Account != "" {
		camp.Accounts = []string{c.Account}
	}
	if _, err := s.store.createOnce(ctx, camp, confirmColumn); err != nil {
		return "", err
	}
	msg := sender.Message{Text: text}
	if err := s.AddRecipient(ctx, NewRecipient{Campaign: id, Seq: 0, Values: []string{c.Phone}, Credits: s.caps.Credits(msg)}); err != nil {
		return "", err
	}
	// Done importing: it completes once its one recipient is settled.
	if err := s.store.finishImport(ctx, id, now); err != nil {
		return "", err
	}
	return id, nil
}

// confirmationMade says whether the confirmation of kind of an incoming
// message was made before.
func (s *Service) confirmationMade(ctx context.Context, kind string, m InboundMessage) (bool, error) {
	_, err := s.store.Get(ctx, confirmationID(kind, inboundKey(m)))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
