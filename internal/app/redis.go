package app

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/redispipe"
)

// Redis is the connection every part of a process shares.
type Redis struct {
	Client   redis.UniversalClient
	URL      string // where it is, for people (no password)
	Embedded bool   // an in-process miniredis: nothing survives the process
	closers  []func()
}

// Close closes the client and stops an embedded server.
func (r *Redis) Close() {
	_ = r.Client.Close()
	for _, c := range r.closers {
		c()
	}
}

const localRedis = "127.0.0.1:6379"

// Process kinds, for REDIS_PIPELINE=auto.
const (
	ForAPI    = "api"
	ForWorker = "worker"
)

// OpenRedis connects to REDIS_URL; without one, to 127.0.0.1:6379 if
// something answers there, else it starts an embedded in-process Redis and
// warns loudly that nothing is durable. process (ForAPI, ForWorker) says
// what the connection is for.
func OpenRedis(ctx context.Context, cfg Config, process string, log *zap.Logger) (*Redis, error) {
	cfg.RedisPipeline = pipelineFor(cfg.RedisPipeline, process)
	if cfg.RedisURL != "" {
		opt, err := asynq.ParseRedisURI(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		client := withPoolSize(opt, poolSize(cfg)).MakeRedisClient().(redis.UniversalClient)
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := client.Ping(pingCtx).Err(); err != nil {
			_ = client.Close()
			return nil, fmt.Errorf("REDIS_URL: Redis does not answer: %w", err)
		}
		return newRedis(cfg, client, redactURL(cfg.RedisURL), false), nil
	}

	client := redis.NewClient(&redis.Options{Addr: localRedis, PoolSize: poolSize(cfg)})
	pingCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err == nil {
		log.Info("using the Redis on " + localRedis + " (set REDIS_URL to choose another)")
		return newRedis(cfg, client, "redis://"+localRedis, false), nil
	}
	_ = client.Close()

	mr, err := miniredis.Run()
	if err != nil {
		return nil, fmt.Errorf("start the embedded Redis: %w", err)
	}
	log.Warn("!!! no REDIS_URL and nothing on " + localRedis + ": running on an EMBEDDED in-process Redis. " +
		"Development only: NOTHING IS DURABLE, every campaign is lost when this process stops, " +
		"and no other process can share it. Set REDIS_URL for real use.")
	r := newRedis(cfg, redis.NewClient(&redis.Options{Addr: mr.Addr(), PoolSize: poolSize(cfg)}), "redis://"+mr.Addr()+" (embedded)", true)
	r.closers = []func(){mr.Close}
	return r, nil
}

// pipelineFor resolves REDIS_PIPELINE=auto: on for the API, whose import
// enqueues from many goroutines doing little else, off for workers, whose
// sends spend their time in the provider call and Lua scripts, so their
// commands rarely meet to share a round trip (measured with make bench).
func pipelineFor(setting, process string) string {
	if setting != "auto" {
		return setting
	}
	if process == ForAPI {
		return "on"
	}
	return "off"
}

// newRedis wraps a connected client. With REDIS_PIPELINE on, its commands
// from concurrent goroutines share round trips (redispipe): a worker's sends
// make their Redis calls side by side, and one round trip each costs more
// CPU, in the process and in Redis, than the calls themselves.
func newRedis(cfg Config, client redis.UniversalClient, url string, embedded bool) *Redis {
	if cfg.RedisPipeline == "on" {
		client.AddHook(redispipe.New(client))
	}
	return &Redis{Client: client, URL: url, Embedded: embedded}
}

// poolSize is how many Redis connections a process keeps. go-redis's
// default (10 per CPU) is too few for a worker: every task it runs makes its
// Redis calls one after another, and asynq's own loops need connections
// too, so a smaller pool makes sends queue for a connection instead of
// running (measured with make bench: a worker of concurrency 32 on 2 CPUs
// sent a tenth of what it could).
func poolSize(cfg Config) int {
	return max(10*runtime.GOMAXPROCS(0), 2*cfg.WorkerConcurrency+16)
}

// withPoolSize sets the pool size on what asynq.ParseRedisURI made.
func withPoolSize(opt asynq.RedisConnOpt, n int) asynq.RedisConnOpt {
	switch o := opt.(type) {
	case asynq.RedisClientOpt:
		o.PoolSize = n
		return o
	case asynq.RedisFailoverClientOpt:
		o.PoolSize = n
		return o
	case asynq.RedisClusterClientOpt:
		return o // cluster clients keep a pool per node, sized by go-redis
	}
	return opt
}

// redactURL hides a password in a URL (Redis's, a gateway's): it goes to
// logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
