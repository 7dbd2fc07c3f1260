package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/campaign/sequence"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// sequenceRequest is the body of POST /v1/sequences.
type sequenceRequest struct {
	Name     string   `json:"name"`
	Accounts []string `json:"accounts"`
	Label    string   `json:"label"`
	Window   *struct {
		Days  string `json:"days"`
		Hours string `json:"hours"`
		Zone  string `json:"zone"`
	} `json:"window"`
	Fields             []string `json:"fields"`
	TypingSimulation   *bool    `json:"typing_simulation"`
	PresenceSimulation *bool    `json:"presence_simulation"`
	Transactional      bool     `json:"transactional"` // exempt from FREQUENCY_CAP
	Steps              []struct {
		Name         string `json:"name"`
		Delay        string `json:"delay"`
		Template     string `json:"template"`
		TemplateName string `json:"template_name"`
		FileUID      string `json:"file_uid"`
	} `json:"steps"`
}

// createSequence: POST /v1/sequences (JSON).
func (s *server) createSequence(w http.ResponseWriter, r *http.Request) {
	var req sequenceRequest
	if !readJSON(w, r, &req) {
		return
	}
	ns := sequence.Draft{Name: req.Name, Accounts: req.Accounts, Label: strings.TrimSpace(req.Label), Fields: req.Fields,
		TypingSimulation: req.TypingSimulation, PresenceSimulation: req.PresenceSimulation, Transactional: req.Transactional}
	if req.Window != nil {
		win, err := campaign.ParseWindow(req.Window.Days, req.Window.Hours, req.Window.Zone)
		if err != nil {
			writeProblem(w, fieldProblem("window", err.Error()))
			return
		}
		ns.Window = win
	}
	for i, st := range req.Steps {
		at := func(field string) []string { return []string{"steps", strconv.Itoa(i), field} }
		step := sequence.DraftStep{Name: st.Name, TemplateName: strings.TrimSpace(st.TemplateName), FileUID: strings.TrimSpace(st.FileUID)}
		if st.Delay != "" {
			d, err := time.ParseDuration(st.Delay)
			if err != nil {
				writeError(w, http.StatusBadRequest, "validation_error", fmt.Sprintf("step %d: delay %q is not a duration like 0s, 24h or 72h", i, st.Delay),
					[]campaign.Problem{{Fields: at("delay"), Msg: "not a duration"}})
				return
			}
			step.Delay = d
		}
		text := st.Template
		switch {
		case text != "" && step.TemplateName != "":
			writeError(w, http.StatusBadRequest, "validation_error", fmt.Sprintf("step %d: send template or template_name, not both", i), []campaign.Problem{{Fields: at("template"), Msg: "not both"}})
			return
		case step.TemplateName != "":
			src, problem := s.readTemplate(step.TemplateName)
			if problem != nil {
				writeError(w, http.StatusBadRequest, "validation_error", fmt.Sprintf("step %d: %s", i, problem.Msg), []campaign.Problem{{Fields: at("template_name"), Msg: problem.Msg}})
				return
			}
			text = src
		}
		if strings.TrimSpace(text) != "" {
			tmpl, err := templating.Parse(fmt.Sprintf("step %d", i), text)
			if err != nil {
				writeError(w, http.StatusBadRequest, "validation_error", fmt.Sprintf("step %d: %v", i, err), []campaign.Problem{{Fields: at("template"), Msg: err.Error()}})
				return
			}
			step.Template = tmpl
		}
		ns.Steps = append(ns.Steps, step)
	}
	seq, err := s.sequences.Create(r.Context(), ns, time.Now())
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	if err := s.accounts.Remember(r.Context(), seq.Accounts...); err != nil {
		s.internalError(w, r, err)
		return
	}
	writeOK(w, http.StatusCreated, seq)
}

func (s *server) listSequences(w http.ResponseWriter, r *http.Request) {
	list, err := s.sequences.List(r.Context())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeOK(w, http.StatusOK, map[string]any{"sequences": list})
}

// sequence reads the {id} of a sequences route, answering 404 itself.
func (s *server) sequence(w http.ResponseWriter, r *http.Request, withCounts bool) (*sequence.Sequence, bool) {
	seq, err := s.sequences.Get(r.Context(), r.PathValue("id"), withCounts)
	if errors.Is(err, sequence.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no sequence with id "+strconv.Quote(r.PathValue("id")), nil)
		return nil, false
	}
	if err != nil {
		s.internalError(w, r, err)
		return nil, false
	}
	return seq, true
}

func (s *server) getSequence(w http.ResponseWriter, r *http.Request) {
	if seq, ok := s.sequence(w, r, true); ok {
		writeOK(w, http.StatusOK, seq)
	}
}

