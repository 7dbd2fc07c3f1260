//go:build linux

// Command campaign-chaos checks the product's first promise — nobody gets a
// message twice, nobody is silently lost — while things break (`make
// chaos`; `make chaos-short` for the few-minute version CI runs):
//
//  1. kill-workers: kill -9 of one of three workers every 2-3 s while the
//     campaign sends, each restarted at once;
//  2. kill-redis: kill -9 of the redis-server mid-campaign, restarted on the
//     same port and data (append-only file on);
//  3. faults: 20 % of all provider requests spoiled by a proxy: 500, 502 and
//     503 with HTML bodies before and after the sandbox processed the
//     request, 429 with and without Retry-After, hangs past
//     PROVIDER_TIMEOUT, connection resets before and after.
//
// Each scenario has its own redis-server, sandbox provider
// (internal/sender/sandbox, in this process), fault proxy (in this process),
// campaign-api and campaign-worker processes (the shipped binaries, built
// once), and one campaign over four sender accounts created through the
// API. The scenarios run at the same time. When a campaign has completed,
// the sandbox's log of accepted messages is compared with the recipients'
// states: twice (received two or more times), lost (never received and not
// failed or skipped), unknown, and whether the counts add up. The exit
// status is 1 when anyone got a message twice, anyone was lost, more than
// 0.5 % ended unknown, the counts do not add up, or a campaign did not
// complete in time. Timings are printed, never judged.
//
// Linux only, like cmd/campaign-bench (internal/harness).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wacampaign/wacampaign/internal/harness"
)

// size is how big a run is.
type size struct {
	name            string
	killRecipients  int
	redisRecipients int
	faultRecipients int
	deadline        time.Duration // per scenario, from the upload to completion
}

var sizes = map[string]size{
	// Under three minutes in all on a two-core machine: the kill scenario's
	// tail is asynq's recovery of a killed worker's tasks (a 30 s lease
	// expired for 30 s, found by a recoverer that runs every minute).
	"short": {name: "short", killRecipients: 400, redisRecipients: 300, faultRecipients: 300, deadline: 150 * time.Second},
	// What users measured with: 3000 recipients through the worker kills.
	"long": {name: "long", killRecipients: 3000, redisRecipients: 1000, faultRecipients: 1000, deadline: 8 * time.Minute},
}

func scenarios(sz size) []*scenario {
	return []*scenario{
		{name: "kill-workers", recipients: sz.killRecipients, workers: 3, disrupt: killWorkers,
			about: "3 workers; every 2-3 s one of them (at random) gets kill -9 and is started again at once, while recipients are queued"},
		{name: "kill-redis", recipients: sz.redisRecipients, workers: 2, disrupt: killRedis,
			about: fmt.Sprintf("2 workers; kill -9 of redis-server when %.0f%% of the messages are at the sandbox, started again %s later on the same port and data", 100*redisKillShare, redisDowntime)},
		{name: "faults", recipients: sz.faultRecipients, workers: 2, faultRate: 0.2,
			about: fmt.Sprintf("2 workers; 20%% of all provider requests faulted, evenly over %d kinds (500/502/503 HTML before and after the sandbox, 429 with and without Retry-After, hang past PROVIDER_TIMEOUT, reset before and after)", len(faultKinds))},
	}
}

// chaosRun is one run: its settings, the binaries, and the output shared by
// the scenarios running at once.
type chaosRun struct {
	session *harness.Session
	size    size
	seed    uint64
	fsync   string
	bins    harness.Binaries
	outMu   sync.Mutex
}

// printf prints a line of a scenario's progress.
func (r *chaosRun) printf(scenario, format string, args ...any) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	fmt.Printf("[%s] %s\n", scenario, fmt.Sprintf(format, args...))
}

