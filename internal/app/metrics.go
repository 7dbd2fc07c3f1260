package app

import (
	"context"
	"errors"
	"net/http"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/metrics"
	"github.com/wacampaign/wacampaign/internal/quota"
)

// APIMetricsHandler is the API's /metrics: the process's instruments, the
// gauges read from Redis at scrape time (due and waiting tasks, campaigns by
// status, credits, API calls left) and asynq's own queue metrics
// (github.com/hibiken/asynq/x/metrics).
func APIMetricsHandler(cfg Config, rdb redis.UniversalClient, svc *Services) (http.Handler, error) {
	state := metrics.NewStateCollector(metrics.State{
		Redis:     rdb,
		Cooldown:  cfg.ScaleCooldown,
		Campaigns: svc.Store.CountByStatus,
		Credits: func(ctx context.Context) (int64, int64, bool, error) {
			b, err := svc.Ledger.Balance(ctx)
			return b.Available, b.Reserved, b.Synced, err
		},
		APICallsLeft: func(ctx context.Context) (int64, bool, error) {
			q, _, err := quota.ReadLastQuota(ctx, rdb)
			if errors.Is(err, quota.ErrNotSynced) || (err == nil && q.APICallsTotal == 0) {
				return 0, false, nil // not read yet, or a provider without an API-call quota
			}
			return max(0, q.APICallsTotal-q.APICallsUsed), err == nil, err
		},
		WaitLabel: campaign.WaitLabel,
	})
	queues := asynqmetrics.NewQueueMetricsCollector(asynq.NewInspectorFromRedisClient(rdb))
	return metrics.Handler(state, queues)
}
