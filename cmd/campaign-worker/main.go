// Command campaign-worker runs the asynq server that sends campaign
// messages: it claims each recipient, waits for the account's pacing slot and
// for credits, renders the template, calls the provider and records the
// outcome; beside it the credit ledger is kept in sync with GET /quotas. On
// SIGTERM it stops taking tasks and lets running sends finish.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/metrics"
	"github.com/wacampaign/wacampaign/internal/quota"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "campaign-worker:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := app.Load(os.Getenv)
	if err != nil {
		return err
	}
	log, err := app.NewLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // nothing to do if stderr is gone

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	rdb, err := app.OpenRedis(ctx, cfg, app.ForWorker, log)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if rdb.Embedded {
		return errors.New("a separate worker needs a shared Redis: set REDIS_URL (or run campaign-api -worker for development)")
	}

	provider, err := app.OpenProvider(cfg, quota.NewCallLimiter(rdb.Client, cfg.APICallsPerSecond), log)
	if err != nil {
		return err
	}
	defer provider.Close()

	worker := app.NewWorker(cfg, rdb, provider, log)
	if err := worker.Start(); err != nil {
		return err
	}
	if cfg.DebugAddr != "" {
		stopDebug, err := app.ServeDebug(cfg.DebugAddr, rdb, log)
		if err != nil {
			worker.Shutdown()
			return err
		}
		defer stopDebug()
	}
	if cfg.MetricsAddr != "" {
		stopMetrics, err := metrics.Serve(cfg.MetricsAddr, log)
		if err != nil {
			worker.Shutdown()
			return err
		}
		defer stopMetrics()
	}
	<-ctx.Done()
	log.Info("signal received; finishing running sends")
	worker.Shutdown()
	return nil
}
