package quota_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/redistest"
)

// processes returns n clients of one throwaway Redis, each standing for a
// separate worker process (its own connection pool, nothing shared in Go).
func processes(t *testing.T, n int) []*redis.Client {
	t.Helper()
	srv := redistest.Start(t)
	clients := make([]*redis.Client, n)
	for i := range clients {
		clients[i] = srv.Client(t)
	}
	return clients
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline. It waits for an outcome, never for an amount of time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// scriptCalls counts the script calls (EVAL, EVALSHA and their _RO forms)
// a client sends: what the Redis work of a feature is measured in.
type scriptCalls struct{ n atomic.Int64 }

// countScripts starts counting c's script calls.
func countScripts(c redis.UniversalClient) *scriptCalls {
	s := &scriptCalls{}
	c.AddHook(s)
	return s
}

func (s *scriptCalls) count(cmd redis.Cmder) {
	if strings.HasPrefix(strings.ToLower(cmd.Name()), "eval") {
		s.n.Add(1)
	}
}

func (s *scriptCalls) DialHook(next redis.DialHook) redis.DialHook { return next }

func (s *scriptCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		s.count(cmd)
		return next(ctx, cmd)
	}
}

func (s *scriptCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			s.count(cmd)
		}
		return next(ctx, cmds)
	}
}
