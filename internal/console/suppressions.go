package console

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/wacampaign/wacampaign/internal/audience"
)

// suppressionsView is the suppressions page: a page of the list (GET
// /v1/suppressions) and the add form sent last.
type suppressionsView struct {
	Entries []audience.Entry
	Next    string
	Total   int64
	Form    map[string]string
}

func (c *Console) suppressionsPage(w http.ResponseWriter, r *http.Request, s *session) {
	notice := map[string]string{
		"add":    "Added to the suppression list: no campaign or sequence will message it.",
		"remove": "Removed from the suppression list: it may be messaged again.",
	}[r.URL.Query().Get("done")]
	c.showSuppressions(w, r, s, http.StatusOK, page{Notice: notice}, nil)
}

func (c *Console) showSuppressions(w http.ResponseWriter, r *http.Request, s *session, status int, p page, form map[string]string) {
	var list struct {
		Suppressions []audience.Entry `json:"suppressions"`
		NextCursor   *string          `json:"next_cursor"`
		Total        int64            `json:"total"`
	}
	path := "/v1/suppressions?limit=100"
	if cursor := r.URL.Query().Get("cursor"); cursor != "" {
		path += "&cursor=" + url.QueryEscape(cursor)
	}
	if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: path, key: s.apiKey}, &list); err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	v := suppressionsView{Entries: list.Suppressions, Total: list.Total, Form: form}
	if list.NextCursor != nil {
		v.Next = *list.NextCursor
	}
	if v.Form == nil {
		v.Form = map[string]string{}
	}
	p.Title, p.Section, p.SignedIn, p.CSRF, p.Data = "Suppressions", "suppressions", true, s.csrfToken(), v
	c.render(w, status, "suppressions", p)
}

// addSuppression suppresses one number (POST /v1/suppressions).
func (c *Console) addSuppression(w http.ResponseWriter, r *http.Request, s *session) {
	form := map[string]string{"phone": strings.TrimSpace(r.PostFormValue("phone")), "reason": strings.TrimSpace(r.PostFormValue("reason"))}
	err := c.callJSON(r.Context(), http.MethodPost, "/v1/suppressions", s.apiKey, form, nil)
	c.afterSuppressionChange(w, r, s, err, "add", form)
}

// removeSuppression lifts one (DELETE /v1/suppressions/{phone}).
func (c *Console) removeSuppression(w http.ResponseWriter, r *http.Request, s *session) {
	err := c.call(r.Context(), apiRequest{method: http.MethodDelete, path: "/v1/suppressions/" + phonePath(r.PathValue("phone")), key: s.apiKey}, nil)
	c.afterSuppressionChange(w, r, s, err, "remove", nil)
}

func (c *Console) afterSuppressionChange(w http.ResponseWriter, r *http.Request, s *session, err error, done string, form map[string]string) {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		c.showSuppressions(w, r, s, apiErr.Status, page{Error: apiErr}, form)
		return
	}
	if err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/suppressions?done="+done, http.StatusSeeOther)
}
