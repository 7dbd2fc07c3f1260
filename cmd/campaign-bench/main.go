//go:build linux

// Command campaign-bench measures the product against bare asynq on the same
// throwaway redis-server, in one run, and prints each figure beside its
// baseline as a ratio (`make bench`; BENCH_ROWS=100000 for a quicker run):
//
//  1. ingest: recipients per second from a generated CSV uploaded over HTTP
//     until every task is in Redis, against asynq Client.Enqueue from 32
//     goroutines, in each of five runs; with the API process's peak RSS and
//     how soon the first task is sendable;
//  2. Redis memory per queued recipient, everything the campaign stored,
//     against a bare asynq task carrying the same row;
//  3. worker: messages per second, CPU per message (worker and Redis) and
//     Redis script calls and commands per message through the whole send
//     path of one campaign-worker, against a bare asynq handler making the
//     same HTTP POST to the same sandbox (the fair baseline; the two run
//     three times, alternated, and the median pair is shown) and, for
//     reference, a no-op asynq handler;
//  4. pacing: 1,000 accounts at 2 s with 3 workers for 60 s: utilisation,
//     lateness against the slot, least gap;
//  5. Redis memory per recipient of a finished campaign (sent, read, polled
//     three times).
//
// Why a program and not Go benchmarks: the figures are about the shipped
// binaries as separate processes (their peak RSS, their CPU, HTTP in between),
// which testing.B cannot show. The product's two binaries are built once and
// run as children with the environment each figure needs; the provider is
// the in-process sandbox (internal/sender/sandbox) answering at once (after
// about 5 ms for figure 4); the
// baselines run in this process or in this program re-executed as a bare
// asynq server. Nothing touches a Redis the user runs.
//
// It reads /proc for CPU time and peak RSS, so it is Linux only. It exits 0
// when a target is missed (it is a benchmark, not a test) and says MISSED.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/harness"
)

func main() {
	rows := flag.Int("rows", envInt("BENCH_ROWS", 1_000_000), "rows of the generated contacts CSV for figures 1 and 2 (env BENCH_ROWS)")
	sends := flag.Int("sends", envInt("BENCH_SENDS", 20_000), "recipients of the campaign figure 3 sends (env BENCH_SENDS)")
	accounts := flag.Int("accounts", envInt("BENCH_ACCOUNTS", 1000), "sender accounts of figure 4 (env BENCH_ACCOUNTS)")
	ingestRuns := flag.Int("ingest-runs", envInt("BENCH_INGEST_RUNS", 5), "runs of figure 1, ours and the baseline each (env BENCH_INGEST_RUNS)")
	only := flag.String("only", "", "run only these figures, comma-separated: 1 (with 2), 3, 4, 5; empty: all")
	keep := flag.Bool("keep", false, "keep the work directory (binaries, CSV, child logs) and print where it is")
	noop := flag.Bool("noop-server", false, "internal: run as figure 3's no-op baseline asynq server (env BENCH_REDIS_ADDR, BENCH_CONCURRENCY)")
	bare := flag.Bool("bare-server", false, "internal: run as figure 3's fair baseline asynq server (env BENCH_REDIS_ADDR, BENCH_CONCURRENCY, BENCH_SANDBOX_URL)")
	flag.Parse()
	if *noop || *bare {
		serve := runNoopServer
		if *bare {
			serve = runBareServer
		}
		if err := serve(); err != nil {
			fmt.Fprintln(os.Stderr, "campaign-bench baseline server:", err)
			os.Exit(1)
		}
		return
	}
	if *rows < 1000 || *sends < 100 || *ingestRuns < 1 || *accounts < 1 {
		fmt.Fprintln(os.Stderr, "campaign-bench: -rows must be at least 1000, -sends at least 100, -ingest-runs and -accounts at least 1")
		os.Exit(2)
	}
	os.Exit(run(options{rows: *rows, sends: *sends, ingestRuns: *ingestRuns, accounts: *accounts, only: *only, keep: *keep}))
}

