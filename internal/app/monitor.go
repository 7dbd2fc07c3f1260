package app

import (
	"net/http"

	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
)

// MonitorPath is where the queue monitor is mounted.
const MonitorPath = "/monitor"

// QueueMonitor is asynqmon (the asynq project's web UI: queues, tasks by
// state with their payloads and last errors, servers, Redis) on the
// process's own Redis client, whatever its topology, read-only unless
// MONITOR=read-write; nil with MONITOR=off. The caller puts it behind a
// sign-in (the console's).
//
// asynqmon v0.7.2 is built for asynq v0.24 and go-redis v9; it compiles and
// runs on asynq v0.26 (checked: its inspector calls are asynq's public API,
// unchanged), so no page of our own stands in for it.
func QueueMonitor(cfg Config, rdb redis.UniversalClient) http.Handler {
	if cfg.Monitor == MonitorOff {
		return nil
	}
	return asynqmon.New(asynqmon.Options{
		RootPath:     MonitorPath,
		RedisConnOpt: sharedClient{rdb},
		ReadOnly:     cfg.Monitor != MonitorReadWrite,
	})
}

// sharedClient hands asynqmon the process's client instead of a second
// pool of its own (asynq.RedisConnOpt). asynqmon is never closed: it would
// close the shared client.
type sharedClient struct{ rdb redis.UniversalClient }

func (s sharedClient) MakeRedisClient() any { return s.rdb }
