package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/time/rate"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// scrape reads the API's /metrics (no key: a scraper has none).
func (h *harness) scrape() string {
	h.t.Helper()
	res, err := http.Get(h.api.URL + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		h.t.Fatalf("GET /metrics: %d %s", res.StatusCode, body)
	}
	return string(body)
}

// metricValue is the value of the sample named exactly series (name and
// labels as Prometheus writes them), -1 when the scrape has none.
func metricValue(scrape, series string) float64 {
	for _, line := range strings.Split(scrape, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func TestMetricsNamesAndASentMessageMovesTheOutcomeCounter(t *testing.T) {
	h := newHarness(t)
	before := metricValue(h.scrape(), `wacampaign_messages_total{outcome="sent"}`)
	h.startWorker()
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hello {{.name}}"}},
		contacts: csvLines("phone,name", "+12025550101,Ana", "+12025550102,Bo", "+12025550103,Cy")})
	h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })

	got := h.scrape()
	after := metricValue(got, `wacampaign_messages_total{outcome="sent"}`)
	if after-max(before, 0) != 3 {
		t.Errorf("messages_total{outcome=sent} went from %v to %v; want 3 more for the 3 messages sent", before, after)
	}
	for _, series := range []string{
		`wacampaign_tasks_due`,
		`wacampaign_tasks_due_within_cooldown`,
		`wacampaign_campaigns{status="completed"}`,
		`wacampaign_campaigns{status="running"}`,
		`wacampaign_credits_available`,
		`wacampaign_credits_reserved`,
		`wacampaign_provider_requests_total{operation="send",status="200"}`,
		`wacampaign_provider_request_duration_seconds_count{operation="send"}`,
		`wacampaign_api_call_wait_seconds_count`,
		`wacampaign_pacing_lateness_seconds_count`,
		`wacampaign_api_requests_total{route="POST /v1/campaigns",status="201"}`,
		`asynq_queue_size{queue="send"}`,
	} {
		if metricValue(got, series) < 0 {
			t.Errorf("/metrics has no %s", series)
		}
	}
	if n := metricValue(got, `wacampaign_campaigns{status="completed"}`); n != 1 {
		t.Errorf("campaigns{status=completed} = %v, want 1", n)
	}
	if n := metricValue(got, `wacampaign_provider_requests_total{operation="send",status="200"}`); n < 3 {
		t.Errorf("provider_requests_total{send,200} = %v, want at least 3", n)
	}
}

// Without a worker nothing moves: the gauges count what is in asynq's sets.
func TestTasksDueCountsDueScheduledTasksAndTheCooldownLooksAhead(t *testing.T) {
	h := newHarness(t, func(_ *sandbox.Config, c *app.Config) { c.ScaleCooldown = 10 * time.Minute })
	h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"send_at", time.Now().Add(5 * time.Minute).Format(time.RFC3339)}},
		contacts: csvLines("phone", "+12025550101", "+12025550102")})
	got := h.scrape()
	if due := metricValue(got, "wacampaign_tasks_due"); due != 0 {
		t.Errorf("a campaign starting in 5 minutes: tasks_due = %v, want 0", due)
	}
	if soon := metricValue(got, "wacampaign_tasks_due_within_cooldown"); soon != 1 {
		t.Errorf("its start task is due within the 10-minute cooldown: tasks_due_within_cooldown = %v, want 1", soon)
	}
	if planned := metricValue(got, `wacampaign_tasks_waiting{queue="control",reason="planned"}`); planned != 1 {
		t.Errorf("tasks_waiting{control, planned} = %v, want 1 (the start task)", planned)
	}

	h.createCampaign(form{fields: [][2]string{{"template", "Hello"}},
		contacts: csvLines("phone", "+12025550103", "+12025550104", "+12025550105")})
	time.Sleep(1100 * time.Millisecond) // asynq's due times are whole seconds
	got = h.scrape()
	if due := metricValue(got, "wacampaign_tasks_due"); due != 3 {
		t.Errorf("three sends due now and no worker: tasks_due = %v, want 3", due)
	}
	if soon := metricValue(got, "wacampaign_tasks_due_within_cooldown"); soon != 4 {
		t.Errorf("tasks_due_within_cooldown = %v, want 4 (3 sends and the start task)", soon)
	}
}

