package quota_test

import (
	"context"
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