func envInt(name string, def int) int {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		if n, err := strconv.Atoi(strings.ReplaceAll(v, "_", "")); err == nil {
			return n
		}
		fmt.Fprintf(os.Stderr, "campaign-bench: %s=%q is not a whole number; using %d\n", name, v, def)
	}
	return def
}

// bench is one run: the work directory, the binaries, the redis-server and
// what has been measured so far.
type bench struct {
	dir        string
	apiBin     string
	workBin    string
	selfBin    string
	redis      *harness.Redis
	addr       string
	rdb        *redis.Client
	rows       int
	sends      int
	ingestRuns int
	accounts   int
	only       string
	apiKey     string
	started    time.Time
	phases     []phase
	results    []result
	notes      []string
	warnings   []string
}

// phase is a step of the run and how long it took, printed at the end.
type phase struct {
	name string
	took time.Duration
}

// result is one line of the final table.
type result struct {
	figure   string
	ours     string
	baseline string
	ratio    string
	target   string
	verdict  string // met, MISSED, or "" when the figure has no target
}

// options are the command line's.
type options struct {
	rows, sends, ingestRuns, accounts int
	only                              string
	keep                              bool
}

func run(o options) int {
	session, err := harness.NewSession("campaign-bench", o.keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "campaign-bench:", err)
		return 1
	}
	defer session.Close()
	b := &bench{dir: session.Dir, rows: o.rows, sends: o.sends, ingestRuns: o.ingestRuns, accounts: o.accounts, only: o.only, apiKey: "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36), started: time.Now()}
	if err := b.all(); err != nil {
		session.WaitIfAborting()
		fmt.Fprintln(os.Stderr, "\ncampaign-bench:", err)
		b.printChildLogs()
		return 1
	}
	b.report()
	return 0
}

func (b *bench) all() error {
	fmt.Printf("campaign-bench: %d rows (figures 1-2), %d sends (figure 3), GOMAXPROCS %d, %d CPUs, load average %s\n\n",
		b.rows, b.sends, runtime.GOMAXPROCS(0), runtime.NumCPU(), harness.LoadAverage())
	if err := b.step("build campaign-api and campaign-worker", b.build); err != nil {
		return err
	}
	if err := b.step("start redis-server", func() error {
		var err error
		b.redis, err = harness.StartRedis(harness.RedisOptions{Dir: b.dir})
		if err != nil {
			return err
		}
		b.addr = b.redis.Addr
		// FLUSHALL of a million tasks takes seconds on a loaded machine.
		b.rdb = redis.NewClient(&redis.Options{Addr: b.addr, ReadTimeout: 2 * time.Minute})
		fmt.Printf("  redis-server %s on %s (--save \"\" --appendonly no)\n", redisVersion(b.rdb), b.addr)
		return nil
	}); err != nil {
		return err
	}
	ing := &ingest{b: b}
	for _, s := range []struct {
		figure string
		name   string
		f      func() error
	}{
		{"1", "figure 1-2: generate contacts CSV", ing.generate},
		{"1", fmt.Sprintf("figure 1-2: upload through campaign-api, then asynq Client.Enqueue x32; %d runs", b.ingestRuns), func() error {
			return ing.measure(b.ingestRuns)
		}},
		{"3", "figure 3: worker overhead, ours and baseline", (&workerBench{b: b}).run},
		{"5", "figure 5: memory of a finished campaign", (&memoryBench{b: b}).run},
		{"4", fmt.Sprintf("figure 4: pacing, %d accounts, 3 workers", b.accounts), (&pacingBench{b: b, accounts: b.accounts}).run},
	} {
		if b.only != "" && !slices.Contains(strings.Split(b.only, ","), s.figure) {
			continue
		}
		if err := b.step(s.name, s.f); err != nil {
			return err
		}
	}
	return nil
}

