package redistest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of three masters (no replicas) on free
// loopback ports for the duration of a test, its 16384 slots split evenly
// by redis-cli --cluster create.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts the three nodes, joins them into a cluster and waits
// until every node reports it healthy (cluster_state:ok).
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	cli := lookPath(tb, "redis-cli")
	c := &Cluster{}
	for i := 0; i < 3; i++ {
		// Each node's data folder is its own, so is its nodes.conf.
		c.Nodes = append(c.Nodes, startWith(tb,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000"))
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr)
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.awaitOK(tb)
	return c
}

// URL is the cluster as a REDIS_URL: go-redis's cluster URL, the first node
// as host and the others as addr= parameters.
func (c *Cluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr
	for i, n := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + n.Addr
	}
	return u
}

// Client is a go-redis cluster client of the nodes, closed when the test
// ends.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	var addrs []string
	for _, n := range c.Nodes {
		addrs = append(addrs, n.Addr)
	}
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	GuardSlots(tb, client)
	tb.Cleanup(func() { _ = client.Close() })
	return client
}

// awaitOK waits until every node says cluster_state:ok (the nodes agree on
// the slots a moment after redis-cli has assigned them).
func (c *Cluster) awaitOK(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range c.Nodes {
		client := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			info, err := client.ClusterInfo(ctx).Result()
			cancel()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				_ = client.Close()
				tb.Fatalf("redistest: cluster node %s is not ok after 30s: %v %s", n.Addr, err, info)
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = client.Close()
	}
}
