//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/harness"
)

// Figure 3's worker: one process, this many tasks at once, for ours and
// the baseline alike.
const workerConcurrency = 32

// workerBench is figure 3: one campaign-worker sending a queued campaign
// through the whole send path (campaign gate, account, pacing off, claim,
// render, credit ledger, API-call ceiling, the provider call to the sandbox,
// the recorded outcome, the status poll it schedules), against a bare asynq
// server whose handler does nothing, on the same Redis.
type workerBench struct {
	b *bench

	n           int64
	took        time.Duration
	cpu         time.Duration
	redisCPU    time.Duration
	sandboxCPU  time.Duration
	reasons     map[string]bool
	pace        string // throughput through the run, by tenths
	profile     string // Redis commands per message
	baseProfile string
	payloadSize int

	baseTook     time.Duration
	baseCPU      time.Duration
	baseRedisCPU time.Duration
}

func (w *workerBench) run() error {
	if err := w.ours(); err != nil {
		return err
	}
	if err := w.baseline(); err != nil {
		return err
	}
	w.results()
	return nil
}

// ours queues the campaign through the API first (no worker running,
// SEND_INTERVAL=0s), then times one campaign-worker from its start until
// the API shows the campaign completed.
func (w *workerBench) ours() error {
	b := w.b
	ctx := context.Background()
	if err := b.flush(ctx); err != nil {
		return err
	}
	sb, srv := newSandbox()
	defer srv.Close()
	api, client, err := b.startAPI("api-fig3", srv.URL, "0s")
	if err != nil {
		return err
	}
	defer api.Stop(10 * time.Second)
	if err := w.syncLedger(ctx, client, srv.URL); err != nil {
		return err
	}
	plan, err := harness.NewPhonePlan(b.sends)
	if err != nil {
		return err
	}
	var csv bytes.Buffer
	if _, err := harness.WriteContacts(&csv, b.sends, plan); err != nil {
		return err
	}
	c, err := client.CreateCampaign(ctx, []harness.Field{{Name: "name", Value: "bench worker"}, {Name: "template", Value: benchTemplate}}, &csv)
	if err != nil {
		return err
	}
	w.n = c.Counts.Total
	if queued, err := queuedTasks(ctx, b.rdb); err != nil || queued != w.n {
		return fmt.Errorf("campaign %s has %d recipients but %d tasks are queued (%v)", c.ID, w.n, queued, err)
	}
	if w.payloadSize, err = samplePayloadSize(b.addr); err != nil {
		return err
	}

	b.resetCommandStats(ctx)
	redis0, self0 := b.redisCPU(), selfCPU()
	start := time.Now()
	env := []string{"SEND_INTERVAL=0s", "WORKER_CONCURRENCY=" + strconv.Itoa(workerConcurrency)}
	if addr := os.Getenv("BENCH_WORKER_DEBUG_ADDR"); addr != "" {
		// To profile the worker under load: go tool pprof http://<addr>/debug/pprof/profile
		env = append(env, "DEBUG_ADDR="+addr)
	}
	worker, err := b.startProduct("worker-fig3", b.workBin, nil, b.productEnv(srv.URL, env...))
	if err != nil {
		return err
	}
	defer worker.Stop(30 * time.Second)
	w.reasons = map[string]bool{}
	var last *harness.Campaign
	var progress []progressSample
	deadline := start.Add(10 * time.Minute)
	for {
		cur, err := client.GetCampaign(ctx, c.ID)
		if err != nil {
			return err
		}
		last = cur
		progress = append(progress, progressSample{time.Since(start), cur.Counts.Sent + cur.Counts.Failed + cur.Counts.Skipped + cur.Counts.Unknown})
		if cur.Reason != "" {
			w.reasons[cur.Reason] = true
		}
		if cur.Status == "completed" {
			break
		}
		if !worker.Alive() {
			return fmt.Errorf("campaign-worker exited: %v (campaign at %+v)", worker.WaitErr(), cur.Counts)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("campaign %s not completed after 10 minutes: %+v", c.ID, cur.Counts)
		}
		time.Sleep(25 * time.Millisecond)
	}
	w.took = time.Since(start)
	if w.cpu, err = cpuTime(worker.Pid()); err != nil {
		return err
	}
	w.redisCPU = b.redisCPU() - redis0
	w.sandboxCPU = selfCPU() - self0 // the sandbox and the 25 ms polling
	worker.Stop(30 * time.Second)

	sent := len(sb.Messages())
	fmt.Printf("  %d recipients (payload of a send task: %d bytes): completed in %s → %.0f messages/s; worker CPU %s (%.0f µs/message); redis CPU %s\n",
		w.n, w.payloadSize, roundDur(w.took), float64(w.n)/w.took.Seconds(), roundDur(w.cpu),
		float64(w.cpu.Microseconds())/float64(w.n), roundDur(w.redisCPU))
	fmt.Printf("  counts %+v; sandbox accepted %d messages\n", last.Counts, sent)
	w.pace = describeProgress(progress, w.n)
	fmt.Printf("  messages/s by tenth of the campaign: %s\n", w.pace)
	w.profile = b.commandProfile(ctx, w.n, 6)
	fmt.Printf("  Redis per message: %s\n", w.profile)
	if last.Counts.Sent != w.n || int64(sent) != w.n {
		b.warn(fmt.Sprintf("figure 3: %d recipients, %d recorded sent, %d accepted by the sandbox", w.n, last.Counts.Sent, sent))
	}
	for r := range w.reasons {
		b.warn(fmt.Sprintf("figure 3: the campaign showed the reason %q while sending", r))
	}
	return nil
}

