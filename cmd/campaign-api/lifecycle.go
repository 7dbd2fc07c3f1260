package main

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// campaignError answers what an action on the campaign of the path's {id}
// can fail with: a missing campaign (404), a transition its status does not
// allow (409, naming the status), a bad input (400).
func (s *server) campaignError(w http.ResponseWriter, r *http.Request, err error) {
	var te *campaign.TransitionError
	var in *campaign.InputError
	switch {
	case errors.Is(err, campaign.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no campaign with id "+strconv.Quote(r.PathValue("id")), nil)
	case errors.As(err, &te):
		writeError(w, http.StatusConflict, "conflict", te.Error(), []campaign.Problem{{Fields: []string{"status"}, Msg: "the campaign is " + string(te.Status)}})
	case errors.As(err, &in):
		writeProblem(w, in)
	default:
		s.internalError(w, r, err)
	}
}

// getCampaign: GET /v1/campaigns/{id}; also the answer of every lifecycle
// action, the campaign as it is afterwards.
func (s *server) getCampaign(w http.ResponseWriter, r *http.Request) {
	c, err := s.store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	if len(c.Variants) > 0 {
		// The funnel split by variant: read from the recipients (bounded).
		funnels, err := s.store.VariantFunnels(r.Context(), c, false)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		for i := range c.Variants {
			c.Variants[i].Funnel = funnels[c.Variants[i].Name]
		}
	}
	s.writeCampaign(w, r, http.StatusOK, c)
}

// writeCampaign answers a campaign with its forecast: its ETA, what it
// waits for and until when, its credits against the ledger.
func (s *server) writeCampaign(w http.ResponseWriter, r *http.Request, status int, c *campaign.Campaign) {
	if err := s.forecast.Annotate(r.Context(), c); err != nil {
		s.internalError(w, r, err)
		return
	}
	writeOK(w, status, c)
}

// pauseCampaign: POST /v1/campaigns/{id}/pause {"reason"?}. No recipient is
// claimed after it answers; sends already at the provider finish.
func (s *server) pauseCampaign(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason string `json:"reason"`
	}
	if !readOptionalJSON(w, r, &body) {
		return
	}
	if err := s.store.Pause(r.Context(), r.PathValue("id"), strings.TrimSpace(body.Reason), time.Now()); err != nil {
		s.campaignError(w, r, err)
		return
	}
	s.lifecycle(r, eventPaused, &campaign.Campaign{ID: r.PathValue("id"), Status: campaign.StatusPaused}, body.Reason)
	s.getCampaign(w, r)
}

// resumeCampaign: POST /v1/campaigns/{id}/resume.
func (s *server) resumeCampaign(w http.ResponseWriter, r *http.Request) {
	c, err := s.campaigns.Resume(r.Context(), r.PathValue("id"), time.Now())
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	s.lifecycle(r, eventResumed, c, "")
	s.writeCampaign(w, r, http.StatusOK, c)
}

// cancelCampaign: POST /v1/campaigns/{id}/cancel {"reason"?}. Every
// recipient not yet sent ends skipped.
func (s *server) cancelCampaign(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason string `json:"reason"`
	}
	if !readOptionalJSON(w, r, &body) {
		return
	}
	reason := strings.TrimSpace(body.Reason)
	if reason == "" {
		reason = "cancelled by an operator"
	}
	changed, err := s.store.Cancel(r.Context(), r.PathValue("id"), reason, time.Now())
	if err == nil && !changed {
		err = &campaign.TransitionError{Action: "cancel", Status: campaign.StatusCancelled}
	}
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	s.lifecycle(r, eventCancelled, &campaign.Campaign{ID: r.PathValue("id"), Status: campaign.StatusCancelled}, reason)
	s.getCampaign(w, r)
}

// retryFailed: POST /v1/campaigns/{id}/retry-failed. Only the failed
// recipients go back in the queue.
func (s *server) retryFailed(w http.ResponseWriter, r *http.Request) {
	n, err := s.campaigns.RetryFailed(r.Context(), r.PathValue("id"), time.Now())
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	c, err := s.store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	writeOK(w, http.StatusOK, map[string]any{"requeued": n, "campaign": c})
}

// rescheduleCampaign: POST /v1/campaigns/{id}/reschedule {"send_at"}: a
// scheduled campaign gets a new start time.
func (s *server) rescheduleCampaign(w http.ResponseWriter, r *http.Request) {
	var body struct {
		SendAt string `json:"send_at"`
	}
	if !readOptionalJSON(w, r, &body) {
		return
	}
	at, err := time.Parse(time.RFC3339, strings.TrimSpace(body.SendAt))
	if err != nil {
		writeProblem(w, fieldProblem("send_at", `send {"send_at":"2026-12-01T09:00:00+01:00"} (RFC 3339 with a zone)`))
		return
	}
	c, err := s.campaigns.Reschedule(r.Context(), r.PathValue("id"), at, time.Now())
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	s.writeCampaign(w, r, http.StatusOK, c)
}
