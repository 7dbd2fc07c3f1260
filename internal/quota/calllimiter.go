package quota

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// DefaultAPICallsPerSecond is the provider's documented ceiling (30 requests
// per second per IP).
const DefaultAPICallsPerSecond = 30

// ErrCallLimited means an API call could not get a slot before its
// context's deadline. The error carrying it has a RetryAfter method.
var ErrCallLimited = errors.New("quota: API call ceiling reached")

// CallLimitError is Wait's answer when the next API-call slot comes after
// the context's deadline: waiting would only end in a timeout, so the caller
// learns now how long to back off (the TimelinesAI client turns it into a
// rate-limited error with that wait).
type CallLimitError struct {
	Wait time.Duration // until the next slot
}

func (e *CallLimitError) Error() string {
	return fmt.Sprintf("%v: next slot in %s, after the call's deadline", ErrCallLimited, e.Wait)
}

// RetryAfter is how long to wait before trying again.
func (e *CallLimitError) RetryAfter() time.Duration { return e.Wait }

// Is makes errors.Is(err, ErrCallLimited) true.
func (e *CallLimitError) Is(target error) bool { return target == ErrCallLimited }

// CallLimiter keeps the API calls of all processes together under one
// ceiling (GCRA in Redis, via redis_rate). The TimelinesAI client calls Wait
// before every HTTP request (sends, status polls, quota reads). It is safe
// for concurrent use.
type CallLimiter struct {
	gcra  *redis_rate.Limiter
	limit redis_rate.Limit

	// turn lines up the callers Redis has refused, one of this process's at
	// a time asking again. Every refused caller is told the same wait, so
	// without it all of a process's waiting goroutines would wake together
	// and ask Redis again at every slot, only one of them to win. Callers
	// under the ceiling do not queue: each asks Redis once, side by side (a
	// queue there would cap a process at one call per Redis round trip).
	// None of this is needed for correctness: Redis alone enforces the
	// ceiling. A local x/time/rate limiter would not do this job: under a
	// ceiling shared by several processes each one is refused more often
	// than its local rate predicts, and its callers would pile up in Redis
	// all the same.
	turn chan struct{}
}

// NewCallLimiter returns a ceiling of perSecond API calls per second
// (DefaultAPICallsPerSecond if not positive) for every process sharing rdb.
//
// The burst is one call: calls are spaced 1/perSecond apart, so no second
// ever holds more than perSecond(+1) of them. With a burst of b, a second
// could hold b+perSecond calls, and the provider answers bursts with 403/429.
func NewCallLimiter(rdb redis.UniversalClient, perSecond int) *CallLimiter {
	if perSecond <= 0 {
		perSecond = DefaultAPICallsPerSecond
	}
	return &CallLimiter{
		gcra:  redis_rate.NewLimiter(rateKeyspace{rdb}),
		limit: redis_rate.Limit{Rate: perSecond, Burst: 1, Period: time.Second},
		turn:  make(chan struct{}, 1),
	}
}

// Wait returns when the call may be made. It sleeps the wait redis_rate
// computes, and returns early with ctx's error when ctx is done, or with a
// *CallLimitError when the next slot comes after ctx's deadline.
func (c *CallLimiter) Wait(ctx context.Context) error {
	if ctx.Err() != nil {
		return fmt.Errorf("quota: waiting for an API call slot: %w", context.Cause(ctx))
	}
	if len(c.turn) == 0 { // nobody of this process is waiting: ask at once
		res, err := c.gcra.Allow(ctx, apiCallsKey, c.limit)
		if err != nil {
			return fmt.Errorf("quota: take an API call slot: %w", err)
		}
		if res.Allowed > 0 {
			return nil
		}
	}
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("quota: waiting for an API call slot: %w", context.Cause(ctx))
	}
	defer func() { <-c.turn }()

	for {
		res, err := c.gcra.Allow(ctx, apiCallsKey, c.limit)
		if err != nil {
			return fmt.Errorf("quota: take an API call slot: %w", err)
		}
		if res.Allowed > 0 {
			return nil
		}
		wait := max(res.RetryAfter, time.Millisecond)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return &CallLimitError{Wait: wait}
		}
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("quota: waiting for an API call slot: %w", err)
		}
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
