package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// A new campaign is created as a draft (step 4 of the new-campaign form):
// its page then shows the API's preview (the rows as read, the first
// messages with their warnings, credits against what is available, the
// ETA), lets the message and options be changed (PATCH), and offers step
// 5: start now, schedule, keep the draft, or send a test to a phone. Each
// is one call of the v1 API.

// draftView is what a draft's page shows beyond the campaign.
type draftView struct {
	Preview  campaign.Preview
	Tests    []campaign.TestSend
	Edit     map[string]string // the edit form: the draft's fields, or what was just sent
	EditOpen bool              // open when there is something to fix
	Fields   []string          // the contacts' columns but the phone, to insert into the message
}

// previewMessages is how many messages a draft's page shows.
const previewMessages = 5

// loadDraft reads a draft's preview and test sends; edit is the edit form
// as it was sent (nil: the draft's own fields).
func (c *Console) loadDraft(r *http.Request, s *session, cp *campaign.Campaign, edit map[string]string) (*draftView, error) {
	base := "/v1/campaigns/" + url.PathEscape(cp.ID)
	v := &draftView{Edit: edit}
	if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: base + "/preview?limit=" + strconv.Itoa(previewMessages), key: s.apiKey}, &v.Preview); err != nil {
		return nil, err
	}
	var tests struct {
		Tests []campaign.TestSend `json:"tests"`
	}
	if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: base + "/test", key: s.apiKey}, &tests); err != nil {
		return nil, err
	}
	v.Tests = tests.Tests
	if v.Edit == nil {
		v.Edit = editFormOf(cp)
	}
	v.EditOpen = edit != nil || v.Preview.Warned > 0
	for _, col := range cp.Columns {
		if col != cp.PhoneColumn {
			v.Fields = append(v.Fields, col)
		}
	}
	return v, nil
}

// editFields are the fields of a draft's edit form.
var editFields = []string{"name", "template", "accounts", "label", "file_uid", "window_days", "window_hours", "window_zone"}

// editFormOf fills the edit form with a draft's fields.
func editFormOf(cp *campaign.Campaign) map[string]string {
	f := map[string]string{
		"name": cp.Name, "template": cp.Template, "accounts": strings.Join(cp.Accounts, ", "),
		"label": cp.Label, "file_uid": cp.FileUID,
	}
	if cp.Window != nil {
		w := windowFields(cp.Window)
		f["window_days"], f["window_hours"], f["window_zone"] = w.Days, w.Hours, w.Zone
	}
	return f
}

// windowFields are a send window as the API writes it: days "mon,tue",
// hours "09:00-18:00", the fallback zone.
func windowFields(w *campaign.Window) struct{ Days, Hours, Zone string } {
	var v struct{ Days, Hours, Zone string }
	if w != nil {
		b, _ := json.Marshal(w)
		_ = json.Unmarshal(b, &v)
	}
	return v
}

// draftAction runs edit, start, test or delete of a campaign through the
// API, then shows where the user goes next.
func (c *Console) draftAction(w http.ResponseWriter, r *http.Request, s *session, action string) {
	id := r.PathValue("id")
	path := "/v1/campaigns/" + url.PathEscape(id)
	next := path[len("/v1"):] + "?done=" + action
	var err error
	var edit map[string]string
	switch action {
	case "edit":
		edit = map[string]string{}
		for _, f := range editFields {
			edit[f] = r.PostFormValue(f)
		}
		err = c.editDraft(r, s, path, edit)
	case "start":
		next, err = c.startDraft(r, s, path)
	case "test":
		err = c.callJSON(r.Context(), http.MethodPost, path+"/test", s.apiKey, map[string]string{"phone": r.PostFormValue("phone")}, nil)
		next += "#tests"
	case "delete":
		err = c.call(r.Context(), apiRequest{method: http.MethodDelete, path: path, key: s.apiKey}, nil)
		next = "/campaigns?done=deleted"
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		c.showCampaign(w, r, s, apiErr.Status, page{Error: apiErr}, edit)
		return
	}
	if err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// editDraft sends the edit form as PATCH: the template only when it
// changed (a shipped template stays named as long as it is not edited),
// the window as an object, or null when its fields are empty.
func (c *Console) editDraft(r *http.Request, s *session, path string, form map[string]string) error {
	var cur campaign.Campaign
	if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: path, key: s.apiKey}, &cur); err != nil {
		return err
	}
	accounts := []string{}
	for _, a := range strings.Split(form["accounts"], ",") {
		if a = strings.TrimSpace(a); a != "" {
			accounts = append(accounts, a)
		}
	}
	body := map[string]any{"name": form["name"], "accounts": accounts, "label": form["label"], "file_uid": form["file_uid"], "window": nil}
	if normalizeNewlines(form["template"]) != normalizeNewlines(cur.Template) {
		body["template"] = normalizeNewlines(form["template"])
	}
	if form["window_days"]+form["window_hours"]+form["window_zone"] != "" {
		body["window"] = map[string]string{"days": form["window_days"], "hours": form["window_hours"], "zone": form["window_zone"]}
	}
	return c.callJSON(r.Context(), http.MethodPatch, path, s.apiKey, body, nil)
}

// normalizeNewlines undoes what a textarea does to line ends.
func normalizeNewlines(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

// startDraft starts a draft now (dropping a start time it was saved with),
// at the time the form names (in the browser's zone), or at its own start
// time; it answers where the browser goes next.
func (c *Console) startDraft(r *http.Request, s *session, path string) (string, error) {
	body := map[string]string{}
	switch r.PostFormValue("when") {
	case "now":
		if err := c.callJSON(r.Context(), http.MethodPatch, path, s.apiKey, map[string]any{"send_at": nil}, nil); err != nil {
			return "", err
		}
	case "later":
		at, problem := localTime(r.PostFormValue("send_at"), r.PostFormValue("tz"), "send_at")
		if problem != nil {
			return "", problem
		}
		body["send_at"] = at
	}
	var started campaign.Campaign
	if err := c.callJSON(r.Context(), http.MethodPost, path+"/start", s.apiKey, body, &started); err != nil {
		return "", err
	}
	done := "start"
	if started.Status == campaign.StatusScheduled {
		done = "schedule"
	}
	return path[len("/v1"):] + "?done=" + done, nil
}
