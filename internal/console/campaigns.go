package console

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// campaignView is a campaign as its pages show it, with what may be done
// with it now.
type campaignView struct {
	campaign.Campaign
	CSRF    string
	Problem *APIError // the API's refusal of the last action, shown by its field
}

// WaitLine is the first thing the campaign waits for, with its end, for the
// list ("" when nothing waits).
func (v campaignView) WaitLine() string {
	for _, w := range v.Waiting {
		if w.Cause != campaign.WaitSchedule {
			return w.Reason
		}
	}
	return ""
}

// IsDraft says whether nothing of the campaign is queued yet.
func (v campaignView) IsDraft() bool { return v.Status == campaign.StatusDraft }

// CanDelete says whether the campaign and its data may be deleted: nothing
// of it can be sending.
func (v campaignView) CanDelete() bool {
	return v.Status == campaign.StatusDraft || v.Status == campaign.StatusCompleted || v.Status == campaign.StatusCancelled
}

// Settled is how many recipients' attempts are over.
func (v campaignView) Settled() int64 { return v.Counts.Settled() }

// Live says whether the campaign can still change by itself, so that its
// page follows it over server-sent events.
func (v campaignView) Live() bool {
	return v.Status == campaign.StatusRunning || v.Status == campaign.StatusScheduled || v.Importing ||
		(v.Status == campaign.StatusPaused && v.Counts.Sending+v.Counts.Unconfirmed > 0)
}

func (v campaignView) CanPause() bool {
	return v.Status == campaign.StatusRunning || v.Status == campaign.StatusScheduled
}
func (v campaignView) CanResume() bool     { return v.Status == campaign.StatusPaused }
func (v campaignView) CanReschedule() bool { return v.Status == campaign.StatusScheduled }
func (v campaignView) CanCancel() bool {
	switch v.Status {
	case campaign.StatusScheduled, campaign.StatusRunning, campaign.StatusPaused:
		return true // a draft is deleted instead: nothing of it was queued
	}
	return false
}
func (v campaignView) CanRetry() bool {
	return v.Counts.Failed > 0 && (v.Status == campaign.StatusRunning || v.Status == campaign.StatusPaused || v.Status == campaign.StatusCompleted)
}

// campaignList is GET /v1/campaigns's answer.
type campaignList struct {
	Campaigns []campaign.Campaign `json:"campaigns"`
	NextAfter *string             `json:"next_after"`
}

type campaignsView struct {
	Campaigns []campaignView
	NextAfter string
	After     string
	Live      bool // some campaign on the page is still moving
}

// listPath is the API page the list shows.
func listPath(after string) string {
	p := "/v1/campaigns?limit=50"
	if after != "" {
		p += "&after=" + url.QueryEscape(after)
	}
	return p
}

// listNotices are what the list says after an action that leaves a
// campaign's page behind.
var listNotices = map[string]string{
	"deleted": "The campaign and everything of it are deleted.",
	"kept":    "The draft is kept. Nothing is sent until you start it from its page.",
}

func (c *Console) campaignsPage(w http.ResponseWriter, r *http.Request, s *session) {
	after := r.URL.Query().Get("after")
	var list campaignList
	if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: listPath(after), key: s.apiKey}, &list); err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	v := campaignsView{After: after}
	if list.NextAfter != nil {
		v.NextAfter = *list.NextAfter
	}
	for _, cp := range list.Campaigns {
		cv := campaignView{Campaign: cp}
		v.Live = v.Live || cv.Live()
		v.Campaigns = append(v.Campaigns, cv)
	}
	c.render(w, http.StatusOK, "campaigns", page{Title: "Campaigns", Section: "campaigns", SignedIn: true, CSRF: s.csrfToken(),
		Notice: listNotices[r.URL.Query().Get("done")], Data: v})
}

// campaignPageView is the campaign page: the campaign and a page of its
// recipients; for a draft, its preview, its test sends and the edit form.
type campaignPageView struct {
	campaignView
	Recipients recipientsView
	Draft      *draftView
}

// Head is the campaign alone, for the partials that live updates render too.
func (v campaignPageView) Head() campaignView { return v.campaignView }

