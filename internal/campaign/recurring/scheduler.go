package recurring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"go.uber.org/zap"
)

// runPayload names a run: the definition and the tick (unix s).
type runPayload struct {
	ID   string `json:"r"`
	Tick int64  `json:"t"`
}

// runTaskID makes enqueueing a run idempotent while its task is in
// the queue; the run record makes it idempotent after.
func runTaskID(id string, tick int64) string {
	return "run:" + id + ":" + strconv.FormatInt(tick, 10)
}

// enqueueRun enqueues the task that imports one run.
func enqueueRun(ctx context.Context, client *asynq.Client, id string, tick int64) error {
	payload, _ := json.Marshal(runPayload{ID: id, Tick: tick})
	_, err := client.EnqueueContext(ctx, asynq.NewTask(TypeRun, payload),
		asynq.TaskID(runTaskID(id, tick)),
		asynq.Queue(campaign.QueueControl),
		asynq.MaxRetry(recurringRunMaxRetry),
		asynq.Timeout(recurringRunTimeout),
	)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue run %d of recurring campaign %s: %w", tick, id, err)
	}
	return nil
}

// Scheduler starts the runs of recurring campaigns at their ticks.
// Every worker replica runs one; the tick claim (claimTickScript) lets one
// of them start each tick.
type Scheduler struct {
	rs    *Store
	queue *asynq.Client
	log   *zap.Logger
	every time.Duration    // how often it looks; a spec has whole seconds
	now   func() time.Time // the clock ticks are compared with

	started atomic.Int64 // runs this scheduler started

	mu        sync.Mutex
	schedules map[string]*Schedule // parsed specs: a pass each second should not reload zones
}

// NewScheduler returns a scheduler enqueueing run tasks on queue.
func NewScheduler(rs *Store, queue *asynq.Client, log *zap.Logger) *Scheduler {
	return &Scheduler{rs: rs, queue: queue, log: log, every: time.Second, now: time.Now, schedules: map[string]*Schedule{}}
}

// schedule parses a stored spec once.
func (s *Scheduler) schedule(spec, zone string) (*Schedule, error) {
	key := zone + "\x00" + spec
	s.mu.Lock()
	defer s.mu.Unlock()
	if sched, ok := s.schedules[key]; ok {
		return sched, nil
	}
	sched, err := ParseSchedule(spec, zone)
	if err != nil {
		return nil, err
	}
	s.schedules[key] = sched
	return sched, nil
}

// Run looks for due ticks every second until ctx ends. Errors are logged and
// the next pass tries again: a Redis blip must not stop the schedule.
func (s *Scheduler) Run(ctx context.Context) {
	ticker := time.NewTicker(s.every)
	defer ticker.Stop()
	for {
		if _, err := s.Pass(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("recurring campaigns: a pass failed; the next one tries again", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// recurringPassBatch is how many definitions a pass reads per round trip.
const recurringPassBatch = 256

// Pass looks once at every active definition, starts the runs that are due
// (the latest due tick of each) and answers how many it started.
func (s *Scheduler) Pass(ctx context.Context) (int, error) {
	ids, err := s.rs.activeIDs(ctx)
	if err != nil {
		return 0, err
	}
	started := 0
	var errs []error
	for first := 0; first < len(ids); first += recurringPassBatch {
		batch := ids[first:min(first+recurringPassBatch, len(ids))]
		timings, err := s.rs.timings(ctx, batch)
		if err != nil {
			return started, err
		}
		now := s.now()
		for i, id := range batch {
			if timings[i][rfStatus] != string(Active) {
				continue // stopped: Stop takes it out of the set right after
			}
			ok, err := s.startDue(ctx, id, timings[i], now)
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				started++
			}
		}
	}
	return started, errors.Join(errs...)
}

// startDue claims the latest due tick of one definition and enqueues its run.
func (s *Scheduler) startDue(ctx context.Context, id string, h map[string]string, now time.Time) (bool, error) {
	sched, err := s.schedule(h[rfCron], h[rfCronZone])
	if err != nil {
		return false, fmt.Errorf("recurring campaign %s: stored spec: %w", id, err)
	}
	tick := sched.Latest(anchorOf(h), now)
	if tick.IsZero() {
		return false, nil
	}
	claimed, prev, err := s.rs.claimTick(ctx, id, tick.Unix())
	if err != nil || !claimed {
		return false, err
	}
	if err := enqueueRun(ctx, s.queue, id, tick.Unix()); err != nil {
		// Give the tick back, so the next pass (of any scheduler) retries.
		if uerr := s.rs.unclaimTick(context.WithoutCancel(ctx), id, tick.Unix(), prev); uerr != nil {
			err = errors.Join(err, uerr)
		}
		return false, err
	}
	s.started.Add(1)
	s.log.Info("recurring campaign: run started", zap.String("recurring", id), zap.Time("tick", tick))
	return true, nil
}
