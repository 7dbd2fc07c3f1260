package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/redistest"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// harness is the product on a throwaway Redis, sending to an in-process
// sandbox provider: the API over httptest, and workers in this process or as
// child processes that a test can kill.
type harness struct {
	t       *testing.T
	redis   *redistest.Server
	rdb     *app.Redis
	sandbox *sandbox.Server
	provURL string // the sandbox's address
	token   string // the sandbox's provider token
	cfg     app.Config
	api     *httptest.Server
	apiKey  string
	log     *zap.Logger
}

type harnessOption func(*sandbox.Config, *app.Config)

func newHarness(t *testing.T, opts ...harnessOption) *harness {
	t.Helper()
	h := &harness{t: t, redis: redistest.Start(t), token: "sandbox-token-" + t.Name(), apiKey: "test-key-1"}
	h.log = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	sbCfg := sandbox.Config{
		Token:        h.token,
		Credits:      100_000,
		SendInterval: time.Millisecond,
		DeliverAfter: time.Hour, // delivery tracking is not what these tests look at
		ReadAfter:    time.Hour,
	}
	cfg, err := app.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.RedisURL = h.redis.URL()
	cfg.APIKeys = []string{h.apiKey, "test-key-2"}
	cfg.TimelinesToken = h.token
	cfg.SendInterval = time.Millisecond
	cfg.APICallsPerSecond = 5000
	cfg.WorkerConcurrency = 8
	cfg.TemplatesDir = filepath.Join("..", "..", "templates")
	cfg.ShutdownTimeout = 5 * time.Second
	// Unconfirmed sends are looked up at once, and resent a second later
	// when the sandbox never got them.
	cfg.ReconcileAfter, cfg.ReconcileMaxAge = 200*time.Millisecond, time.Second
	cfg.APIRateLimit = app.RateLimit{} // tests poll faster than a client should (observe_test.go tests the limit)
	for _, o := range opts {
		o(&sbCfg, &cfg)
	}
	h.sandbox = sandbox.New(sbCfg)
	prov := httptest.NewServer(h.sandbox)
	t.Cleanup(prov.Close)
	h.provURL = prov.URL
	cfg.TimelinesBaseURL = prov.URL
	h.cfg = cfg

	h.rdb, err = app.OpenRedis(t.Context(), cfg, app.ForAPI, h.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.rdb.Close)
	redistest.GuardSlots(t, h.rdb.Client)
	srv := newServer(cfg, h.rdb.Client, h.log)
	t.Cleanup(srv.Close)
	h.api = httptestServer(t, srv)
	return h
}

// httptestServer serves the API until the test ends.
func httptestServer(t *testing.T, srv *server) *httptest.Server {
	s := httptest.NewServer(srv.routes())
	t.Cleanup(s.Close)
	return s
}

// startWorker runs a worker in this process until the test ends, on a Redis
// connection of its own, as a separate process would have.
func (h *harness) startWorker(opts ...app.WorkerOption) *app.Worker {
	h.t.Helper()
	rdb, err := app.OpenRedis(h.t.Context(), h.cfg, app.ForWorker, h.log)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(rdb.Close)
	redistest.GuardSlots(h.t, rdb.Client)
	prov, err := app.OpenProvider(h.cfg, quota.NewCallLimiter(rdb.Client, h.cfg.APICallsPerSecond), h.log)
	if err != nil {
		h.t.Fatal(err)
	}
	w := app.NewWorker(h.cfg, rdb, prov, h.log, opts...)
	if err := w.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(w.Shutdown)
	return w
}

// startWorkers starts n workers.
func (h *harness) startWorkers(n int) {
	for i := 0; i < n; i++ {
		h.startWorker()
	}
}

// call sends a JSON request to the API and decodes the answer.
func (h *harness) call(method, path, body string) apiResponse {
	h.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return h.do(h.request(method, path, r, "application/json"))
}

var (
	workerBinOnce sync.Once
	workerBin     string
	workerBinErr  error
)

// startWorkerProcess runs cmd/campaign-worker as a child process, so that a
// test can kill it the way a crash or an OOM kill would.
func (h *harness) startWorkerProcess(env ...string) *exec.Cmd {
	h.t.Helper()
	workerBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "campaign-worker-bin")
		if err != nil {
			workerBinErr = err
			return
		}
		workerBin = filepath.Join(dir, "campaign-worker")
		out, err := exec.Command("go", "build", "-race", "-o", workerBin, "../campaign-worker").CombinedOutput()
		if err != nil {
			workerBinErr = fmt.Errorf("build worker: %v\n%s", err, out)
		}
	})
	if workerBinErr != nil {
		h.t.Fatal(workerBinErr)
	}
	cmd := exec.Command(workerBin)
	cmd.Env = append(os.Environ(),
		"REDIS_URL="+h.cfg.RedisURL,
		"TIMELINES_API_TOKEN="+h.token,
		"TIMELINES_BASE_URL="+h.provURL,
		"SEND_INTERVAL="+h.cfg.SendInterval.String(),
		fmt.Sprintf("API_CALLS_PER_SECOND=%d", h.cfg.APICallsPerSecond),
		fmt.Sprintf("WORKER_CONCURRENCY=%d", h.cfg.WorkerConcurrency),
		"RECONCILE_AFTER="+h.cfg.ReconcileAfter.String(),
		"RECONCILE_MAX_AGE="+h.cfg.ReconcileMaxAge.String(),
		"LOG_LEVEL=warn",
	)
	cmd.Env = append(cmd.Env, env...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if h.t.Failed() {
			h.t.Logf("worker process output:\n%s", logs.String())
		}
	})
	return cmd
}

