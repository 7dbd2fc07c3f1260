package campaign

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// A preview shows what a campaign will send before anything is queued: how
// the contacts file was read, the first recipients' messages as they will
// go out, each with its length against the provider's limit, its credits
// and what looks wrong with it, and the forecast.

// Preview is GET /v1/campaigns/{id}/preview.
type Preview struct {
	CampaignID string        `json:"campaign_id"`
	Status     Status        `json:"status"`
	Rows       RowCounts     `json:"rows"`
	Rejected   []RejectedRow `json:"rejected"` // the first MaxRejectedListed
	// MaxLength is the longest message the provider takes, in characters.
	MaxLength int              `json:"max_length"`
	Messages  []PreviewMessage `json:"messages"`
	// Warned is how many of Messages have a warning.
	Warned  int         `json:"warned"`
	Credits Credits     `json:"credits"`
	ETA     *time.Time  `json:"eta,omitempty"` // as the campaign's: absent while a wait has no end
	Waiting []Wait      `json:"waiting"`
	Queue   *QueueSplit `json:"queue,omitempty"`
}

// RowCounts is how the contacts file was read.
type RowCounts struct {
	Read       int64 `json:"read"`       // rows with content
	Valid      int64 `json:"valid"`      // distinct recipients
	Duplicates int64 `json:"duplicates"` // rows whose phone came earlier
	Rejected   int64 `json:"rejected"`   // rows not imported, with reasons in Preview.Rejected
	Suppressed int64 `json:"suppressed"` // recipients on the suppression list: counted, never queued
}

// PreviewMessage is one recipient's message as it will be sent.
type PreviewMessage struct {
	Row      int              `json:"row"` // of the contacts file (the header is row 1); 0 when not kept
	Seq      int64            `json:"seq"`
	Phone    string           `json:"phone"`
	Text     string           `json:"text"`
	Length   int              `json:"length"` // in characters (Unicode code points)
	Credits  int              `json:"credits"`
	Variant  string           `json:"variant,omitempty"` // its A/B variant
	Warnings []PreviewWarning `json:"warnings"`
}

// PreviewWarning is something wrong with one message.
type PreviewWarning struct {
	Code  string `json:"code"` // one of the Warn* codes
	Field string `json:"field,omitempty"`
	Msg   string `json:"msg"`
}

// Warning codes.
const (
	WarnEmptyField = "empty_field" // an empty column leaves a gap in the text
	WarnTooLong    = "too_long"    // over the provider's limit: it would fail
	WarnEmpty      = "empty"       // nothing to send: it would fail
	WarnRender     = "render"      // the template fails on this row: it would fail
)

// Preview limits.
const (
	DefaultPreviewMessages = 5
	MaxPreviewMessages     = previewRows
)

// Previewer makes previews.
type Previewer struct {
	store    *Store
	caps     sender.Capabilities
	forecast *Forecaster
}

// NewPreviewer returns a Previewer of campaigns in store for a provider of
// caps, with forecasts by forecast.
func NewPreviewer(store *Store, caps sender.Capabilities, forecast *Forecaster) *Previewer {
	return &Previewer{store: store, caps: caps, forecast: forecast}
}

// MaxLength is the longest message the provider takes, in characters: its
// own limit, within the template's (templating.MaxLength).
func (p *Previewer) MaxLength() int {
	if p.caps.MaxTextLength > 0 {
		return min(p.caps.MaxTextLength, templating.MaxLength)
	}
	return templating.MaxLength
}

// Preview renders the first limit recipients' messages of campaign id.
func (p *Previewer) Preview(ctx context.Context, id string, limit int) (*Preview, error) {
	c, err := p.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := p.forecast.Annotate(ctx, c); err != nil {
		return nil, err
	}
	out := &Preview{
		CampaignID: c.ID, Status: c.Status, Rejected: c.Rejected, MaxLength: p.MaxLength(),
		Rows: RowCounts{Read: c.Counts.Total + c.Duplicates + c.RejectedCount + c.Suppressed, Valid: c.Counts.Total,
			Duplicates: c.Duplicates, Rejected: c.RejectedCount, Suppressed: c.Suppressed},
		Credits: c.Credits, Waiting: c.Waiting, Queue: c.Queue, Messages: []PreviewMessage{},
	}
	if c.ETA != nil {
		out.ETA = ptr(c.ETA.UTC())
	}
	if out.Waiting == nil {
		out.Waiting = []Wait{}
	}
	tmpl, err := templating.Parse("template", c.Template)
	if err != nil {
		return nil, fmt.Errorf("campaign %s has a template that does not parse: %w", id, err)
	}
	recipients, _, err := p.store.Recipients(ctx, id, "", 0, min(limit, MaxPreviewMessages))
	if err != nil {
		return nil, err
	}
	seqs := make([]int64, len(recipients))
	for i, r := range recipients {
		seqs[i] = r.Seq
	}
	rows, err := p.store.rowNumbers(ctx, id, seqs)
	if err != nil {
		return nil, err
	}
	variants, err := variantTemplates(c)
	if err != nil {
		return nil, err
	}
	for _, r := range recipients {
		t, variant := tmpl, c.VariantOf(r.Key)
		if variant != "" {
			t = variants[variant]
		}
		m := p.message(c, t, r, rows[r.Seq])
		m.Variant = variant
		if len(m.Warnings) > 0 {
			out.Warned++
		}
		out.Messages = append(out.Messages, m)
	}
	return out, nil
}

// message renders one recipient's message and says what is wrong with it.
func (p *Previewer) message(c *Campaign, tmpl *templating.Template, r Recipient, row int) PreviewMessage {
	m := PreviewMessage{Row: row, Seq: r.Seq, Phone: r.Phone, Warnings: []PreviewWarning{}}
	where := "this recipient"
	if row > 0 {
		where = fmt.Sprintf("row %d", row)
	}
	campaignData := templating.Campaign{ID: c.ID, Name: c.Name, Recipient: r.Key}
	text, err := tmpl.Render(r.Fields, campaignData)
	m.Text, m.Length = text, utf8.RuneCountInString(text)
	var tooLong *templating.TooLongError
	switch {
	case errors.As(err, &tooLong) || m.Length > p.MaxLength():
		m.Warnings = append(m.Warnings, PreviewWarning{Code: WarnTooLong,
			Msg: fmt.Sprintf("the message for %s is %s characters; the provider takes at most %s, so it would fail", where, thousands(int64(m.Length)), thousands(int64(p.MaxLength())))})
	case err != nil:
		m.Warnings = append(m.Warnings, PreviewWarning{Code: WarnRender, Msg: "the message for " + where + " cannot be made: " + err.Error()})
		return m
	}
	msg := sender.Message{Phone: r.Phone, Text: text, FileUID: c.FileUID}
	if own := r.Fields[fileColumn]; own != "" {
		msg.FileUID = own
	}
	m.Credits = p.caps.Credits(msg)
	if strings.TrimSpace(text) == "" && msg.FileUID == "" {
		m.Warnings = append(m.Warnings, PreviewWarning{Code: WarnEmpty, Msg: "the message for " + where + " is empty, so it would fail"})
	}
	for _, f := range tmpl.Gaps(r.Fields, campaignData) {
		m.Warnings = append(m.Warnings, PreviewWarning{Code: WarnEmptyField, Field: f,
			Msg: fmt.Sprintf("%s has no %s, which leaves a gap in the message; give it a fallback: {{default \"…\" .%s}}", where, f, f)})
	}
	return m
}