func main() {
	sizeName := flag.String("size", envOr("CHAOS_SIZE", "long"), "short (a few hundred recipients, under 3 minutes) or long (env CHAOS_SIZE)")
	only := flag.String("only", "", "run only these scenarios, comma-separated: kill-workers, kill-redis, faults")
	seed := flag.Uint64("seed", 0, "seed of the random kills and faults (env CHAOS_SEED); 0: from the clock")
	fsync := flag.String("appendfsync", "everysec", "Redis appendfsync policy: always, everysec or no")
	src := flag.String("src", os.Getenv("CHAOS_SRC"), "module to build the product from (env CHAOS_SRC); empty: this one")
	sequential := flag.Bool("sequential", false, "run the scenarios one after another instead of at once")
	deadline := flag.Duration("deadline", 0, "how long a scenario's campaign may take to complete, from its upload; 0: the size's (short 150s, long 8m)")
	keep := flag.Bool("keep", false, "keep the work directory (binaries, data, logs, the proxy's request log) and say where")
	flag.Parse()
	sz, ok := sizes[*sizeName]
	if !ok {
		fmt.Fprintf(os.Stderr, "campaign-chaos: -size %q: use short or long\n", *sizeName)
		os.Exit(2)
	}
	chosen, err := choose(scenarios(sz), *only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "campaign-chaos:", err)
		os.Exit(2)
	}
	if !slices.Contains([]string{"always", "everysec", "no"}, *fsync) {
		fmt.Fprintf(os.Stderr, "campaign-chaos: -appendfsync %q: use always, everysec or no\n", *fsync)
		os.Exit(2)
	}
	if *deadline > 0 {
		sz.deadline = *deadline
	}
	if *seed == 0 {
		*seed = envSeed()
	}
	os.Exit(runAll(&chaosRun{size: sz, seed: *seed, fsync: *fsync}, chosen, *src, *keep, *sequential))
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

func envSeed() uint64 {
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n > 0 {
			return n
		}
		fmt.Fprintf(os.Stderr, "campaign-chaos: CHAOS_SEED=%q is not a positive whole number; using the clock\n", v)
	}
	return uint64(time.Now().UnixNano())
}

// choose picks the scenarios -only names (all when empty).
func choose(all []*scenario, only string) ([]*scenario, error) {
	if only == "" {
		return all, nil
	}
	var out []*scenario
	for _, name := range strings.Split(only, ",") {
		i := slices.IndexFunc(all, func(s *scenario) bool { return s.name == strings.TrimSpace(name) })
		if i < 0 {
			return nil, fmt.Errorf("-only: no scenario %q (kill-workers, kill-redis, faults)", name)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// runAll builds the binaries, runs the scenarios and reports; it answers
// the exit status.
func runAll(run *chaosRun, chosen []*scenario, src string, keep, sequential bool) int {
	session, err := harness.NewSession("campaign-chaos", keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "campaign-chaos:", err)
		return 1
	}
	defer session.Close()
	run.session = session
	started := time.Now()
	fmt.Printf("campaign-chaos: %s run, product from %s, seed %d, Redis appendfsync %s, load average %s\n",
		run.size.name, describeSource(src), run.seed, run.fsync, harness.LoadAverage())
	run.bins, err = harness.Build(os.Getenv("GO"), src, filepath.Join(session.Dir, "bin"))
	if err != nil {
		session.WaitIfAborting()
		fmt.Fprintln(os.Stderr, "campaign-chaos:", err)
		return 1
	}
	fmt.Printf("built campaign-api and campaign-worker in %s\n\n", time.Since(started).Round(100*time.Millisecond))
	results := runScenarios(run, chosen, sequential)
	session.WaitIfAborting()
	return report(run, results, time.Since(started))
}

// runScenarios runs the scenarios, at once unless sequential, and answers
// their results in order.
func runScenarios(run *chaosRun, chosen []*scenario, sequential bool) []*result {
	results := make([]*result, len(chosen))
	var wg sync.WaitGroup
	for i, sc := range chosen {
		if sequential {
			results[i] = runScenario(context.Background(), run, sc)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runScenario(context.Background(), run, sc)
		}()
	}
	wg.Wait()
	return results
}

// describeSource names the checkout the product is built from and its
// commit, so before and after runs can be told apart.
func describeSource(src string) string {
	dir := src
	if dir == "" {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	cmd := exec.Command("git", "-C", dir, "log", "-1", "--format=%h %s")
	out, err := cmd.Output()
	if err != nil {
		return abs
	}
	dirty := ""
	if st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		dirty = ", with uncommitted changes"
	}
	return fmt.Sprintf("%s (%s%s)", abs, strings.TrimSpace(string(out)), dirty)
}
