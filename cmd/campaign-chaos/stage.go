//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wacampaign/wacampaign/internal/harness"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// The product's settings in every scenario: sends paced briskly so a
// campaign of a few hundred over four accounts takes tens of seconds;
// provider calls that hang give up fast; status polls and quota reads
// frequent, so that they meet the faults too; reconciliation of unconfirmed
// sends early (variables today's binaries ignore are set already).
var productSettings = []string{
	"SEND_INTERVAL=150ms",
	"PROVIDER_TIMEOUT=3s",
	"QUOTA_SYNC_INTERVAL=5s",
	"STATUS_POLL_SCHEDULE=2s,5s,15s",
	"STATUS_POLL_MAX_AGE=1m",
	"API_CALLS_PER_SECOND=1000",
	"RECONCILE_AFTER=3s",
	"RECONCILE_MAX_AGE=30s",
	"UNCONFIRMED_POLICY=resend",
	"SHUTDOWN_TIMEOUT=5s",
	"LOG_LEVEL=warn",
}

// sendInterval is SEND_INTERVAL above, for the estimates printed.
const sendInterval = 150 * time.Millisecond

// senderAccounts are the sandbox's WhatsApp accounts, all of them in every
// campaign.
var senderAccounts = []string{"+14155550100", "+14155550101", "+14155550102", "+14155550103"}

const (
	sandboxToken     = "campaign-chaos-sandbox-token"
	campaignTemplate = `Hi {{.first_name}}, your {{.plan}} plan is ready in {{.city}}. Reply STOP to opt out.`
)

// stage is one scenario's world: its own redis-server (append-only file on),
// sandbox, fault proxy, campaign-api and workers, and the campaign they
// send.
type stage struct {
	sc     *scenario
	run    *chaosRun
	dir    string
	apiKey string

	redis      *harness.Redis
	sandbox    *sandbox.Server
	sandboxSrv *httptest.Server
	proxy      *faultProxy
	proxySrv   *httptest.Server
	proxyLog   *os.File
	api        *harness.Child
	client     *harness.APIClient
	pool       *workerPool

	campaignID string
	created    time.Time
	latest     atomic.Pointer[harness.Campaign] // the last campaign the follower read
	probeLost  atomic.Pointer[int64]            // acknowledged Redis writes a kill -9 lost; nil: not measured

	mu          sync.Mutex
	notes       []string // what the disruption did, in order
	apiErrCount int      // failed reads while following the campaign
	apiErrFirst string
}

// newStage starts everything but the campaign. On error, what was started
// is stopped.
func newStage(ctx context.Context, run *chaosRun, sc *scenario) (st *stage, err error) {
	st = &stage{sc: sc, run: run, dir: filepath.Join(run.session.Dir, sc.name), apiKey: "chaos-" + sc.name}
	defer func() {
		if err != nil {
			st.close()
			st = nil
		}
	}()
	if !harness.Enter() {
		return st, harness.ErrStopping
	}
	err = os.MkdirAll(st.dir, 0o755)
	harness.Leave()
	if err != nil {
		return st, err
	}
	if st.redis, err = harness.StartRedis(harness.RedisOptions{Dir: st.dir, AppendFsync: run.fsync}); err != nil {
		return st, err
	}
	if err = st.startProvider(sc); err != nil {
		return st, err
	}
	if st.api, st.client, err = harness.StartAPI("api", run.bins.API, st.env(), st.apiKey, st.dir); err != nil {
		return st, err
	}
	if st.pool, err = startPool(sc.workers, st.startWorker); err != nil {
		return st, err
	}
	return st, st.waitLedger(ctx)
}

