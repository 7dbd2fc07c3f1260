//go:build linux

package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Child is a process a harness program started: a product binary, a
// redis-server, or the program itself re-executed. Its stdout and stderr go
// to a log file (appended to, so a restarted child of the same name keeps
// one log), read back at the end for the errors the children logged.
type Child struct {
	Name    string
	LogPath string

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	ended   atomic.Bool // Stop or Kill was called: an exit is expected
	last    bool        // stopped after the others (the redis-server they talk to)
}

// children is every process started and not yet reaped, for the cleanup on
// exit or interrupt.
var children struct {
	sync.Mutex
	all []*Child
}

// life guards the work directory and the child processes against an
// abort (interrupt, closed stdout) racing the step that is running: every
// step that creates files or processes there holds it shared (Enter/Leave),
// and the abort takes it exclusively, so that after it nothing new appears
// that the cleanup would miss. ctx is cancelled first, which ends a running
// go build.
var life struct {
	sync.RWMutex
	closed bool
	ctx    context.Context
	cancel context.CancelFunc
}

func init() { life.ctx, life.cancel = context.WithCancel(context.Background()) }

// ErrStopping is what a step gets when the program is being stopped.
var ErrStopping = errors.New("stopping")

// Enter reports whether the program may still create files and processes;
// if so, Leave must follow.
func Enter() bool {
	life.RLock()
	if life.closed {
		life.RUnlock()
		return false
	}
	return true
}

// Leave ends what Enter began.
func Leave() { life.RUnlock() }

// shutdown makes Enter fail from now on and waits for the steps inside.
func shutdown() {
	life.cancel()
	life.Lock()
	life.closed = true
	life.Unlock()
}

// StartChild runs bin with args in env (the whole environment; nil: this
// process's), logging to logDir/name.log. Pdeathsig kills the child if the
// program dies without cleaning up (kill -9), so no redis-server or worker
// outlives it.
func StartChild(name, bin string, args, env []string, logDir string) (*Child, error) {
	if !Enter() {
		return nil, ErrStopping
	}
	defer Leave()
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
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
	c := &Child{Name: name, LogPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	children.Lock()
	children.all = append(children.all, c)
	children.Unlock()
	return c, nil
}

// Pid is the child's process id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Alive reports whether the child has not exited.
func (c *Child) Alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// Exited is closed when the child has exited.
func (c *Child) Exited() <-chan struct{} { return c.exited }

// WaitErr is how the child ended (exec.Cmd.Wait's error); nil while it
// runs.
func (c *Child) WaitErr() error {
	if c.Alive() {
		return nil
	}
	return c.waitErr
}

// Crashed reports whether the child exited without being stopped or killed.
func (c *Child) Crashed() bool { return !c.Alive() && !c.ended.Load() }

// ExitError describes how the child ended, with the last lines it logged.
func (c *Child) ExitError() error {
	log, _ := os.ReadFile(c.LogPath)
	return fmt.Errorf("%s exited: %v; log: %s", c.Name, c.WaitErr(), LastLines(string(log), 5))
}

// Stop sends SIGTERM (the product's graceful stop), waits up to grace, then
// kills.
func (c *Child) Stop(grace time.Duration) {
	c.ended.Store(true)
	if !c.Alive() {
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

// Kill sends SIGKILL (kill -9: no cleanup of any kind) and waits for the
// exit.
func (c *Child) Kill() {
	c.ended.Store(true)
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// StopAll stops every child still running, the redis-servers last (the
// product's processes talk to them while they stop).
func StopAll() {
	children.Lock()
	all := append([]*Child(nil), children.all...)
	children.Unlock()
	var wg sync.WaitGroup
	for _, c := range all {
		if !c.last {
			wg.Add(1)
			go func() { defer wg.Done(); c.Stop(time.Second) }()
		}
	}
	wg.Wait()
	for _, c := range all {
		if c.last {
			c.Stop(3 * time.Second)
		}
	}
}
