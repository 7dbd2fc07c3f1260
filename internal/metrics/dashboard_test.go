package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wacampaign/wacampaign/internal/redistest"
)

var fqName = regexp.MustCompile(`fqName: "([a-z_]+)"`)

// published is every metric name the API and the workers can publish.
// asynq's collector describes what it collects, so it needs a Redis with a
// queue.
func published(t *testing.T) map[string]bool {
	rdb := redistest.Start(t).Client(t)
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	if _, err := client.Enqueue(asynq.NewTask("t", nil), asynq.Queue("send")); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 256)
	for _, c := range []prometheus.Collector{messages, providerRequests, providerLatency, providerErrors, apiCallWait,
		pacingLateness, taskWaits, apiRequests, NewStateCollector(State{Redis: rdb}),
		asynqmetrics.NewQueueMetricsCollector(asynq.NewInspectorFromRedisClient(rdb))} {
		c.Describe(ch)
	}
	close(ch)
	out := map[string]bool{}
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			out[m[1]] = true
		}
	}
	return out
}

// TestDashboardQueriesPublishedMetrics keeps deploy/grafana/wacampaign.json
// true: every metric its panels query is one the product publishes.
func TestDashboardQueriesPublishedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/grafana/wacampaign.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	names := published(t)
	metric := regexp.MustCompile(`\b(?:wacampaign|asynq)_[a-z_]+`)
	queried := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, m := range metric.FindAllString(target.Expr, -1) {
				base := m
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					base = strings.TrimSuffix(base, suffix)
				}
				queried++
				if !names[base] {
					t.Errorf("panel %q queries %s, which nothing publishes", p.Title, m)
				}
			}
		}
	}
	for _, must := range []string{"wacampaign_tasks_due", "wacampaign_tasks_due_within_cooldown", "wacampaign_messages_total"} {
		if !names[must] || !strings.Contains(string(raw), must) {
			t.Errorf("%s: published %v, on the dashboard %v", must, names[must], strings.Contains(string(raw), must))
		}
	}
	if queried < 10 {
		t.Errorf("only %d metric references found in the dashboard", queried)
	}
}