// startProvider serves the sandbox and, in front of it, the fault proxy.
func (st *stage) startProvider(sc *scenario) error {
	st.sandbox = sandbox.New(sandbox.Config{
		Token:    sandboxToken,
		Accounts: senderAccounts,
		Credits:  1 << 40,
		// Acceptance is immediate; the provider's own spacing only moves
		// the simulated Sent time.
		SendInterval: time.Millisecond,
		DeliverAfter: time.Second,
		ReadAfter:    3 * time.Second,
		ReadRate:     0.5,
		Seed:         1,
	})
	st.sandboxSrv = httptest.NewServer(st.sandbox)
	var err error
	if st.proxyLog, err = os.Create(filepath.Join(st.dir, "proxy-requests.txt")); err != nil {
		return err
	}
	st.proxy = newFaultProxy(st.sandboxSrv.URL, sc.faultRate, faultKinds, st.run.seed, st.proxyLog)
	st.proxySrv = httptest.NewServer(st.proxy)
	return nil
}

// env is the product's environment in this stage.
func (st *stage) env() []string {
	env := append([]string{
		"REDIS_URL=redis://" + st.redis.Addr,
		"API_KEYS=" + st.apiKey,
		"TIMELINES_API_TOKEN=" + sandboxToken,
		"TIMELINES_BASE_URL=" + st.proxySrv.URL,
	}, productSettings...)
	// CHAOS_EXTRA_ENV="KEY=VALUE ..." sets product variables for every
	// child, to try a setting.
	return append(env, strings.Fields(os.Getenv("CHAOS_EXTRA_ENV"))...)
}

func (st *stage) startWorker(name string) (*harness.Child, error) {
	return harness.StartProduct(name, st.run.bins.Worker, nil, st.env(), st.dir)
}

// waitLedger waits until the credit ledger has read the provider's quota
// (through the proxy, faults and all): setup, not part of the measure.
func (st *stage) waitLedger(ctx context.Context) error {
	deadline := time.Now().Add(45 * time.Second)
	for {
		reqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		synced := st.client.CreditsSynced(reqCtx)
		cancel()
		if synced {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the credit ledger did not sync from GET /quotas within 45 s")
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// createCampaign uploads a contacts CSV of the scenario's size, sent from
// all four accounts.
func (st *stage) createCampaign(ctx context.Context) error {
	plan, err := harness.NewPhonePlan(st.sc.recipients)
	if err != nil {
		return err
	}
	var csv bytes.Buffer
	if _, err := harness.WriteContacts(&csv, st.sc.recipients, plan); err != nil {
		return err
	}
	c, err := st.client.CreateCampaign(ctx, []harness.Field{
		{Name: "name", Value: "chaos " + st.sc.name},
		{Name: "template", Value: campaignTemplate},
		{Name: "accounts", Value: strings.Join(senderAccounts, ",")},
	}, &csv)
	if err != nil {
		return err
	}
	st.created = time.Now()
	st.campaignID = c.ID
	st.latest.Store(c)
	if c.Counts.Total != int64(st.sc.recipients) {
		return fmt.Errorf("campaign %s has %d recipients, not the %d uploaded (rejected: %d)", c.ID, c.Counts.Total, st.sc.recipients, c.RejectedCount)
	}
	return nil
}

// note records what the disruption did, for the scenario's report, and
// prints it.
func (st *stage) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	st.mu.Lock()
	st.notes = append(st.notes, s)
	st.mu.Unlock()
	st.run.printf(st.sc.name, "%s", s)
}

// apiError counts a failed read of the campaign while following it.
func (st *stage) apiError(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.apiErrCount == 0 {
		st.apiErrFirst = harness.Clip(err.Error(), 300)
	}
	st.apiErrCount++
}

// apiErrors answers how many reads failed, and the first error.
func (st *stage) apiErrors() (int, string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.apiErrCount, st.apiErrFirst
}

// close stops the workers, the API, the redis-server and the in-process
// servers.
func (st *stage) close() {
	if st.pool != nil {
		st.pool.stop()
	}
	if st.api != nil {
		st.api.Stop(10 * time.Second)
	}
	if st.redis != nil && st.redis.Child != nil {
		st.redis.Stop(5 * time.Second)
	}
	if st.proxySrv != nil {
		st.proxySrv.CloseClientConnections()
		st.proxySrv.Close()
	}
	if st.sandboxSrv != nil {
		st.sandboxSrv.Close()
	}
	if st.proxyLog != nil {
		st.proxyLog.Close()
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
