package quota

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// PollBudget spends the provider's monthly API calls on status polls without
// starving sends: every poll takes one call from a rate shared by all
// workers (GCRA in Redis). The rate is either configured (STATUS_POLL_BUDGET)
// or derived from the last GET /quotas: what is left of api_calls_quota,
// minus the calls the queued sends will need, spread over the time until the
// period ends. When calls run short the rate falls and polls wait longer; it
// never reaches zero, so tracking slows down rather than stops.
type PollBudget struct {
	rdb     redis.UniversalClient
	gcra    *redis_rate.Limiter
	fixed   *redis_rate.Limit // configured; nil: derived
	reserve func(context.Context) (int64, error)

	mu      sync.Mutex
	derived redis_rate.Limit
	basis   string
	at      time.Time
}

const (
	pollBudgetKey = keyPrefix + "polls"
	// pollShare is the part of the spare calls that polls may spend: the rest
	// stays for what nobody planned (a resumed campaign, an operator's calls).
	pollShare = 0.9
	// minPollsPerDay keeps tracking alive when the calls are nearly gone.
	minPollsPerDay = 24
	derivedFor     = 30 * time.Second // how long a derived rate is reused
)

// ParsePollBudget reads STATUS_POLL_BUDGET: "" (derived from the provider's
// API-call quota) or a count per period: "5000/day", "300/h", "2/s".
func ParsePollBudget(v string) (*redis_rate.Limit, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	count, unit, ok := strings.Cut(v, "/")
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if !ok || err != nil || n < 1 {
		return nil, fmt.Errorf("%q is not a count per period like 5000/day, 300/h or 2/s", v)
	}
	periods := map[string]time.Duration{"day": 24 * time.Hour, "d": 24 * time.Hour, "h": time.Hour, "hour": time.Hour, "m": time.Minute, "min": time.Minute, "s": time.Second}
	period, ok := periods[strings.TrimSpace(unit)]
	if !ok {
		return nil, fmt.Errorf("%q: the period is day, h, m or s", v)
	}
	return &redis_rate.Limit{Rate: n, Period: period, Burst: max(1, n/int(period/time.Minute+1))}, nil
}

// NewPollBudget returns the budget: fixed when configured (nil: derived from
// the quota), with reserve telling how many API calls the queued sends will
// still need.
func NewPollBudget(rdb redis.UniversalClient, fixed *redis_rate.Limit, reserve func(context.Context) (int64, error)) *PollBudget {
	return &PollBudget{rdb: rdb, gcra: redis_rate.NewLimiter(rateKeyspace{rdb}), fixed: fixed, reserve: reserve}
}

// Take takes one poll's call: 0 means poll now; otherwise how long to wait
// before asking again.
func (b *PollBudget) Take(ctx context.Context) (time.Duration, error) {
	limit, _, err := b.Limit(ctx)
	if err != nil {
		return 0, err
	}
	if limit.IsZero() {
		return 0, nil // unlimited
	}
	res, err := b.gcra.Allow(ctx, pollBudgetKey, limit)
	if err != nil {
		return 0, fmt.Errorf("quota: take a status poll from the budget: %w", err)
	}
	if res.Allowed > 0 {
		return 0, nil
	}
	return max(res.RetryAfter, time.Millisecond), nil
}

// Limit is the rate polls may go at now, and a sentence saying why; a zero
// Limit means no limit (the provider reports no API-call quota).
func (b *PollBudget) Limit(ctx context.Context) (redis_rate.Limit, string, error) {
	if b.fixed != nil {
		return *b.fixed, "STATUS_POLL_BUDGET " + describeLimit(*b.fixed), nil
	}
	b.mu.Lock()
	if !b.at.IsZero() && time.Since(b.at) < derivedFor {
		l, basis := b.derived, b.basis
		b.mu.Unlock()
		return l, basis, nil
	}
	b.mu.Unlock()

	q, _, err := ReadLastQuota(ctx, b.rdb)
	if err != nil {
		if err == ErrNotSynced {
			return redis_rate.Limit{}, "the API-call quota has not been read yet", nil
		}
		return redis_rate.Limit{}, "", err
	}
	reserved, err := b.reserve(ctx)
	if err != nil {
		return redis_rate.Limit{}, "", err
	}
	spare := q.APICallsRemaining() - reserved
	until := time.Until(q.APICallsPeriodEnd)
	if q.APICallsPeriodEnd.IsZero() || until < time.Hour {
		until = 30 * 24 * time.Hour // the provider did not say; a month is its period
	}
	perDay := int(max(minPollsPerDay, float64(spare)*pollShare/until.Hours()*24))
	limit := redis_rate.Limit{Rate: perDay, Period: 24 * time.Hour, Burst: max(1, perDay/1440)}
	basis := fmt.Sprintf("%d API calls left until %s, %d kept for queued sends: polls at %s",
		q.APICallsRemaining(), q.APICallsPeriodEnd.UTC().Format("2006-01-02"), reserved, describeLimit(limit))
	b.mu.Lock()
	b.derived, b.basis, b.at = limit, basis, time.Now()
	b.mu.Unlock()
	return limit, basis, nil
}

func describeLimit(l redis_rate.Limit) string {
	switch l.Period {
	case 24 * time.Hour:
		return fmt.Sprintf("%d/day", l.Rate)
	case time.Hour:
		return fmt.Sprintf("%d/h", l.Rate)
	case time.Minute:
		return fmt.Sprintf("%d/min", l.Rate)
	case time.Second:
		return fmt.Sprintf("%d/s", l.Rate)
	}
	return l.String()
}
