package campaign

import (
	"context"
	"fmt"
	"time"

	"github.com/wacampaign/wacampaign/internal/templating"
)

// Drafts. A campaign created with Draft.AsDraft is imported and checked
// like any other (its contacts stored, rejected rows and duplicates
// counted, its template checked against the columns) but nothing of it is
// queued: it can be previewed (preview.go), test-sent (testsend.go),
// edited (Importer.Edit) and deleted (Store.Delete), until Service.Start
// queues it now or schedules it.

// Start starts a draft: at sendAt, or, when sendAt is zero, at the draft's
// own send_at if that is still ahead, else now. A campaign that is not a
// draft is a *TransitionError naming its status.
func (s *Service) Start(ctx context.Context, id string, sendAt, now time.Time) (*Campaign, error) {
	c, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.Status != StatusDraft {
		return nil, &TransitionError{Action: "start", Status: c.Status}
	}
	if !sendAt.IsZero() && sendAt.Before(now.Add(-sendAtTooEarly)) {
		return nil, FieldError("send_at", "send_at "+sendAt.Format(time.RFC3339)+" is in the past")
	}
	at := sendAt
	if at.IsZero() && c.SendAt != nil {
		at = *c.SendAt
	}
	to, startAt, stored := StatusRunning, now, "0"
	if at.After(now) {
		to, startAt, stored = StatusScheduled, at, UnixMilli(at)
	}
	// The plan of a round the draft had before (draft=true came after the
	// contacts) is not this one's.
	if err := s.store.editDraft(ctx, id, map[string]any{fSendAt: stored, fPlanEnd: "0"}); err != nil {
		return nil, err
	}
	moved, err := s.store.transition(ctx, id, transition{action: "start", from: []Status{StatusDraft}, to: to, bumpStart: true}, now)
	if err != nil {
		return nil, err
	}
	if err := s.queue.enqueueStart(ctx, id, startAt, moved.version); err != nil {
		// Without its start task it would never send: back to a draft,
		// so that starting it again is possible.
		_, _ = s.store.transition(context.WithoutCancel(ctx), id, transition{action: "start", from: []Status{to}, to: StatusDraft, bumpStart: true}, now)
		return nil, err
	}
	return s.store.Get(ctx, id)
}

// DraftOf is the draft a stored campaign stands for: what Edit changes.
func DraftOf(c *Campaign) (Draft, error) {
	tmpl, err := templating.Parse("template", c.Template)
	if err != nil {
		return Draft{}, fmt.Errorf("campaign %s has a template that does not parse: %w", c.ID, err)
	}
	d := Draft{
		ID:           c.ID,
		Name:         c.Name,
		Template:     tmpl,
		TemplateName: c.TemplateName,
		Accounts:     c.Accounts,
		Label:        c.Label,
		FileUID:      c.FileUID,
		Window:       c.Window,
		AsDraft:      true,
	}
	if c.SendAt != nil {
		d.SendAt = *c.SendAt
	}
	if err := draftVariantsOf(c, &d); err != nil {
		return Draft{}, err
	}
	return d, nil
}

// Edit changes a draft to d (DraftOf of it, with the fields being changed
// set): the fields are checked as at creation and the template again
// against the contacts' columns, so a mistake is an *InputError naming its
// field and changes nothing. A campaign that is not a draft (or stopped
// being one meanwhile) is a *TransitionError.
func (im *Importer) Edit(ctx context.Context, id string, d Draft) (*Campaign, error) {
	c, err := im.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.Status != StatusDraft {
		return nil, &TransitionError{Action: "edit", Status: c.Status}
	}
	early, err := DraftOf(c)
	if err != nil {
		return nil, err
	}
	d.ID, d.AsDraft, d.Hold = id, true, false
	if len(d.Variants) > 0 && (d.Template.Source() != early.Template.Source() || d.TemplateName != early.TemplateName) {
		return nil, FieldError("template", "this campaign sends A/B variants, which a PATCH cannot change; make a new draft to change them")
	}
	keepSendAt := d.SendAt.Equal(early.SendAt)
	if keepSendAt {
		d.SendAt = time.Time{} // checked when it was set; that it has passed since is no mistake
	}
	want, err := im.Check(d)
	if err != nil {
		return nil, err
	}
	changes, err := im.lateChanges(c, early, d, want)
	if err != nil {
		return nil, err
	}
	if !keepSendAt && !sameTime(want.SendAt, c.SendAt) {
		changes[fSendAt] = "0"
		if want.SendAt != nil {
			changes[fSendAt] = UnixMilli(*want.SendAt)
		}
	}
	if _, ok := changes[fFileUID]; ok {
		if changes[fEstimated], err = im.store.estimateCredits(ctx, c, want.FileUID); err != nil {
			return nil, err
		}
	}
	if err := im.store.editDraft(ctx, id, changes); err != nil {
		return nil, err
	}
	return im.store.Get(ctx, id)
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}
