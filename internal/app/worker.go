package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/campaign/recurring"
	"github.com/wacampaign/wacampaign/internal/metrics"
	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
)

// Worker is two asynq servers running the campaign tasks, and the quota
// syncer beside it: one lane for the send queue alone and one for the rest
// (see lanes).
type Worker struct {
	sendLane  *asynq.Server
	otherLane *asynq.Server
	mux       *asynq.ServeMux
	syncer    *quota.QuotaSyncer
	ledger    *quota.CreditLedger // flushed at shutdown: its block's credits come back at once
	queue     *asynq.Client       // for the tasks the worker's own tasks enqueue
	log       *zap.Logger

	// recurring starts the runs of recurring campaigns: every replica runs
	// one, and a tick claim in Redis lets one of them start each tick.
	recurring *recurring.Scheduler
	// janitor cancels campaigns whose upload stopped arriving and that
	// nobody could cancel (every replica runs one; a lock takes turns).
	janitor *campaign.UploadJanitor
	// retention expires finished campaigns after CAMPAIGN_RETENTION and
	// logs their completion (every replica runs one; a lock takes turns).
	retention *campaign.RetentionKeeper
	// polls enqueues the first status polls that sent messages' outcome
	// records entered in their campaigns' poll sets (every replica runs
	// one; a lock takes turns).
	polls *campaign.PollSweeper

	stopSync context.CancelFunc
	syncDone sync.WaitGroup
}

// The worker's two lanes. The send queue has a server of its own: asynq
// dequeues by trying queues one by one, one script call each, so with every
// queue in one server each send paid on average 0.65 calls on the empty
// ones. Status polls, schedules and the rest share the other lane, which
// a big campaign can therefore never starve, whatever the weights.
var (
	sendQueues  = map[string]int{campaign.QueueSend: 1}
	otherQueues = map[string]int{campaign.QueueStatus: 2, campaign.QueueControl: 2, "default": 1}
)

// otherLaneConcurrency is the other lane's share: polls and control tasks
// are short, and the polls' pace is set by the poll budget, not by workers.
func otherLaneConcurrency(sendConcurrency int) int {
	return max(2, sendConcurrency/4)
}

// WorkerOption changes how a worker is assembled (tests shorten its timers).
type WorkerOption func(*workerOptions)

type workerOptions struct {
	janitorEvery, uploadStall time.Duration
	retentionEvery            time.Duration
	retentionGrace            time.Duration
	apiCallsWait              time.Duration
}

// WithRetentionPass sets how often the retention keeper looks and how long
// after a campaign ended its keys start to expire (defaults:
// campaign.DefaultRetentionEvery, campaign.DefaultRetentionGrace; a
// negative grace: none).
func WithRetentionPass(every, grace time.Duration) WorkerOption {
	return func(o *workerOptions) { o.retentionEvery, o.retentionGrace = every, grace }
}

// WithUploadJanitor sets how often the upload janitor looks and how long an
// upload may make no progress before its campaign is ended (defaults:
// campaign.DefaultJanitorEvery, campaign.DefaultUploadStall).
func WithUploadJanitor(every, stallAfter time.Duration) WorkerOption {
	return func(o *workerOptions) { o.janitorEvery, o.uploadStall = every, stallAfter }
}

// WithAPICallsWait sets how long a send waits when the workspace's API
// calls are spent before it looks again (default five minutes).
func WithAPICallsWait(d time.Duration) WorkerOption {
	return func(o *workerOptions) { o.apiCallsWait = d }
}

