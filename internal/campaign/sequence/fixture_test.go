package sequence

import (
	"context"
	"encoding/json"
	"net/http/httptest"

	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/redistest"
	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// fixture is sequences on a throwaway Redis, their steps sent by the
// campaign send path to a sandbox provider; tests run the send tasks by
// hand.
type fixture struct {
	t         *testing.T
	store     *campaign.Store
	sequences *Service
	handler   *campaign.SendHandler
	inspector *asynq.Inspector
	sandbox   *sandbox.Server
}

func newFixture(t *testing.T, sbCfg sandbox.Config) *fixture {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	queue := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { queue.Close() })
	sbCfg.Token, sbCfg.Credits, sbCfg.SendInterval = "fixture-token", 1000, time.Millisecond
	sb := sandbox.New(sbCfg)
	prov := httptest.NewServer(sb)
	t.Cleanup(prov.Close)
	ledger := quota.NewCreditLedger(rdb)
	if err := ledger.Sync(context.Background(), sb.CreditsRemaining(), time.Now()); err != nil {
		t.Fatal(err)
	}
	pacer := quota.NewPacer(rdb, time.Millisecond, 0)
	store := campaign.NewStore(rdb)
	enqueuer := campaign.NewEnqueuer(queue, rdb, pacer)
	handler := campaign.NewSendHandler(campaign.SendDeps{
		Store: store, Ledger: ledger, Pacer: pacer, Accounts: quota.NewAccounts(rdb), Queue: enqueuer, Log: log,
		Provider: sender.NewTimelines("fixture-token", sender.WithBaseURL(prov.URL)),
	})
	return &fixture{t: t, store: store, sequences: NewService(rdb, store, campaign.NewService(store, enqueuer), "US"),
		handler: handler, inspector: asynq.NewInspectorFromRedisClient(rdb), sandbox: sb}
}

func mustTemplate(t *testing.T, src string) *templating.Template {
	t.Helper()
	tmpl, err := templating.Parse("t", src)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func (f *fixture) get(id string) *campaign.Campaign {
	f.t.Helper()
	c, err := f.store.Get(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// task is the send task of recipient seq of a step, as enrolling made it.
func (f *fixture) task(campaignID string, seq int64) *asynq.Task {
	payload, _ := json.Marshal(map[string]any{"c": campaignID, "s": seq})
	return asynq.NewTask(campaign.TypeSend, payload)
}

// runSends runs every send task waiting in the queue at once, due or not,
// and answers how many it ran.
func (f *fixture) runSends() int {
	f.t.Helper()
	infos, err := f.inspector.ListScheduledTasks(campaign.QueueSend)
	if err != nil {
		f.t.Fatal(err)
	}
	pending, _ := f.inspector.ListPendingTasks(campaign.QueueSend)
	for _, info := range append(infos, pending...) {
		if err := f.inspector.DeleteTask(campaign.QueueSend, info.ID); err != nil {
			f.t.Fatal(err)
		}
		if err := f.handler.ProcessTask(context.Background(), asynq.NewTask(info.Type, info.Payload)); err != nil {
			f.t.Fatal(err)
		}
	}
	return len(infos) + len(pending)
}
