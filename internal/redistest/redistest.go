// Package redistest starts throwaway redis-server processes for tests, each on
// a free port with nothing persisted, so that tests run against real Redis
// without touching a developer's data or depending on a server being up.
// Besides a lone server it starts the two topologies production may use:
// Sentinel (a master, a replica and three sentinels; StartSentinel) and
// Cluster (three masters; StartCluster).
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running throwaway redis-server.
type Server struct {
	Addr string // host:port

	bin, dir string
	port     int
	extra    []string // more redis-server arguments (replicaof, cluster mode)

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error // receives once when cmd exits
}

// URL is the server's address as a REDIS_URL.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Client returns a go-redis client for the server, closed when the test ends.
// A script call on it whose keys a cluster would refuse fails the test.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	GuardSlots(tb, c)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Start runs a redis-server for the duration of the test. It fails the test
// (never skips it) when redis-server is not installed.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return startWith(tb)
}

// startWith starts a redis-server with more arguments.
func startWith(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	bin := lookPath(tb, "redis-server")
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		srv, err := start(tb, bin, extra)
		if err == nil {
			return srv
		}
		lastErr = err // most likely the free port was taken in between; try another
	}
	tb.Fatalf("redistest: could not start redis-server: %v", lastErr)
	return nil
}

// lookPath finds a program the tests need, failing the test (never
// skipping it) when it is missing: a test that silently does not run checks
// nothing.
func lookPath(tb testing.TB, program string) string {
	tb.Helper()
	bin, err := exec.LookPath(program)
	if err != nil {
		tb.Fatalf("redistest: %s is not installed (make test installs it: scripts/test-tools.sh): %v", program, err)
	}
	return bin
}

func start(tb testing.TB, bin string, extra []string) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	srv := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), bin: bin, dir: tb.TempDir(), port: port, extra: extra}
	if err := srv.launch(); err != nil {
		return nil, err
	}
	tb.Cleanup(srv.kill)
	return srv, nil
}

// launch runs redis-server on the server's port and data folder and waits
// until it answers.
func (s *Server) launch() error {
	logPath := filepath.Join(s.dir, "redis.log")
	cmd := exec.Command(s.bin, append([]string{
		"--port", fmt.Sprint(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", logPath,
	}, s.extra...)...)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	err := AwaitPing(s.Addr, func() error {
		select {
		case werr := <-exited:
			exited <- werr // for kill
			return fmt.Errorf("redis-server exited: %v; log: %s", werr, tail(logPath))
		default:
			return nil
		}
	})
	if err != nil {
		_ = cmd.Process.Kill()
	}
	return err
}

// AwaitPing waits up to ten seconds for a redis-server just started on addr
// to answer PING. gone reports that the process has ended (a non-nil error,
// returned as it is).
func AwaitPing(addr string, gone func() error) error {
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := client.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if gerr := gone(); gerr != nil {
			return gerr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer: %w", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill ends the current redis-server process, if it still runs.
func (s *Server) kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Stop takes the server down, as an outage would look to its clients, after
// saving its data (SHUTDOWN SAVE), so that Restart brings the same data back
// on the same port.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	client := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The server closes the connection as it exits: that is the error expected.
	_ = client.ShutdownSave(ctx).Err()
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		tb.Fatal("redistest: Stop of a server that is not running")
	}
	select {
	case <-exited:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-exited
		tb.Fatal("redistest: redis-server did not shut down within 10s")
	}
}

// Restart starts a stopped server again on its port, with the data it saved.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.launch(); err != nil {
		tb.Fatalf("redistest: restart redis-server: %v", err)
	}
}

// FreePort is a loopback TCP port nobody listens on (at the moment of the
// call).
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > 5 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, " | ")
}
