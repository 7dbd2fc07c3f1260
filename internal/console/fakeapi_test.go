package console

import (
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// fakeAPI stands in for the v1 API in the handler tests: it answers a few
// endpoints in the API's envelopes and records every request the console
// made, so a test can check what the console sent on the user's behalf.
// The real API is behind the console in the browser suite.
type fakeAPI struct {
	key string // the one API key it accepts

	mu       sync.Mutex
	requests []seenRequest

	// eventsGate, when set, holds the events stream after its first event
	// until it is closed.
	eventsGate chan struct{}

	// unmetered makes GET /v1/quota answer as for a provider without
	// credits (the gateway).
	unmetered atomic.Bool
}

// seenRequest is what the fake API received.
type seenRequest struct {
	Method, Path, Auth, IdempotencyKey string
	Parts                              map[string]string // multipart fields and the file's content
	PartOrder                          []string
	FileName                           string
	Body                               string
}

func (f *fakeAPI) seen() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.requests...)
}

// calls are the requests of method and path (with its query) it received.
func (f *fakeAPI) calls(method, path string) []seenRequest {
	var out []seenRequest
	for _, r := range f.seen() {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	seen := seenRequest{Method: r.Method, Path: r.URL.RequestURI(), Auth: r.Header.Get("Authorization"), IdempotencyKey: r.Header.Get("Idempotency-Key")}
	if mr, err := r.MultipartReader(); err == nil {
		seen.Parts = map[string]string{}
		for part, err := mr.NextPart(); err == nil; part, err = mr.NextPart() {
			b, _ := io.ReadAll(part)
			seen.Parts[part.FormName()] = string(b)
			seen.PartOrder = append(seen.PartOrder, part.FormName())
			if part.FileName() != "" {
				seen.FileName = part.FileName()
			}
		}
	} else {
		b, _ := io.ReadAll(r.Body)
		seen.Body = string(b)
	}
	f.mu.Lock()
	f.requests = append(f.requests, seen)
	f.mu.Unlock()
	if seen.Auth != "Bearer "+f.key {
		apiError(w, http.StatusUnauthorized, "invalid_token", "the API key is not valid", nil)
		return
	}
	f.answer(w, r, seen)
}

func (f *fakeAPI) answer(w http.ResponseWriter, r *http.Request, seen seenRequest) {
	switch {
	case r.Method == "GET" && r.URL.Path == "/v1/campaigns":
		apiOK(w, http.StatusOK, map[string]any{"campaigns": []any{fakeCampaign("c1", "running")}, "next_after": nil})
	case r.Method == "GET" && r.URL.Path == "/v1/campaigns/c1":
		apiOK(w, http.StatusOK, fakeCampaign("c1", "running"))
	case r.Method == "GET" && r.URL.Path == "/v1/campaigns/ab":
		c := fakeCampaign("ab", "completed")
		c["variants"] = []map[string]any{
			{"name": "A", "template": "Hi", "weight": 1, "funnel": map[string]any{"sent": 40, "read": 10, "read_rate": 25.0}},
			{"name": "B", "template": "Hello", "weight": 1, "funnel": map[string]any{"sent": 60, "read": 30, "read_rate": 50.0, "opted_out": 1, "opt_out_rate": 1.7}},
		}
		c["winner"] = map[string]any{"test_share": 0.2, "after": "2h", "metric": "read_rate", "decide_at": "2026-11-30T11:00:00Z",
			"variant": "B", "why": "B by read_rate: A 25.0 % of 40 sent (opt-outs 0.0 %); B 50.0 % of 60 sent (opt-outs 1.7 %)"}
		apiOK(w, http.StatusOK, c)
	case r.Method == "GET" && r.URL.Path == "/v1/campaigns/ab/recipients":
		apiOK(w, http.StatusOK, map[string]any{"recipients": []any{}, "next_cursor": nil})
	case r.Method == "GET" && r.URL.Path == "/v1/campaigns/c1/recipients":
		apiOK(w, http.StatusOK, map[string]any{"recipients": []any{}, "next_cursor": nil})
	case r.Method == "POST" && r.URL.Path == "/v1/campaigns/c1/pause":
		apiError(w, http.StatusConflict, "conflict", "cannot pause a campaign that is completed",
			[]apiProblem{{Fields: []string{"status"}, Msg: "the campaign is completed"}})
	case r.Method == "GET" && r.URL.Path == "/v1/templates":
		apiOK(w, http.StatusOK, map[string]any{"templates": []shippedTemplate{{Name: "welcome", Text: "Hi {{.name}}"}}})
	case r.Method == "POST" && r.URL.Path == "/v1/campaigns":
		if strings.Contains(seen.Parts["template"], "nope") {
			apiError(w, http.StatusBadRequest, "validation_error", `the template uses the column "nope", which the contacts lack`,
				[]apiProblem{{Fields: []string{"template"}, Msg: `the template uses the column "nope", which the contacts lack (found: name, phone)`}})
			return
		}
		apiOK(w, http.StatusCreated, fakeCampaign("c2", "running"))
	case r.Method == "GET" && r.URL.Path == "/v1/campaigns/c1/events":
		f.events(w)
	case r.Method == "GET" && r.URL.Path == "/v1/accounts":
		apiOK(w, http.StatusOK, map[string]any{"accounts": []any{map[string]any{"phone": "+14155550100", "status": "active", "send_interval": "2s"}}})
	case r.Method == "GET" && r.URL.Path == "/v1/provider":
		apiOK(w, http.StatusOK, f.provider())
	case r.Method == "GET" && r.URL.Path == "/v1/quota":
		apiOK(w, http.StatusOK, f.quota())
	case strings.HasPrefix(r.URL.Path, "/v1/campaigns/d1"):
		f.draft(w, r, seen)
	case strings.HasPrefix(r.URL.Path, "/v1/suppressions"):
		f.suppressions(w, r, seen)
	default:
		apiError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path, nil)
	}
}