func TestPerKeyRateLimitAnswers429WithRetryAfter(t *testing.T) {
	h := newHarness(t, func(_ *sandbox.Config, c *app.Config) {
		c.APIRateLimit = app.RateLimit{PerSecond: rate.Limit(0.2), Burst: 2}
	})
	get := func(key string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, h.api.URL+"/v1/campaigns", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusTooManyRequests && !strings.Contains(string(body), `"error_code":"rate_limit_exceeded"`) {
			t.Errorf("429 body %s: want error_code rate_limit_exceeded", body)
		}
		return res
	}
	for i := 0; i < 2; i++ {
		if res := get(h.apiKey); res.StatusCode != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i+1, res.StatusCode)
		}
	}
	res := get(h.apiKey)
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third request at once with a burst of 2: %d, want 429", res.StatusCode)
	}
	if after, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || after < 1 || after > 5 {
		t.Errorf("Retry-After %q: want whole seconds until a request is allowed (1 to 5 at 0.2/s)", res.Header.Get("Retry-After"))
	}
	if res := get("test-key-2"); res.StatusCode != http.StatusOK {
		t.Errorf("another key is limited on its own: %d, want 200", res.StatusCode)
	}
}

func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		header string
		want   int
	}{
		{"bearer " + h.apiKey, http.StatusOK},
		{"BEARER " + h.apiKey, http.StatusOK},
		{"Bearer  " + h.apiKey + " ", http.StatusOK},
		{"Basic " + h.apiKey, http.StatusUnauthorized},
		{"bearer", http.StatusUnauthorized},
	} {
		req := h.request(http.MethodGet, "/v1/campaigns", nil, "")
		req.Header.Set("Authorization", tc.header)
		if got := h.do(req).Code; got != tc.want {
			t.Errorf("Authorization %q: %d, want %d", strings.Replace(tc.header, h.apiKey, "<key>", 1), got, tc.want)
		}
	}
}

func TestAccessLogAndLifecycleLines(t *testing.T) {
	h := newHarness(t)
	core, logs := observer.New(zapcore.InfoLevel)
	api := httptest.NewServer(newServer(h.cfg, h.rdb.Client, zap.New(core)).routes())
	t.Cleanup(api.Close)
	h.api = api // the harness's helpers now call this server

	c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"send_at", time.Now().Add(time.Hour).Format(time.RFC3339)}},
		contacts: csvLines("phone", "+12025550101")})
	h.call(http.MethodGet, "/v1/campaigns/"+c.ID, "")
	h.call(http.MethodPost, "/v1/campaigns/"+c.ID+"/cancel", `{"reason":"wrong list"}`)

	var requests []map[string]any
	for _, e := range logs.FilterMessage("request").All() {
		requests = append(requests, e.ContextMap())
	}
	if len(requests) != 3 {
		t.Fatalf("%d access-log lines for 3 requests: %v", len(requests), requests)
	}
	first := requests[1]
	if first["route"] != "GET /v1/campaigns/{id}" || first["method"] != "GET" || first["status"] != int64(200) || first["duration"] == nil {
		t.Errorf("access-log line %v: want method, route pattern, status and duration", first)
	}
	if id, _ := first["key_id"].(string); id == "" || id != keyID(h.apiKey) {
		t.Errorf("key_id %v: want the key's short hash %s", first["key_id"], keyID(h.apiKey))
	}
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok && strings.Contains(s, h.apiKey) {
				t.Errorf("log line %q field %s holds the API key", e.Message, k)
			}
		}
	}
	for _, event := range []string{"campaign created", "campaign cancelled"} {
		lines := logs.FilterMessage(event).All()
		if len(lines) != 1 || lines[0].ContextMap()["campaign"] != c.ID {
			t.Errorf("%q: %d lines %v; want one naming campaign %s", event, len(lines), lines, c.ID)
		}
	}
	if got := logs.FilterMessage("campaign cancelled").All(); len(got) == 1 && got[0].ContextMap()["reason"] != "wrong list" {
		t.Errorf("the cancel line says reason %v, want the one given", got[0].ContextMap()["reason"])
	}
}
