package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// Form fields of POST /v1/campaigns besides contacts, with the most bytes
// each may have.
var createFields = map[string]int64{
	"name":          1 << 10,
	"template":      64 << 10,
	"template_name": 256,
	"accounts":      64 << 10, // room for ~4,000 E.164 numbers: a campaign over a thousand accounts fits
	"send_at":       64,
	"label":         1 << 10,
	"file_uid":      256,
	"window_days":   64,
	"window_hours":  64,
	"window_zone":   64,
	"draft":         16,
	"variants":      256 << 10, // JSON: [{"template":"…","weight":1}, …]
	"winner":        1 << 10,   // JSON: {"test_share":0.2,"after":"2h","metric":"read_rate"}

	"typing_simulation":   16,
	"cap_policy":          16,
	"presence_simulation": 16,
}

// createCampaign takes a multipart form: contacts (the CSV) and the fields
// above, in any order (creation.go). Contacts after the template are
// imported while they upload, the fast path.
func (s *server) createCampaign(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > s.maxUploadBytes {
		s.tooLarge(w, "")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.maxUploadBytes)
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "application/json" {
		s.createCampaignJSON(w, r)
		return
	}
	if mediaType != "multipart/form-data" {
		writeError(w, http.StatusUnsupportedMediaType, "validation_error",
			"send multipart/form-data with a contacts file (CSV), or application/json with a contacts array",
			[]campaign.Problem{{Fields: []string{"Content-Type"}, Msg: "expected multipart/form-data or application/json, got " + orNone(mediaType)}})
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, http.StatusBadRequest, "validation_error", "the multipart form cannot be read: "+err.Error(), nil)
		return
	}
	c := s.newCreation(w, r)
	defer c.close()
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			c.fail(&campaign.ReadError{Err: err})
			return
		}
		if part.FormName() == "contacts" {
			stream := func(ctx context.Context, d campaign.Draft) (*campaign.Campaign, error) {
				return s.importer.Import(ctx, d, part)
			}
			if !c.contacts(stream, func() (*os.File, error) { return spool(part) }) {
				return
			}
			continue
		}
		if err := readFormField(c, part); err != nil {
			c.fail(err)
			return
		}
	}
	missing := &campaign.InputError{Msg: "no contacts file: send the CSV as the form field contacts",
		Problems: []campaign.Problem{{Fields: []string{"contacts"}, Msg: "missing"}}}
	c.finish(missing, func(ctx context.Context, d campaign.Draft, f *os.File) (*campaign.Campaign, error) {
		return s.importer.Import(ctx, d, f)
	})
}

// readFormField reads a form field other than contacts into c.
func readFormField(c *creation, part *multipart.Part) error {
	name := part.FormName()
	limit, known := createFields[name]
	if !known {
		return &campaign.InputError{Msg: fmt.Sprintf("unknown field %q", name),
			Problems: []campaign.Problem{{Fields: []string{name}, Msg: "unknown field; known fields: contacts, " + strings.Join(sortedKeys(createFields), ", ")}}}
	}
	value, err := io.ReadAll(io.LimitReader(part, limit+1))
	if err != nil {
		return &campaign.ReadError{Err: err}
	}
	if int64(len(value)) > limit {
		return &campaign.InputError{Msg: fmt.Sprintf("field %q is longer than %d bytes", name, limit),
			Problems: []campaign.Problem{{Fields: []string{name}, Msg: "too long"}}}
	}
	return c.setField(name, string(value))
}

// created answers a new campaign, and lists its sender accounts for
// operators.
func (s *server) created(w http.ResponseWriter, r *http.Request, c *campaign.Campaign) {
	if err := s.accounts.Remember(r.Context(), c.Accounts...); err != nil {
		s.log.Warn("remember sender accounts", zap.Error(err))
	}
	s.lifecycle(r, eventCreated, c, "")
	s.writeCampaign(w, r, http.StatusCreated, c)
}