// NewWorker assembles a worker on rdb sending through the provider.
func NewWorker(cfg Config, rdb *Redis, p *Provider, log *zap.Logger, opts ...WorkerOption) *Worker {
	var o workerOptions
	for _, opt := range opts {
		opt(&o)
	}
	svc := NewServices(cfg, rdb.Client, log)
	// The client itself, not the wrapper: what it can do beyond
	// sender.Provider (looking up sent messages) is found by type.
	syncer := quota.NewQuotaSyncer(rdb.Client, p.Provider, svc.Ledger, cfg.QuotaSyncInterval, log.Named("quota"))
	return &Worker{
		sendLane:  newTaskServer(cfg, rdb, lane{sendQueues, cfg.WorkerConcurrency, sendLaneCheck}, log),
		otherLane: newTaskServer(cfg, rdb, lane{otherQueues, otherLaneConcurrency(cfg.WorkerConcurrency), otherLaneCheck}, log),
		mux:       taskHandlers(cfg, rdb, svc, p.Provider, syncer, o, log),
		syncer:    syncer,
		ledger:    svc.Ledger,
		queue:     svc.Queue,
		log:       log,
		recurring: recurring.NewScheduler(svc.Recurring, svc.Queue, log.Named("recurring")),
		janitor:   campaign.NewUploadJanitor(svc.Store, o.janitorEvery, o.uploadStall, log.Named("janitor")),
		retention: campaign.NewRetentionKeeper(svc.Store, cfg.CampaignRetention, o.retentionEvery, o.retentionGrace, log.Named("lifecycle")),
		polls:     campaign.NewPollSweeper(svc.Store, svc.Enqueuer, 0, log.Named("track")),
	}
}

// taskHandlers routes every task type to its handler.
func taskHandlers(cfg Config, rdb *Redis, svc *Services, provider sender.Provider, syncer *quota.QuotaSyncer, o workerOptions, log *zap.Logger) *asynq.ServeMux {
	fixedBudget, _ := quota.ParsePollBudget(cfg.StatusPollBudget) // validated by Load
	budget := quota.NewPollBudget(rdb.Client, fixedBudget, svc.Store.QueuedSends)
	reconcile := campaign.ReconcilePolicy{After: cfg.ReconcileAfter, MaxAge: cfg.ReconcileMaxAge, Resend: cfg.UnconfirmedPolicy != "hold"}
	send := campaign.NewSendHandler(campaign.SendDeps{
		Store:      svc.Store,
		Provider:   provider,
		Ledger:     svc.Ledger,
		Pacer:      svc.Pacer,
		Accounts:   svc.Accounts,
		Daily:      svc.Daily,
		Health:     svc.Health,
		Syncer:     syncer,
		Log:        log.Named("send"),
		QuotaWait:  cfg.QuotaSyncInterval,
		ClaimLease: cfg.ClaimLease(),
		Queue:      svc.Enqueuer,
		Polls:      svc.Polls,
		Reconcile:  reconcile,

		IndexForWebhooks: cfg.WebhookSecret != "",
		APICallsWait:     o.apiCallsWait,
		Audience:         svc.AudienceConfig(cfg),
	})
	mux := asynq.NewServeMux()
	mux.Use(withGrownStack)
	mux.Handle(campaign.TypeSend, send)
	control := campaign.NewControlHandler(svc.Store, svc.Enqueuer, log.Named("control"))
	mux.Handle(campaign.TypeStart, control)
	mux.Handle(campaign.TypeRetry, control)
	mux.Handle(campaign.TypePoll, campaign.NewTracker(svc.Store, provider, svc.Enqueuer, svc.Polls, budget, log.Named("track")).WithHealth(svc.Health))
	mux.Handle(campaign.TypeReconcile, campaign.NewReconciler(campaign.ReconcilerDeps{
		Store: svc.Store, Provider: provider, Queue: svc.Enqueuer, Budget: budget, Polls: svc.Polls, Policy: reconcile,
		IndexForWebhooks: cfg.WebhookSecret != "", Audience: svc.AudienceConfig(cfg), Log: log.Named("reconcile"),
	}))
	mux.Handle(recurring.TypeRun, recurring.NewRunner(svc.Recurring, svc.Importer, svc.Store, log.Named("recurring")))
	return mux
}

