//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/harness"
)

// benchTemplate uses every column, as a real campaign's message does.
const benchTemplate = `Hi {{.first_name}} {{.last_name}}, your {{.plan}} plan is ready in {{.city}}. Reply STOP to opt out.`

// Keys of asynq's "send" queue (the product's send queue) that hold tasks
// waiting to run: due now (a list) and due later (a sorted set).
const (
	sendPendingKey   = "asynq:{send}:pending"
	sendScheduledKey = "asynq:{send}:scheduled"
	sendActiveKey    = "asynq:{send}:active"
	sendRetryKey     = "asynq:{send}:retry"
)

// ingest is figures 1 and 2: one upload of the generated file through
// campaign-api, and the same number of bare asynq enqueues, on the same
// redis-server.
type ingest struct {
	b       *bench
	csvPath string
	stats   harness.ContactsStats

	// ours
	campaign  *harness.Campaign
	firstTask time.Duration // upload start → the first task in the queue
	answered  time.Duration // upload start → 201
	durable   time.Duration // upload start → every task in the queue
	peakRSSKB int64
	apiCPU    time.Duration
	redisCPU  time.Duration
	memory    int64 // used_memory after - before
	profile   string

	// baseline
	baseN        int
	baseWall     time.Duration
	baseMemory   int64
	baseRedisCPU time.Duration
	baseSelfCPU  time.Duration
	payloadSize  int
	baseProfile  string

	runs []ingestRun // every run of ours and the baseline, in order
}

// ingestRun is one run of figure 1: ours, then the baseline.
type ingestRun struct {
	ours, base float64 // recipients/s, tasks/s
	peakRSSKB  int64
	firstTask  time.Duration
}

// measure runs ours and the baseline n times, one after the other, keeping
// each run's figures: a ratio must hold in every run, not on average.
func (in *ingest) measure(n int) error {
	for i := 1; i <= n; i++ {
		fmt.Printf("  -- run %d of %d\n", i, n)
		if err := in.ours(); err != nil {
			return err
		}
		if err := in.baseline(); err != nil {
			return err
		}
		r := ingestRun{
			ours:      float64(in.campaign.Counts.Total) / in.durable.Seconds(),
			base:      float64(in.baseN) / in.baseWall.Seconds(),
			peakRSSKB: in.peakRSSKB,
			firstTask: in.firstTask,
		}
		fmt.Printf("  run %d: ours %.0f/s, baseline %.0f/s → %.2f×\n", i, r.ours, r.base, r.ours/r.base)
		in.runs = append(in.runs, r)
	}
	in.results()
	return nil
}

func (in *ingest) generate() error {
	plan, err := harness.NewPhonePlan(in.b.rows)
	if err != nil {
		return err
	}
	if !harness.Enter() {
		return harness.ErrStopping
	}
	defer harness.Leave()
	in.csvPath = filepath.Join(in.b.dir, "contacts.csv")
	f, err := os.Create(in.csvPath)
	if err != nil {
		return err
	}
	in.stats, err = harness.WriteContacts(f, in.b.rows, plan)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Printf("  %s: %d rows, %.1f MB, %.1f bytes a row; planted %d duplicates and %d invalid phones; %d number ranges\n",
		filepath.Base(in.csvPath), in.stats.Rows, float64(in.stats.Bytes)/1e6, in.stats.AvgRowBytes,
		in.stats.Duplicates, in.stats.Invalid, plan.Ranges())
	return nil
}