// draft validates the form's fields (all but contacts) into a campaign draft.
func (s *server) draft(form map[string]string) (campaign.Draft, *campaign.InputError) {
	d := campaign.Draft{
		Name:    form["name"],
		Label:   strings.TrimSpace(form["label"]),
		FileUID: strings.TrimSpace(form["file_uid"]),
		// Checked by the importer (a 400 naming cap_policy).
		CapPolicy: strings.TrimSpace(form["cap_policy"]),
	}
	for _, a := range strings.Split(form["accounts"], ",") {
		if a = strings.TrimSpace(a); a != "" {
			d.Accounts = append(d.Accounts, a)
		}
	}
	if v := strings.TrimSpace(form["draft"]); v != "" {
		asDraft, err := strconv.ParseBool(v)
		if err != nil {
			return d, fieldProblem("draft", fmt.Sprintf("draft %q is not true or false", v))
		}
		d.AsDraft = asDraft
	}
	if v := strings.TrimSpace(form["send_at"]); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return d, fieldProblem("send_at", fmt.Sprintf("send_at %q is not an RFC 3339 time with a zone, like 2026-12-01T09:00:00+01:00", v))
		}
		d.SendAt = t
	}
	if form["window_hours"] != "" || form["window_days"] != "" || form["window_zone"] != "" {
		if form["window_hours"] == "" {
			return d, fieldProblem("window_hours", "a send window needs its hours, like 09:00-18:00")
		}
		win, err := campaign.ParseWindow(form["window_days"], form["window_hours"], form["window_zone"])
		var bad *campaign.WindowError
		if errors.As(err, &bad) {
			return d, fieldProblem("window_"+bad.Part, bad.Msg)
		}
		d.Window = win
	}
	for _, f := range []struct {
		name string
		to   **bool
	}{{"typing_simulation", &d.TypingSimulation}, {"presence_simulation", &d.PresenceSimulation}} {
		v, problem := formFlag(form, f.name)
		if problem != nil {
			return d, problem
		}
		*f.to = v
	}
	if form["variants"] != "" || form["winner"] != "" {
		return s.draftVariants(d, form)
	}
	text, name := form["template"], strings.TrimSpace(form["template_name"])
	switch {
	case text != "" && name != "":
		return d, fieldProblem("template", "send template or template_name, not both")
	case name != "":
		src, problem := s.readTemplate(name)
		if problem != nil {
			return d, problem
		}
		text = src
		d.TemplateName = name
	case strings.TrimSpace(text) == "":
		return d, fieldProblem("template", "a template is required: send template (the message text) or template_name (a file in templates/)")
	}
	tmpl, err := templating.Parse("template", text)
	if err != nil {
		return d, fieldProblem("template", err.Error())
	}
	d.Template = tmpl
	return d, nil
}

// formFlag reads an on/off field (true, false, on, off, yes, no, 1, 0); nil
// when it was not sent.
func formFlag(form map[string]string, name string) (*bool, *campaign.InputError) {
	v, sent := form[name]
	if !sent {
		return nil, nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "on", "yes", "1":
		on := true
		return &on, nil
	case "false", "off", "no", "0":
		off := false
		return &off, nil
	}
	return nil, fieldProblem(name, fmt.Sprintf("%s %q is not true or false", name, v))
}

// readTemplate reads a template of the library by name, answering a
// problem on template_name that lists the names there are.
func (s *server) readTemplate(name string) (string, *campaign.InputError) {
	src, err := s.templates.Source(name)
	if err != nil {
		return "", fieldProblem("template_name", err.Error())
	}
	return src, nil
}

// spool copies a contacts part to a temporary file.
func spool(part *multipart.Part) (*os.File, error) {
	f, err := os.CreateTemp("", "contacts-*.csv")
	if err != nil {
		return nil, fmt.Errorf("spool contacts: %w", err)
	}
	if _, err := io.Copy(f, part); err != nil {
		discardSpool(f)
		return nil, &campaign.ReadError{Err: err}
	}
	return f, nil
}

// discardSpool closes and deletes a spooled upload (nil: nothing to do).
func discardSpool(f *os.File) {
	if f == nil {
		return
	}
	f.Close()
	os.Remove(f.Name())
}

func (s *server) formError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		s.tooLarge(w, "")
		return
	}
	if r.Context().Err() != nil {
		return // the client is gone
	}
	writeError(w, http.StatusBadRequest, "validation_error", "the multipart form cannot be read: "+err.Error(), nil)
}

// tooLarge answers an upload over MAX_UPLOAD_BYTES; ended says what became
// of a campaign created from the part that arrived ("": none).
func (s *server) tooLarge(w http.ResponseWriter, ended string) {
	msg := fmt.Sprintf("the upload is larger than the limit of %s (MAX_UPLOAD_BYTES)", humanBytes(s.maxUploadBytes))
	if ended != "" {
		msg += "; " + ended
	}
	writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large", msg, []campaign.Problem{{Fields: []string{"contacts"}, Msg: msg}})
}

func writeProblem(w http.ResponseWriter, e *campaign.InputError) {
	status := http.StatusBadRequest
	if e.TooLarge {
		status = http.StatusRequestEntityTooLarge
	}
	writeError(w, status, "validation_error", e.Msg, e.Problems)
}

func fieldProblem(field, msg string) *campaign.InputError {
	return &campaign.InputError{Msg: msg, Problems: []campaign.Problem{{Fields: []string{field}, Msg: msg}}}
}

