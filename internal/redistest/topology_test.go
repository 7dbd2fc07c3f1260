package redistest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestSentinelFailsOverToTheReplica: what was written on the master
// (and replicated) is read on the new master after the master is killed,
// through a client made from the topology's REDIS_URL, which then writes
// again.
func TestSentinelFailsOverToTheReplica(t *testing.T) {
	s := StartSentinel(t)
	opt, err := redis.ParseFailoverURL(s.URL())
	if err != nil {
		t.Fatalf("the topology's URL %s: %v", s.URL(), err)
	}
	client := redis.NewFailoverClient(opt)
	defer client.Close()
	ctx := context.Background()

	if err := client.Set(ctx, "campaign:1", "sent", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// WAIT: the write is on the replica before the crash, so it must survive.
	if n, err := client.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d replicas acknowledged (%v)", n, err)
	}
	old := s.KillMaster(t)
	if roleOf(old) != "" {
		t.Fatalf("the killed master %s still answers", old)
	}
	newMaster := s.AwaitFailover(t, old, 30*time.Second)

	direct := redis.NewClient(&redis.Options{Addr: newMaster})
	defer direct.Close()
	if v, err := direct.Get(ctx, "campaign:1").Result(); err != nil || v != "sent" {
		t.Fatalf("on the new master %s: campaign:1 is %q (%v), want sent", newMaster, v, err)
	}
	// The failover client finds the new master by itself (a few retries
	// while it learns of the switch).
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := client.Set(ctx, "campaign:2", "queued", 0).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failover client cannot write after the failover: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v, err := direct.Get(ctx, "campaign:2").Result(); err != nil || v != "queued" {
		t.Fatalf("a write after the failover is not on the new master: %q (%v)", v, err)
	}
}

// TestClusterSpreadsKeysOverItsNodes: keys written through a client made
// from the cluster's REDIS_URL land on all three masters and read back.
func TestClusterSpreadsKeysOverItsNodes(t *testing.T) {
	c := StartCluster(t)
	opt, err := redis.ParseClusterURL(c.URL())
	if err != nil {
		t.Fatalf("the cluster's URL %s: %v", c.URL(), err)
	}
	if len(opt.Addrs) != 3 {
		t.Fatalf("the cluster's URL %s names %d nodes, want 3", c.URL(), len(opt.Addrs))
	}
	client := redis.NewClusterClient(opt)
	defer client.Close()
	ctx := context.Background()
	const keys = 300
	for i := 0; i < keys; i++ {
		if err := client.Set(ctx, fmt.Sprintf("campaign:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	total := int64(0)
	for _, n := range c.Nodes {
		size, err := n.Client(t).DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if size == 0 {
			t.Errorf("node %s holds no key of %d", n.Addr, keys)
		}
		total += size
	}
	if total != keys {
		t.Errorf("the nodes hold %d keys together, want %d", total, keys)
	}
	if v, err := client.Get(ctx, "campaign:123").Int(); err != nil || v != 123 {
		t.Errorf("campaign:123 reads %d (%v)", v, err)
	}
}
