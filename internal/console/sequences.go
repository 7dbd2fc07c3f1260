package console

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// sequenceJSON is a sequence as the API shows it.
type sequenceJSON struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	CreatedAt time.Time      `json:"created_at"`
	Accounts  []string       `json:"accounts"`
	Label     string         `json:"label"`
	Window    *windowJSON    `json:"window"`
	Fields    []string       `json:"fields"`
	Steps     []sequenceStep `json:"steps"`
	Enrolled  int64          `json:"enrolled"`
}

type windowJSON struct {
	Days  string `json:"days"`
	Hours string `json:"hours"`
	Zone  string `json:"zone,omitempty"`
}

type sequenceStep struct {
	Name         string           `json:"name"`
	Delay        string           `json:"delay"`
	Template     string           `json:"template"`
	TemplateName string           `json:"template_name"`
	CampaignID   string           `json:"campaign_id"`
	Counts       *campaign.Counts `json:"counts"`
	Funnel       *campaign.Funnel `json:"funnel"`
}

// Sent is how many of the step's messages the provider took (delivered and
// read ones included).
func (s sequenceStep) Sent() int64 {
	if s.Counts == nil {
		return 0
	}
	return s.Counts.Sent + s.Counts.Delivered + s.Counts.Read
}

// enrollmentJSON is an enrolment as the API shows it.
type enrollmentJSON struct {
	Phone      string    `json:"phone"`
	Status     string    `json:"status"`
	EnrolledAt time.Time `json:"enrolled_at"`
	Steps      []struct {
		Name       string         `json:"name"`
		CampaignID string         `json:"campaign_id"`
		DueAt      time.Time      `json:"due_at"`
		State      campaign.State `json:"state"`
		Reason     string         `json:"reason"`
		MessageUID string         `json:"message_uid"`
	} `json:"steps"`
}

// enrollReport is the API's answer to a CSV of enrolments.
type enrollReport struct {
	Enrolled        int64                  `json:"enrolled"`
	AlreadyEnrolled int64                  `json:"already_enrolled"`
	RejectedCount   int64                  `json:"rejected_count"`
	Rejected        []campaign.RejectedRow `json:"rejected"`
}

func (c *Console) sequencesPage(w http.ResponseWriter, r *http.Request, s *session) {
	var list struct {
		Sequences []sequenceJSON `json:"sequences"`
	}
	if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: "/v1/sequences", key: s.apiKey}, &list); err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	sort.SliceStable(list.Sequences, func(i, j int) bool { return list.Sequences[i].CreatedAt.After(list.Sequences[j].CreatedAt) })
	c.render(w, http.StatusOK, "sequences", page{Title: "Sequences", Section: "sequences", SignedIn: true, CSRF: s.csrfToken(), Data: list.Sequences})
}

// sequencePageView is a sequence with its enrolments (the recipients of its
// first step, in enrolment order) and what the last action did.
type sequencePageView struct {
	sequenceJSON
	Enrollments recipientsView
	Report      *enrollReport
	Form        map[string]string
}

func (c *Console) sequencePage(w http.ResponseWriter, r *http.Request, s *session) {
	notice := map[string]string{"created": "Sequence created. Enrol contacts below; each gets the steps at their delays."}[r.URL.Query().Get("done")]
	c.showSequence(w, r, s, http.StatusOK, page{Notice: notice}, sequencePageView{})
}

func (c *Console) showSequence(w http.ResponseWriter, r *http.Request, s *session, status int, p page, v sequencePageView) {
	id := r.PathValue("id")
	if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: "/v1/sequences/" + url.PathEscape(id), key: s.apiKey}, &v.sequenceJSON); err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	if len(v.Steps) > 0 {
		list, err := c.loadRecipients(r, s, v.Steps[0].CampaignID)
		if err != nil {
			c.apiFailure(w, r, s, err)
			return
		}
		v.Enrollments = list
	}
	if v.Form == nil {
		v.Form = map[string]string{}
	}
	p.Title, p.Section, p.SignedIn, p.CSRF, p.Data = v.Name, "sequences", true, s.csrfToken(), v
	c.render(w, status, "sequence", p)
}

