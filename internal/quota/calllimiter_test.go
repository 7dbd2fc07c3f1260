package quota_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
)

// The TimelinesAI client takes a CallLimiter.
var _ sender.CallLimiter = (*quota.CallLimiter)(nil)

// TestCallLimiterCeilingAcrossProcesses runs 12 goroutines over 3 limiters
// on 3 clients (3 processes) for about 1.5 s at 20 calls/s.
func TestCallLimiterCeilingAcrossProcesses(t *testing.T) {
	const (
		perSecond = 20
		burst     = 1
		duration  = 1500 * time.Millisecond
	)
	var limiters []*quota.CallLimiter
	for _, c := range processes(t, 3) {
		limiters = append(limiters, quota.NewCallLimiter(c, perSecond))
	}
	ctx, cancel := context.WithTimeout(testContext(t), duration)
	defer cancel()

	var granted atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for g := range 12 {
		l := limiters[g%len(limiters)]
		wg.Go(func() {
			for {
				err := l.Wait(ctx)
				if err == nil {
					granted.Add(1)
					continue
				}
				if errors.Is(err, quota.ErrCallLimited) || ctx.Err() != nil {
					return // the next slot is after the end of the run
				}
				t.Error(err)
				return
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	most := int64(perSecond*elapsed.Seconds()) + burst
	if n := granted.Load(); n > most || n < most/4 {
		t.Errorf("%d calls granted in %s at %d/s, want between %d and %d", n, elapsed, perSecond, most/4, most)
	}
}

func TestCallLimiterWaitEndsEarly(t *testing.T) {
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want func(t *testing.T, err error)
	}{
		{
			name: "next slot after the deadline: the wait is answered at once",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 100*time.Millisecond)
			},
			want: func(t *testing.T, err error) {
				if !errors.Is(err, quota.ErrCallLimited) {
					t.Fatalf("Wait = %v, want ErrCallLimited", err)
				}
				// What the TimelinesAI client looks for to turn it into a rate-limited error.
				var waiter interface{ RetryAfter() time.Duration }
				if !errors.As(err, &waiter) {
					t.Fatalf("Wait = %v, want an error with RetryAfter", err)
				}
				if d := waiter.RetryAfter(); d <= 0 || d > time.Second {
					t.Errorf("RetryAfter = %s, want in (0, 1s]", d)
				}
			},
		},
		{
			name: "context cancelled",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			want: func(t *testing.T, err error) {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Wait = %v, want context.Canceled", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := quota.NewCallLimiter(processes(t, 1)[0], 1)
			must(t, l.Wait(testContext(t))) // takes the one slot of this second
			ctx, cancel := tt.ctx()
			defer cancel()
			tt.want(t, l.Wait(ctx))
		})
	}
}

// TestCallLimiterAmortisesRedisWork: at a high ceiling, callers share
// leases; at the default ceiling every call is a lease of its own.
func TestCallLimiterAmortisesRedisWork(t *testing.T) {
	tests := []struct {
		name        string
		perSecond   int
		goroutines  int
		each        int
		wantAtMost  float64 // scripts per call
		wantAtLeast float64
	}{
		{name: "high ceiling", perSecond: 1_000_000, goroutines: 32, each: 50, wantAtMost: 0.1},
		{name: "default ceiling", perSecond: quota.DefaultAPICallsPerSecond, goroutines: 3, each: 5, wantAtMost: 1, wantAtLeast: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			c := processes(t, 1)[0]
			l := quota.NewCallLimiter(c, tt.perSecond)
			must(t, l.Wait(ctx)) // loads the script
			scripts := countScripts(c)
			var wg sync.WaitGroup
			for range tt.goroutines {
				wg.Go(func() {
					for range tt.each {
						if err := l.Wait(ctx); err != nil {
							t.Error(err)
							return
						}
						time.Sleep(time.Millisecond) // the call itself
					}
				})
			}
			wg.Wait()
			perCall := float64(scripts.n.Load()) / float64(tt.goroutines*tt.each)
			t.Logf("%.3f scripts per call", perCall)
			if perCall > tt.wantAtMost || perCall < tt.wantAtLeast {
				t.Errorf("%.3f scripts per call, want in [%g, %g]", perCall, tt.wantAtLeast, tt.wantAtMost)
			}
		})
	}
}