// step runs one phase, timing it.
func (b *bench) step(name string, f func() error) error {
	fmt.Printf("== %s\n", name)
	start := time.Now()
	err := f()
	b.phases = append(b.phases, phase{name, time.Since(start)})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Printf("   (%s)\n\n", roundDur(time.Since(start)))
	return nil
}

// build compiles the two product binaries once, into the work directory, so
// that no figure measures `go run`'s compile.
func (b *bench) build() error {
	bins, err := harness.Build(os.Getenv("GO"), "", filepath.Join(b.dir, "bin"))
	if err != nil {
		return err
	}
	b.apiBin, b.workBin = bins.API, bins.Worker
	self, err := os.Executable()
	if err != nil {
		return err
	}
	b.selfBin = self
	return nil
}

// productEnv is the environment of a product child: every variable of the
// configuration table that the user's shell may have set is dropped (a
// WEBHOOK_SECRET or SEND_JITTER there must not change the figures), then
// the benchmark's own are set.
func (b *bench) productEnv(sandboxURL string, extra ...string) []string {
	env := []string{
		"REDIS_URL=redis://" + b.addr,
		"API_KEYS=" + b.apiKey,
		"TIMELINES_API_TOKEN=" + sandboxToken,
		"TIMELINES_BASE_URL=" + sandboxURL,
		"API_CALLS_PER_SECOND=1000000",
		"LOG_LEVEL=warn",
	}
	env = append(env, extra...)
	// BENCH_EXTRA_ENV="KEY=VALUE ..." sets product variables for every child,
	// to measure a setting (REDIS_PIPELINE=off, say).
	return append(env, strings.Fields(os.Getenv("BENCH_EXTRA_ENV"))...)
}

// startProduct starts a product binary with env, on top of this process's
// environment minus the configuration table's variables.
func (b *bench) startProduct(name, bin string, args, env []string) (*harness.Child, error) {
	return harness.StartProduct(name, bin, args, env, b.dir)
}

// startAPI starts campaign-api (no worker) on a free port and waits for
// /healthz.
func (b *bench) startAPI(name, sandboxURL, sendInterval string) (*harness.Child, *harness.APIClient, error) {
	return harness.StartAPI(name, b.apiBin, b.productEnv(sandboxURL, "SEND_INTERVAL="+sendInterval), b.apiKey, b.dir)
}

// flush empties Redis between figures, so each starts from the same state.
func (b *bench) flush(ctx context.Context) error {
	return b.rdb.FlushAll(ctx).Err()
}