// enroll enrols one contact (a plain form: phone and the sequence's
// fields) or a CSV of them (an upload, relayed as it arrives).
func (c *Console) enroll(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	path := "/v1/sequences/" + url.PathEscape(id) + "/enrollments"
	if isMultipart(r) {
		c.enrollCSV(w, r, s, path)
		return
	}
	body := map[string]any{"phone": strings.TrimSpace(r.PostFormValue("phone"))}
	fields, form := map[string]string{}, map[string]string{"phone": r.PostFormValue("phone")}
	for k, vs := range r.PostForm {
		if name, ok := strings.CutPrefix(k, "fields."); ok && len(vs) > 0 {
			fields[name], form[k] = vs[0], vs[0]
		}
	}
	body["fields"] = fields
	var e enrollmentJSON
	err := c.callJSON(r.Context(), http.MethodPost, path, s.apiKey, body, &e)
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		c.showSequence(w, r, s, apiErr.Status, page{Error: apiErr}, sequencePageView{Form: form})
		return
	}
	if err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/sequences/"+url.PathEscape(id)+"/enrollments/"+phonePath(e.Phone)+"?done=enrolled", http.StatusSeeOther)
}

func (c *Console) enrollCSV(w http.ResponseWriter, r *http.Request, s *session, path string) {
	u, err := openUpload(r, s)
	if errors.Is(err, errNoCSRF) {
		c.csrfRefused(w, r, s)
		return
	}
	var report enrollReport
	if err == nil {
		skipFields := func(string, string) (string, bool, error) { return "", true, nil }
		err = c.sendUpload(r, u, apiRequest{method: http.MethodPost, path: path, key: s.apiKey}, "contacts", skipFields, &report)
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		c.showSequence(w, r, s, apiErr.Status, page{Error: apiErr}, sequencePageView{})
		return
	}
	if err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	c.showSequence(w, r, s, http.StatusOK, page{Notice: "The contacts file is enrolled."}, sequencePageView{Report: &report})
}

// enrollmentView is one enrolment's page.
type enrollmentView struct {
	enrollmentJSON
	SequenceID   string
	SequenceName string
}

func (c *Console) enrollmentPage(w http.ResponseWriter, r *http.Request, s *session) {
	notice := map[string]string{
		"enrolled":   "Enrolled. The steps go out at the times below.",
		"unenrolled": "Unenrolled. The steps not yet sent are skipped.",
	}[r.URL.Query().Get("done")]
	id := r.PathValue("id")
	var seq sequenceJSON
	if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: "/v1/sequences/" + url.PathEscape(id), key: s.apiKey}, &seq); err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	v := enrollmentView{SequenceID: id, SequenceName: seq.Name}
	path := "/v1/sequences/" + url.PathEscape(id) + "/enrollments/" + phonePath(r.PathValue("phone"))
	if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: path, key: s.apiKey}, &v.enrollmentJSON); err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	c.render(w, http.StatusOK, "enrollment", page{Title: v.Phone + " in " + seq.Name, Section: "sequences", SignedIn: true, CSRF: s.csrfToken(), Notice: notice, Data: v})
}

// unenroll ends an enrolment: its steps not yet sent are skipped.
func (c *Console) unenroll(w http.ResponseWriter, r *http.Request, s *session) {
	base := "/sequences/" + url.PathEscape(r.PathValue("id")) + "/enrollments/" + phonePath(r.PathValue("phone"))
	if err := c.call(r.Context(), apiRequest{method: http.MethodDelete, path: "/v1" + base, key: s.apiKey}, nil); err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	http.Redirect(w, r, base+"?done=unenrolled", http.StatusSeeOther)
}

// phonePath is a phone as a path segment, its + written %2B as the API asks.
func phonePath(phone string) string {
	return strings.ReplaceAll(url.PathEscape(phone), "+", "%2B")
}
