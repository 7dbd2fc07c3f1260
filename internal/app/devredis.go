//go:build unix

package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// OpenDevRedis is the Redis of `make run` (campaign-api -worker) when
// REDIS_URL is unset: a redis-server of its own on a free loopback port,
// with its data in dataDir (append-only file), so that campaigns survive a
// restart, and stopped by Close, which lets it write what it has. Without
// redis-server on the PATH it falls back to the embedded Redis (OpenRedis,
// which says loudly that nothing is durable). A lock file in dataDir keeps
// a second process off the same data. With REDIS_URL set, or dataDir "",
// it is OpenRedis.
func OpenDevRedis(ctx context.Context, cfg Config, process, dataDir string, log *zap.Logger) (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if cfg.RedisURL != "" || dataDir == "" || err != nil {
		return OpenRedis(ctx, cfg, process, log)
	}
	cfg.RedisPipeline = pipelineFor(cfg.RedisPipeline, process)
	dataDir, err = filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("the dev Redis's data folder: %w", err)
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	server, addr, err := startDevRedis(ctx, bin, dataDir)
	if err != nil {
		unlock()
		return nil, err
	}
	log.Info("dev Redis: a redis-server of this process, its data (append-only file) kept in "+dataDir,
		zap.String("url", "redis://"+addr))
	r := newRedis(cfg, redis.NewClient(&redis.Options{Addr: addr, PoolSize: poolSize(cfg)}), "redis://"+addr+" (dev, data in "+dataDir+")", false)
	r.closers = []func(){func() { stopDevRedis(server) }, unlock}
	return r, nil
}

// lockDataDir takes dataDir/lock for as long as this process lives (the
// kernel drops it when the process ends, however it ends), and writes the
// process id into it for the message of the next one that tries.
func lockDataDir(dataDir string) (unlock func(), err error) {
	path := filepath.Join(dataDir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("the dev Redis's lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("the data folder %s is in use by another campaign-api (pid %s): stop that one, "+
			"or run this one on another address, which keeps its data in a folder of its own (make run ADDR=127.0.0.1:8081)",
			dataDir, strings.TrimSpace(string(holder)))
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}

// startDevRedis runs redis-server on a free loopback port over dataDir and
// waits until it answers. It runs in a process group of its own, so the
// Ctrl-C of the terminal reaches only this process, which stops it after
// the worker has finished with it.
func startDevRedis(ctx context.Context, bin, dataDir string) (*devServer, string, error) {
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	logPath := filepath.Join(dataDir, "redis.log")
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dataDir, "--logfile", logPath,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "")
	cmd.SysProcAttr = devRedisProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start the dev redis-server: %w", err)
	}
	server := &devServer{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(server.exited) }()
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer client.Close()
	deadline := time.Now().Add(15 * time.Second) // a big append-only file takes a while to load
	for client.Ping(ctx).Err() != nil {
		select {
		case <-server.exited:
			return nil, "", fmt.Errorf("the dev redis-server exited at start; its log %s says: %s", logPath, lastLogLines(logPath))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stopDevRedis(server)
			return nil, "", fmt.Errorf("the dev redis-server on %s did not answer; see %s", addr, logPath)
		}
	}
	return server, addr, nil
}

// devServer is a running dev redis-server.
type devServer struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once it has exited and been reaped
}

// stopDevRedis asks redis-server to stop (SIGTERM: it flushes the
// append-only file and exits) and kills it if it has not within ten
// seconds.
func stopDevRedis(s *devServer) {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// freeLoopbackPort is a loopback TCP port nobody listens on (at the moment
// of the call).
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lastLogLines is the end of a log file, for an error message.
func lastLogLines(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-3):], " | ")
}
