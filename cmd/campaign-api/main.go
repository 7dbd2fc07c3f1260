// Command campaign-api serves the v1 HTTP API: it creates campaigns from
// uploaded CSVs (streaming them into one asynq task per recipient) and shows
// their progress. With -worker it also runs a worker in the same process,
// which is how `make run` brings the whole product up with one command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/console"
	"github.com/wacampaign/wacampaign/internal/quota"
)

func main() {
	withWorker := flag.Bool("worker", false, "also run a worker in this process (development)")
	devData := flag.String("data", ".data", "with -worker and REDIS_URL unset: the folder where a dev redis-server of this process keeps its data")
	flag.Parse()
	if err := run(*withWorker, *devData); err != nil {
		fmt.Fprintln(os.Stderr, "campaign-api:", err)
		os.Exit(1)
	}
}

func run(withWorker bool, devData string) error {
	cfg, err := app.Load(os.Getenv)
	if err != nil {
		return err
	}
	log, err := app.NewLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // nothing to do if stderr is gone
	if err := checkAPIConfig(cfg); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// The address first: a second `make run` must stop before it starts
	// anything.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("ADDR %s is taken (another make run?): pick another, e.g. make run ADDR=127.0.0.1:8081 (%w)", cfg.Addr, err)
	}
	defer ln.Close()

	if !withWorker {
		devData = "" // a dev redis-server is for the all-in-one development process only
	}
	rdb, err := app.OpenDevRedis(ctx, cfg, app.ForAPI, devData, log)
	if err != nil {
		return err
	}
	defer rdb.Close()

	if withWorker {
		limiter := quota.NewCallLimiter(rdb.Client, cfg.APICallsPerSecond)
		provider, err := app.OpenProvider(cfg, limiter, log)
		if err != nil {
			return err
		}
		defer provider.Close()
		worker := app.NewWorker(cfg, rdb, provider, log)
		if err := worker.Start(); err != nil {
			return err
		}
		defer worker.Shutdown()
	} else if rdb.Embedded {
		log.Warn("the embedded Redis lives in this process: no separate worker can reach it; run with -worker")
	}

	srv := newServer(cfg, rdb.Client, log)
	defer srv.Close()
	ui, err := console.New(console.Options{API: srv.routes(), Redis: rdb.Client, Log: log, Monitor: app.QueueMonitor(cfg, rdb.Client)})
	if err != nil {
		return err
	}
	httpServer := &http.Server{
		Handler:           ui, // the console at /, the API at /v1/
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	log.Info("API listening", zap.String("url", "http://"+ln.Addr().String()), zap.String("redis", rdb.URL))
	return serveUntilDone(ctx, httpServer, ln, cfg.ShutdownTimeout, log)
}

// checkAPIConfig refuses what the API cannot start with: no API key, no
// provider configured (no silent sandbox in production, like the workers
// it serves), a confirmation template that does not exist or does not fit.
func checkAPIConfig(cfg app.Config) error {
	if len(cfg.APIKeys) == 0 {
		return errors.New("API_KEYS is empty: set at least one key for the v1 API (make run makes one)")
	}
	if _, err := cfg.ProviderKind(); err != nil {
		return err
	}
	_, err := cfg.ConfirmTemplates()
	return err
}

// serveUntilDone serves on ln until the server fails or ctx ends (a
// signal), then shuts down within timeout.
func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration, log *zap.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
