package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// State is what the Redis gauges are read from when the API is scraped.
// The campaign and quota parts are functions, so this package needs
// neither (they count into it).
type State struct {
	Redis redis.UniversalClient
	// Cooldown is SCALE_COOLDOWN: the window of tasks_due_within_cooldown.
	Cooldown time.Duration
	// Campaigns counts campaigns by status.
	Campaigns func(ctx context.Context) (map[string]int64, error)
	// Credits reads the credit ledger; ok is false before its first sync.
	Credits func(ctx context.Context) (available, reserved int64, ok bool, err error)
	// APICallsLeft reads the provider's API calls left this period; ok is
	// false before the first quota read.
	APICallsLeft func(ctx context.Context) (left int64, ok bool, err error)
	// WaitLabel names the wait a retried task's last error is ("" for a
	// failure): campaign.WaitLabel.
	WaitLabel func(lastErr string) string
}

// waitSample bounds how many retry tasks a scrape reads to tell their
// reasons: the ones due soonest. The rest count as "unsampled".
const waitSample = 500

// scrapeTimeout bounds the Redis reads of one scrape.
const scrapeTimeout = 5 * time.Second

var (
	tasksDueDesc = prometheus.NewDesc(Namespace+"_tasks_due",
		"Tasks that may run now in every queue: pending, plus scheduled and retry tasks whose time has come (KEDA scales workers on it).", nil, nil)
	tasksDueSoonDesc = prometheus.NewDesc(Namespace+"_tasks_due_within_cooldown",
		"Tasks due now or within SCALE_COOLDOWN (KEDA keeps a worker while it is above 0).", nil, nil)
	queueDueDesc = prometheus.NewDesc(Namespace+"_queue_tasks_due",
		"Tasks that may run now, by queue.", []string{"queue"}, nil)
	waitingDesc = prometheus.NewDesc(Namespace+"_tasks_waiting",
		"Tasks not yet due, by queue and reason: planned (scheduled by pacing or a start time), a wait's kind (pacing, quota, account, window, api_calls, poll_budget, rate_limit, upload, claim, other), failure (a retry after an error), unsampled (retry tasks past the sample read).",
		[]string{"queue", "reason"}, nil)
	campaignsDesc = prometheus.NewDesc(Namespace+"_campaigns",
		"Campaigns by status.", []string{"status"}, nil)
	creditsAvailableDesc = prometheus.NewDesc(Namespace+"_credits_available",
		"Credits the ledger may still reserve (after the last quota read).", nil, nil)
	creditsReservedDesc = prometheus.NewDesc(Namespace+"_credits_reserved",
		"Credits held by sends in flight.", nil, nil)
	apiCallsLeftDesc = prometheus.NewDesc(Namespace+"_api_calls_left",
		"The provider's API calls left this period, as last read.", nil, nil)
)

// stateCollector reads State at scrape time.
type stateCollector struct {
	s         State
	inspector *asynq.Inspector
}

// NewStateCollector is the collector of the Redis gauges.
func NewStateCollector(s State) prometheus.Collector {
	return &stateCollector{s: s, inspector: asynq.NewInspectorFromRedisClient(s.Redis)}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{tasksDueDesc, tasksDueSoonDesc, queueDueDesc, waitingDesc,
		campaignsDesc, creditsAvailableDesc, creditsReservedDesc, apiCallsLeftDesc} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	c.collectQueues(ctx, ch)
	c.collectCampaigns(ctx, ch)
	c.collectQuota(ctx, ch)
}

// collectQueues publishes due and waiting tasks of every asynq queue.
func (c *stateCollector) collectQueues(ctx context.Context, ch chan<- prometheus.Metric) {
	queues, err := c.s.Redis.SMembers(ctx, asynqQueuesKey).Result()
	if err != nil {
		reportError(ch, tasksDueDesc, err)
		return
	}
	now := time.Now()
	var due, dueSoon int64
	for _, q := range queues {
		counts, err := readQueueCounts(ctx, c.s.Redis, q, now, c.s.Cooldown)
		if err != nil {
			reportError(ch, tasksDueDesc, err)
			return
		}
		due += counts.due()
		dueSoon += counts.dueWithin()
		ch <- prometheus.MustNewConstMetric(queueDueDesc, prometheus.GaugeValue, float64(counts.due()), q)
		ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, float64(counts.scheduledLater), q, "planned")
		for reason, n := range c.retryReasons(q, now, counts.retryLater) {
			ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, float64(n), q, reason)
		}
	}
	ch <- prometheus.MustNewConstMetric(tasksDueDesc, prometheus.GaugeValue, float64(due))
	ch <- prometheus.MustNewConstMetric(tasksDueSoonDesc, prometheus.GaugeValue, float64(dueSoon))
}

