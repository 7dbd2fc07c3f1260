package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/sender"
)

// A campaign created by an HTTP request is held while the request is still
// being read: it exists with held = "1", its rows are stored and its send
// tasks enqueued as they arrive (so the first are due the moment the hold
// ends), but every send task waits (the send gate reads held). When the
// request has been read to its end, Release applies the fields that came
// after the contacts and lifts the hold, last. When the request fails, the
// campaign — which sent nothing — is cancelled (CancelUpload) or, for a
// mistake in a field, deleted (DiscardUpload). When not even that can be
// written (Redis is down), the janitor (janitor.go) cancels it once its
// upload has made no progress for a minute: every import lists its campaign
// as uploading until it has ended cleanly.

// StoreError is a failure of Redis while a campaign was being created: not
// the user's doing, and worth retrying (the API answers 503).
type StoreError struct{ Err error }

func (e *StoreError) Error() string { return "the campaign store (Redis) failed: " + e.Err.Error() }

func (e *StoreError) Unwrap() error { return e.Err }

// ReadError is a failure to read the upload itself: it broke off, or its
// framing is broken (the API answers 400, or nothing when the client left).
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "the upload cannot be read: " + e.Err.Error() }

func (e *ReadError) Unwrap() error { return e.Err }

// AbortedImportError says that an import failed (the upload broke off, or
// Redis failed: Err says which) after its campaign had been created; that
// campaign has been cancelled, or, when Cancelled is false, will be by the
// janitor.
type AbortedImportError struct {
	CampaignID string
	Recipients int64
	Cancelled  bool
	Err        error
}

func (e *AbortedImportError) Error() string {
	done := "was cancelled"
	if !e.Cancelled {
		done = "will be cancelled as soon as Redis answers again"
	}
	return fmt.Sprintf("%s after %d recipients; campaign %s %s: %v", whatStopped(e.Err), e.Recipients, e.CampaignID, done, e.Err)
}

func (e *AbortedImportError) Unwrap() error { return e.Err }

// whatStopped says, for people, what ended an import early.
func whatStopped(cause error) string {
	var se *StoreError
	if errors.As(cause, &se) {
		return "the import stopped (Redis failed)"
	}
	return "the upload broke off"
}

// storeFailed marks err, from a Redis call made with ctx, as a StoreError,
// unless it is ctx's own end (the client left) or already marked.
func storeFailed(ctx context.Context, err error) error {
	var se *StoreError
	if err == nil || ctx.Err() != nil || errors.As(err, &se) {
		return err
	}
	return &StoreError{Err: err}
}

// CancelUpload cancels a campaign whose creating request failed, saying why,
// and ends its upload. When Redis cannot be reached the error says so; the
// janitor cancels the campaign later.
func (im *Importer) CancelUpload(ctx context.Context, id, reason string) error {
	now := im.now()
	if _, err := im.store.Cancel(ctx, id, reason, now); err != nil && !errors.Is(err, ErrNotFound) {
		im.log.Warn("could not cancel the campaign of a failed upload; the janitor will once Redis answers",
			zap.String("campaign", id), zap.Error(err))
		return storeFailed(ctx, err)
	}
	if err := im.store.endUpload(ctx, id, now); err != nil {
		// Cancelled all the same; the janitor clears what is left.
		im.log.Warn("cancelled the campaign of a failed upload but could not end its upload", zap.String("campaign", id), zap.Error(err))
	}
	return nil
}

// cancelUpload is CancelUpload for an import that broke off, with a context
// of its own: the request's may be gone.
func (im *Importer) cancelUpload(id, reason string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return im.CancelUpload(ctx, id, reason)
}

// DiscardUpload deletes a held campaign and everything its import wrote: the
// request creating it turned out to be a mistake (a field after the
// contacts that is not valid), and, held, it sent nothing. Tasks already
// queued find the campaign gone and do nothing.
func (im *Importer) DiscardUpload(ctx context.Context, id string) error {
	return storeFailed(ctx, im.store.deleteCampaign(ctx, id, nil))
}

