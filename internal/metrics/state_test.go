package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/metrics"
	"github.com/wacampaign/wacampaign/internal/redistest"
)

// Tasks that went back to wait show their reason; a failure shows as one.
func TestWaitingTasksByReason(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	client := asynq.NewClientFromRedisClient(rdb)
	for i, kind := range []string{"window", "window", "quota", "boom"} {
		if _, err := client.Enqueue(asynq.NewTask("t", []byte(kind)), asynq.Queue("send"), asynq.TaskID(string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: 2, Queues: map[string]int{"send": 1}, IsFailure: campaign.IsFailure, RetryDelayFunc: campaign.RetryDelay,
		Logger: quiet{}, TaskCheckInterval: 50 * time.Millisecond,
	})
	handled := make(chan struct{}, 4)
	if err := srv.Start(asynq.HandlerFunc(func(_ context.Context, task *asynq.Task) error {
		defer func() { handled <- struct{}{} }()
		switch string(task.Payload()) {
		case "window":
			return &campaign.WaitError{Delay: time.Hour, Reason: "outside the send window"}
		case "quota":
			return &campaign.WaitError{Delay: time.Hour, Reason: campaign.ReasonWaitingForQuota}
		}
		return errors.New("the provider answered 500") // a failure: retried after a backoff
	})); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		select {
		case <-handled:
		case <-time.After(20 * time.Second):
			t.Fatal("the tasks were not run")
		}
	}
	srv.Shutdown()

	h, err := metrics.Handler(metrics.NewStateCollector(metrics.State{Redis: rdb, Cooldown: time.Minute, WaitLabel: campaign.WaitLabel}))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`wacampaign_tasks_waiting{queue="send",reason="window"} 2`,
		`wacampaign_tasks_waiting{queue="send",reason="quota"} 1`,
		`wacampaign_tasks_due 0`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics has no line %q:\n%s", want, grep(string(body), "wacampaign_tasks"))
		}
	}
	// The failure retries after a backoff of a second or two: it is
	// waiting (as a failure) or already due again, never a wait.
	if !strings.Contains(string(body), `reason="failure"} 1`) && !strings.Contains(string(body), "wacampaign_tasks_due 1\n") {
		t.Errorf("the failed task is neither waiting as a failure nor due:\n%s", grep(string(body), "wacampaign_tasks"))
	}
}

func grep(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

type quiet struct{}

func (quiet) Debug(...any) {}
func (quiet) Info(...any)  {}
func (quiet) Warn(...any)  {}
func (quiet) Error(...any) {}
func (quiet) Fatal(...any) {}