// retryReasons counts the retry tasks of queue q not yet due by the reason
// of their last error, reading the waitSample due soonest; the rest of
// retryLater counts as unsampled.
func (c *stateCollector) retryReasons(q string, now time.Time, retryLater int64) map[string]int64 {
	out := map[string]int64{}
	if retryLater == 0 {
		return out
	}
	tasks, err := c.inspector.ListRetryTasks(q, asynq.PageSize(waitSample))
	if err != nil {
		out["unsampled"] = retryLater
		return out
	}
	var sampled int64
	for _, t := range tasks {
		if !t.NextProcessAt.After(now) {
			continue // due: counted in tasks_due
		}
		reason := "failure"
		if c.s.WaitLabel != nil {
			if label := c.s.WaitLabel(t.LastErr); label != "" {
				reason = label
			}
		}
		out[reason]++
		sampled++
	}
	if rest := retryLater - sampled; rest > 0 {
		out["unsampled"] = rest
	}
	return out
}

func (c *stateCollector) collectCampaigns(ctx context.Context, ch chan<- prometheus.Metric) {
	if c.s.Campaigns == nil {
		return
	}
	byStatus, err := c.s.Campaigns(ctx)
	if err != nil {
		reportError(ch, campaignsDesc, err)
		return
	}
	for status, n := range byStatus {
		ch <- prometheus.MustNewConstMetric(campaignsDesc, prometheus.GaugeValue, float64(n), status)
	}
}

func (c *stateCollector) collectQuota(ctx context.Context, ch chan<- prometheus.Metric) {
	if c.s.Credits != nil {
		available, reserved, ok, err := c.s.Credits(ctx)
		switch {
		case err != nil:
			reportError(ch, creditsAvailableDesc, err)
		case ok:
			ch <- prometheus.MustNewConstMetric(creditsAvailableDesc, prometheus.GaugeValue, float64(available))
			ch <- prometheus.MustNewConstMetric(creditsReservedDesc, prometheus.GaugeValue, float64(reserved))
		}
	}
	if c.s.APICallsLeft != nil {
		left, ok, err := c.s.APICallsLeft(ctx)
		switch {
		case err != nil:
			reportError(ch, apiCallsLeftDesc, err)
		case ok:
			ch <- prometheus.MustNewConstMetric(apiCallsLeftDesc, prometheus.GaugeValue, float64(left))
		}
	}
}

// reportError puts a failed read into the scrape's answer: the handler
// answers the other metrics and names this one's error.
func reportError(ch chan<- prometheus.Metric, d *prometheus.Desc, err error) {
	ch <- prometheus.NewInvalidMetric(d, err)
}

// asynq's keys (its internal/base package, stable across its versions):
// the set of queue names, and per queue (hash tag {queue}) the pending list
// and the scheduled and retry sets scored by due time in unix seconds.
const asynqQueuesKey = "asynq:queues"

func asynqKey(queue, kind string) string { return "asynq:{" + queue + "}:" + kind }

// queueCounts are one queue's tasks by where they are.
type queueCounts struct {
	pending                    int64
	scheduledDue, retryDue     int64 // due now
	scheduledSoon, retrySoon   int64 // due now or within the cooldown
	scheduledLater, retryLater int64 // not yet due
}

func (q queueCounts) due() int64       { return q.pending + q.scheduledDue + q.retryDue }
func (q queueCounts) dueWithin() int64 { return q.pending + q.scheduledSoon + q.retrySoon }

// readQueueCounts reads a queue's counts in one round trip (the keys share
// the queue's hash tag, so also one node of a cluster).
func readQueueCounts(ctx context.Context, rdb redis.UniversalClient, queue string, now time.Time, cooldown time.Duration) (queueCounts, error) {
	nowS := strconv.FormatInt(now.Unix(), 10)
	soonS := strconv.FormatInt(now.Add(cooldown).Unix(), 10)
	var pending *redis.IntCmd
	var zs [6]*redis.IntCmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		pending = p.LLen(ctx, asynqKey(queue, "pending"))
		for i, set := range []string{"scheduled", "retry"} {
			k := asynqKey(queue, set)
			zs[3*i] = p.ZCount(ctx, k, "-inf", nowS)
			zs[3*i+1] = p.ZCount(ctx, k, "-inf", soonS)
			zs[3*i+2] = p.ZCount(ctx, k, "("+nowS, "+inf")
		}
		return nil
	})
	if err != nil {
		return queueCounts{}, err
	}
	return queueCounts{
		pending:      pending.Val(),
		scheduledDue: zs[0].Val(), scheduledSoon: zs[1].Val(), scheduledLater: zs[2].Val(),
		retryDue: zs[3].Val(), retrySoon: zs[4].Val(), retryLater: zs[5].Val(),
	}, nil
}
