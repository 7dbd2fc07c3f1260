package redispipe

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/redistest"
)

func pipelined(t testing.TB) (*redis.Client, *redis.Client) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	c.AddHook(New(c))
	return c, srv.Client(t)
}

// TestEveryCommandGetsItsOwnAnswer: many goroutines, many kinds of command,
// each answer (and error) where it belongs.
func TestEveryCommandGetsItsOwnAnswer(t *testing.T) {
	c, plain := pipelined(t)
	ctx := context.Background()
	script := redis.NewScript(`return tonumber(ARGV[1]) * 2`)
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				key := fmt.Sprintf("k:%d:%d", g, i)
				if err := c.Set(ctx, key, i, 0).Err(); err != nil {
					t.Error(err)
					return
				}
				if v, err := c.Get(ctx, key).Int(); err != nil || v != i {
					t.Errorf("GET %s = %d, %v", key, v, err)
					return
				}
				if v, err := script.Run(ctx, c, nil, i).Int(); err != nil || v != 2*i {
					t.Errorf("script(%d) = %d, %v", i, v, err)
					return
				}
				if err := c.HGet(ctx, "missing", "x").Err(); !errors.Is(err, redis.Nil) {
					t.Errorf("HGET of nothing: %v, want redis.Nil", err)
					return
				}
				if err := c.Do(ctx, "NOSUCHCOMMAND").Err(); err == nil {
					t.Error("an unknown command did not fail")
					return
				}
			}
		}()
	}
	wg.Wait()
	if n, _ := plain.DBSize(ctx).Result(); n != 32*200 {
		t.Errorf("%d keys, want %d", n, 32*200)
	}
}

// TestOrderPerGoroutine: a goroutine's commands apply in its order.
func TestOrderPerGoroutine(t *testing.T) {
	c, _ := pipelined(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "list:" + strconv.Itoa(g)
			for i := 0; i < 300; i++ {
				c.RPush(ctx, key, i)
			}
			got, _ := c.LRange(ctx, key, 0, -1).Result()
			for i, v := range got {
				if v != strconv.Itoa(i) {
					t.Errorf("%s[%d] = %s", key, i, v)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestBlockingCommandsKeepTheirOwnConnection: a BLPOP waiting does not hold
// up the pipelined commands of others.
func TestBlockingCommandsKeepTheirOwnConnection(t *testing.T) {
	c, _ := pipelined(t)
	ctx := context.Background()
	got := make(chan string, 1)
	go func() {
		v, _ := c.BLPop(ctx, 5*time.Second, "q").Result()
		if len(v) == 2 {
			got <- v[1]
		}
	}()
	var done atomic.Int64
	for i := 0; i < 100; i++ {
		if err := c.Incr(ctx, "n").Err(); err != nil {
			t.Fatal(err)
		}
		done.Add(1)
	}
	if err := c.RPush(ctx, "q", "hello").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "hello" || done.Load() != 100 {
			t.Errorf("BLPOP got %q after %d other commands", v, done.Load())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("BLPOP never returned")
	}
}

func TestTransactionsPassThrough(t *testing.T) {
	c, _ := pipelined(t)
	ctx := context.Background()
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "a", 1, 0)
		p.Incr(ctx, "a")
		return nil
	})
	if v, _ := c.Get(ctx, "a").Int(); err != nil || v != 2 {
		t.Errorf("transaction: a = %d, %v", v, err)
	}
}

// BenchmarkConcurrentCommands compares 32 goroutines' commands with and
// without the hook.
func BenchmarkConcurrentCommands(b *testing.B) {
	for _, hooked := range []bool{false, true} {
		b.Run(fmt.Sprintf("pipelined=%v", hooked), func(b *testing.B) {
			srv := redistest.Start(b)
			c := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 80})
			defer c.Close()
			if hooked {
				c.AddHook(New(c))
			}
			ctx := context.Background()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.Incr(ctx, "n")
				}
			})
		})
	}
}