// syncLedger runs a campaign-worker with nothing to send until the credit
// ledger has read the provider's quota, then stops it. Redis then holds a
// synced ledger, as it does in any deployment after its first minute, so
// the measured worker shows the send path rather than the first start's
// race: tasks that reach the ledger before a new worker's first GET /quotas
// wait QUOTA_SYNC_INTERVAL (1 min), which would be most of the figure.
func (w *workerBench) syncLedger(ctx context.Context, client *harness.APIClient, sandboxURL string) error {
	wk, err := w.b.startProduct("worker-fig3-warmup", w.b.workBin, nil, w.b.productEnv(sandboxURL, "SEND_INTERVAL=0s"))
	if err != nil {
		return err
	}
	defer wk.Stop(10 * time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for !client.CreditsSynced(ctx) {
		if !wk.Alive() || time.Now().After(deadline) {
			return fmt.Errorf("the warm-up worker did not sync the credit ledger (exited: %v)", !wk.Alive())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// samplePayloadSize is the payload size of a queued send task of the
// product, so the baseline's tasks are as big.
func samplePayloadSize(addr string) (int, error) {
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})
	defer insp.Close()
	tasks, err := insp.ListPendingTasks("send", asynq.PageSize(1))
	if err != nil {
		return 0, err
	}
	if len(tasks) == 0 {
		return 0, errors.New("no pending send task to sample")
	}
	return len(tasks[0].Payload), nil
}

// baseline queues as many tasks, with payloads as big as the product's, and
// times this program re-executed as a bare asynq server (same concurrency,
// queue "send", a handler that returns nil) from its start until the queue
// is empty.
func (w *workerBench) baseline() error {
	b := w.b
	ctx := context.Background()
	if err := b.flush(ctx); err != nil {
		return err
	}
	payload := bytes.Repeat([]byte("x"), w.payloadSize)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: b.addr})
	_, errs := enqueueParallel(ctx, client, int(w.n), 32, func() *asynq.Task { return asynq.NewTask(noopTaskType, payload) }, asynq.Queue("send"))
	client.Close()
	if errs > 0 {
		return fmt.Errorf("baseline: %d enqueues failed", errs)
	}

	b.resetCommandStats(ctx)
	redis0 := b.redisCPU()
	start := time.Now()
	srv, err := harness.StartChild("noop-fig3", b.selfBin, []string{"-noop-server"},
		append(os.Environ(), "BENCH_REDIS_ADDR="+b.addr, "BENCH_CONCURRENCY="+strconv.Itoa(workerConcurrency)), b.dir)
	if err != nil {
		return err
	}
	defer srv.Stop(10 * time.Second)
	deadline := start.Add(5 * time.Minute)
	for {
		left, err := unfinished(ctx, b.rdb)
		if err != nil {
			return err
		}
		if left == 0 {
			break
		}
		if !srv.Alive() {
			return fmt.Errorf("the no-op asynq server exited: %v", srv.WaitErr())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the no-op asynq server left %d tasks after 5 minutes", left)
		}
		time.Sleep(25 * time.Millisecond)
	}
	w.baseTook = time.Since(start)
	if w.baseCPU, err = cpuTime(srv.Pid()); err != nil {
		return err
	}
	w.baseRedisCPU = b.redisCPU() - redis0
	srv.Stop(10 * time.Second)
	w.baseProfile = b.commandProfile(ctx, w.n, 4)
	fmt.Printf("  baseline: %d no-op tasks in %s → %.0f tasks/s; server CPU %s (%.0f µs/task); redis CPU %s\n",
		w.n, roundDur(w.baseTook), float64(w.n)/w.baseTook.Seconds(), roundDur(w.baseCPU),
		float64(w.baseCPU.Microseconds())/float64(w.n), roundDur(w.baseRedisCPU))
	fmt.Printf("  baseline Redis per task: %s\n", w.baseProfile)
	return nil
}

