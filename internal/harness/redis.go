//go:build linux

package harness

import (
	"fmt"
	"os/exec"
	"strconv"
	"time"

	"github.com/wacampaign/wacampaign/internal/redistest"
)

// RedisOptions shape a redis-server child.
type RedisOptions struct {
	Dir  string // its data directory and where its log goes; required
	Name string // the child's name (and log's); "": redis
	// AppendFsync, when set, turns the append-only file on with this
	// appendfsync policy (always, everysec, no); "": nothing persisted.
	AppendFsync string
}

// Redis is a redis-server child on a loopback port.
type Redis struct {
	*Child
	Addr string // 127.0.0.1:port
	opts RedisOptions
	port int
}

// StartRedis runs a redis-server on a free loopback port, with no RDB
// snapshots (--save "") and the append-only file as opts say. It is not
// internal/redistest, whose servers belong to a testing.TB and persist
// nothing; a harness's Redis must outlive a kill -9 of itself and come back
// on the same data.
func StartRedis(opts RedisOptions) (*Redis, error) {
	if opts.Name == "" {
		opts.Name = "redis"
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := redistest.FreePort()
		if err != nil {
			return nil, err
		}
		r := &Redis{Addr: fmt.Sprintf("127.0.0.1:%d", port), opts: opts, port: port}
		if lastErr = r.start(); lastErr == nil {
			return r, nil
		}
		// Most likely the port was taken in between: try another.
	}
	return nil, fmt.Errorf("could not start redis-server: %w", lastErr)
}

// Restart starts the server again on the same port and data directory,
// after it was killed or stopped: it loads what its append-only file holds.
func (r *Redis) Restart() error {
	if r.Alive() {
		return fmt.Errorf("%s is still running", r.Name)
	}
	return r.start()
}

func (r *Redis) start() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("redis-server is not installed (bash .ci/run installs it): %w", err)
	}
	args := []string{
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--dir", r.opts.Dir,
	}
	if r.opts.AppendFsync != "" {
		args = append(args, "--appendonly", "yes", "--appendfsync", r.opts.AppendFsync)
	} else {
		args = append(args, "--appendonly", "no")
	}
	c, err := StartChild(r.opts.Name, bin, args, nil, r.opts.Dir)
	if err != nil {
		return err
	}
	c.last = true
	if err := waitRedis(c, r.Addr); err != nil {
		c.Stop(time.Second)
		return err
	}
	r.Child = c
	return nil
}

func waitRedis(c *Child, addr string) error {
	return redistest.AwaitPing(addr, func() error {
		if c.Alive() {
			return nil
		}
		return c.ExitError()
	})
}
