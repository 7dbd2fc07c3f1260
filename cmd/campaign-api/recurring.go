package main

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/campaign/recurring"
)

// recurringFields are the form fields of POST /v1/recurring besides
// contacts: those of POST /v1/campaigns (derived from createFields, so the
// two forms cannot drift apart) but send_at, which the cron spec replaces,
// and the schedule.
var recurringFields = func() map[string]int64 {
	fields := map[string]int64{"cron": 256, "cron_zone": 64}
	for name, limit := range createFields {
		if name != "send_at" {
			fields[name] = limit
		}
	}
	return fields
}()

// recurringFormSlack is what a recurring form may have besides its contacts
// file: every other field at its limit, with room for the multipart framing.
const recurringFormSlack = 1 << 20

// recurringRunsShown is how many of its latest runs GET of one recurring
// campaign lists.
const recurringRunsShown = 20

// recurringContactsLimit is the largest contacts file a recurring campaign
// takes: it is kept whole in Redis, so the smaller of its own cap and
// MAX_UPLOAD_BYTES.
func (s *server) recurringContactsLimit() int64 {
	return min(int64(recurring.MaxContactsBytes), s.maxUploadBytes)
}

// createRecurring: POST /v1/recurring, a multipart form like POST
// /v1/campaigns (contacts, template or template_name, name, accounts,
// label, file_uid, window_*) plus cron and cron_zone. Nothing is sent now:
// the form is validated as each run will import it and saved; 201 answers
// the definition with its next_run_at. The contacts file is read whole, so
// unlike a campaign's it may come anywhere in the form.
func (s *server) createRecurring(w http.ResponseWriter, r *http.Request) {
	limit := s.recurringContactsLimit()
	form, err := s.readRecurringForm(w, r, limit)
	var input *campaign.InputError
	switch {
	case errors.As(err, &input):
		writeProblem(w, input)
		return
	case err != nil:
		s.recurringFormError(w, r, err, limit)
		return
	}
	d, problem := s.recurringDraft(form)
	if problem != nil {
		writeProblem(w, problem)
		return
	}
	def, err := s.recurring.Create(r.Context(), s.importer, d)
	switch {
	case errors.As(err, &input):
		writeProblem(w, input)
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	if err := s.accounts.Remember(r.Context(), def.Accounts...); err != nil {
		s.log.Warn("remember sender accounts", zap.Error(err))
	}
	writeOK(w, http.StatusCreated, def)
}

// recurringUpload is a POST /v1/recurring form, read whole.
type recurringUpload struct {
	fields      map[string]string
	contacts    []byte
	contactsSet bool
}

// errRecurringTooLarge is a form whose contacts pass the limit.
var errRecurringTooLarge = &http.MaxBytesError{}

// readRecurringForm reads the form: a mistake in it is an *InputError, a
// form too large or broken another error (see recurringFormError).
func (s *server) readRecurringForm(w http.ResponseWriter, r *http.Request, limit int64) (*recurringUpload, error) {
	if r.ContentLength > limit+recurringFormSlack {
		return nil, errRecurringTooLarge
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit+recurringFormSlack)
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType != "multipart/form-data" {
		return nil, &campaign.InputError{Msg: "send multipart/form-data with a contacts file (CSV), template or template_name, and cron",
			Problems: []campaign.Problem{{Fields: []string{"Content-Type"}, Msg: "expected multipart/form-data, got " + orNone(mediaType)}}}
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, &campaign.InputError{Msg: "the multipart form cannot be read: " + err.Error()}
	}
	form := &recurringUpload{fields: map[string]string{}}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := form.read(part, limit); err != nil {
			return nil, err
		}
	}
	if !form.contactsSet {
		return nil, &campaign.InputError{Msg: "no contacts file: send the CSV as the form field contacts",
			Problems: []campaign.Problem{{Fields: []string{"contacts"}, Msg: "missing"}}}
	}
	return form, nil
}

// read takes one part of the form.
func (f *recurringUpload) read(part *multipart.Part, limit int64) error {
	name := part.FormName()
	problem := func(msg, detail string) error {
		return &campaign.InputError{Msg: msg, Problems: []campaign.Problem{{Fields: []string{name}, Msg: detail}}}
	}
	switch _, dup := f.fields[name]; {
	case name == "contacts" && f.contactsSet:
		return problem("send one contacts file", "the form has more than one contacts part")
	case name == "contacts":
		f.contactsSet = true
		contacts, err := io.ReadAll(io.LimitReader(part, limit+1))
		if err == nil && int64(len(contacts)) > limit {
			err = errRecurringTooLarge
		}
		f.contacts = contacts
		return err
	case name == "send_at":
		return fieldProblem("send_at", "a recurring campaign starts at the times of its cron spec; send cron (and cron_zone) instead of send_at")
	case recurringFields[name] == 0:
		return problem(fmt.Sprintf("unknown field %q", name), "unknown field; known fields: contacts, "+strings.Join(sortedKeys(recurringFields), ", "))
	case dup:
		return problem(fmt.Sprintf("field %q is sent twice", name), "sent twice")
	}
	fieldLimit := recurringFields[name]
	value, err := io.ReadAll(io.LimitReader(part, fieldLimit+1))
	if err != nil {
		return err
	}
	if int64(len(value)) > fieldLimit {
		return problem(fmt.Sprintf("field %q is longer than %d bytes", name, fieldLimit), "too long")
	}
	f.fields[name] = string(value)
	return nil
}

