package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a Redis Sentinel topology for the duration of a test: a
// master, a replica of it, and three redis-sentinel processes watching them
// (quorum 2), all on free loopback ports. A master that stops answering for
// a second is failed over to the replica.
type Sentinel struct {
	MasterName string
	Sentinels  []string  // host:port of each sentinel
	Data       []*Server // the master and the replica, in start order (roles change on failover)
}

// sentinelDownAfter is how long a master may be silent before the sentinels
// call it down; short, so a test's failover takes seconds.
const sentinelDownAfter = time.Second

// StartSentinel starts the topology and waits until the replica is in sync
// and the sentinels know the replica and each other, so that a failover can
// happen from the first moment the test has it.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	sentinelBin := lookPath(tb, "redis-sentinel")
	master := startWith(tb)
	replica := startWith(tb, "--replicaof", "127.0.0.1", fmt.Sprint(master.port))
	s := &Sentinel{MasterName: "wacampaign", Data: []*Server{master, replica}}
	for i := 0; i < 3; i++ {
		s.Sentinels = append(s.Sentinels, s.startSentinel(tb, sentinelBin, master))
	}
	s.awaitReady(tb, replica)
	return s
}

// URL is the topology as a REDIS_URL: go-redis's failover URL, the first
// sentinel as host and the others as addr= parameters.
func (s *Sentinel) URL() string {
	u := "redis://" + s.Sentinels[0] + "?master_name=" + s.MasterName
	for _, a := range s.Sentinels[1:] {
		u += "&addr=" + a
	}
	return u
}

// Client is a go-redis failover client of the topology (it follows the
// master through a failover), closed when the test ends.
func (s *Sentinel) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.Sentinels})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Master is the master's host:port as the first sentinel that answers
// sees it.
func (s *Sentinel) Master(tb testing.TB) string {
	tb.Helper()
	addr, err := s.askMaster()
	if err != nil {
		tb.Fatalf("redistest: no sentinel names the master: %v", err)
	}
	return addr
}

func (s *Sentinel) askMaster() (string, error) {
	var lastErr error
	for _, a := range s.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		hp, err := c.GetMasterAddrByName(ctx, s.MasterName).Result()
		cancel()
		_ = c.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		lastErr = err
	}
	return "", lastErr
}

// KillMaster kills the current master with SIGKILL (a crash: nothing is
// saved, no one is told) and answers its address.
func (s *Sentinel) KillMaster(tb testing.TB) string {
	tb.Helper()
	addr := s.Master(tb)
	for _, srv := range s.Data {
		if srv.Addr == addr {
			srv.kill()
			return addr
		}
	}
	tb.Fatalf("redistest: the master %s is none of this topology's servers", addr)
	return ""
}

// AwaitFailover waits, up to timeout, until the sentinels name a master
// other than old and that server answers as a master; it answers the new
// master's address.
func (s *Sentinel) AwaitFailover(tb testing.TB, old string, timeout time.Duration) string {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		addr, err := s.askMaster()
		if err == nil && addr != old && roleOf(addr) == "master" {
			return addr
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: no failover from %s within %s (sentinels say %q, %v)", old, timeout, addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startSentinel runs one redis-sentinel on a free port watching master.
// Sentinels rewrite their configuration file, so each gets its own.
func (s *Sentinel) startSentinel(tb testing.TB, bin string, master *Server) string {
	tb.Helper()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		dir := tb.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		text := strings.Join([]string{
			fmt.Sprintf("port %d", port),
			"bind 127.0.0.1",
			"dir " + dir,
			"logfile " + filepath.Join(dir, "sentinel.log"),
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", s.MasterName, master.port),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", s.MasterName, sentinelDownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s 10000", s.MasterName),
			"",
		}, "\n")
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if lastErr = runUntilTestEnds(tb, bin, []string{conf}, addr, filepath.Join(dir, "sentinel.log")); lastErr == nil {
			return addr
		}
	}
	tb.Fatalf("redistest: could not start redis-sentinel: %v", lastErr)
	return ""
}

// runUntilTestEnds starts a process that serves the Redis protocol on addr,
// waits for its PING, and kills it when the test ends.
func runUntilTestEnds(tb testing.TB, bin string, args []string, addr, logPath string) error {
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	err := AwaitPing(addr, func() error {
		select {
		case werr := <-exited:
			exited <- werr
			return fmt.Errorf("%s exited: %v; log: %s", filepath.Base(bin), werr, tail(logPath))
		default:
			return nil
		}
	})
	stop := func() { _ = cmd.Process.Kill(); <-exited }
	if err != nil {
		stop()
		return err
	}
	tb.Cleanup(stop)
	return nil
}

// awaitReady waits until the replica is in sync and every sentinel knows
// the replica and the two other sentinels (they find each other through
// the master, every two seconds).
func (s *Sentinel) awaitReady(tb testing.TB, replica *Server) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		why := s.notReady(replica)
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: the Sentinel topology is not ready after 30s: %s", why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Sentinel) notReady(replica *Server) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr, MaxRetries: -1})
	info, _ := rc.Info(ctx, "replication").Result()
	_ = rc.Close()
	if !strings.Contains(info, "master_link_status:up") {
		return "the replica is not in sync"
	}
	for _, a := range s.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
		replicas, err1 := c.Replicas(ctx, s.MasterName).Result()
		others, err2 := c.Sentinels(ctx, s.MasterName).Result()
		_ = c.Close()
		if err1 != nil || err2 != nil || len(replicas) < 1 || len(others) < len(s.Sentinels)-1 {
			return fmt.Sprintf("sentinel %s knows %d replica(s) and %d other sentinel(s) (%v %v)", a, len(replicas), len(others), err1, err2)
		}
	}
	return ""
}

// roleOf is "master" or "slave" as the server at addr says, "" when it
// does not answer.
func roleOf(addr string) string {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(info, "\n") {
		if role, ok := strings.CutPrefix(strings.TrimSpace(line), "role:"); ok {
			return role
		}
	}
	return ""
}