// usedMemory is INFO memory's used_memory: every byte Redis allocated for
// data, indexes, scripts and client buffers.
func (b *bench) usedMemory(ctx context.Context) (int64, error) {
	info, err := b.rdb.InfoMap(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	v, ok := info["Memory"]["used_memory"]
	if !ok {
		return 0, errors.New("INFO memory has no used_memory")
	}
	return strconv.ParseInt(v, 10, 64)
}

func redisVersion(rdb *redis.Client) string {
	info, err := rdb.InfoMap(context.Background(), "server").Result()
	if err != nil {
		return "?"
	}
	return info["Server"]["redis_version"]
}

func (b *bench) redisCPU() time.Duration {
	d, _ := cpuTime(b.redis.Pid())
	return d
}

func numCPU() int { return runtime.NumCPU() }

func (b *bench) add(r result)      { b.results = append(b.results, r) }
func (b *bench) note(s string)     { b.notes = append(b.notes, s) }
func (b *bench) warn(s string)     { b.warnings = append(b.warnings, s); fmt.Println("  !!", s) }
func roundDur(d time.Duration) any { return d.Round(time.Millisecond) }

// verdict says whether ours meets a target: at least or at most limit.
func verdict(value, limit float64, atLeast bool) string {
	if (atLeast && value >= limit) || (!atLeast && value <= limit) {
		return "met"
	}
	return "MISSED"
}

// printChildLogs summarises what the children logged.
func (b *bench) printChildLogs() {
	harness.PrintChildLogs("What the children logged (the product at LOG_LEVEL=warn; redis: warnings only):", b.dir)
}

// report prints the table, the method notes, the phases and what the
// children logged.
func (b *bench) report() {
	fmt.Println("== results (same redis-server, same run)")
	fmt.Println()
	fmt.Println("| figure | ours | baseline | ratio | target | met? |")
	fmt.Println("|---|---|---|---|---|---|")
	missed := 0
	for _, r := range b.results {
		v := r.verdict
		if v == "" {
			v = "—"
		}
		if v == "MISSED" {
			missed++
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", r.figure, r.ours, r.baseline, r.ratio, r.target, v)
	}
	fmt.Println()
	if missed > 0 {
		fmt.Printf("MISSED: %d target(s) not met\n\n", missed)
	} else {
		fmt.Println("all targets met")
		fmt.Println()
	}
	fmt.Println("How each figure is measured:")
	for _, n := range b.notes {
		fmt.Println("  -", n)
	}
	if len(b.warnings) > 0 {
		fmt.Println()
		fmt.Println("Warnings:")
		for _, w := range b.warnings {
			fmt.Println("  !!", w)
		}
	}
	fmt.Println()
	fmt.Println("Phases:")
	for _, p := range b.phases {
		fmt.Printf("  %-48s %s\n", p.name, roundDur(p.took))
	}
	fmt.Printf("  %-48s %s\n", "total", roundDur(time.Since(b.started)))
	fmt.Printf("  load average at the end: %s (other work on the machine skews every figure)\n", harness.LoadAverage())
	fmt.Println()
	b.printChildLogs()
	fmt.Println()
	fmt.Println("Reproduce: make bench   (or: go run ./cmd/campaign-bench -rows N -sends M -ingest-runs R -accounts A; BENCH_ROWS / BENCH_SENDS / BENCH_INGEST_RUNS / BENCH_ACCOUNTS)")
}

// resetCommandStats zeroes INFO commandstats, so commandProfile shows one
// phase.
func (b *bench) resetCommandStats(ctx context.Context) {
	_ = b.rdb.ConfigResetStat(ctx).Err()
}

// commandCounts are Redis calls per unit: script calls (EVALSHA, EVAL,
// FCALL) and every command, those a script ran included (INFO commandstats
// counts a script's redis.call under its command).
type commandCounts struct {
	scripts  float64
	commands float64
}

// commandProfile answers Redis's busiest commands since resetCommandStats,
// by time spent, as calls and µs per unit (a recipient, a message): what the
// product asks of Redis, beside what the baseline asks.
func (b *bench) commandProfile(ctx context.Context, units int64, top int) (string, commandCounts) {
	info, err := b.rdb.InfoMap(ctx, "commandstats").Result()
	if err != nil {
		return "commandstats: " + err.Error(), commandCounts{}
	}
	type stat struct {
		name  string
		calls int64
		usec  int64
	}
	var stats []stat
	for k, v := range info["Commandstats"] {
		name := strings.TrimPrefix(k, "cmdstat_")
		var st stat
		st.name = name
		for _, kv := range strings.Split(v, ",") {
			key, val, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(val, 10, 64)
			switch key {
			case "calls":
				st.calls = n
			case "usec":
				st.usec = n
			}
		}
		stats = append(stats, st)
	}
	slices.SortFunc(stats, func(x, y stat) int { return int(y.usec - x.usec) })
	var parts []string
	var calls, scripts int64
	for i, st := range stats {
		calls += st.calls
		switch st.name {
		case "evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro":
			scripts += st.calls
		}
		if i < top {
			parts = append(parts, fmt.Sprintf("%s %.2f calls %.1f µs", st.name, float64(st.calls)/float64(units), float64(st.usec)/float64(units)))
		}
	}
	counts := commandCounts{scripts: float64(scripts) / float64(units), commands: float64(calls) / float64(units)}
	return fmt.Sprintf("%.1f commands a unit (%.1f script calls); busiest: %s", counts.commands, counts.scripts, strings.Join(parts, "; ")), counts
}
