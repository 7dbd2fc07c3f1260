//go:build linux

package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// APIClient talks to a campaign-api child the way a customer does: over
// HTTP with a Bearer key.
type APIClient struct {
	base string // http://host:port
	key  string
	http *http.Client
}

// NewAPIClient is a client of the API at base (http://host:port). Its
// requests may last long (a big upload); callers bound them with contexts.
func NewAPIClient(base, key string) *APIClient {
	return &APIClient{base: base, key: key, http: &http.Client{Timeout: 15 * time.Minute}}
}

// Counts are a campaign's recipients by state, as the API answers them
// (Unconfirmed is 0 from binaries older than the state).
type Counts = campaign.Counts

// Campaign is the part of the API's campaign the harness programs read.
type Campaign struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	Reason        string `json:"reason"`
	Counts        Counts `json:"counts"`
	Duplicates    int64  `json:"duplicates"`
	RejectedCount int64  `json:"rejected_count"`
	Rejected      []struct {
		Row int    `json:"row"`
		Msg string `json:"msg"`
	} `json:"rejected"`
}

// Recipient is one entry of GET /v1/campaigns/{id}/recipients.
type Recipient struct {
	Seq        int64      `json:"seq"`
	Phone      string     `json:"phone"`
	State      string     `json:"state"`
	Reason     string     `json:"reason"`
	Account    string     `json:"account"`
	MessageUID string     `json:"message_uid"`
	UpdatedAt  *time.Time `json:"updated_at"`
}

// Field is one form field of POST /v1/campaigns.
type Field struct{ Name, Value string }

// CreateCampaign posts the form fields, then contacts as the last part (the
// documented order that lets the import start while the file uploads). The
// body is streamed through a pipe, so a file is read from disk as the
// request goes and never sits in this process's memory.
func (a *APIClient) CreateCampaign(ctx context.Context, fields []Field, contacts io.Reader) (*Campaign, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		pw.CloseWithError(writeForm(mw, fields, contacts))
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/v1/campaigns", pr)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	var c Campaign
	if err := a.do(req, http.StatusCreated, &c); err != nil {
		return nil, fmt.Errorf("POST /v1/campaigns: %w", err)
	}
	return &c, nil
}

func writeForm(mw *multipart.Writer, fields []Field, contacts io.Reader) error {
	for _, f := range fields {
		if err := mw.WriteField(f.Name, f.Value); err != nil {
			return err
		}
	}
	part, err := mw.CreateFormFile("contacts", "contacts.csv")
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, contacts); err != nil {
		return err
	}
	return mw.Close()
}

// GetCampaign reads GET /v1/campaigns/{id}.
func (a *APIClient) GetCampaign(ctx context.Context, id string) (*Campaign, error) {
	var c Campaign
	if err := a.get(ctx, "/v1/campaigns/"+url.PathEscape(id), &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Recipients reads every recipient of a campaign, page by page
// (next_cursor), in upload order.
func (a *APIClient) Recipients(ctx context.Context, id string) ([]Recipient, error) {
	var all []Recipient
	cursor := ""
	for {
		path := "/v1/campaigns/" + url.PathEscape(id) + "/recipients?limit=1000"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Recipients []Recipient `json:"recipients"`
			NextCursor *string     `json:"next_cursor"`
		}
		if err := a.get(ctx, path, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Recipients...)
		if page.NextCursor == nil || *page.NextCursor == "" {
			return all, nil
		}
		cursor = *page.NextCursor
	}
}

// CreditsSynced reports whether GET /v1/quota says the credit ledger has
// read the provider's quota.
func (a *APIClient) CreditsSynced(ctx context.Context) bool {
	var q struct {
		Credits struct {
			Synced bool `json:"synced"`
		} `json:"credits"`
	}
	return a.get(ctx, "/v1/quota", &q) == nil && q.Credits.Synced
}

// get sends GET path and decodes the envelope's data into out.
func (a *APIClient) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	if err := a.do(req, http.StatusOK, out); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// do sends req and decodes the envelope's data into out.
func (a *APIClient) do(req *http.Request, want int, out any) error {
	req.Header.Set("Authorization", "Bearer "+a.key)
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("answered %d: %s", resp.StatusCode, Clip(string(body), 500))
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("answer is not the API's envelope: %w: %s", err, Clip(string(body), 200))
	}
	return json.Unmarshal(env.Data, out)
}

// Clip shortens s to n bytes for a message, marking the cut.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