// form is a multipart upload: fields in order, then the contacts file.
type form struct {
	fields   [][2]string
	contacts []byte
	noFile   bool
}

func (f form) encode(t *testing.T) (io.Reader, string) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for _, kv := range f.fields {
		if err := w.WriteField(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if !f.noFile {
		part, err := w.CreateFormFile("contacts", "contacts.csv")
		if err != nil {
			t.Fatal(err)
		}
		part.Write(f.contacts)
	}
	w.Close()
	return &body, w.FormDataContentType()
}

// apiResponse is an answer of the v1 API, decoded.
type apiResponse struct {
	Code      int
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	Message   string          `json:"message"`
	ErrorCode string          `json:"error_code"`
	Errors    []struct {
		Fields []string `json:"fields"`
		Msg    string   `json:"msg"`
	} `json:"errors"`
	Raw string
}

func (h *harness) do(req *http.Request) apiResponse {
	h.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := apiResponse{Code: res.StatusCode, Raw: string(raw)}
	if err := json.Unmarshal(raw, &out); err != nil {
		h.t.Fatalf("%s %s answered %d with a body that is not JSON: %q", req.Method, req.URL.Path, res.StatusCode, raw)
	}
	return out
}

func (h *harness) request(method, path string, body io.Reader, contentType string) *http.Request {
	req, err := http.NewRequest(method, h.api.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.apiKey)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

func (h *harness) upload(f form) apiResponse {
	h.t.Helper()
	body, ct := f.encode(h.t)
	return h.do(h.request(http.MethodPost, "/v1/campaigns", body, ct))
}

// createCampaign uploads and expects 201.
func (h *harness) createCampaign(f form) campaign.Campaign {
	h.t.Helper()
	res := h.upload(f)
	if res.Code != http.StatusCreated {
		h.t.Fatalf("create campaign: %d %s", res.Code, res.Raw)
	}
	var c campaign.Campaign
	if err := json.Unmarshal(res.Data, &c); err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) campaign(id string) campaign.Campaign {
	h.t.Helper()
	res := h.do(h.request(http.MethodGet, "/v1/campaigns/"+id, nil, ""))
	if res.Code != http.StatusOK {
		h.t.Fatalf("get campaign: %d %s", res.Code, res.Raw)
	}
	var c campaign.Campaign
	if err := json.Unmarshal(res.Data, &c); err != nil {
		h.t.Fatal(err)
	}
	return c
}

// waitCampaign polls the API until cond holds, failing after timeout with
// the last state seen. Polling, not sleeping, is the synchronisation.
func (h *harness) waitCampaign(id string, timeout time.Duration, what string, cond func(campaign.Campaign) bool) campaign.Campaign {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c := h.campaign(id)
		if cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("campaign %s: not %s after %s; last seen: status %s (%s), counts %+v", id, what, timeout, c.Status, c.Reason, c.Counts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recipients reads every recipient of a campaign through the paged API.
func (h *harness) recipients(id, state string) []campaign.Recipient {
	h.t.Helper()
	var all []campaign.Recipient
	cursor := ""
	for {
		path := "/v1/campaigns/" + id + "/recipients?limit=200"
		if state != "" {
			path += "&state=" + state
		}
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		res := h.do(h.request(http.MethodGet, path, nil, ""))
		if res.Code != http.StatusOK {
			h.t.Fatalf("recipients: %d %s", res.Code, res.Raw)
		}
		var page struct {
			Recipients []campaign.Recipient `json:"recipients"`
			NextCursor *string              `json:"next_cursor"`
		}
		if err := json.Unmarshal(res.Data, &page); err != nil {
			h.t.Fatal(err)
		}
		all = append(all, page.Recipients...)
		if page.NextCursor == nil {
			return all
		}
		cursor = *page.NextCursor
	}
}

// sentTo counts the messages the sandbox accepted, per recipient phone.
func (h *harness) sentTo() map[string][]sandbox.Message {
	out := map[string][]sandbox.Message{}
	for _, m := range h.sandbox.Messages() {
		out[m.Recipient] = append(out[m.Recipient], m)
	}
	return out
}

func countsAddUp(c campaign.Counts) bool { return c.Sum() == c.Total }

func csvLines(lines ...string) []byte { return []byte(strings.Join(lines, "\n") + "\n") }

// part is one part of a hand-ordered multipart form.
type part struct {
	name, data string
	file       bool
}

func multipartInOrder(t *testing.T, parts []part) (io.Reader, string) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for _, p := range parts {
		var err error
		if p.file {
			var fw io.Writer
			fw, err = w.CreateFormFile(p.name, p.name+".csv")
			if err == nil {
				_, err = io.WriteString(fw, p.data)
			}
		} else {
			err = w.WriteField(p.name, p.data)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return &body, w.FormDataContentType()
}

func idOf(t *testing.T, res apiResponse) string {
	t.Helper()
	var c struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(res.Data, &c); err != nil || c.ID == "" {
		t.Fatalf("no campaign id in %s", res.Raw)
	}
	return c.ID
}
