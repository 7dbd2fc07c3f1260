package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/quota"
)

// quotaView is GET /v1/quota: what the workspace can still spend, and what
// the campaigns under way still need. A provider that meters no credits (a
// gateway) shows metered false, "not metered", and nothing needed or short.
type quotaView struct {
	Credits struct {
		Metered         bool       `json:"metered"`
		Status          string     `json:"status,omitempty"` // "not metered" when Metered is false
		Available       int64      `json:"available"`        // what sends may reserve now
		InFlight        int64      `json:"in_flight"`        // reserved by sends under way
		ProviderBalance int64      `json:"provider_balance"` // remaining at the last GET /quotas
		Synced          bool       `json:"synced"`
		SyncedAt        *time.Time `json:"synced_at,omitempty"`
		Exhausted       bool       `json:"exhausted"` // the provider said quota_exceeded since
	} `json:"credits"`
	APICalls *struct {
		Total int64 `json:"total"`
		Used  int64 `json:"used"`
	} `json:"api_calls,omitempty"`
	// Needed is what the active campaigns' queued recipients will cost;
	// Shortfall is how much of it the available credits do not cover.
	Needed    int64              `json:"needed"`
	Shortfall int64              `json:"shortfall"`
	Campaigns []campaignQuotaRow `json:"campaigns"`
}

type campaignQuotaRow struct {
	ID            string          `json:"id"`
	Name          string          `json:"name"`
	Status        campaign.Status `json:"status"`
	Reason        string          `json:"reason,omitempty"`
	Queued        int64           `json:"queued"`
	CreditsNeeded int64           `json:"credits_needed"`
	CreditsSpent  int64           `json:"credits_spent"`
	// ETA and Waiting are the campaign's forecast: absent while a wait has
	// no end anyone can name (credits to be added).
	ETA     *time.Time      `json:"eta,omitempty"`
	Waiting []campaign.Wait `json:"waiting,omitempty"`
}

func (s *server) getQuota(w http.ResponseWriter, r *http.Request) {
	var v quotaView
	if !s.services.Caps.MeteredCredits {
		s.unmeteredQuota(w, r, &v)
		return
	}
	bal, err := s.ledger.Balance(r.Context())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	v.Credits.Metered = true
	v.Credits.Available = bal.Available
	v.Credits.InFlight = bal.Reserved
	v.Credits.ProviderBalance = bal.Remaining
	v.Credits.Synced = bal.Synced
	v.Credits.Exhausted = bal.Exhausted
	if bal.Synced {
		t := bal.SyncedAt.UTC()
		v.Credits.SyncedAt = &t
	}
	if q, _, err := quota.ReadLastQuota(r.Context(), s.rdb); err == nil {
		v.APICalls = &struct {
			Total int64 `json:"total"`
			Used  int64 `json:"used"`
		}{q.APICallsTotal, q.APICallsUsed}
	}
	active, err := s.store.Active(r.Context())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if err := s.forecast.Annotate(r.Context(), active...); err != nil {
		s.internalError(w, r, err)
		return
	}
	v.Campaigns = make([]campaignQuotaRow, 0, len(active))
	for _, c := range active {
		v.Needed += c.Credits.Needed
		v.Campaigns = append(v.Campaigns, campaignQuotaRow{
			ID: c.ID, Name: c.Name, Status: c.Status, Reason: c.Reason, Queued: c.Counts.Queued,
			CreditsNeeded: c.Credits.Needed, CreditsSpent: c.Credits.Spent, ETA: c.ETA, Waiting: c.Waiting,
		})
	}
	v.Shortfall = max(0, v.Needed-v.Credits.Available)
	writeOK(w, http.StatusOK, v)
}

// unmeteredQuota answers GET /v1/quota for a provider that meters no
// credits: nothing to spend, need or wait for; the campaigns with their
// queues and ETAs.
func (s *server) unmeteredQuota(w http.ResponseWriter, r *http.Request, v *quotaView) {
	v.Credits.Status = campaign.CreditsNotMetered
	active, err := s.store.Active(r.Context())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	v.Campaigns = make([]campaignQuotaRow, 0, len(active))
	for _, c := range active {
		v.Campaigns = append(v.Campaigns, campaignQuotaRow{ID: c.ID, Name: c.Name, Status: c.Status, Reason: c.Reason, Queued: c.Counts.Queued, ETA: c.ETA})
	}
	writeOK(w, http.StatusOK, v)
}