// How often a lane looks for due work when it has none, one script call a
// queue (and two a queue for its scheduled and retry sets). Send tasks are
// planned to become due at the rate their account may send (ProcessAt): a
// coarse check would bunch them up. Polls are minutes apart and control
// tasks are schedules, for which half a second is on time; an idle
// worker then costs Redis about 18 calls a second for them, not 90.
const (
	sendLaneCheck  = 100 * time.Millisecond
	otherLaneCheck = 500 * time.Millisecond
)

// lane is one asynq server's share of the worker.
type lane struct {
	queues      map[string]int
	concurrency int
	checkEvery  time.Duration
}

// newTaskServer is an asynq server of a lane, with the product's retry
// policy.
func newTaskServer(cfg Config, rdb *Redis, l lane, log *zap.Logger) *asynq.Server {
	return asynq.NewServerFromRedisClient(rdb.Client, asynq.Config{
		Concurrency:              l.concurrency,
		Queues:                   l.queues,
		IsFailure:                campaign.IsFailure,
		RetryDelayFunc:           campaign.RetryDelay,
		DelayedTaskCheckInterval: l.checkEvery,
		TaskCheckInterval:        l.checkEvery,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		Logger:                   asynqLogger{log.Named("asynq").Sugar()},
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if label := campaign.WaitLabel(err.Error()); label != "" {
				metrics.TaskWait(label)
			}
			if campaign.IsFailure(err) {
				log.Warn("task failed; it will be retried", zap.String("type", t.Type()), zap.Error(err))
			}
		}),
	})
}

// Start starts processing and returns; Shutdown stops it.
func (w *Worker) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	w.stopSync = cancel
	w.syncDone.Add(1)
	go func() {
		defer w.syncDone.Done()
		w.syncer.Run(ctx)
	}()
	w.syncDone.Add(1)
	go func() {
		defer w.syncDone.Done()
		w.recurring.Run(ctx)
	}()
	w.syncDone.Add(1)
	go func() {
		defer w.syncDone.Done()
		w.janitor.Run(ctx)
	}()
	w.syncDone.Add(1)
	go func() {
		defer w.syncDone.Done()
		w.retention.Run(ctx)
	}()
	w.syncDone.Add(1)
	go func() {
		defer w.syncDone.Done()
		w.polls.Run(ctx)
	}()
	if err := w.sendLane.Start(w.mux); err != nil {
		cancel()
		return fmt.Errorf("start worker's send lane: %w", err)
	}
	if err := w.otherLane.Start(w.mux); err != nil {
		w.sendLane.Shutdown()
		cancel()
		return fmt.Errorf("start worker's lane of polls and control tasks: %w", err)
	}
	w.log.Info("worker started")
	return nil
}

// Shutdown stops taking tasks, lets running ones finish (up to
// SHUTDOWN_TIMEOUT) and returns the rest to the queue.
func (w *Worker) Shutdown() {
	var lanes sync.WaitGroup
	for _, lane := range []*asynq.Server{w.sendLane, w.otherLane} {
		lanes.Add(1)
		go func() { // side by side: each may wait up to SHUTDOWN_TIMEOUT
			defer lanes.Done()
			lane.Shutdown()
		}()
	}
	lanes.Wait()
	_ = w.queue.Close()
	// The sends are over: the credits this process leased and did not use
	// go back now, not at a restart's idle close nobody would run.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := w.ledger.Flush(ctx); err != nil {
		w.log.Warn("give back the credits this worker held", zap.Error(err))
	}
	cancel()
	if w.stopSync != nil {
		w.stopSync()
		w.syncDone.Wait()
	}
	w.log.Info("worker stopped")
}

// asynqLogger sends asynq's log lines to zap.
type asynqLogger struct{ s *zap.SugaredLogger }

func (l asynqLogger) Debug(args ...any) { l.s.Debug(args...) }
func (l asynqLogger) Info(args ...any)  { l.s.Info(args...) }
func (l asynqLogger) Warn(args ...any)  { l.s.Warn(args...) }
func (l asynqLogger) Error(args ...any) { l.s.Error(args...) }
func (l asynqLogger) Fatal(args ...any) { l.s.Fatal(args...) }
