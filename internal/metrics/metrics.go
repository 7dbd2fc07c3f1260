// Package metrics is the product's Prometheus metrics: the instruments the
// send path, the provider clients and the API move as things happen
// (instruments.go), the gauges the API reads from Redis when it is scraped
// (state.go: due and waiting tasks, campaigns by status, credits), asynq's
// own queue metrics, and the handlers that serve them (the API at /metrics,
// a worker at METRICS_ADDR).
//
// The instruments are process-wide, like a process's log: every part of a
// process counts into the same ones, and each process serves its own. The
// Redis-derived gauges are the same for every process reading one Redis, so
// only the API publishes them (a dashboard takes max over API replicas, not
// sum).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Namespace starts every metric name of the product.
const Namespace = "wacampaign"

// process is the registry of the instruments and the Go runtime's metrics.
var process = prometheus.NewRegistry()

func init() {
	process.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	registerInstruments(process)
}

// Handler serves the process's instruments and extra collectors (the API's
// Redis gauges and asynq's queue metrics) in Prometheus's text format. A
// collector that fails is reported in the answer, not as a 500: the other
// metrics still matter when Redis is slow.
func Handler(extra ...prometheus.Collector) (http.Handler, error) {
	local := prometheus.NewRegistry()
	for _, c := range extra {
		if err := local.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register a collector: %w", err)
		}
	}
	gatherers := prometheus.Gatherers{process, local}
	return promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}), nil
}

// Serve serves Handler() at /metrics on addr (a worker's METRICS_ADDR) and
// returns a function that stops it.
func Serve(addr string, log *zap.Logger) (func(), error) {
	h, err := Handler()
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", zap.Error(err))
		}
	}()
	log.Info("metrics listening", zap.String("url", "http://"+ln.Addr().String()+"/metrics"))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
