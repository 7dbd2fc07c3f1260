package sandbox

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

const testToken = "sandbox-test-token"

// testClock is a clock the test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock {
	return &testClock{t: time.Date(2025, 3, 10, 9, 0, 0, 0, time.FixedZone("", 2*3600))}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// start serves a sandbox on a loopback port for the test's duration.
func start(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	s := New(cfg)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

// response is an answer as a test sees it.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic envelope.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("answer %d is not JSON: %v: %s", r.status, err, r.body)
	}
	return v
}

// errorCode is the error_code of a JSON error answer.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	code, _ := r.json(t)["error_code"].(string)
	return code
}

// fieldErrors are the errors[] of a JSON error answer.
func (r response) fieldErrors(t *testing.T) []fieldError {
	t.Helper()
	var v struct {
		Errors []fieldError `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, r.body)
	}
	return v.Errors
}

// uid is the message_uid of a send's answer.
func (r response) uid(t *testing.T) string {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("send answered %d: %s", r.status, r.body)
	}
	var v struct {
		Status string `json:"status"`
		Data   struct {
			MessageUID string `json:"message_uid"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || v.Status != "ok" || v.Data.MessageUID == "" {
		t.Fatalf("send answer has no message_uid: %s", r.body)
	}
	return v.Data.MessageUID
}

// call makes one request with the test token. body may be nil, a string
// (sent as is) or a value to encode as JSON.
func call(t *testing.T, ts *httptest.Server, method, path string, body any) response {
	t.Helper()
	return callWithAuth(t, ts, method, path, "Bearer "+testToken, body)
}

func callWithAuth(t *testing.T, ts *httptest.Server, method, path, authorization string, body any) response {
	t.Helper()
	var reader io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		reader = bytes.NewBufferString(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, ts.URL+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if reader != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// quota reads GET /quotas.
type quotaView struct {
	Data struct {
		Messaging struct {
			Total     int64  `json:"total"`
			Used      int64  `json:"used"`
			PeriodEnd string `json:"period_end"`
		} `json:"messaging_quota"`
		APICalls struct {
			Total int64 `json:"total"`
			Used  int64 `json:"used"`
		} `json:"api_calls_quota"`
		NonRecurring struct {
			RemainingBalance int64 `json:"remaining_balance"`
		} `json:"non_recurring_quota"`
	} `json:"data"`
}

func readQuota(t *testing.T, ts *httptest.Server) quotaView {
	t.Helper()
	r := call(t, ts, "GET", "/quotas", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /quotas: %d %s", r.status, r.body)
	}
	var q quotaView
	if err := json.Unmarshal(r.body, &q); err != nil {
		t.Fatal(err)
	}
	return q
}

type historyEntry struct {
	Status    string `json:"status"`
	Timestamp string `json:"timestamp"`
}

func readHistory(t *testing.T, ts *httptest.Server, uid string) []historyEntry {
	t.Helper()
	r := call(t, ts, "GET", "/messages/"+uid+"/status_history", nil)
	if r.status != http.StatusOK {
		t.Fatalf("status_history: %d %s", r.status, r.body)
	}
	var v struct {
		Data []historyEntry `json:"data"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatal(err)
	}
	return v.Data
}

func statuses(h []historyEntry) []string {
	out := []string{}
	for _, e := range h {
		out = append(out, e.Status)
	}
	return out
}

// text is a send body to a phone.
func text(phone, body string) map[string]any {
	return map[string]any{"phone": phone, "text": body}
}