// enroll: POST /v1/sequences/{id}/enrollments. JSON {"phone","fields"}
// ({"jid"} or {"chat_id"} instead of phone, as a contacts file's key
// columns) enrols one contact (201; 200 when already enrolled: enrolling is
// idempotent per contact); a multipart form with a contacts CSV enrols each
// row.
func (s *server) enroll(w http.ResponseWriter, r *http.Request) {
	seq, ok := s.sequence(w, r, false)
	if !ok {
		return
	}
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "multipart/form-data" {
		s.enrollCSV(w, r, seq)
		return
	}
	var req struct {
		Phone  string            `json:"phone"`
		JID    string            `json:"jid"`
		ChatID json.Number       `json:"chat_id"` // a number or a string of one
		Fields map[string]string `json:"fields"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	to := campaign.Address{Phone: req.Phone, JID: req.JID, ChatID: req.ChatID.String()}
	e, created, err := s.sequences.Enroll(r.Context(), seq, to, req.Fields, time.Now())
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeOK(w, status, e)
}

func (s *server) enrollCSV(w http.ResponseWriter, r *http.Request, seq *sequence.Sequence) {
	r.Body = http.MaxBytesReader(w, r.Body, s.maxUploadBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, http.StatusBadRequest, "validation_error", "the multipart form cannot be read: "+err.Error(), nil)
		return
	}
	part, err := mr.NextPart()
	if err == io.EOF {
		writeError(w, http.StatusBadRequest, "validation_error", "no contacts file: send the CSV as the form field contacts",
			[]campaign.Problem{{Fields: []string{"contacts"}, Msg: "missing"}})
		return
	}
	if err != nil {
		s.formError(w, r, err)
		return
	}
	if part.FormName() != "contacts" {
		writeError(w, http.StatusBadRequest, "validation_error", fmt.Sprintf("unknown field %q; send only contacts", part.FormName()),
			[]campaign.Problem{{Fields: []string{part.FormName()}, Msg: "unknown field"}})
		return
	}
	report, err := s.sequences.EnrollCSV(r.Context(), seq, part, time.Now)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.tooLarge(w, "")
			return
		}
		s.campaignError(w, r, err)
		return
	}
	writeOK(w, http.StatusOK, report)
}

// enrolledKey finds the enrolment {phone} names, which may be a phone, a
// JID or a chat id (an enrolment is kept by its contact's key): a phone
// and a chat id look alike when the phone has no +, so each reading is
// tried in turn. It answers the key, or answers the request itself (400
// for what is none of them, 404 for a contact not enrolled).
func (s *server) enrolledKey(w http.ResponseWriter, r *http.Request, seq *sequence.Sequence) (string, bool) {
	raw := r.PathValue("phone")
	var keys []string
	if strings.Contains(raw, "@") {
		if jid, err := campaign.NormalizeJID(raw); err == nil {
			keys = append(keys, jid)
		}
	} else {
		if phone, err := campaign.NormalizePhone(raw, s.region); err == nil {
			keys = append(keys, phone)
		}
		if id, err := campaign.NormalizeChatID(raw); err == nil {
			keys = append(keys, id)
		}
	}
	if len(keys) == 0 {
		writeProblem(w, fieldProblem("phone", fmt.Sprintf("%q is not a phone, a JID or a chat id (write + as %%2B in a URL)", raw)))
		return "", false
	}
	for _, key := range keys {
		_, err := s.sequences.Enrollment(r.Context(), seq, key)
		switch {
		case err == nil:
			return key, true
		case !errors.Is(err, sequence.ErrNotFound):
			s.internalError(w, r, err)
			return "", false
		}
	}
	writeError(w, http.StatusNotFound, "not_found", keys[0]+" is not enrolled in this sequence", nil)
	return "", false
}

func (s *server) getEnrollment(w http.ResponseWriter, r *http.Request) {
	seq, ok := s.sequence(w, r, false)
	if !ok {
		return
	}
	key, ok := s.enrolledKey(w, r, seq)
	if !ok {
		return
	}
	e, err := s.sequences.Enrollment(r.Context(), seq, key)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeOK(w, http.StatusOK, e)
}

// unenroll: DELETE /v1/sequences/{id}/enrollments/{phone}: the steps not yet
// sent are cancelled.
func (s *server) unenroll(w http.ResponseWriter, r *http.Request) {
	seq, ok := s.sequence(w, r, false)
	if !ok {
		return
	}
	key, ok := s.enrolledKey(w, r, seq)
	if !ok {
		return
	}
	n, err := s.sequences.Unenroll(r.Context(), seq, key, time.Now())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	e, err := s.sequences.Enrollment(r.Context(), seq, key)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeOK(w, http.StatusOK, map[string]any{"cancelled_steps": n, "enrollment": e})
}

// readJSON decodes a JSON body of at most 1 MiB into v, refusing unknown
// fields: a misspelt field silently ignored is a bug the caller never sees.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "validation_error", "send application/json",
			[]campaign.Problem{{Fields: []string{"Content-Type"}, Msg: "expected application/json, got " + orNone(mediaType)}})
		return false
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeProblem(w, fieldProblem("body", "the body is not the JSON expected: "+err.Error()))
		return false
	}
	return true
}
