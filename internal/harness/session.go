//go:build linux

package harness

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
)

// Session is one run of a harness program: its work directory, and the
// cleanup that stops every child and removes the directory, whether the run
// ends, is interrupted (SIGINT, SIGTERM, SIGHUP) or loses its reader
// (`make bench | head`). A SIGKILL of the program is covered by the
// children's Pdeathsig instead.
type Session struct {
	Dir string

	prog     string
	keep     bool
	once     sync.Once
	aborting atomic.Bool
	flush    func()
}

// NewSession makes the work directory (in the system's temp dir) and
// installs the signal and stdout handling. keep leaves the directory in
// place at the end and says where. Close must follow.
func NewSession(prog string, keep bool) (*Session, error) {
	dir, err := os.MkdirTemp("", prog+"-")
	if err != nil {
		return nil, err
	}
	s := &Session{Dir: dir, prog: prog, keep: keep}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := (<-sigs).(syscall.Signal)
		s.abort(128+int(sig), "got "+sig.String())
	}()
	s.flush = guardStdout(func() { s.abort(128+int(syscall.SIGPIPE), "stdout was closed") })
	return s, nil
}

// Close flushes stdout, stops the children and removes (or keeps) the work
// directory. It may be called more than once.
func (s *Session) Close() {
	s.flush()
	s.cleanup()
}

func (s *Session) cleanup() {
	s.once.Do(func() {
		StopAll()
		if s.keep {
			fmt.Fprintln(os.Stderr, "work directory kept:", s.Dir)
		} else {
			os.RemoveAll(s.Dir)
		}
	})
}

// abort stops everything and exits with code. The first abort wins; a
// second one waits for it to exit the process.
func (s *Session) abort(code int, why string) {
	if s.aborting.Swap(true) {
		select {}
	}
	fmt.Fprintf(os.Stderr, "\n%s: %s - stopping the children\n", s.prog, why)
	shutdown()
	s.cleanup()
	os.Exit(code)
}

// WaitIfAborting blocks for good when an abort is under way: an error the
// run returns then is the abort's doing, and the abort exits the process.
func (s *Session) WaitIfAborting() {
	if s.aborting.Load() {
		select {}
	}
}

// guardStdout routes this process's stdout through a pipe copied to the
// real one, so that a reader going away is noticed (onBroken runs) instead
// of killing the process with SIGPIPE before it has stopped its children.
// The returned function flushes what is left.
func guardStdout(onBroken func()) func() {
	r, w, err := os.Pipe()
	if err != nil {
		return func() {}
	}
	signal.Ignore(syscall.SIGPIPE) // a write to the closed stdout fails with EPIPE instead
	real := os.Stdout
	os.Stdout = w
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := io.Copy(real, r); err != nil {
			go onBroken()
			_, _ = io.Copy(io.Discard, r) // keep writers from blocking until the exit
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			os.Stdout = real
			w.Close()
			<-done
		})
	}
}