// accountView is a sender account in the API.
type accountView struct {
	quota.Account
	SendInterval string `json:"send_interval"`
	// PlannedUntil is the last send slot booked on the account: its backlog.
	PlannedUntil *time.Time `json:"planned_until,omitempty"`
	// DailyCap and Warmup are the account's limits (PUT), Today what they
	// allow today (allowance -1: unlimited), Ramp the allowance of each
	// day of the warm-up, its first day first, then the full rate.
	DailyCap int                 `json:"daily_cap,omitempty"`
	Warmup   *quota.Warmup       `json:"warmup,omitempty"`
	Today    quota.Today         `json:"today"`
	Ramp     []int               `json:"ramp,omitempty"`
	Health   quota.AccountHealth `json:"health"`
}

func (s *server) accountView(r *http.Request, a quota.Account) (accountView, error) {
	v := accountView{Account: a, SendInterval: a.Interval.String()}
	today, limits, err := s.services.Daily.Today(r.Context(), a.Phone)
	if err != nil {
		return v, err
	}
	v.Today, v.DailyCap, v.Warmup, v.Ramp = today, limits.DailyCap, limits.Warmup, limits.Ramp(a.Interval)
	if v.Health, err = s.services.Health.Of(r.Context(), a.Phone); err != nil {
		return v, err
	}
	tail, err := s.pacer.PlanTail(r.Context(), a.Phone)
	if err != nil {
		return v, err
	}
	if tail.After(time.Now()) {
		t := tail.UTC()
		v.PlannedUntil = &t
	}
	return v, nil
}

func (s *server) listAccounts(w http.ResponseWriter, r *http.Request) {
	list, err := s.accounts.List(r.Context(), s.pacer)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	out := make([]accountView, 0, len(list))
	for _, a := range list {
		v, err := s.accountView(r, a)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		out = append(out, v)
	}
	writeOK(w, http.StatusOK, map[string]any{"accounts": out})
}

// accountPhone reads the {phone} of an accounts route as E.164.
func (s *server) accountPhone(w http.ResponseWriter, r *http.Request) (string, bool) {
	phone, err := campaign.NormalizePhone(r.PathValue("phone"), s.region)
	if err != nil {
		writeProblem(w, fieldProblem("phone", "sender account "+err.Error()+" (write + as %2B in a URL)"))
		return "", false
	}
	return phone, true
}