// ours uploads the file to a fresh campaign-api with no worker anywhere, so
// the tasks stay queued and can be counted. SEND_INTERVAL=0s: pacing off, so
// every task is due at once (pending) rather than planned ahead (scheduled);
// both are counted anyway.
func (in *ingest) ours() error {
	b := in.b
	ctx := context.Background()
	if err := b.flush(ctx); err != nil {
		return err
	}
	memBefore, err := b.usedMemory(ctx) // before the API connects: its connections are gone when used_memory is read again
	if err != nil {
		return err
	}
	_, srv := newSandbox() // the API never calls the provider; its URL is configuration
	defer srv.Close()
	api, client, err := b.startAPI("api-fig1", srv.URL, "0s")
	if err != nil {
		return err
	}
	b.resetCommandStats(ctx)
	redisCPU0 := b.redisCPU()

	f, err := os.Open(in.csvPath)
	if err != nil {
		return err
	}
	defer f.Close()
	poll := startQueuePoller(b.rdb)
	start := time.Now()
	poll.setStart(start)
	c, err := client.CreateCampaign(ctx, []harness.Field{{Name: "name", Value: "bench ingest"}, {Name: "template", Value: benchTemplate}}, f)
	in.answered = time.Since(start)
	if err != nil {
		poll.stop()
		return err
	}
	in.campaign = c
	total := c.Counts.Total
	err = in.awaitAllQueued(poll, total)
	poll.stop()
	if err != nil {
		return err
	}
	in.firstTask, _ = poll.firstAtLeast(1)

	if in.peakRSSKB, err = procStatusKB(api.Pid(), "VmHWM"); err != nil {
		return err
	}
	in.apiCPU, _ = cpuTime(api.Pid())
	api.Stop(10 * time.Second)
	in.redisCPU = b.redisCPU() - redisCPU0
	memAfter, err := b.usedMemory(ctx)
	if err != nil {
		return err
	}
	in.memory = memAfter - memBefore
	in.profile, _ = b.commandProfile(ctx, total, 5)

	return in.report(ctx, c)
}

// awaitAllQueued waits up to two minutes after the 201 for the send queue
// to hold every task of the campaign, and notes when it did.
func (in *ingest) awaitAllQueued(poll *queuePoller, total int64) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if d, ok := poll.firstAtLeast(total); ok {
			in.durable = d
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after the 201, the send queue never held the campaign's %d tasks (last count %d)", total, poll.last())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// report prints figure 1's lines for one run and warns when the queue or
// the counts differ from what the generated file holds.
func (in *ingest) report(ctx context.Context, c *harness.Campaign) error {
	b, total := in.b, c.Counts.Total
	queued, err := queuedTasks(ctx, b.rdb)
	if err != nil {
		return err
	}
	fmt.Printf("  campaign %s: %d recipients, %d duplicates, %d rejected; %d tasks queued\n",
		c.ID, total, c.Duplicates, c.RejectedCount, queued)
	fmt.Printf("  first task in Redis %s, 201 after %s, all tasks in Redis %s → %.0f recipients/s\n",
		roundDur(in.firstTask), roundDur(in.answered), roundDur(in.durable), float64(total)/in.durable.Seconds())
	fmt.Printf("  campaign-api peak RSS %.1f MB, CPU %s; redis CPU %s; Redis +%.1f MB\n",
		float64(in.peakRSSKB)*1024/1e6, roundDur(in.apiCPU), roundDur(in.redisCPU), float64(in.memory)/1e6)
	fmt.Printf("  Redis per recipient: %s\n", in.profile)
	if queued != total {
		b.warn(fmt.Sprintf("figure 1: the campaign has %d recipients but the send queue holds %d tasks", total, queued))
	}
	if want := int64(in.stats.ExpectedRecipients()); total != want || c.Duplicates != int64(in.stats.Duplicates) || c.RejectedCount != int64(in.stats.Invalid) {
		b.warn(fmt.Sprintf("figure 1: expected %d recipients, %d duplicates, %d rejected from the generated file; the API says %d, %d, %d",
			want, in.stats.Duplicates, in.stats.Invalid, total, c.Duplicates, c.RejectedCount))
	}
	return nil
}

// baseline enqueues as many tasks as the campaign has recipients with bare
// asynq, 32 goroutines on one Client (asynq's default pool), each task
// carrying a payload the size of an average CSV row and asynq's default
// options (a random UUID task id), into the same queue name.
func (in *ingest) baseline() error {
	b := in.b
	ctx := context.Background()
	if err := b.flush(ctx); err != nil {
		return err
	}
	in.baseN = int(in.campaign.Counts.Total)
	in.payloadSize = int(math.Round(in.stats.AvgRowBytes))
	row := []byte("+1 212-234-0000,James,Smith,New York,Basic\n")
	payload := bytes.Repeat(row, in.payloadSize/len(row)+1)[:in.payloadSize]

	memBefore, err := b.usedMemory(ctx)
	if err != nil {
		return err
	}
	b.resetCommandStats(ctx)
	redisCPU0, selfCPU0 := b.redisCPU(), selfCPU()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: b.addr})
	wall, errs := enqueueParallel(ctx, client, in.baseN, 32, func() *asynq.Task {
		return asynq.NewTask("bench:row", payload)
	}, asynq.Queue("send"))
	in.baseWall = wall
	in.baseSelfCPU = selfCPU() - selfCPU0
	if err := client.Close(); err != nil {
		return err
	}
	in.baseRedisCPU = b.redisCPU() - redisCPU0
	memAfter, err := b.usedMemory(ctx)
	if err != nil {
		return err
	}
	in.baseMemory = memAfter - memBefore
	in.baseProfile, _ = b.commandProfile(ctx, int64(in.baseN), 3)
	queued, err := queuedTasks(ctx, b.rdb)
	if err != nil {
		return err
	}
	fmt.Printf("  %d tasks of %d bytes in %s → %.0f tasks/s; %d tasks queued, %d errors; redis CPU %s; Redis +%.1f MB\n",
		in.baseN, in.payloadSize, roundDur(wall), float64(in.baseN)/wall.Seconds(), queued, errs,
		roundDur(in.baseRedisCPU), float64(in.baseMemory)/1e6)
	fmt.Printf("  Redis per task: %s\n", in.baseProfile)
	if errs > 0 || queued != int64(in.baseN) {
		b.warn(fmt.Sprintf("baseline enqueue: %d errors, %d of %d tasks queued", errs, queued, in.baseN))
	}
	return nil
}

