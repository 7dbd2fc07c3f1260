package console

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// The new-campaign page is one form in steps: 1 contacts, 2 message,
// 3 options, 4 preview. The browser checks what it can at once (the file's
// columns against the template's fields); the form then creates the
// campaign as a draft (draft=true: imported and checked, nothing queued),
// and the draft's page shows the API's preview and step 5 (drafts.go).

// shippedTemplate is one of GET /v1/templates.
type shippedTemplate struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// providerCaps is the part of GET /v1/provider the form follows: it offers
// only the options the provider can carry out.
type providerCaps struct {
	Name             string   `json:"name"`
	Attachments      bool     `json:"attachments"`
	Labels           bool     `json:"labels"`
	TypingSimulation bool     `json:"typing_simulation"`
	RecipientKeys    []string `json:"recipient_keys"`
}

// newCampaignView is the form, filled with what the user sent last time.
type newCampaignView struct {
	Templates      []shippedTemplate
	Provider       providerCaps
	Form           map[string]string
	File           string // the file sent last time: browsers cannot fill a file input again
	IdempotencyKey string // one per form shown: a double submit creates one campaign
}

// campaignFields are the form fields the API takes, besides contacts.
var campaignFields = map[string]bool{
	"name": true, "template": true, "template_name": true, "accounts": true, "label": true,
	"file_uid": true, "send_at": true, "window_days": true, "window_hours": true, "window_zone": true, "draft": true,
	"typing_simulation": true, "presence_simulation": true,
}

func (c *Console) newCampaignPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showNewCampaign(w, r, s, http.StatusOK, map[string]string{}, "", nil)
}

func (c *Console) showNewCampaign(w http.ResponseWriter, r *http.Request, s *session, status int, form map[string]string, file string, apiErr *APIError) {
	var list struct {
		Templates []shippedTemplate `json:"templates"`
	}
	if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: "/v1/templates", key: s.apiKey}, &list); err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	var caps providerCaps
	if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: "/v1/provider", key: s.apiKey}, &caps); err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	key, err := randomToken()
	if err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	v := newCampaignView{Templates: list.Templates, Provider: caps, Form: form, File: file, IdempotencyKey: key}
	c.render(w, status, "new_campaign", page{Title: "New campaign", Section: "new", SignedIn: true, CSRF: s.csrfToken(), Error: apiErr, Data: v})
}

// createCampaign relays the form to POST /v1/campaigns as a draft
// (contacts streamed through), then shows the draft's preview, or the form
// again with the API's refusal beside the fields it names.
func (c *Console) createCampaign(w http.ResponseWriter, r *http.Request, s *session) {
	u, err := openUpload(r, s)
	if errors.Is(err, errNoCSRF) {
		c.csrfRefused(w, r, s)
		return
	}
	var formErr *APIError
	if errors.As(err, &formErr) {
		c.showNewCampaign(w, r, s, formErr.Status, map[string]string{}, "", formErr)
		return
	}
	tz := u.lead["tz"]
	rule := func(name, value string) (string, bool, error) {
		switch {
		case !campaignFields[name] || strings.TrimSpace(value) == "":
			return "", true, nil
		case name == "template" && u.Fields["template_name"] != "":
			return "", true, nil // a shipped template was chosen: the text box is not sent
		case name == "send_at":
			at, problem := localTime(value, tz, "send_at")
			if problem != nil {
				return "", false, problem
			}
			return at, false, nil
		}
		return value, false, nil
	}
	ar := apiRequest{method: http.MethodPost, path: "/v1/campaigns", key: s.apiKey, header: http.Header{}}
	if k := u.lead["idempotency_key"]; k != "" {
		ar.header.Set("Idempotency-Key", k)
	}
	var created campaign.Campaign
	err = c.sendUpload(r, u, ar, "contacts", rule, &created)
	if errors.As(err, &formErr) {
		c.showNewCampaign(w, r, s, formErr.Status, u.Fields, u.File, formErr)
		return
	}
	if err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/campaigns/"+url.PathEscape(created.ID)+"?done=draft", http.StatusSeeOther)
}

// localTime reads a datetime-local value ("2026-12-01T09:00") in the
// browser's zone tz (an IANA name the page's script fills in; "" without
// script: UTC) as RFC 3339. A value with a zone of its own is taken as is.
func localTime(value, tz, field string) (string, *APIError) {
	value = strings.TrimSpace(value)
	if value == "" {
		return "", fieldError(http.StatusBadRequest, field, "Choose a date and time.")
	}
	if t, err := time.Parse(time.RFC3339, value); err == nil {
		return t.Format(time.RFC3339), nil
	}
	loc := time.UTC
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			return "", fieldError(http.StatusBadRequest, field, "Your browser's time zone "+tz+" is not known here; write the time with its offset, like 2026-12-01T09:00:00+01:00.")
		}
		loc = l
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, value, loc); err == nil {
			return t.Format(time.RFC3339), nil
		}
	}
	return "", fieldError(http.StatusBadRequest, field, "\""+value+"\" is not a date and time like 2026-12-01T09:00.")
}