// notices are what the campaign page says after an action succeeded.
var notices = map[string]string{
	"pause":        "Campaign paused. No new message goes out until you resume it.",
	"resume":       "Campaign resumed. Nobody who already got the message gets it again.",
	"cancel":       "Campaign cancelled. Everyone not yet sent to is skipped.",
	"retry-failed": "The failed recipients are queued again.",
	"reschedule":   "The start time is changed.",
	"created":      "Campaign created. Its progress updates here as the messages go out.",
	"draft":        "Nothing is sent yet. Check the preview below, then start the campaign, schedule it, keep it as a draft, or send yourself a test.",
	"start":        "Campaign started. Its progress updates here as the messages go out.",
	"schedule":     "Campaign scheduled. It starts at the time below.",
	"edit":         "Saved. The preview below shows the messages as they are now.",
	"test":         "The test is on its way to your phone; its progress is below.",
}

func (c *Console) campaignPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showCampaign(w, r, s, http.StatusOK, page{Notice: notices[r.URL.Query().Get("done")]}, nil)
}

// showCampaign renders the campaign page; p carries a notice, or the error
// of the action just tried; edit, a draft's edit form as it was sent.
func (c *Console) showCampaign(w http.ResponseWriter, r *http.Request, s *session, status int, p page, edit map[string]string) {
	id := r.PathValue("id")
	var cp campaign.Campaign
	if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: "/v1/campaigns/" + url.PathEscape(id), key: s.apiKey}, &cp); err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	recipients, err := c.loadRecipients(r, s, id)
	var apiErr *APIError
	if errors.As(err, &apiErr) && p.Error == nil {
		p.Error, status = apiErr, apiErr.Status // a bad filter: say so beside it
	} else if err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	p.Title, p.Section, p.SignedIn, p.CSRF = cp.Name, "campaigns", true, s.csrfToken()
	if p.Title == "" {
		p.Title = "Campaign " + cp.ID
	}
	v := campaignPageView{campaignView: campaignView{Campaign: cp, CSRF: p.CSRF, Problem: p.Error}, Recipients: recipients}
	if cp.Status == campaign.StatusDraft {
		if v.Draft, err = c.loadDraft(r, s, &cp, edit); err != nil {
			c.apiFailure(w, r, s, err)
			return
		}
	}
	p.Data = v
	c.render(w, status, "campaign", p)
}

// campaignAction runs pause, resume, cancel, retry-failed or reschedule
// through the API, then shows the campaign as it is afterwards.
func (c *Console) campaignAction(w http.ResponseWriter, r *http.Request, s *session) {
	id, action := r.PathValue("id"), r.PathValue("action")
	body := map[string]string{}
	switch action {
	case "pause", "cancel":
		if reason := strings.TrimSpace(r.PostFormValue("reason")); reason != "" {
			body["reason"] = reason
		}
	case "resume", "retry-failed":
	case "reschedule":
		at, problem := localTime(r.PostFormValue("send_at"), r.PostFormValue("tz"), "send_at")
		if problem != nil {
			c.showCampaign(w, r, s, problem.Status, page{Error: problem}, nil)
			return
		}
		body["send_at"] = at
	case "start", "test", "edit", "delete":
		c.draftAction(w, r, s, action)
		return
	default:
		c.notFound(w, r)
		return
	}
	path := "/v1/campaigns/" + url.PathEscape(id) + "/" + action
	err := c.callJSON(r.Context(), http.MethodPost, path, s.apiKey, body, nil)
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		c.showCampaign(w, r, s, apiErr.Status, page{Error: apiErr}, nil)
		return
	}
	if err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/campaigns/"+url.PathEscape(id)+"?done="+action, http.StatusSeeOther)
}

// report streams the API's report.csv to the browser as it is written.
func (c *Console) report(w http.ResponseWriter, r *http.Request, s *session) {
	st, err := c.stream(r.Context(), apiRequest{method: http.MethodGet, path: "/v1/campaigns/" + url.PathEscape(r.PathValue("id")) + "/report.csv", key: s.apiKey})
	if err != nil {
		c.apiFailure(w, r, s, err)
		return
	}
	defer st.Body.Close()
	if st.Status != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(st.Body, 1<<20))
		c.apiFailure(w, r, s, decodeEnvelope(st.Status, b, nil))
		return
	}
	for _, h := range []string{"Content-Type", "Content-Disposition"} {
		w.Header().Set(h, st.Header.Get(h))
	}
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, st.Body)
}
