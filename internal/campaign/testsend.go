package campaign

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// A test send is the campaign's message, as its first recipient would get
// it, sent to a phone of the user's own. It goes through the send path
// like any message (the claim, the credits, the account's pacing, the
// dispatch mark, reconciliation, status polls) because it is a campaign of
// its own: one recipient, created running from the campaign's template,
// accounts, label and file at the time of the test, named
// <campaign>.t<n> and listed in the campaign's tests list (keys.go). So it
// is never sent twice (its task is that recipient's), its history is its
// own, and the campaign's counts never see it. It has no send window: the
// user wants to see it now. Deleting the campaign deletes its test sends.

// TestSend is one test send as the API shows it.
type TestSend struct {
	ID         string         `json:"id"` // its own campaign's
	CampaignID string         `json:"campaign_id"`
	Phone      string         `json:"phone"`
	Text       string         `json:"text"`
	CreatedAt  time.Time      `json:"created_at"`
	State      State          `json:"state"`
	Reason     string         `json:"reason,omitempty"`
	Account    string         `json:"account,omitempty"`
	MessageUID string         `json:"message_uid,omitempty"`
	History    []HistoryEntry `json:"history"`
}

// TestRequest asks for a test send.
type TestRequest struct {
	Campaign string
	Phone    string // as the user wrote it
	Region   string // DEFAULT_REGION, for a phone without a country code
}

// maxTestsListed bounds the test sends Tests answers: the latest ones.
const maxTestsListed = 20

// SendTest queues a test send of a campaign to r.Phone and answers it. A
// phone that is not valid, or a first recipient whose message cannot be
// made, is an *InputError: nothing is queued.
func (s *Service) SendTest(ctx context.Context, r TestRequest, now time.Time) (*TestSend, error) {
	c, err := s.store.Get(ctx, r.Campaign)
	if err != nil {
		return nil, err
	}
	if c.TestOf != "" {
		return nil, FieldError("id", "this is a test send of campaign "+c.TestOf+"; send a test of that campaign")
	}
	phone, err := NormalizePhone(r.Phone, r.Region)
	if err != nil {
		return nil, FieldError("phone", "phone "+err.Error())
	}
	values, text, err := s.testMessage(ctx, c, phone)
	if err != nil {
		return nil, err
	}
	testID, err := s.store.newTest(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	test := &Campaign{ID: testID, Name: c.Name, Status: StatusRunning, CreatedAt: now.UTC(),
		Template: c.Template, TemplateName: c.TemplateName, Accounts: c.Accounts, Label: c.Label,
		FileUID: c.FileUID, Columns: c.Columns, KeyColumns: c.KeyColumns, TestOf: c.ID,
		TypingSimulation: c.TypingSimulation, PresenceSimulation: c.PresenceSimulation}
	if err := s.store.create(ctx, test, c.PhoneColumn, false); err != nil {
		return nil, err
	}
	msg := sender.Message{Text: text, FileUID: c.FileUID}
	if i := indexOf(c.Columns, fileColumn); i >= 0 && values[i] != "" {
		msg.FileUID = values[i]
	}
	if err := s.AddRecipient(ctx, NewRecipient{Campaign: test.ID, Seq: 0, Values: values, Credits: s.caps.Credits(msg)}); err != nil {
		return nil, err
	}
	// Done importing: it completes once its one recipient is settled.
	if err := s.store.finishImport(ctx, test.ID, now); err != nil {
		return nil, err
	}
	return s.testSend(ctx, test.ID)
}

// testMessage is the first recipient's row with its phone replaced by
// phone, and the message it makes.
func (s *Service) testMessage(ctx context.Context, c *Campaign, phone string) ([]string, string, error) {
	values, err := s.store.row(ctx, c.ID, 0)
	if errors.Is(err, ErrNotFound) {
		return nil, "", FieldError("id", "the campaign has no recipient yet: a test sends the first one's message")
	}
	if err != nil {
		return nil, "", err
	}
	phoneIdx := indexOf(c.Columns, c.PhoneColumn)
	if phoneIdx < 0 || phoneIdx >= len(values) {
		return nil, "", fmt.Errorf("campaign %s: its first recipient has no phone", c.ID)
	}
	values[phoneIdx] = phone
	tmpl, err := templating.Parse("template", c.Template)
	if err != nil {
		return nil, "", fmt.Errorf("campaign %s has a template that does not parse: %w", c.ID, err)
	}
	row := make(map[string]string, len(c.Columns))
	for i, col := range c.Columns {
		if i < len(values) {
			row[col] = values[i]
		}
	}
	text, err := tmpl.Render(row, templating.Campaign{ID: c.ID, Name: c.Name, Recipient: phone})
	if err == nil && strings.TrimSpace(text) == "" && c.FileUID == "" {
		err = errors.New("it is empty")
	}
	if err != nil {
		return nil, "", FieldError("template", "the message for the first recipient cannot be sent: "+err.Error())
	}
	return values, text, nil
}

// Tests lists a campaign's latest test sends, newest first.
func (s *Service) Tests(ctx context.Context, id string) ([]TestSend, error) {
	if _, err := s.store.gate(ctx, id); err != nil {
		return nil, err
	}
	ids, err := s.store.testIDs(ctx, id, maxTestsListed)
	if err != nil {
		return nil, err
	}
	out := []TestSend{}
	for i := len(ids) - 1; i >= 0; i-- {
		t, err := s.testSend(ctx, ids[i])
		if errors.Is(err, ErrNotFound) {
			continue // deleted on its own
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *t)
	}
	return out, nil
}

// testSend reads one test send.
func (s *Service) testSend(ctx context.Context, id string) (*TestSend, error) {
	c, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	r, err := s.store.Recipient(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	t := &TestSend{ID: id, CampaignID: c.TestOf, Phone: r.Phone, CreatedAt: c.CreatedAt, State: r.State,
		Reason: r.Reason, Account: r.Account, MessageUID: r.MessageUID, History: r.History}
	if tmpl, err := templating.Parse("template", c.Template); err == nil {
		t.Text, _ = tmpl.Render(r.Fields, templating.Campaign{ID: c.TestOf, Name: c.Name, Recipient: r.Key})
	}
	return t, nil
}