// Release lets a held campaign send, once the request creating it has been
// read whole. early is the draft its import was given, final the one of
// every field of the request: what differs came after the contacts, and is
// checked as at creation and applied. New accounts or a new send_at change
// the plan: the tasks already queued were planned for other accounts or
// another time, so the round is bumped (they find themselves outdated) and a
// start task enqueues the queued recipients in the new round, as a resume
// does. The hold is lifted last. A mistake in a late field is an
// *InputError and leaves the campaign held, for the caller to discard.
func (im *Importer) Release(ctx context.Context, c *Campaign, early, final Draft) (*Campaign, error) {
	now := im.now()
	late := final
	if late.SendAt.Equal(early.SendAt) {
		// Checked at creation; that it may have passed since is no mistake.
		late.SendAt = time.Time{}
	}
	want, err := im.Check(late)
	if err != nil {
		return nil, err
	}
	changes, err := im.lateChanges(c, early, final, want)
	if err != nil {
		return nil, err
	}
	sendAt := c.SendAt
	if !late.SendAt.IsZero() {
		sendAt = want.SendAt // nil: now
		changes[fSendAt] = "0"
		if sendAt != nil {
			changes[fSendAt] = UnixMilli(*sendAt)
		}
	}
	if len(changes) > 0 {
		if err := im.store.setFields(ctx, c.ID, changes); err != nil {
			return nil, storeFailed(ctx, err)
		}
	}
	switch {
	case c.Status == StatusDraft:
		// Nothing is queued: the fields are all there is to change.
	case final.AsDraft:
		// draft=true came after the contacts: what was queued is outdated.
		if err := im.replan(ctx, c.ID, nil, now, true); err != nil {
			return nil, err
		}
	case !slices.Equal(c.Accounts, want.Accounts) || !late.SendAt.IsZero():
		if err := im.replan(ctx, c.ID, sendAt, now, false); err != nil {
			return nil, err
		}
	}
	// Read before the hold ends: once it has, a failure here must not make
	// the caller cancel a campaign that is sending.
	released, err := im.store.Get(ctx, c.ID)
	if err != nil {
		return nil, storeFailed(ctx, err)
	}
	if released.Status == StatusCancelled {
		// The janitor found the upload stalled and ended it meanwhile.
		return nil, &TransitionError{Action: "start", Status: released.Status}
	}
	if err := im.store.endUpload(ctx, c.ID, now); err != nil {
		return nil, storeFailed(ctx, err)
	}
	im.log.Info("campaign released", zap.String("campaign", c.ID), zap.Int("late_fields", len(changes)))
	return released, nil
}

// lateChanges checks the fields that differ between early and final (want
// is final, prepared) and answers the campaign hash fields they change.
func (im *Importer) lateChanges(c *Campaign, early, final Draft, want *Campaign) (map[string]any, error) {
	changes := map[string]any{}
	if final.Name != early.Name {
		changes[fName] = want.Name
	}
	if want.Label != c.Label {
		changes[fLabel] = want.Label
	}
	if want.FileUID != c.FileUID {
		changes[fFileUID] = want.FileUID
		if want.FileUID != "" {
			// Every message now carries the file.
			perMessage := im.caps.Credits(sender.Message{Text: want.Template, FileUID: want.FileUID})
			changes[fEstimated] = int64(perMessage) * c.Counts.Total
		}
	}
	if want.TypingSimulation != nil && !equalFlags(want.TypingSimulation, c.TypingSimulation) {
		changes[fTyping] = flag(*want.TypingSimulation)
	}
	if want.PresenceSimulation != nil && !equalFlags(want.PresenceSimulation, c.PresenceSimulation) {
		changes[fPresence] = flag(*want.PresenceSimulation)
	}
	if w := EncodeWindow(want.Window); w != EncodeWindow(c.Window) {
		changes[fWindow] = w
	}
	if want.Template != c.Template || want.TemplateName != c.TemplateName {
		if err := checkTemplate(final.Template, c.Columns); err != nil {
			return nil, err
		}
		changes[fTemplate], changes[fTemplateName] = want.Template, want.TemplateName
	}
	if !slices.Equal(c.Accounts, want.Accounts) {
		accounts, _ := json.Marshal(want.Accounts)
		changes[fAccounts] = string(accounts)
	}
	if err := lateVariantChanges(changes, c, final, want); err != nil {
		return nil, err
	}
	return changes, nil
}

func equalFlags(a, b *bool) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// EncodeWindow is a window as the campaign hash keeps it ("": none).
func EncodeWindow(w *Window) string {
	if w == nil {
		return ""
	}
	b, _ := json.Marshal(w)
	return string(b)
}

// replan moves a held campaign to a new round that starts at sendAt (nil:
// now), by a start task, as Resume does; or, asDraft, to a draft, whose
// tasks of the old round find themselves outdated.
func (im *Importer) replan(ctx context.Context, id string, sendAt *time.Time, now time.Time, asDraft bool) error {
	to, startAt := StatusRunning, now
	switch {
	case asDraft:
		to = StatusDraft
	case sendAt != nil:
		// Scheduled even when its time has come: the start task starts it.
		to, startAt = StatusScheduled, *sendAt
	}
	moved, err := im.store.transition(ctx, id, transition{action: "apply the late fields of",
		from: []Status{StatusRunning, StatusScheduled}, to: to, bumpRound: true, bumpStart: true}, now)
	var te *TransitionError
	if errors.As(err, &te) || errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil || asDraft {
		return storeFailed(ctx, err)
	}
	return storeFailed(ctx, im.queue.enqueueStart(ctx, id, startAt, moved.version))
}
