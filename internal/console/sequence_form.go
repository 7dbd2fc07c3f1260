package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The new-sequence form has rows of steps: steps.<i>.name, .delay_n,
// .delay_unit, .template, .template_name. Without script it shows
// sequenceFormRows rows and empty ones are left out; with script, "Add a
// step" adds rows up to maxSequenceSteps.
const (
	sequenceFormRows = 3
	maxSequenceSteps = 20
)

// delayMinutes are the units a step's delay is written in, in minutes.
var delayMinutes = map[string]float64{"minutes": 1, "hours": 60, "days": 24 * 60}

// sequenceFormView is the new-sequence form, filled with what was sent.
type sequenceFormView struct {
	Templates []shippedTemplate
	Form      map[string]string
	Rows      []int // the step rows to show
}

func (c *Console) newSequencePage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showSequenceForm(w, r, s, http.StatusOK, map[string]string{}, nil)
}

func (c *Console) showSequenceForm(w http.ResponseWriter, r *http.Request, s *session, status int, form map[string]string, apiErr *APIError) {
	var list struct {
		Templates []shippedTemplate `json:"templates"`
	}
	if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: "/v1/templates", key: s.apiKey}, &list); err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	rows := sequenceFormRows
	for i := sequenceFormRows; i < maxSequenceSteps; i++ {
		if stepFilled(form, i) {
			rows = i + 1
		}
	}
	v := sequenceFormView{Templates: list.Templates, Form: form}
	for i := 0; i < rows; i++ {
		v.Rows = append(v.Rows, i)
	}
	c.render(w, status, "sequence_new", page{Title: "New sequence", Section: "sequences", SignedIn: true, CSRF: s.csrfToken(), Error: apiErr, Data: v})
}

// createSequence turns the form into POST /v1/sequences.
func (c *Console) createSequence(w http.ResponseWriter, r *http.Request, s *session) {
	form := map[string]string{}
	for k, vs := range r.PostForm {
		if k != "csrf" && len(vs) > 0 {
			form[k] = vs[0]
		}
	}
	body, rows, problem := sequenceRequest(form)
	if problem != nil {
		c.showSequenceForm(w, r, s, problem.Status, form, problem)
		return
	}
	var created sequenceJSON
	err := c.callJSON(r.Context(), http.MethodPost, "/v1/sequences", s.apiKey, body, &created)
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		c.showSequenceForm(w, r, s, apiErr.Status, form, stepErrorsToRows(apiErr, rows))
		return
	}
	if err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/sequences/"+url.PathEscape(created.ID)+"?done=created", http.StatusSeeOther)
}

// sequenceRequest builds the API's JSON from the form; rows[i] is the form
// row of the request's step i (empty rows are left out).
func sequenceRequest(form map[string]string) (map[string]any, []int, *APIError) {
	body := map[string]any{"name": form["name"], "label": form["label"], "accounts": splitComma(form["accounts"]), "fields": splitComma(form["fields"])}
	if form["window_hours"] != "" || form["window_days"] != "" {
		body["window"] = windowJSON{Days: form["window_days"], Hours: form["window_hours"], Zone: form["window_zone"]}
	}
	var steps []map[string]string
	var rows []int
	for i := 0; i < maxSequenceSteps; i++ {
		if !stepFilled(form, i) {
			continue
		}
		at := func(f string) string { return form[fmt.Sprintf("steps.%d.%s", i, f)] }
		delay, err := stepDelay(at("delay_n"), at("delay_unit"))
		if err != nil {
			return nil, nil, fieldError(http.StatusBadRequest, fmt.Sprintf("steps.%d.delay", i), err.Error())
		}
		step := map[string]string{"name": at("name"), "delay": delay}
		if name := at("template_name"); name != "" {
			step["template_name"] = name
		} else {
			step["template"] = at("template")
		}
		steps, rows = append(steps, step), append(rows, i)
	}
	if len(steps) == 0 {
		return nil, nil, fieldError(http.StatusBadRequest, "steps.0.template", "A sequence needs at least one step: write its message or choose a shipped template.")
	}
	body["steps"] = steps
	return body, rows, nil
}

func stepFilled(form map[string]string, i int) bool {
	for _, f := range []string{"name", "template", "template_name"} {
		if strings.TrimSpace(form[fmt.Sprintf("steps.%d.%s", i, f)]) != "" {
			return true
		}
	}
	return false
}

// stepDelay is a delay as a Go duration: "1" "days" → "1440m".
func stepDelay(n, unit string) (string, error) {
	n = strings.TrimSpace(n)
	if n == "" || n == "0" {
		return "0s", nil
	}
	v, err := strconv.ParseFloat(n, 64)
	if err != nil || v < 0 {
		return "", fmt.Errorf("the delay %q is not a number of %s", n, unit)
	}
	minutes, ok := delayMinutes[unit]
	if !ok {
		return "", fmt.Errorf("choose minutes, hours or days")
	}
	return strconv.FormatFloat(v*minutes, 'f', -1, 64) + "m", nil
}

// stepErrorsToRows renames the API's "steps", "<i>" fields to the form's
// row numbers, and its "window" to the hours field.
func stepErrorsToRows(e *APIError, rows []int) *APIError {
	for i, p := range e.Errors {
		f := append([]string(nil), p.Fields...)
		if len(f) >= 2 && f[0] == "steps" {
			if n, err := strconv.Atoi(f[1]); err == nil && n >= 0 && n < len(rows) {
				f[1] = strconv.Itoa(rows[n])
			}
		}
		if len(f) == 1 && f[0] == "window" {
			f[0] = "window_hours"
		}
		e.Errors[i].Fields = f
	}
	return e
}

func splitComma(s string) []string {
	out := []string{}
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// stepRowView is one step row of the form; i < 0 is the empty row the
// script copies to add a step (its names hold "__i__" for the index).
type stepRowView struct {
	i         int
	form      map[string]string
	err       *APIError
	Templates []shippedTemplate
}

// stepRow is the view of row i of the new-sequence page p.
func stepRow(p page, i int) stepRowView {
	v := stepRowView{i: i, err: p.Error}
	if d, ok := p.Data.(sequenceFormView); ok {
		v.form, v.Templates = d.Form, d.Templates
	}
	return v
}

// N is the row's number as people count, "" for the script's copy.
func (v stepRowView) N() string {
	if v.i < 0 {
		return ""
	}
	return strconv.Itoa(v.i + 1)
}

// Name is the form name of the row's field f.
func (v stepRowView) Name(f string) string {
	if v.i < 0 {
		return "steps.__i__." + f
	}
	return fmt.Sprintf("steps.%d.%s", v.i, f)
}

// ID is the element id of the row's field f.
func (v stepRowView) ID(f string) string { return strings.ReplaceAll(v.Name(f), ".", "-") }

// Value is what was sent for the row's field f.
func (v stepRowView) Value(f string) string {
	val := ""
	if v.i >= 0 {
		val = v.form[v.Name(f)]
	}
	if f == "delay_unit" && val == "" {
		return "hours"
	}
	return val
}

// Err is what the API said about the row's field f.
func (v stepRowView) Err(f string) string {
	if v.i < 0 {
		return ""
	}
	return v.err.ForField(v.Name(f))
}
