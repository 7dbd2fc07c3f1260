package quota

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/redistest"
)

// TestCallLimiterLeasesKeepTheCeiling runs three limiters (three
// processes) on one Redis under contention, at a ceiling where a lease
// holds more than one slot: no one-second window holds more than the
// ceiling plus one call.
//
// A call's time is the moment the limiter lets it go (its slot, or the
// moment a late slot was taken), not the moment its goroutine woke up:
// on a loaded machine a whole test process stalls for tens of
// milliseconds now and then, and its goroutines wake together, which says
// nothing about the limiter.
func TestCallLimiterLeasesKeepTheCeiling(t *testing.T) {
	const (
		perSecond = 60 // a lease holds up to 3 slots
		duration  = 2500 * time.Millisecond
	)
	srv := redistest.Start(t)
	var limiters []*CallLimiter
	var scripts atomic.Int64
	for range 3 {
		c := srv.Client(t)
		c.AddHook(scriptCounter{&scripts})
		limiters = append(limiters, NewCallLimiter(c, perSecond))
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()

	var mu sync.Mutex
	var calls []time.Time
	var wg sync.WaitGroup
	for g := range 12 {
		l := limiters[g%len(limiters)]
		wg.Go(func() {
			for {
				at, err := l.grant(ctx)
				if err != nil {
					if !errors.Is(err, ErrCallLimited) && ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				mu.Lock()
				calls = append(calls, maxTime(at, time.Now()))
				mu.Unlock()
				if sleep(ctx, time.Until(at)) != nil {
					return
				}
			}
		})
	}
	wg.Wait()

	t.Logf("%d calls, %d leases", len(calls), scripts.Load())
	if len(calls) < perSecond {
		t.Fatalf("%d calls in %s at %d/s: the limiter starves its callers", len(calls), duration, perSecond)
	}
	if scripts.Load() >= int64(len(calls)) {
		t.Errorf("%d leases for %d calls: no lease held more than one slot; the case tests nothing", scripts.Load(), len(calls))
	}
	slices.SortFunc(calls, func(a, b time.Time) int { return a.Compare(b) })
	for i, first := range calls {
		// The calls in [first, first+1s).
		n := sort.Search(len(calls), func(j int) bool { return !calls[j].Before(first.Add(time.Second)) }) - i
		if n > perSecond+1 {
			t.Fatalf("%d calls in the second from %s, want at most %d", n, first.Format(time.StampMicro), perSecond+1)
		}
	}
}

// scriptCounter counts a client's script calls.
type scriptCounter struct{ n *atomic.Int64 }

func (s scriptCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (s scriptCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "evalsha" || cmd.Name() == "eval" {
			s.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (s scriptCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