// enqueueParallel enqueues n tasks from workers goroutines and answers the
// wall time and the number of failed enqueues.
func enqueueParallel(ctx context.Context, client *asynq.Client, n, workers int, task func() *asynq.Task, opts ...asynq.Option) (time.Duration, int64) {
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := client.EnqueueContext(ctx, task(), opts...); err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), errs.Load()
}

// queuedTasks counts the send queue's waiting tasks, due now or later.
func queuedTasks(ctx context.Context, rdb *redis.Client) (int64, error) {
	pipe := rdb.Pipeline()
	pending := pipe.LLen(ctx, sendPendingKey)
	scheduled := pipe.ZCard(ctx, sendScheduledKey)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	return pending.Val() + scheduled.Val(), nil
}

// queuePoller counts the send queue's waiting tasks every 5 ms and keeps
// each change with the time it was seen (when the answer arrived: the count
// was true by then), so that "first task sendable" and "every task durable"
// can be read off afterwards.
type queuePoller struct {
	mu      sync.Mutex
	start   time.Time
	samples []queueSample
	quit    chan struct{}
	done    chan struct{}
}

type queueSample struct {
	at    time.Duration // since start
	count int64
}

func startQueuePoller(rdb *redis.Client) *queuePoller {
	p := &queuePoller{start: time.Now(), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		last := int64(-1)
		for {
			n, err := queuedTasks(context.Background(), rdb)
			if err == nil && n != last {
				last = n
				p.mu.Lock()
				p.samples = append(p.samples, queueSample{time.Since(p.start), n})
				p.mu.Unlock()
			}
			select {
			case <-p.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// setStart moves the origin of the times to the upload's start.
func (p *queuePoller) setStart(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	shift := t.Sub(p.start)
	p.start = t
	for i := range p.samples {
		p.samples[i].at -= shift
	}
}

func (p *queuePoller) stop() { close(p.quit); <-p.done }

func (p *queuePoller) firstAtLeast(n int64) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.samples {
		if s.count >= n {
			return max(s.at, 0), true
		}
	}
	return 0, false
}

func (p *queuePoller) last() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.samples) == 0 {
		return 0
	}
	return p.samples[len(p.samples)-1].count
}

// results adds figures 1 and 2 to the table: the worst run's ratio, peak
// RSS and first task (the target holds in every run or it is missed), the
// last run's memory.
func (in *ingest) results() {
	b := in.b
	n := float64(in.campaign.Counts.Total)
	worst := in.runs[0]
	var ratios []string
	var maxRSS int64
	var maxFirst time.Duration
	for _, r := range in.runs {
		if r.ours/r.base < worst.ours/worst.base {
			worst = r
		}
		ratios = append(ratios, fmt.Sprintf("%.2f", r.ours/r.base))
		maxRSS, maxFirst = max(maxRSS, r.peakRSSKB), max(maxFirst, r.firstTask)
	}
	b.add(result{
		figure:   fmt.Sprintf("1. ingest, recipients/s (%d-row CSV over HTTP → every task in Redis), worst of %d runs (ratios %s)", in.stats.Rows, len(in.runs), strings.Join(ratios, " ")),
		ours:     fmt.Sprintf("%.0f/s", worst.ours),
		baseline: fmt.Sprintf("%.0f/s", worst.base),
		ratio:    fmt.Sprintf("%.2f×", worst.ours/worst.base),
		target:   "≥ 1.0× every run",
		verdict:  verdict(worst.ours/worst.base, 1.0, true),
	})
	rssMB := float64(maxRSS) * 1024 / 1e6
	b.add(result{
		figure: "1. campaign-api peak RSS (VmHWM) during an upload, most of the runs",
		ours:   fmt.Sprintf("%.1f MB", rssMB), baseline: "—", ratio: "—",
		target: "≤ 150 MB", verdict: verdict(rssMB, 150, false),
	})
	b.add(result{
		figure: "1. first task sendable after the upload starts, latest of the runs",
		ours:   fmt.Sprintf("%d ms", maxFirst.Milliseconds()), baseline: "—", ratio: "—",
		target: "≤ 1 s", verdict: verdict(maxFirst.Seconds(), 1, false),
	})
	ourBytes := float64(in.memory) / n
	baseBytes := float64(in.baseMemory) / float64(in.baseN)
	b.add(result{
		figure:   "2. Redis memory per queued recipient (used_memory)",
		ours:     fmt.Sprintf("%.0f B", ourBytes),
		baseline: fmt.Sprintf("%.0f B", baseBytes),
		ratio:    fmt.Sprintf("%.2f×", ourBytes/baseBytes),
		target:   "≤ 1.3×",
		verdict:  verdict(ourBytes/baseBytes, 1.3, false),
	})

	b.note(fmt.Sprintf("1. A %d-row CSV (phone, first_name, last_name, city, plan; %.1f MB, %.1f bytes a row; US phones in four spellings, "+
		"%d planted duplicates and %d invalid phones, so %d recipients) is generated to a file and POSTed to a fresh campaign-api "+
		"(no worker anywhere, SEND_INTERVAL=0s so every task is due at once) as multipart, template first and contacts last, streamed from disk "+
		"through a pipe. Time runs from the request's start until the send queue (asynq:{send}:pending + :scheduled, polled every 5 ms) "+
		"holds every recipient's task: %s (the 201 came after %s). Baseline: FLUSHALL, then asynq Client.Enqueue of %d tasks of %d bytes "+
		"(default options) from 32 goroutines in this process, queue \"send\", timed to the last enqueue's answer: %s.",
		in.stats.Rows, float64(in.stats.Bytes)/1e6, in.stats.AvgRowBytes, in.stats.Duplicates, in.stats.Invalid, int64(n),
		roundDur(in.durable), roundDur(in.answered), in.baseN, in.payloadSize, roundDur(in.baseWall)))
	b.note(fmt.Sprintf("1. CPU during ingest: campaign-api %.1f µs/recipient (whole process life), redis-server %.1f µs/recipient; "+
		"baseline: redis-server %.1f µs/task, the enqueueing process %.1f µs/task.",
		float64(in.apiCPU.Microseconds())/n, float64(in.redisCPU.Microseconds())/n,
		float64(in.baseRedisCPU.Microseconds())/float64(in.baseN), float64(in.baseSelfCPU.Microseconds())/float64(in.baseN)))
	b.note(fmt.Sprintf("1. Redis per recipient (INFO commandstats, reset before the upload): ours %s; baseline %s.", in.profile, in.baseProfile))
	b.note("1. Peak RSS is VmHWM of /proc/<pid>/status read after the 201 (the process's high-water mark since it started; MB = 10^6 bytes). " +
		"First task sendable: the first 5 ms poll that saw a task in the send queue (a task is enqueued only after its row is stored).")
	b.note(fmt.Sprintf("2. INFO memory used_memory after the upload (campaign-api stopped) minus before it, over the recipients: "+
		"everything the campaign stored (asynq task hashes and queue list, row buckets, campaign hash and indexes, scripts); "+
		"the import de-duplicates in the API's memory, so no de-dup data is left in Redis. Baseline: the same for its %d tasks "+
		"(client closed), each carrying a %d-byte row. Ours +%.1f MB, baseline +%.1f MB.",
		in.baseN, in.payloadSize, float64(in.memory)/1e6, float64(in.baseMemory)/1e6))
}
