package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/redistest"
	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// fixture is the campaign package on a throwaway Redis, sending to a sandbox
// provider through the real client.
type fixture struct {
	t         testing.TB
	redis     *redistest.Server
	rdb       *redis.Client
	store     *Store
	importer  *Importer
	queue     *Enqueuer
	service   *Service
	starter   *ControlHandler
	inspector *asynq.Inspector
	sandbox   *sandbox.Server
	provURL   string
	ledger    *quota.CreditLedger
	handler   *SendHandler
	client    *sender.Timelines
	// reconciler looks unconfirmed sends up at once and, not finding them,
	// resends them at once: tests run its tasks by hand (reconcileAll).
	reconciler *Reconciler
	sendDeps   SendDeps // what handler was made of
}

const fixtureToken = "fixture-token"

func newFixture(t testing.TB, sbCfg sandbox.Config, clientOpts ...sender.TimelinesOption) *fixture {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	queue := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { queue.Close() })
	inspector := asynq.NewInspectorFromRedisClient(rdb)

	sbCfg.Token = fixtureToken
	if sbCfg.Credits == 0 {
		sbCfg.Credits = 10_000
	}
	if sbCfg.SendInterval == 0 {
		sbCfg.SendInterval = time.Millisecond
	}
	sb := sandbox.New(sbCfg)
	prov := httptest.NewServer(sb)
	t.Cleanup(prov.Close)
	client := sender.NewTimelines(fixtureToken, append([]sender.TimelinesOption{sender.WithBaseURL(prov.URL)}, clientOpts...)...)

	store := NewStore(rdb)
	ledger := quota.NewCreditLedger(rdb)
	pacer := quota.NewPacer(rdb, time.Millisecond, 0)
	f := &fixture{
		t:         t,
		redis:     srv,
		rdb:       rdb,
		store:     store,
		queue:     NewEnqueuer(queue, rdb, pacer),
		importer:  NewImporter(store, NewEnqueuer(queue, rdb, pacer), "US", log),
		inspector: inspector,
		sandbox:   sb,
		provURL:   prov.URL,
		ledger:    ledger,
	}
	f.service = NewService(store, f.queue)
	f.syncLedger()
	f.client = client
	policy := ReconcilePolicy{After: time.Millisecond, MaxAge: time.Millisecond, Resend: true}
	f.sendDeps = SendDeps{
		Store:     store,
		Provider:  client,
		Ledger:    ledger,
		Pacer:     pacer,
		Accounts:  quota.NewAccounts(rdb),
		Queue:     f.queue,
		Log:       log,
		Reconcile: policy,
	}
	f.handler = NewSendHandler(f.sendDeps)
	f.reconciler = NewReconciler(ReconcilerDeps{Store: store, Provider: client, Queue: f.queue, Policy: policy, Log: log})
	f.starter = NewControlHandler(store, f.queue, log)
	return f
}

// syncLedger sets the credit ledger from the sandbox's quota.
func (f *fixture) syncLedger() {
	f.t.Helper()
	if err := f.ledger.Sync(context.Background(), f.sandbox.CreditsRemaining(), time.Now()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) importCSV(tmpl, csv string, mod ...func(*Draft)) *Campaign {
	f.t.Helper()
	c, err := f.tryImport(tmpl, csv, mod...)
	if err != nil {
		f.t.Fatalf("import: %v", err)
	}
	return c
}

func (f *fixture) tryImport(tmpl, csv string, mod ...func(*Draft)) (*Campaign, error) {
	f.t.Helper()
	parsed, err := templating.Parse("t", tmpl)
	if err != nil {
		f.t.Fatal(err)
	}
	d := Draft{Name: "Test", Template: parsed}
	for _, m := range mod {
		m(&d)
	}
	return f.importer.Import(context.Background(), d, strings.NewReader(csv))
}

// task is the send task of recipient seq, as the import enqueued it.
func (f *fixture) task(campaignID string, seq int64) *asynq.Task {
	return f.taskOfRound(campaignID, seq, 0)
}

func (f *fixture) taskOfRound(campaignID string, seq, round int64) *asynq.Task {
	payload, _ := json.Marshal(sendPayload{Campaign: campaignID, Seq: seq, Round: round})
	return asynq.NewTask(TypeSend, payload)
}

func (f *fixture) get(id string) *Campaign {
	f.t.Helper()
	c, err := f.store.Get(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fixture) recipient(id string, seq int64) Recipient {
	f.t.Helper()
	list, _, err := f.store.Recipients(context.Background(), id, "", seq, 1)
	if err != nil || len(list) != 1 {
		f.t.Fatalf("recipient %d: %v %v", seq, list, err)
	}
	return list[0]
}

func addsUp(c Counts) bool { return c.Sum() == c.Total }

// eachRunKind runs test for both kinds of a send task's run: one after a
// failure, which reads the recipient's state before spending anything, and
// an untroubled one, which leaves the state to the claim (SendHandler.look).
func eachRunKind(t *testing.T, test func(t *testing.T, untroubled bool)) {
	t.Run("after a failure", func(t *testing.T) { test(t, false) })
	t.Run("untroubled", func(t *testing.T) { test(t, true) })
}

// runsUntroubled makes the send handler take every run for an untroubled
// one, as an asynq server says of a task's first run (ProcessTask is called
// outside one here).
func (f *fixture) runsUntroubled(untroubled bool) {
	f.handler.untroubled = func(context.Context) bool { return untroubled }
}

// runQueued runs, by hand and at once, every task of type typ whose id ends
// with idSuffix waiting in queue (scheduled or pending) with handler h, and
// answers how many it ran. Tasks are deleted first, as asynq would once it
// hands them out.
func (f *fixture) runQueued(queue, typ, idSuffix string, h asynq.Handler) int {
	f.t.Helper()
	var tasks []*asynq.TaskInfo
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){f.inspector.ListScheduledTasks, f.inspector.ListPendingTasks} {
		infos, err := list(queue)
		if err != nil && !strings.Contains(err.Error(), "does not exist") && !errors.Is(err, asynq.ErrQueueNotFound) {
			f.t.Fatal(err)
		}
		tasks = append(tasks, infos...)
	}
	ran := 0
	for _, info := range tasks {
		if info.Type != typ || !strings.HasSuffix(info.ID, idSuffix) {
			continue
		}
		if err := f.inspector.DeleteTask(queue, info.ID); err != nil {
			f.t.Fatal(err)
		}
		if err := h.ProcessTask(context.Background(), asynq.NewTask(info.Type, info.Payload)); err != nil {
			f.t.Fatalf("%s task: %v", typ, err)
		}
		ran++
	}
	return ran
}

// reconcileAll runs reconciliation until no lookup and no resend is left:
// lookups, then the send tasks of resends (not the import's), and again.
func (f *fixture) reconcileAll() {
	f.t.Helper()
	for round := 0; round < 10; round++ {
		if f.runQueued(QueueStatus, TypeReconcile, "", f.reconciler)+f.runQueued(QueueSend, TypeSend, ":resend", f.handler) == 0 {
			return
		}
	}
	f.t.Fatal("reconciliation did not settle in 10 rounds")
}