// quota is GET /v1/quota: 1,234 credits left of a metered provider, or
// "not metered".
func (f *fakeAPI) quota() map[string]any {
	if f.unmetered.Load() {
		return map[string]any{"credits": map[string]any{"metered": false, "status": "not metered"}, "campaigns": []any{}}
	}
	return map[string]any{"credits": map[string]any{"metered": true, "available": 1234, "synced": true}, "needed": 0, "campaigns": []any{}}
}

// provider is GET /v1/provider: TimelinesAI's capabilities, or with
// unmetered the gateway's.
func (f *fakeAPI) provider() map[string]any {
	if f.unmetered.Load() {
		return map[string]any{"name": "the gateway", "typing_simulation": true, "recipient_keys": []string{"phone", "jid"}}
	}
	return map[string]any{"name": "TimelinesAI", "attachments": true, "labels": true, "metered_credits": true, "recipient_keys": []string{"phone", "jid", "chat_id"}}
}

// events writes one campaign event, waits at the gate, then ends.
func (f *fakeAPI) events(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	b, _ := json.Marshal(fakeCampaign("c1", "running"))
	fmt.Fprintf(w, "event: campaign\ndata: %s\n\n", b)
	w.(http.Flusher).Flush()
	if f.eventsGate != nil {
		<-f.eventsGate
	}
	done, _ := json.Marshal(fakeCampaign("c1", "completed"))
	fmt.Fprintf(w, "event: campaign\ndata: %s\n\nevent: end\ndata: {}\n\n", done)
}

func fakeCampaign(id, status string) map[string]any {
	return map[string]any{
		"id": id, "name": "Spring launch", "status": status, "created_at": "2026-11-30T09:00:00Z",
		"counts": map[string]int{"total": 2500, "queued": 1266, "sent": 1234},
		"funnel": map[string]any{"accepted": 1234}, "columns": []string{"name", "phone"}, "phone_column": "phone",
	}
}

func apiOK(w http.ResponseWriter, status int, data any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok", "data": data})
}

func apiError(w http.ResponseWriter, status int, code, msg string, problems []apiProblem) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "error", "message": msg, "error_code": code, "errors": problems})
}

// multipartBody is a browser's upload form: fields in order, the file
// where fileAt says (-1: none).
func multipartBody(fields [][2]string, fileName, fileBody string, fileAt int) (io.Reader, string) {
	var b strings.Builder
	mw := multipart.NewWriter(&b)
	for i, kv := range fields {
		if i == fileAt {
			fw, _ := mw.CreateFormFile("contacts", fileName)
			_, _ = io.WriteString(fw, fileBody)
		}
		_ = mw.WriteField(kv[0], kv[1])
	}
	if fileAt >= len(fields) {
		fw, _ := mw.CreateFormFile("contacts", fileName)
		_, _ = io.WriteString(fw, fileBody)
	}
	_ = mw.Close()
	return strings.NewReader(b.String()), mw.FormDataContentType()
}