func (s *server) pauseAccount(w http.ResponseWriter, r *http.Request) {
	phone, ok := s.accountPhone(w, r)
	if !ok {
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if !readOptionalJSON(w, r, &body) {
		return
	}
	reason := strings.TrimSpace(body.Reason)
	if reason == "" {
		reason = "paused by an operator"
	}
	if err := s.accounts.Pause(r.Context(), phone, reason); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.writeAccount(w, r, phone)
}

func (s *server) resumeAccount(w http.ResponseWriter, r *http.Request) {
	phone, ok := s.accountPhone(w, r)
	if !ok {
		return
	}
	if err := s.accounts.Resume(r.Context(), phone); err != nil {
		s.internalError(w, r, err)
		return
	}
	// A resumed account starts afresh: the numbers that stopped it would
	// stop it again at its next message.
	if err := s.services.Health.Reset(r.Context(), phone); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.writeAccount(w, r, phone)
}

// accountUpdate is the body of PUT /v1/accounts/{phone}: any of the send
// interval ("0s": back to SEND_INTERVAL), the daily cap (0: none) and the
// warm-up (null: none); what is absent stays.
type accountUpdate struct {
	SendInterval *string         `json:"send_interval"`
	DailyCap     *int            `json:"daily_cap"`
	Warmup       json.RawMessage `json:"warmup"`
}

// updateAccount sets an account's send interval and daily limits.
func (s *server) updateAccount(w http.ResponseWriter, r *http.Request) {
	phone, ok := s.accountPhone(w, r)
	if !ok {
		return
	}
	var body accountUpdate
	if !readOptionalJSON(w, r, &body) {
		return
	}
	if body.SendInterval == nil && body.DailyCap == nil && body.Warmup == nil {
		writeProblem(w, fieldProblem("body", `send any of {"send_interval":"5s","daily_cap":500,"warmup":{"start":20,"days":14}}`))
		return
	}
	interval, okInterval := parseSendInterval(w, body.SendInterval)
	if !okInterval {
		return
	}
	limits, changed, okLimits := s.limitsUpdate(w, r, phone, body)
	if !okLimits {
		return
	}
	if body.SendInterval != nil {
		if err := s.pacer.SetInterval(r.Context(), phone, interval); err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	if changed {
		if err := s.services.Daily.Set(r.Context(), phone, limits); err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	if err := s.accounts.Remember(r.Context(), phone); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.writeAccount(w, r, phone)
}

func (s *server) writeAccount(w http.ResponseWriter, r *http.Request, phone string) {
	list, err := s.accounts.List(r.Context(), s.pacer)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	for _, a := range list {
		if a.Phone == phone {
			v, err := s.accountView(r, a)
			if err != nil {
				s.internalError(w, r, err)
				return
			}
			writeOK(w, http.StatusOK, v)
			return
		}
	}
	s.internalError(w, r, errors.New("account "+phone+" missing right after it was written"))
}

// readOptionalJSON decodes a small JSON body into v; an empty body is fine.
func readOptionalJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		writeProblem(w, fieldProblem("body", "the body cannot be read: "+err.Error()))
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return true
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeProblem(w, fieldProblem("body", "the body is not the JSON expected: "+err.Error()))
		return false
	}
	return true
}

// parseSendInterval reads send_interval (nil: not given).
func parseSendInterval(w http.ResponseWriter, v *string) (time.Duration, bool) {
	if v == nil {
		return 0, true
	}
	d, err := time.ParseDuration(*v)
	if err != nil || d < 0 || (d > 0 && d < time.Millisecond) || d > 24*time.Hour {
		writeProblem(w, fieldProblem("send_interval", fmt.Sprintf("send_interval %q is not a duration from 1ms to 24h (like 500ms, 2s)", *v)))
		return 0, false
	}
	return d, true
}

// limitsUpdate is the account's limits with the body's daily_cap and
// warmup applied, checked; changed is false when the body sets neither.
func (s *server) limitsUpdate(w http.ResponseWriter, r *http.Request, phone string, body accountUpdate) (quota.Limits, bool, bool) {
	if body.DailyCap == nil && body.Warmup == nil {
		return quota.Limits{}, false, true
	}
	limits, err := s.services.Daily.Get(r.Context(), phone)
	if err != nil {
		s.internalError(w, r, err)
		return limits, false, false
	}
	if body.DailyCap != nil {
		limits.DailyCap = *body.DailyCap
	}
	if body.Warmup != nil {
		if limits.Warmup, err = decodeWarmup(body.Warmup); err != nil {
			writeProblem(w, fieldProblem("warmup", err.Error()))
			return limits, false, false
		}
	}
	if field, problem := limits.Check(); field != "" {
		writeProblem(w, fieldProblem(field, problem))
		return limits, false, false
	}
	return limits, true, true
}

// decodeWarmup reads {"start":20,"days":14,"started_on":"2026-01-31"}
// (started_on: today, UTC, when absent); null removes the warm-up.
func decodeWarmup(raw json.RawMessage) (*quota.Warmup, error) {
	if strings.TrimSpace(string(raw)) == "null" {
		return nil, nil
	}
	var wu quota.Warmup
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&wu); err != nil {
		return nil, errors.New(`warmup is not {"start":20,"days":14} (optionally "started_on":"2026-01-31"), or null for none: ` + err.Error())
	}
	if wu.StartedOn == "" {
		wu.StartedOn = time.Now().UTC().Format(quota.DayFormat)
	}
	return &wu, nil
}