// unfinished counts the send queue's tasks not yet done: waiting or running.
func unfinished(ctx context.Context, rdb *redis.Client) (int64, error) {
	pipe := rdb.Pipeline()
	counts := []*redis.IntCmd{
		pipe.LLen(ctx, sendPendingKey), pipe.LLen(ctx, sendActiveKey),
		pipe.ZCard(ctx, sendScheduledKey), pipe.ZCard(ctx, sendRetryKey),
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	var n int64
	for _, c := range counts {
		n += c.Val()
	}
	return n, nil
}

func (w *workerBench) results() {
	b := w.b
	n := float64(w.n)
	ours, base := n/w.took.Seconds(), n/w.baseTook.Seconds()
	b.add(result{
		figure:   fmt.Sprintf("3. worker throughput, messages/s (%d recipients, 1 process, concurrency %d)", w.n, workerConcurrency),
		ours:     fmt.Sprintf("%.0f/s", ours),
		baseline: fmt.Sprintf("%.0f/s", base),
		ratio:    fmt.Sprintf("%.2f×", ours/base),
		target:   "≥ 0.4×",
		verdict:  verdict(ours/base, 0.4, true),
	})
	ourCPU := float64(w.cpu.Microseconds()) / n
	baseCPU := float64(w.baseCPU.Microseconds()) / n
	b.add(result{
		figure:   "3. worker CPU per message (user + system)",
		ours:     fmt.Sprintf("%.0f µs", ourCPU),
		baseline: fmt.Sprintf("%.0f µs", baseCPU),
		ratio:    fmt.Sprintf("%.1f×", ourCPU/baseCPU),
		target:   "—",
	})
	b.note(fmt.Sprintf("3. After FLUSHALL a warm-up campaign-worker with nothing to send runs until the credit ledger is synced (GET /v1/quota), and stops. "+
		"A %d-recipient campaign is queued through campaign-api (no worker, SEND_INTERVAL=0s); then one campaign-worker "+
		"(WORKER_CONCURRENCY=%d, SEND_INTERVAL=0s, API_CALLS_PER_SECOND=1000000, the sandbox in this process answering at once) is started, "+
		"and timed from its start until GET /v1/campaigns/{id} (polled every 25 ms) says completed: %s. Its CPU is utime+stime of "+
		"/proc/<pid>/stat (10 ms ticks) read then, over the recipients; it includes process start-up. "+
		"Baseline: FLUSHALL, %d tasks with %d-byte payloads (the size of the product's send task) in queue \"send\", then this "+
		"program re-executed as a bare asynq server (same concurrency, asynq defaults, handler returns nil), timed from its start "+
		"until the queue's pending, active, scheduled and retry sets are empty: %s.",
		w.n, workerConcurrency, roundDur(w.took), w.n, w.payloadSize, roundDur(w.baseTook)))
	b.note(fmt.Sprintf("3. Beside the worker: redis-server used %.0f µs/message for ours and %.0f µs/task for the baseline; "+
		"this process (the sandbox's HTTP handling and the polling) %.0f µs/message. All of it shares the machine's %d cores with the worker.",
		float64(w.redisCPU.Microseconds())/n, float64(w.baseRedisCPU.Microseconds())/n, float64(w.sandboxCPU.Microseconds())/n, numCPU()))
	b.note(fmt.Sprintf("3. Messages/s by tenth of the campaign: %s. Redis per message (INFO commandstats, reset before the worker started; "+
		"usec is time inside the command, scripts included): ours %s; baseline %s.", w.pace, w.profile, w.baseProfile))
}

// noopTaskType is the baseline's task type; its handler does nothing.
const noopTaskType = "bench:noop"

// runNoopServer is figure 3's baseline process: asynq with a no-op handler,
// configured only in concurrency and queue, until SIGTERM.
func runNoopServer() error {
	addr := os.Getenv("BENCH_REDIS_ADDR")
	concurrency, err := strconv.Atoi(os.Getenv("BENCH_CONCURRENCY"))
	if addr == "" || err != nil {
		return errors.New("BENCH_REDIS_ADDR and BENCH_CONCURRENCY are required")
	}
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, asynq.Config{
		Concurrency: concurrency,
		Queues:      map[string]int{"send": 1},
		LogLevel:    asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(noopTaskType, func(context.Context, *asynq.Task) error { return nil })
	return srv.Run(mux)
}

// progressSample is how many recipients were settled at a time after the
// worker started.
type progressSample struct {
	at      time.Duration
	settled int64
}

// describeProgress answers the throughput in each tenth of the recipients
// (from the samples around each tenth), to show whether sending slows down
// as the campaign goes on.
func describeProgress(samples []progressSample, n int64) string {
	var parts []string
	prevAt, prevN := time.Duration(0), int64(0)
	next := 1
	for _, s := range samples {
		for next <= 10 && s.settled >= n*int64(next)/10 {
			if s.at > prevAt {
				parts = append(parts, fmt.Sprintf("%.0f", float64(s.settled-prevN)/(s.at-prevAt).Seconds()))
			}
			prevAt, prevN = s.at, s.settled
			next++
		}
	}
	return strings.Join(parts, " ")
}
