//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// child is a process the benchmark started: a product binary, the no-op
// asynq server (this program re-executed) or the redis-server. Its stderr and
// stdout go to a log file in the work directory, read back at the end for the
// errors the children logged.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
	stopped bool // stop was called: an exit is expected
}

// children is every process started and not yet reaped, for the cleanup on
// exit or interrupt.
var children struct {
	sync.Mutex
	all []*child
}

// life guards the work directory and the child processes against an
// abort (interrupt, closed stdout) racing the phase that is running: every
// step that creates files or processes there holds it shared (enter/leave),
// and shutdown takes it exclusively, so that after shutdown nothing new
// appears that the cleanup would miss. ctx is cancelled first, which ends a
// running go build.
var life struct {
	sync.RWMutex
	closed bool
	ctx    context.Context
	cancel context.CancelFunc
}

func init() { life.ctx, life.cancel = context.WithCancel(context.Background()) }

var errStopping = errors.New("campaign-bench is stopping")

// enter reports whether the run may still create files and processes; if
// so, leave must follow.
func enter() bool {
	life.RLock()
	if life.closed {
		life.RUnlock()
		return false
	}
	return true
}

func leave() { life.RUnlock() }

// shutdown makes enter fail from now on and waits for the steps inside.
func shutdown() {
	life.cancel()
	life.Lock()
	life.closed = true
	life.Unlock()
}

// startChild runs bin with args in env (the whole environment; nil: this
// process's). Pdeathsig kills the child if the benchmark dies without
// cleaning up (kill -9), so no redis-server or worker outlives it.
func startChild(name, bin string, args, env []string, logDir string) (*child, error) {
	if !enter() {
		return nil, errStopping
	}
	defer leave()
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	children.Lock()
	children.all = append(children.all, c)
	children.Unlock()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// alive reports whether the child has not exited.
func (c *child) alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM (the product's graceful stop), waits up to grace, then
// kills.
func (c *child) stop(grace time.Duration) {
	c.stopped = true
	if !c.alive() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// stopAll stops every child still running, the redis-server last (the
// product's processes talk to it while they stop).
func stopAll() {
	children.Lock()
	all := append([]*child(nil), children.all...)
	children.Unlock()
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].name != "redis" {
			all[i].stop(time.Second)
		}
	}
	for _, c := range all {
		if c.name == "redis" {
			c.stop(3 * time.Second)
		}
	}
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100
// on every Linux the benchmark is meant for (x86-64 and arm64 fix it).
const clockTick = 10 * time.Millisecond

// cpuTime is the CPU time (user + system, all threads) the process has used,
// from /proc/<pid>/stat. Resolution: one clock tick (10 ms).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after its closing parenthesis.
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, s)
	}
	fields := strings.Fields(s[end+1:])
	// After ")": state is field 3, so utime (14) and stime (15) are at 11 and 12.
	if len(fields) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, s)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// procStatusKB reads a "kB" line of /proc/<pid>/status, such as VmHWM (the
// process's peak resident set size since it started).
func procStatusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		rest, ok := strings.CutPrefix(s.Text(), field+":")
		if !ok {
			continue
		}
		return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// selfCPU is this process's CPU time (the sandbox runs in it).
func selfCPU() time.Duration {
	d, _ := cpuTime(os.Getpid())
	return d
}

// startRedis runs a throwaway redis-server on a free loopback port with
// nothing persisted (--save "" --appendonly no), like internal/redistest,
// whose Start needs a testing.TB. It is not reused because this program also
// wants Pdeathsig (Linux only), which has no place in a helper every test on
// every OS imports; the few lines are repeated here instead.
func startRedis(dir string) (*child, string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, "", fmt.Errorf("redis-server is not installed (bash .ci/run installs it): %w", err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, "", err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		c, err := startChild("redis", bin, []string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
		}, nil, dir)
		if err != nil {
			return nil, "", err
		}
		if lastErr = waitRedis(c, addr); lastErr == nil {
			return c, addr, nil
		}
		c.stop(time.Second) // most likely the port was taken in between: try another
	}
	return nil, "", fmt.Errorf("could not start redis-server: %w", lastErr)
}

func waitRedis(c *child, addr string) error {
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
		if !c.alive() {
			log, _ := os.ReadFile(c.logPath)
			return fmt.Errorf("redis-server exited: %v; log: %s", c.waitErr, lastLines(string(log), 5))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer: %w", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// waitHTTP waits until url answers 200 or the child exits.
func waitHTTP(c *child, url string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !c.alive() {
			log, _ := os.ReadFile(c.logPath)
			return fmt.Errorf("%s exited: %v; log: %s", c.name, c.waitErr, lastLines(string(log), 5))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer %s: %v", c.name, url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
