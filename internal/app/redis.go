package app

import (
	"context"
	"errors"
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

// Process kinds, for REDIS_PIPELINE=auto.
const (
	ForAPI    = "api"
	ForWorker = "worker"
)

// OpenRedis connects to REDIS_URL, or without one starts an embedded
// in-process Redis and warns loudly that nothing is durable. It never
// looks for a Redis of its own accord (127.0.0.1:6379 is someone else's:
// `make run` once ran that Redis's status polls and left its campaigns
// there); `campaign-api -worker` starts a dev redis-server of its own
// instead (OpenDevRedis). process (ForAPI, ForWorker) says what the
// connection is for.
func OpenRedis(ctx context.Context, cfg Config, process string, log *zap.Logger) (*Redis, error) {
	cfg.RedisPipeline = pipelineFor(cfg.RedisPipeline, process)
	RedisLogsTo(log)
	if cfg.RedisURL == "" {
		return openEmbedded(cfg, log)
	}
	if err := checkRedisMode(cfg.RedisMode, cfg.RedisURL); err != nil {
		return nil, err
	}
	client, err := clientForURL(cfg.RedisURL, poolSize(cfg))
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if err := pingRedis(ctx, client); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("REDIS_URL: Redis does not answer: %w", err)
	}
	return newRedis(cfg, client, redactURL(cfg.RedisURL), false), nil
}

// openEmbedded starts a miniredis in this process.
func openEmbedded(cfg Config, log *zap.Logger) (*Redis, error) {
	mr, err := miniredis.Run()
	if err != nil {
		return nil, fmt.Errorf("start the embedded Redis: %w", err)
	}
	log.Warn("!!! no REDIS_URL: running on an EMBEDDED in-process Redis. " +
		"Development only: NOTHING IS DURABLE, every campaign is lost when this process stops, " +
		"and no other process can share it. Set REDIS_URL for real use " +
		"(or install redis-server: make run then keeps its data in .data/).")
	r := newRedis(cfg, redis.NewClient(&redis.Options{Addr: mr.Addr(), PoolSize: poolSize(cfg)}), "redis://"+mr.Addr()+" (embedded)", true)
	r.closers = []func(){mr.Close}
	return r, nil
}

// pingRedis waits up to five seconds for an answer.
func pingRedis(ctx context.Context, client redis.UniversalClient) error {
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return client.Ping(pingCtx).Err()
}

// clientForURL makes the client a REDIS_URL names. Three forms:
//
//   - Sentinel, go-redis's failover URL: a master_name parameter, the
//     sentinels as host and addr= parameters
//     (redis://sentinel1:26379?master_name=mymaster&addr=sentinel2:26379);
//     asynq's redis-sentinel://s1:26379,s2:26379?master=mymaster too.
//   - Cluster, go-redis's cluster URL: addr= parameters and no master_name
//     (redis://node1:6379?addr=node2:6379&addr=node3:6379).
//   - One server: redis://[:password@]host:port[/db] or rediss:// for TLS.
//
// Before the first two were read here, an addr= parameter was silently
// dropped and the first host used as a lone server.
func clientForURL(raw string, pool int) (redis.UniversalClient, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL (redis://host:port, see README)") // the error would repeat a password
	}
	q := u.Query()
	if (u.Scheme == "redis" || u.Scheme == "rediss") && (q.Has("master_name") || q.Has("addr")) {
		if q.Has("master_name") {
			opt, err := redis.ParseFailoverURL(raw)
			if err != nil {
				return nil, fmt.Errorf("a Sentinel URL (master_name=…): %w", err)
			}
			opt.PoolSize = pool
			opt.DisableIdentity = true // see noIdentity
			return redis.NewFailoverClient(opt), nil
		}
		opt, err := redis.ParseClusterURL(raw)
		if err != nil {
			return nil, fmt.Errorf("a Cluster URL (addr=…): %w", err)
		}
		opt.DisableIdentity = true              // see noIdentity
		return redis.NewClusterClient(opt), nil // a pool per node, sized by go-redis
	}
	opt, err := asynq.ParseRedisURI(raw)
	if err != nil {
		return nil, err
	}
	return withPoolSize(opt, pool).MakeRedisClient().(redis.UniversalClient), nil
}

// noIdentity: go-redis announces itself on every new connection with
// CLIENT SETINFO, which Redis before 7.2 (Debian 12 ships 7.0) answers with
// an error that go-redis ignores but the server counts in INFO errorstats
// (errorstat_ERR), where an operator would read it as a fault. The clients
// built here skip it.

// urlMode is the topology a REDIS_URL's form names (see clientForURL).
func urlMode(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return RedisStandalone // clientForURL says what is wrong with it
	}
	q := u.Query()
	switch {
	case u.Scheme == "redis-sentinel" || q.Has("master_name"):
		return RedisSentinel
	case (u.Scheme == "redis" || u.Scheme == "rediss") && q.Has("addr"):
		return RedisCluster
	}
	return RedisStandalone
}

// checkRedisMode refuses a REDIS_MODE that the URL's form contradicts: a
// cluster named with a lone server's URL would run on one node of it and
// fail on every key another node owns.
func checkRedisMode(mode, raw string) error {
	if mode == "" {
		return nil
	}
	if got := urlMode(raw); got != mode {
		forms := map[string]string{
			RedisStandalone: "redis://host:6379/0",
			RedisSentinel:   "redis://sentinel-0:26379?master_name=mymaster&addr=sentinel-1:26379",
			RedisCluster:    "redis://node-0:6379?addr=node-1:6379&addr=node-2:6379",
		}
		return fmt.Errorf("REDIS_MODE is %s but REDIS_URL has the form of %s; a %s URL looks like %s", mode, got, mode, forms[mode])
	}
	return nil
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

// redactURL hides a password in a URL (Redis's, a gateway's: its user part,
// or a Sentinel URL's password= parameter): it goes to logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
