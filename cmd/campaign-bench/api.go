//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"time"
)

// apiClient talks to a campaign-api child the way a customer does: over
// HTTP with a Bearer key.
type apiClient struct {
	base string // http://host:port
	key  string
	http *http.Client
}

func newAPIClient(base, key string) *apiClient {
	return &apiClient{base: base, key: key, http: &http.Client{Timeout: 15 * time.Minute}}
}

// campaignView is the part of the API's campaign the benchmark reads.
type campaignView struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Reason string `json:"reason"`
	Counts struct {
		Total   int64 `json:"total"`
		Queued  int64 `json:"queued"`
		Sending int64 `json:"sending"`
		Sent    int64 `json:"sent"`
		Failed  int64 `json:"failed"`
		Skipped int64 `json:"skipped"`
		Unknown int64 `json:"unknown"`
	} `json:"counts"`
	Duplicates    int64 `json:"duplicates"`
	RejectedCount int64 `json:"rejected_count"`
	Rejected      []struct {
		Row int    `json:"row"`
		Msg string `json:"msg"`
	} `json:"rejected"`
}

// field is one form field of POST /v1/campaigns.
type field struct{ name, value string }

// createCampaign posts the form fields, then contacts as the last part (the
// documented order that lets the import start while the file uploads). The
// body is streamed through a pipe, so the file is read from disk as the
// request goes and never sits in this process's memory.
func (a *apiClient) createCampaign(ctx context.Context, fields []field, contacts io.Reader) (*campaignView, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			for _, f := range fields {
				if err := mw.WriteField(f.name, f.value); err != nil {
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
		}()
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/v1/campaigns", pr)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	var c campaignView
	if err := a.do(req, http.StatusCreated, &c); err != nil {
		return nil, fmt.Errorf("POST /v1/campaigns: %w", err)
	}
	return &c, nil
}

// getCampaign reads GET /v1/campaigns/{id}.
func (a *apiClient) getCampaign(ctx context.Context, id string) (*campaignView, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/v1/campaigns/"+id, nil)
	if err != nil {
		return nil, err
	}
	var c campaignView
	if err := a.do(req, http.StatusOK, &c); err != nil {
		return nil, fmt.Errorf("GET /v1/campaigns/%s: %w", id, err)
	}
	return &c, nil
}

// do sends req and decodes the envelope's data into out.
func (a *apiClient) do(req *http.Request, want int, out any) error {
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
		return fmt.Errorf("answered %d: %s", resp.StatusCode, clip(string(body), 500))
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("answer is not the API's envelope: %w: %s", err, clip(string(body), 200))
	}
	return json.Unmarshal(env.Data, out)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// creditsSynced reports whether GET /v1/quota says the credit ledger has
// read the provider's quota.
func (a *apiClient) creditsSynced(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/v1/quota", nil)
	if err != nil {
		return false
	}
	var q struct {
		Credits struct {
			Synced bool `json:"synced"`
		} `json:"credits"`
	}
	return a.do(req, http.StatusOK, &q) == nil && q.Credits.Synced
}
