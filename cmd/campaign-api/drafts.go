package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// Drafts and what comes before a campaign sends: its preview and forecast,
// test sends, the start of a draft, edits of a draft, and deletion.

// startCampaign: POST /v1/campaigns/{id}/start {"send_at"?}: a draft starts
// now, or is scheduled for send_at (or its own send_at, when still ahead).
func (s *server) startCampaign(w http.ResponseWriter, r *http.Request) {
	var body struct {
		SendAt string `json:"send_at"`
	}
	if !readOptionalJSON(w, r, &body) {
		return
	}
	var at time.Time
	if v := strings.TrimSpace(body.SendAt); v != "" {
		var err error
		if at, err = time.Parse(time.RFC3339, v); err != nil {
			writeProblem(w, fieldProblem("send_at", `send {"send_at":"2026-12-01T09:00:00+01:00"} (RFC 3339 with a zone), or nothing to start now`))
			return
		}
	}
	c, err := s.campaigns.Start(r.Context(), r.PathValue("id"), at, time.Now())
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	s.lifecycle(r, eventStarted, c, "")
	s.writeCampaign(w, r, http.StatusOK, c)
}

// deleteCampaign: DELETE /v1/campaigns/{id}: a draft, completed or
// cancelled campaign and everything of it leave Redis; one that may still
// send is a 409 (cancel it first).
func (s *server) deleteCampaign(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, err := s.store.Get(r.Context(), id)
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	if err := s.store.Delete(r.Context(), id); err != nil {
		var te *campaign.TransitionError
		if errors.As(err, &te) {
			writeError(w, http.StatusConflict, "conflict", te.Error()+"; cancel it first",
				[]campaign.Problem{{Fields: []string{"status"}, Msg: "the campaign is " + string(te.Status)}})
			return
		}
		s.campaignError(w, r, err)
		return
	}
	s.lifecycle(r, eventDeleted, c, "")
	writeOK(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
}

// previewCampaign: GET /v1/campaigns/{id}/preview?limit=N: the first N
// recipients' messages, with warnings, and the forecast.
func (s *server) previewCampaign(w http.ResponseWriter, r *http.Request) {
	limit, problem := intParam(r, "limit", campaign.DefaultPreviewMessages, 1, campaign.MaxPreviewMessages)
	if problem != nil {
		writeProblem(w, problem)
		return
	}
	p, err := s.previews.Preview(r.Context(), r.PathValue("id"), limit)
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	writeOK(w, http.StatusOK, p)
}

// testCampaign: POST /v1/campaigns/{id}/test {"phone"}: the first
// recipient's message to the user's own phone, through the send path.
func (s *server) testCampaign(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Phone string `json:"phone"`
	}
	if !readOptionalJSON(w, r, &body) {
		return
	}
	if strings.TrimSpace(body.Phone) == "" {
		writeProblem(w, fieldProblem("phone", `send {"phone":"+14155550100"}: the number the test goes to`))
		return
	}
	test, err := s.campaigns.SendTest(r.Context(), campaign.TestRequest{Campaign: r.PathValue("id"), Phone: body.Phone, Region: s.region}, time.Now())
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	writeOK(w, http.StatusCreated, test)
}

// listTests: GET /v1/campaigns/{id}/test: the campaign's latest test sends,
// each with its history.
func (s *server) listTests(w http.ResponseWriter, r *http.Request) {
	tests, err := s.campaigns.Tests(r.Context(), r.PathValue("id"))
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	writeOK(w, http.StatusOK, map[string]any{"tests": tests})
}

// patchFields are the fields PATCH /v1/campaigns/{id} may change.
var patchFields = []string{"accounts", "file_uid", "label", "name", "send_at", "template", "template_name", "window"}

// patchCampaign: PATCH /v1/campaigns/{id} with a JSON object of the fields
// to change: a draft's fields are checked as at creation, its template
// again against its contacts' columns. null (or "") takes window, send_at,
// label or file_uid away. Only a draft may be edited (409 otherwise).
func (s *server) patchCampaign(w http.ResponseWriter, r *http.Request) {
	fields, ok := readPatch(w, r)
	if !ok {
		return
	}
	c, err := s.store.Get(r.Context(), r.PathValue("id"))
	if err == nil && c.Status != campaign.StatusDraft {
		err = &campaign.TransitionError{Action: "edit", Status: c.Status}
	}
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	d, err := campaign.DraftOf(c)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if problem := s.applyPatch(&d, fields); problem != nil {
		writeProblem(w, problem)
		return
	}
	edited, err := s.importer.Edit(r.Context(), c.ID, d)
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	s.writeCampaign(w, r, http.StatusOK, edited)
}

