//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// killWorkers sends SIGKILL to one of the workers every 2 to 3 seconds
// (drawn at random), and starts it again at once, for as long as recipients
// are queued: through the campaign's sending, not its recovery.
func killWorkers(ctx context.Context, st *stage) {
	rng := rand.New(rand.NewPCG(st.run.seed, 1))
	kills := 0
	var last time.Duration
	defer func() {
		st.note("killed a worker (kill -9) %d times, every 2-3 s, the last %s after the upload", kills, last.Round(time.Second))
	}()
	for {
		wait := 2*time.Second + time.Duration(rng.Int64N(int64(time.Second)))
		if sleep(ctx, wait) != nil {
			return
		}
		if c := st.latest.Load(); c.Counts.Queued == 0 {
			return
		}
		if st.pool.killOne(rng) != "" {
			kills++
			last = time.Since(st.created)
		}
	}
}

// redisKillShare is how far through the campaign Redis is killed: when the
// sandbox has this share of its messages.
const redisKillShare = 0.4

// redisDowntime is how long Redis stays dead before it is started again.
const redisDowntime = 2 * time.Second

// killRedis sends SIGKILL to the redis-server once the sandbox has taken
// redisKillShare of the campaign's messages, and starts it again on the
// same port and data directory redisDowntime later. Meanwhile a probe
// increments a counter as fast as it can, so the restart shows whether
// writes Redis had acknowledged were lost.
func killRedis(ctx context.Context, st *stage) {
	want := int(float64(st.sc.recipients) * redisKillShare)
	for len(st.sandbox.Messages()) < want {
		if sleep(ctx, 100*time.Millisecond) != nil {
			st.note("redis-server was never killed: the sandbox had not %d messages yet", want)
			return
		}
	}
	probe := startWriteProbe(st.redis.Addr)
	time.Sleep(200 * time.Millisecond) // the probe is writing when the kill comes
	sent := len(st.sandbox.Messages())
	at := time.Since(st.created)
	st.redis.Kill()
	acked := probe.stop()
	time.Sleep(redisDowntime) // not cut short by ctx: Redis must come back whatever happens
	if err := st.redis.Restart(); err != nil {
		st.note("redis-server did not start again: %v", err)
		return
	}
	st.note("redis-server killed (kill -9) %s after the upload, with %d of %d messages at the sandbox; started again %s later on the same port and data (appendonly yes, appendfsync %s)",
		at.Round(100*time.Millisecond), sent, st.sc.recipients, redisDowntime, st.run.fsync)
	stored, err := readProbe(st.redis.Addr)
	switch {
	case err != nil:
		st.note("acknowledged writes: the probe counter could not be read after the restart: %v", err)
	case acked < 0:
		st.note("acknowledged writes: the probe had no acknowledged write before the kill")
	default:
		lost := max(0, acked-stored)
		st.probeLost.Store(&lost)
		st.note("acknowledged writes: the last INCR Redis acknowledged before the kill answered %d; after the restart the counter is %d (%d acknowledged writes lost)",
			acked, stored, lost)
	}
}

// probeKey is the probe's counter, beside the product's keys.
const probeKey = "campaign-chaos:probe"

// writeProbe increments probeKey in a loop and remembers the highest value
// Redis acknowledged.
type writeProbe struct {
	client *redis.Client
	mu     sync.Mutex
	acked  int64
	quit   chan struct{}
	done   chan struct{}
}

func startWriteProbe(addr string) *writeProbe {
	// No retries: a retried INCR could count twice.
	p := &writeProbe{client: redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1}), acked: -1,
		quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.quit:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			n, err := p.client.Incr(ctx, probeKey).Result()
			cancel()
			if err != nil {
				return // Redis is gone
			}
			p.mu.Lock()
			p.acked = max(p.acked, n)
			p.mu.Unlock()
		}
	}()
	return p
}

// stop ends the probe and answers the highest acknowledged value (-1: none).
func (p *writeProbe) stop() int64 {
	close(p.quit)
	<-p.done
	p.client.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}

// readProbe reads the counter after the restart (0 when it is gone).
func readProbe(addr string) (int64, error) {
	client := redis.NewClient(&redis.Options{Addr: addr})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := client.Get(ctx, probeKey).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", probeKey, err)
	}
	return n, nil
}