// recurringDraft checks the schedule and the campaign fields of a form. They
// are independent mistakes: both are named at once rather than one per
// round trip.
func (s *server) recurringDraft(form *recurringUpload) (recurring.Draft, *campaign.InputError) {
	_, cronErr := recurring.ParseSchedule(form.fields["cron"], form.fields["cron_zone"])
	draft, problem := s.draft(form.fields)
	var cronProblem *campaign.InputError
	errors.As(cronErr, &cronProblem)
	switch {
	case problem != nil && cronProblem != nil:
		return recurring.Draft{}, &campaign.InputError{Msg: cronProblem.Msg, Problems: append(cronProblem.Problems, problem.Problems...)}
	case cronProblem != nil:
		return recurring.Draft{}, cronProblem
	case problem != nil:
		return recurring.Draft{}, problem
	}
	return recurring.Draft{Draft: draft, Cron: form.fields["cron"], CronZone: form.fields["cron_zone"], Contacts: form.contacts}, nil
}

// listRecurring: GET /v1/recurring?limit=&after=, newest first; next_after
// pages on.
func (s *server) listRecurring(w http.ResponseWriter, r *http.Request) {
	limit, problem := intParam(r, "limit", 50, 1, 500)
	if problem != nil {
		writeProblem(w, problem)
		return
	}
	after := r.URL.Query().Get("after")
	list, err := s.recurring.List(r.Context(), limit, after)
	if errors.Is(err, recurring.ErrNotFound) {
		writeProblem(w, fieldProblem("after", "no recurring campaign with id "+strconv.Quote(after)))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	var next *string
	if len(list) == limit {
		next = &list[len(list)-1].ID
	}
	writeOK(w, http.StatusOK, map[string]any{"recurring": list, "next_after": next})
}

// getRecurring: GET /v1/recurring/{id}, the definition with next_run_at and
// its latest runs (tick → campaign), newest first.
func (s *server) getRecurring(w http.ResponseWriter, r *http.Request) {
	def, err := s.recurring.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.recurringError(w, r, err)
		return
	}
	s.answerRecurring(w, r, def)
}

// stopRecurring: DELETE /v1/recurring/{id}. Once it answers no further run
// starts; a run already importing finishes, and the campaigns of earlier
// runs go on (cancel them with POST /v1/campaigns/{id}/cancel). The
// definition stays readable, stopped; stopping it again answers the same.
func (s *server) stopRecurring(w http.ResponseWriter, r *http.Request) {
	def, err := s.recurring.Stop(r.Context(), r.PathValue("id"))
	if err != nil {
		s.recurringError(w, r, err)
		return
	}
	s.answerRecurring(w, r, def)
}

// answerRecurring answers a definition with its latest runs ("runs": []
// before the first).
func (s *server) answerRecurring(w http.ResponseWriter, r *http.Request, def *recurring.Definition) {
	runs, err := s.recurring.Runs(r.Context(), def.ID, recurringRunsShown)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeOK(w, http.StatusOK, struct {
		*recurring.Definition
		Runs []recurring.Run `json:"runs"`
	}{def, runs})
}

func (s *server) recurringError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, recurring.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no recurring campaign with id "+strconv.Quote(r.PathValue("id")), nil)
		return
	}
	s.internalError(w, r, err)
}

func (s *server) recurringTooLarge(w http.ResponseWriter, limit int64) {
	msg := fmt.Sprintf("the contacts file of a recurring campaign may be at most %s: it is kept whole and imported again at every run", humanBytes(limit))
	writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large", msg, []campaign.Problem{{Fields: []string{"contacts"}, Msg: msg}})
}

func (s *server) recurringFormError(w http.ResponseWriter, r *http.Request, err error, limit int64) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		s.recurringTooLarge(w, limit)
	case r.Context().Err() != nil:
		// the client is gone
	default:
		writeError(w, http.StatusBadRequest, "validation_error", "the multipart form cannot be read: "+err.Error(), nil)
	}
}