// readPatch reads a PATCH body: a JSON object of known fields.
func readPatch(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 128<<10))
	if err != nil {
		writeProblem(w, fieldProblem("body", "the body cannot be read: "+err.Error()))
		return nil, false
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		writeProblem(w, fieldProblem("body", `send a JSON object of the fields to change, like {"template":"Hi {{.name}}"}`))
		return nil, false
	}
	var unknown []string
	for k := range fields {
		if !containsString(patchFields, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		writeProblem(w, fieldProblem(unknown[0], fmt.Sprintf("unknown field %q; a draft's fields are %s", unknown[0], strings.Join(patchFields, ", "))))
		return nil, false
	}
	return fields, true
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// applyPatch sets the fields of a PATCH on d.
func (s *server) applyPatch(d *campaign.Draft, fields map[string]json.RawMessage) *campaign.InputError {
	text := func(key string) (string, *campaign.InputError) {
		var v *string
		if err := json.Unmarshal(fields[key], &v); err != nil {
			return "", fieldProblem(key, key+" is a string")
		}
		if v == nil {
			return "", nil
		}
		return *v, nil
	}
	for _, key := range []string{"name", "label", "file_uid", "send_at"} {
		if _, ok := fields[key]; !ok {
			continue
		}
		v, problem := text(key)
		if problem != nil {
			return problem
		}
		v = strings.TrimSpace(v)
		switch key {
		case "name":
			d.Name = v
		case "label":
			d.Label = v
		case "file_uid":
			d.FileUID = v
		case "send_at":
			d.SendAt = time.Time{}
			if v != "" {
				t, err := time.Parse(time.RFC3339, v)
				if err != nil {
					return fieldProblem("send_at", fmt.Sprintf("send_at %q is not an RFC 3339 time with a zone, like 2026-12-01T09:00:00+01:00", v))
				}
				d.SendAt = t
			}
		}
	}
	if raw, ok := fields["accounts"]; ok {
		var v []string
		if err := json.Unmarshal(raw, &v); err != nil {
			return fieldProblem("accounts", "accounts is a list of phone numbers")
		}
		d.Accounts = v
	}
	if raw, ok := fields["window"]; ok {
		if problem := patchWindow(d, raw); problem != nil {
			return problem
		}
	}
	return s.patchTemplate(d, fields, text)
}

// patchWindow sets a PATCH's window on d: null takes it away.
func patchWindow(d *campaign.Draft, raw json.RawMessage) *campaign.InputError {
	var v *struct{ Days, Hours, Zone string }
	if err := json.Unmarshal(raw, &v); err != nil {
		return fieldProblem("window", `window is {"days":"mon-fri","hours":"09:00-18:00","zone":"Europe/Madrid"}, or null for none`)
	}
	if v == nil {
		d.Window = nil
		return nil
	}
	win, err := campaign.ParseWindow(v.Days, v.Hours, v.Zone)
	if err != nil {
		return fieldProblem("window", err.Error())
	}
	d.Window = win
	return nil
}

// patchTemplate sets a PATCH's template or template_name on d.
func (s *server) patchTemplate(d *campaign.Draft, fields map[string]json.RawMessage, text func(string) (string, *campaign.InputError)) *campaign.InputError {
	_, hasText := fields["template"]
	_, hasName := fields["template_name"]
	var src, name string
	switch {
	case hasText && hasName:
		return fieldProblem("template", "send template or template_name, not both")
	case hasName:
		var problem *campaign.InputError
		if name, problem = text("template_name"); problem != nil {
			return problem
		}
		if src, problem = s.readTemplate(strings.TrimSpace(name)); problem != nil {
			return problem
		}
	case hasText:
		var problem *campaign.InputError
		if src, problem = text("template"); problem != nil {
			return problem
		}
	default:
		return nil
	}
	tmpl, err := templating.Parse("template", src)
	if err != nil {
		return fieldProblem("template", err.Error())
	}
	d.Template, d.TemplateName = tmpl, strings.TrimSpace(name)
	return nil
}
