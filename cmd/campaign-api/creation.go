package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// creation is one POST /v1/campaigns being read, multipart or JSON alike.
// Fields may come in any order. Contacts that arrive after the template are
// imported as they arrive into a held campaign (the fast path: its tasks are
// queued while the upload runs, and none sends before the hold ends);
// contacts before the template wait in a temporary file. Once the request
// has been read whole, the fields that came after the contacts are applied
// and the hold lifted (Importer.Release). A request that fails leaves
// nothing that sends: its held campaign is deleted when a field was a
// mistake, else cancelled with the reason.
type creation struct {
	s *server
	w http.ResponseWriter
	r *http.Request

	form         map[string]string // fields as the form names them
	contactsSeen bool
	spooled      *os.File           // contacts waiting for the template
	held         *campaign.Campaign // contacts streamed into it
	early        campaign.Draft     // what the held campaign was imported with
}

func (s *server) newCreation(w http.ResponseWriter, r *http.Request) *creation {
	return &creation{s: s, w: w, r: r, form: map[string]string{}}
}

// close deletes a spooled upload.
func (c *creation) close() { discardSpool(c.spooled) }

// setField records a field, refusing one sent twice.
func (c *creation) setField(name, value string) error {
	if _, dup := c.form[name]; dup {
		return &campaign.InputError{Msg: fmt.Sprintf("field %q is sent twice", name), Problems: []campaign.Problem{{Fields: []string{name}, Msg: "sent twice"}}}
	}
	c.form[name] = value
	return nil
}

// contacts takes the contacts: imported as they arrive when the template is
// known (stream), else spooled until it is (spool). It answers false when
// the request has been answered.
func (c *creation) contacts(stream func(context.Context, campaign.Draft) (*campaign.Campaign, error), spool func() (*os.File, error)) bool {
	if c.contactsSeen {
		c.fail(fieldProblem("contacts", "contacts come twice; send them once"))
		return false
	}
	c.contactsSeen = true
	if c.form["template"] == "" && c.form["template_name"] == "" && c.form["variants"] == "" {
		f, err := spool()
		if err != nil {
			c.fail(err)
			return false
		}
		c.spooled = f
		return true
	}
	draft, problem := c.s.draft(c.form)
	if problem != nil {
		c.fail(problem)
		return false
	}
	draft.Hold = true
	held, err := stream(c.r.Context(), draft)
	if err != nil {
		c.fail(err)
		return false
	}
	c.held, c.early = held, draft
	return true
}

// finish answers a request that has been read whole: spooled contacts are
// imported now, and the held campaign is released with every field.
// missing is the answer when no contacts came.
func (c *creation) finish(missing *campaign.InputError, importSpooled func(context.Context, campaign.Draft, *os.File) (*campaign.Campaign, error)) {
	if !c.contactsSeen {
		c.fail(missing)
		return
	}
	final, problem := c.s.draft(c.form)
	if problem != nil {
		c.fail(problem)
		return
	}
	final.Hold = true
	if c.held == nil {
		// Held as well, though no field can change it now: a failure before
		// the answer must leave it to be cancelled, not sending.
		held, err := c.importSpooled(final, importSpooled)
		if err != nil {
			c.fail(err)
			return
		}
		c.held, c.early = held, final
	}
	result, err := c.s.importer.Release(c.r.Context(), c.held, c.early, final)
	if err != nil {
		c.fail(err)
		return
	}
	c.s.created(c.w, c.r, result)
}

func (c *creation) importSpooled(d campaign.Draft, importFile func(context.Context, campaign.Draft, *os.File) (*campaign.Campaign, error)) (*campaign.Campaign, error) {
	if _, err := c.spooled.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read the spooled contacts: %w", err)
	}
	return importFile(c.r.Context(), d, c.spooled)
}

// uploadRetryAfter is what a client is told to wait after Redis failed.
const uploadRetryAfter = 5 * time.Second

// fail answers a request that failed, and ends the campaign it created, if
// any, so that nothing of it sends: the user's mistakes are 400 (413 when
// too large) naming the field, a failure of Redis is 503 with Retry-After,
// a client that left gets nothing.
func (c *creation) fail(err error) {
	var (
		input    *campaign.InputError
		tooBig   *http.MaxBytesError
		store    *campaign.StoreError
		read     *campaign.ReadError
		conflict *campaign.TransitionError
		aborted  *campaign.AbortedImportError
	)
	ended := c.endCampaign(err)
	switch {
	case errors.As(err, &tooBig):
		c.s.tooLarge(c.w, ended)
	case errors.As(err, &input):
		if ended != "" {
			input.Msg += "; " + ended
		}
		writeProblem(c.w, input)
	case c.r.Context().Err() != nil:
		c.s.log.Info("client went away during an upload", zap.Error(err))
	case errors.As(err, &store):
		c.s.log.Warn("Redis failed during an upload", zap.Error(err))
		c.w.Header().Set("Retry-After", fmt.Sprint(uploadRetryAfter/time.Second))
		writeError(c.w, http.StatusServiceUnavailable, "unavailable", withEnded("the campaign store (Redis) does not answer; send the request again in a few seconds", ended), nil)
	case errors.As(err, &conflict):
		writeError(c.w, http.StatusConflict, "conflict", withEnded(conflict.Error()+": it changed while its upload was arriving", ended), nil)
	case errors.As(err, &read):
		field := "body"
		if errors.As(err, &aborted) {
			field = "contacts"
		}
		msg := withEnded("the request broke off or is malformed: "+read.Err.Error(), ended)
		writeError(c.w, http.StatusBadRequest, "validation_error", msg, []campaign.Problem{{Fields: []string{field}, Msg: "the upload broke off or is malformed"}})
	default:
		c.s.internalError(c.w, c.r, withCampaign(err, ended))
	}
}

func withEnded(msg, ended string) string {
	if ended == "" {
		return msg
	}
	return msg + "; " + ended
}

func withCampaign(err error, ended string) error {
	if ended == "" {
		return err
	}
	return fmt.Errorf("%w (%s)", err, ended)
}

// endCampaign ends the campaign a failed request created and says what
// became of it ("" when there was none, or nothing is left of it). A held
// campaign that a mistaken field made useless is deleted; any other is
// cancelled. Either must happen even when the client has left.
func (c *creation) endCampaign(err error) string {
	id, cancelled := "", false
	if c.held != nil {
		id = c.held.ID
	}
	var aborted *campaign.AbortedImportError
	if errors.As(err, &aborted) {
		id, cancelled = aborted.CampaignID, aborted.Cancelled
	}
	if id == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.r.Context()), 10*time.Second)
	defer cancel()
	var input *campaign.InputError
	if c.held != nil && errors.As(err, &input) {
		if derr := c.s.importer.DiscardUpload(ctx, id); derr == nil {
			return ""
		}
	}
	if !cancelled && aborted == nil {
		cancelled = c.s.importer.CancelUpload(ctx, id, "the request creating it failed; nothing was sent: "+err.Error()) == nil
	}
	if cancelled {
		return fmt.Sprintf("campaign %s, created from what had arrived, was cancelled; nothing was sent", id)
	}
	return fmt.Sprintf("campaign %s, created from what had arrived, sent nothing and will be cancelled as soon as Redis answers again", id)
}
