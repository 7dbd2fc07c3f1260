package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// Recipients are shown a page at a time, in upload order, as the API lists
// them. The API filters by state but cannot search, so a search by phone
// reads pages of the list and keeps the matches, up to searchScan
// recipients a query; "search on" continues from where it stopped.
const (
	recipientsPage = 50
	searchPage     = 1000
	searchScan     = 10_000
	searchShown    = 100
)

// recipientsView is the recipients table with its filter.
type recipientsView struct {
	List       []campaign.Recipient
	State      string // the filter, "" for every state
	Query      string // digits of a phone to look for
	Cursor     string // where this page began
	NextCursor string // where the next page (or the rest of a search) begins
	Scanned    int    // recipients a search looked at
	Searched   bool
}

// recipientList is GET /v1/campaigns/{id}/recipients's answer.
type recipientList struct {
	Recipients []campaign.Recipient `json:"recipients"`
	NextCursor *string              `json:"next_cursor"`
}

// loadRecipients reads the page of recipients the request asks for.
func (c *Console) loadRecipients(r *http.Request, s *session, id string) (recipientsView, error) {
	q := r.URL.Query()
	v := recipientsView{State: q.Get("state"), Query: digits(q.Get("q")), Cursor: q.Get("cursor")}
	if v.Query == "" {
		page, err := c.recipientPage(r, s, id, v.State, v.Cursor, recipientsPage)
		if err != nil {
			return v, err
		}
		v.List, v.NextCursor = page.Recipients, deref(page.NextCursor)
		return v, nil
	}
	v.Searched = true
	cursor := v.Cursor
	for v.Scanned < searchScan && len(v.List) < searchShown {
		page, err := c.recipientPage(r, s, id, v.State, cursor, searchPage)
		if err != nil {
			return v, err
		}
		for i, rc := range page.Recipients {
			if strings.Contains(digits(rc.Phone), v.Query) {
				v.List = append(v.List, rc)
				if len(v.List) == searchShown && i+1 < len(page.Recipients) {
					// Stop at the match: the next search begins after it.
					v.Scanned += i + 1
					v.NextCursor = strconv.FormatInt(page.Recipients[i+1].Seq, 10)
					return v, nil
				}
			}
		}
		v.Scanned += len(page.Recipients)
		cursor = deref(page.NextCursor)
		v.NextCursor = cursor
		if cursor == "" {
			break
		}
	}
	return v, nil
}

func (c *Console) recipientPage(r *http.Request, s *session, id, state, cursor string, limit int) (recipientList, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if state != "" {
		q.Set("state", state)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var page recipientList
	err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: "/v1/campaigns/" + url.PathEscape(id) + "/recipients?" + q.Encode(), key: s.apiKey}, &page)
	return page, err
}

// digits keeps the digits of a phone as typed: "+1 (202) 555" → "1202555".
func digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// NextLink is the URL of the next page of this view.
func (v recipientsView) NextLink() string {
	q := url.Values{"cursor": {v.NextCursor}}
	if v.State != "" {
		q.Set("state", v.State)
	}
	if v.Query != "" {
		q.Set("q", v.Query)
	}
	return "?" + q.Encode() + "#recipients"
}