func (s *server) listCampaigns(w http.ResponseWriter, r *http.Request) {
	limit, problem := intParam(r, "limit", 50, 1, 500)
	if problem != nil {
		writeProblem(w, problem)
		return
	}
	after := r.URL.Query().Get("after")
	list, err := s.store.List(r.Context(), limit, after)
	if errors.Is(err, campaign.ErrNotFound) {
		writeProblem(w, fieldProblem("after", "no campaign with id "+strconv.Quote(after)))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if err := s.forecast.Annotate(r.Context(), list...); err != nil {
		s.internalError(w, r, err)
		return
	}
	var next *string
	if len(list) == limit {
		next = &list[len(list)-1].ID
	}
	writeOK(w, http.StatusOK, map[string]any{"campaigns": list, "next_after": next})
}

func (s *server) listRecipients(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state != "" && !campaign.ValidState(state) {
		names := make([]string, 0, len(campaign.States))
		for _, st := range campaign.States {
			names = append(names, string(st))
		}
		writeProblem(w, fieldProblem("state", fmt.Sprintf("state %q is not one of %s", state, strings.Join(names, ", "))))
		return
	}
	limit, problem := intParam(r, "limit", 100, 1, 1000)
	if problem != nil {
		writeProblem(w, problem)
		return
	}
	var cursor int64
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeProblem(w, fieldProblem("cursor", "cursor must be the next_cursor of an earlier page"))
			return
		}
		cursor = n
	}
	list, next, err := s.store.Recipients(r.Context(), r.PathValue("id"), campaign.State(state), cursor, limit)
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	var nextCursor *string
	if next >= 0 {
		v := strconv.FormatInt(next, 10)
		nextCursor = &v
	}
	writeOK(w, http.StatusOK, map[string]any{"recipients": list, "next_cursor": nextCursor})
}

func intParam(r *http.Request, name string, def, least, most int) (int, *campaign.InputError) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < least || n > most {
		return 0, fieldProblem(name, fmt.Sprintf("%s must be a whole number from %d to %d", name, least, most))
	}
	return n, nil
}

func sortedKeys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// draftVariants reads the form's A/B variants (a JSON list of {"template"
// or "template_name", "weight"}) and winner mode (JSON) into d; the first
// variant is the campaign's template.
func (s *server) draftVariants(d campaign.Draft, form map[string]string) (campaign.Draft, *campaign.InputError) {
	if form["template"] != "" || form["template_name"] != "" {
		return d, fieldProblem("variants", "send variants or template (template_name), not both")
	}
	if strings.TrimSpace(form["variants"]) == "" {
		return d, fieldProblem("variants", "winner picks among variants: send variants too")
	}
	var vs []struct {
		Template     string `json:"template"`
		TemplateName string `json:"template_name"`
		Weight       *int   `json:"weight"`
	}
	if err := strictJSON(form["variants"], &vs); err != nil {
		return d, fieldProblem("variants", `variants is not a list like [{"template":"Hi {{.name}}","weight":1},{"template_name":"promo","weight":3}]: `+err.Error())
	}
	for i, v := range vs {
		at := fmt.Sprintf("variants[%d].", i)
		dv := campaign.DraftVariant{Weight: 1, TemplateName: strings.TrimSpace(v.TemplateName)}
		if v.Weight != nil {
			dv.Weight = *v.Weight
		}
		text := v.Template
		switch {
		case text != "" && dv.TemplateName != "":
			return d, fieldProblem(at+"template", "send template or template_name, not both")
		case dv.TemplateName != "":
			src, problem := s.readTemplate(dv.TemplateName)
			if problem != nil {
				return d, fieldProblem(at+"template_name", problem.Msg)
			}
			text = src
		}
		if strings.TrimSpace(text) != "" {
			tmpl, err := templating.Parse("variant", text)
			if err != nil {
				return d, fieldProblem(at+"template", err.Error())
			}
			dv.Template = tmpl
		}
		d.Variants = append(d.Variants, dv)
	}
	if raw := strings.TrimSpace(form["winner"]); raw != "" {
		d.Winner = new(campaign.Winner)
		if err := strictJSON(raw, d.Winner); err != nil {
			return d, fieldProblem("winner", `winner is not like {"test_share":0.2,"after":"2h","metric":"read_rate"}: `+err.Error())
		}
	}
	if problems := campaign.CheckVariants(d.Variants, d.Winner); len(problems) > 0 {
		return d, &campaign.InputError{Msg: problems[0].Msg, Problems: problems}
	}
	d.Template, d.TemplateName = d.Variants[0].Template, d.Variants[0].TemplateName
	return d, nil
}

// strictJSON decodes one JSON value, refusing unknown fields.
func strictJSON(raw string, v any) error {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