// draft answers the endpoints of d1, a draft of the example file with
// Dana's empty city.
func (f *fakeAPI) draft(w http.ResponseWriter, r *http.Request, seen seenRequest) {
	d1 := fakeCampaign("d1", "draft")
	d1["template"], d1["columns"] = "Hi {{.name}}, our sale is on in {{.city}}!", []string{"name", "phone", "city"}
	switch r.Method + " " + r.URL.Path {
	case "GET /v1/campaigns/d1":
		apiOK(w, http.StatusOK, d1)
	case "GET /v1/campaigns/d1/preview":
		apiOK(w, http.StatusOK, map[string]any{
			"campaign_id": "d1", "status": "draft", "max_length": 2000, "warned": 1,
			"rows":     map[string]int{"read": 7, "valid": 5, "duplicates": 1, "rejected": 1},
			"rejected": []any{map[string]any{"row": 7, "msg": `column "phone": phone "12345" is not a valid number`}},
			"messages": []any{
				map[string]any{"row": 2, "seq": 0, "phone": "+12025550143", "text": "Hi Ana, our sale is on in Washington!", "length": 37, "credits": 1, "warnings": []any{}},
				map[string]any{"row": 5, "seq": 3, "phone": "+12025550198", "text": "Hi Dana, our sale is on in !", "length": 28, "credits": 1,
					"warnings": []any{map[string]any{"code": "empty_field", "field": "city", "msg": "row 5 has no city, which leaves a gap in the message"}}},
			},
			"credits": map[string]any{"estimated": 5, "spent": 0, "needed": 5, "available": 3, "shortfall": 2},
			"waiting": []any{map[string]any{"cause": "quota", "reason": "waiting for quota: 2 recipients wait until credits are added", "recipients": 2}},
		})
	case "GET /v1/campaigns/d1/test":
		apiOK(w, http.StatusOK, map[string]any{"tests": []any{map[string]any{"id": "d1.t1", "campaign_id": "d1", "phone": "+14155550199",
			"text": "Hi Ana", "created_at": "2026-11-30T09:00:00Z", "state": "sent", "history": []any{}}}})
	case "GET /v1/campaigns/d1/recipients":
		apiOK(w, http.StatusOK, map[string]any{"recipients": []any{}, "next_cursor": nil})
	case "PATCH /v1/campaigns/d1":
		if strings.Contains(seen.Body, "first_name") {
			apiError(w, http.StatusBadRequest, "validation_error", `the template uses the column "first_name", which the contacts lack`,
				[]apiProblem{{Fields: []string{"template"}, Msg: `the template uses the column "first_name", which the contacts lack`}})
			return
		}
		apiOK(w, http.StatusOK, d1)
	case "POST /v1/campaigns/d1/start":
		d1["status"] = "running"
		if strings.Contains(seen.Body, "send_at") {
			d1["status"] = "scheduled"
		}
		apiOK(w, http.StatusOK, d1)
	case "POST /v1/campaigns/d1/test":
		apiOK(w, http.StatusCreated, map[string]any{"id": "d1.t2", "state": "queued"})
	case "DELETE /v1/campaigns/d1":
		apiOK(w, http.StatusOK, map[string]any{"id": "d1", "deleted": true})
	default:
		apiError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path, nil)
	}
}

// suppressions answers the suppression list's endpoints: one entry, a
// refused phone, a removal.
func (f *fakeAPI) suppressions(w http.ResponseWriter, r *http.Request, seen seenRequest) {
	switch r.Method + " " + r.URL.Path {
	case "GET /v1/suppressions":
		apiOK(w, http.StatusOK, map[string]any{"total": 1, "next_cursor": nil, "suppressions": []any{map[string]any{
			"address": "+14155550123", "reason": "Stop", "source": "keyword", "at": "2026-11-30T04:31:00Z",
			"why": `replied "Stop" on 2026-11-30 04:31 UTC to campaign c1`, "campaign": "c1"}}})
	case "POST /v1/suppressions":
		if strings.Contains(seen.Body, "nope") {
			apiError(w, http.StatusBadRequest, "validation_error", `phone "nope" is not a phone number`,
				[]apiProblem{{Fields: []string{"phone"}, Msg: `phone "nope" is not a phone number`}})
			return
		}
		apiOK(w, http.StatusCreated, map[string]any{"address": "+14155550124"})
	case "DELETE /v1/suppressions/+14155550123":
		apiOK(w, http.StatusOK, map[string]any{"address": "+14155550123", "removed": true})
	default:
		apiError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path, nil)
	}
}
