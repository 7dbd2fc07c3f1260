package console

import (
	"errors"
	"net/http"
	"strings"
	"time"
)

// accountJSON is a sender account as GET /v1/accounts shows it.
type accountJSON struct {
	Phone        string     `json:"phone"`
	Status       string     `json:"status"` // active, paused, disconnected
	Reason       string     `json:"reason"`
	Since        *time.Time `json:"since"`
	SendInterval string     `json:"send_interval"`
	PlannedUntil *time.Time `json:"planned_until"` // its last booked send: the backlog
	DailyCap     int        `json:"daily_cap"`
	Warmup       *struct {
		Start     int    `json:"start"`
		Days      int    `json:"days"`
		StartedOn string `json:"started_on"`
	} `json:"warmup"`
	Today struct {
		Allowance int  `json:"allowance"` // -1: unlimited
		Sent      int  `json:"sent"`
		WarmupDay *int `json:"warmup_day"`
	} `json:"today"`
	Ramp   []int `json:"ramp"`
	Health struct {
		State       string  `json:"state"` // ok, slowed, stopped
		Messages    int     `json:"messages"`
		FailureRate float64 `json:"failure_rate"`
		OptOutRate  float64 `json:"opt_out_rate"`
		ReplyRate   float64 `json:"reply_rate"`
	} `json:"health"`
}

// quotaJSON is GET /v1/quota.
type quotaJSON struct {
	Credits struct {
		Metered         bool       `json:"metered"`
		Status          string     `json:"status"` // "not metered" for a provider without credits
		Available       int64      `json:"available"`
		InFlight        int64      `json:"in_flight"`
		ProviderBalance int64      `json:"provider_balance"`
		Synced          bool       `json:"synced"`
		SyncedAt        *time.Time `json:"synced_at"`
		Exhausted       bool       `json:"exhausted"`
	} `json:"credits"`
	APICalls *struct {
		Total int64 `json:"total"`
		Used  int64 `json:"used"`
	} `json:"api_calls"`
	Needed    int64 `json:"needed"`
	Shortfall int64 `json:"shortfall"`
	Campaigns []struct {
		ID            string     `json:"id"`
		Name          string     `json:"name"`
		Status        string     `json:"status"`
		Reason        string     `json:"reason"`
		Queued        int64      `json:"queued"`
		CreditsNeeded int64      `json:"credits_needed"`
		CreditsSpent  int64      `json:"credits_spent"`
		ETA           *time.Time `json:"eta"`
	} `json:"campaigns"`
}

// APICallsLeft is what the provider's API-call quota has left.
func (q quotaJSON) APICallsLeft() int64 {
	if q.APICalls == nil {
		return 0
	}
	return max(0, q.APICalls.Total-q.APICalls.Used)
}

type accountsView struct {
	Accounts []accountJSON
	Quota    quotaJSON
	Form     map[string]string // the interval form sent last, to fill again
}

func (c *Console) accountsPage(w http.ResponseWriter, r *http.Request, s *session) {
	notice := map[string]string{
		"pause":    "Account paused. Its recipients go through the campaigns' other accounts.",
		"resume":   "Account resumed.",
		"interval": "Send interval saved.",
	}[r.URL.Query().Get("done")]
	c.showAccounts(w, r, s, http.StatusOK, page{Notice: notice}, nil)
}

func (c *Console) showAccounts(w http.ResponseWriter, r *http.Request, s *session, status int, p page, form map[string]string) {
	var v accountsView
	var list struct {
		Accounts []accountJSON `json:"accounts"`
	}
	if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: "/v1/accounts", key: s.apiKey}, &list); err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: "/v1/quota", key: s.apiKey}, &v.Quota); err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	v.Accounts, v.Form = list.Accounts, form
	if v.Form == nil {
		v.Form = map[string]string{}
	}
	p.Title, p.Section, p.SignedIn, p.CSRF, p.Data = "Accounts and quota", "accounts", true, s.csrfToken(), v
	c.render(w, status, "accounts", p)
}

// setInterval sets one account's send interval (PUT /v1/accounts/{phone}).
// An account the console has not seen yet is added this way too.
func (c *Console) setInterval(w http.ResponseWriter, r *http.Request, s *session) {
	phone := strings.TrimSpace(r.PostFormValue("phone"))
	interval := strings.TrimSpace(r.PostFormValue("send_interval"))
	form := map[string]string{"phone": phone, "send_interval": interval}
	if phone == "" {
		c.showAccounts(w, r, s, http.StatusBadRequest, page{Error: fieldError(http.StatusBadRequest, "phone", "Enter the account's WhatsApp number, with + and the country code.")}, form)
		return
	}
	err := c.callJSON(r.Context(), http.MethodPut, "/v1/accounts/"+phonePath(phone), s.apiKey, map[string]string{"send_interval": interval}, nil)
	c.afterAccountChange(w, r, s, err, "interval", form)
}

// accountAction pauses or resumes an account.
func (c *Console) accountAction(w http.ResponseWriter, r *http.Request, s *session) {
	action := r.PathValue("action")
	if action != "pause" && action != "resume" {
		c.notFound(w, r)
		return
	}
	body := map[string]string{}
	if reason := strings.TrimSpace(r.PostFormValue("reason")); action == "pause" && reason != "" {
		body["reason"] = reason
	}
	err := c.callJSON(r.Context(), http.MethodPost, "/v1/accounts/"+phonePath(r.PathValue("phone"))+"/"+action, s.apiKey, body, nil)
	c.afterAccountChange(w, r, s, err, action, nil)
}

func (c *Console) afterAccountChange(w http.ResponseWriter, r *http.Request, s *session, err error, done string, form map[string]string) {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		c.showAccounts(w, r, s, apiErr.Status, page{Error: apiErr}, form)
		return
	}
	if err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/accounts?done="+done, http.StatusSeeOther)
}
