package quota_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
)

// fakeProvider answers Quota with what it is given and counts the reads.
type fakeProvider struct {
	mu    sync.Mutex
	quota sender.Quota
	errs  []error // answered by the next reads, in order, before quota
	reads atomic.Int64
	// hold, when set, keeps every read waiting until it is closed (or the
	// read's context ends): a read under way.
	hold chan struct{}
	// unmetered plays a provider without credits (a gateway).
	unmetered bool
}

func (f *fakeProvider) Quota(ctx context.Context) (sender.Quota, error) {
	f.reads.Add(1)
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return sender.Quota{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return sender.Quota{}, err
	}
	return f.quota, nil
}

func (f *fakeProvider) Send(context.Context, sender.Message) (sender.Receipt, error) {
	return sender.Receipt{}, sender.ErrNotSupported
}

func (f *fakeProvider) StatusHistory(context.Context, string) ([]sender.StatusEvent, error) {
	return nil, sender.ErrNotSupported
}

func (f *fakeProvider) Capabilities() sender.Capabilities {
	if f.unmetered {
		return sender.GatewayCapabilities()
	}
	return sender.TimelinesCapabilities()
}

var providerQuota = sender.Quota{
	MessagingTotal:      1000,
	MessagingUsed:       940,
	NonRecurringBalance: 40,
	APICallsTotal:       50000,
	APICallsUsed:        1234,
	APICallsPeriodEnd:   time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
}

// worker is one process's syncer, its ledger and its log.
type worker struct {
	syncer *quota.QuotaSyncer
	ledger *quota.CreditLedger
	logs   *observer.ObservedLogs
}

func workers(t *testing.T, n int, p sender.Provider, interval time.Duration, opts ...quota.SyncerOption) []worker {
	t.Helper()
	var ws []worker
	for _, c := range processes(t, n) {
		core, logs := observer.New(zapcore.DebugLevel)
		l := quota.NewCreditLedger(c)
		ws = append(ws, worker{quota.NewQuotaSyncer(c, p, l, interval, zap.New(core), opts...), l, logs})
	}
	return ws
}

// run runs the syncer until the test ends.
func (w worker) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.syncer.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func TestSyncerRunSyncsAtOnce(t *testing.T) {
	ctx := testContext(t)
	p := &fakeProvider{quota: providerQuota}
	w := workers(t, 1, p, time.Minute)[0]
	if _, _, _, err := w.syncer.APICalls(ctx); !errors.Is(err, quota.ErrNotSynced) {
		t.Errorf("APICalls before any read = %v, want ErrNotSynced", err)
	}

	w.run(t)
	// The read syncs the ledger, then stores the quota answer: wait for both.
	waitFor(t, "the ledger to be synced", func() bool {
		_, _, _, err := w.syncer.APICalls(ctx)
		return balance(t, ctx, w.ledger).Synced && err == nil
	})

	b := balance(t, ctx, w.ledger)
	if want := int64(1000 - 940 + 40); b.Remaining != want || b.Available != want {
		t.Errorf("ledger = %+v, want %d credits remaining and available", b, want)
	}
	total, used, at, err := w.syncer.APICalls(ctx)
	if err != nil || total != 50000 || used != 1234 || !at.Equal(b.SyncedAt) {
		t.Errorf("APICalls = %d, %d, %s, %v; want 50000, 1234, %s", total, used, at, err, b.SyncedAt)
	}
	q, _, err := w.syncer.LastQuota(ctx)
	q.APICallsPeriodEnd = q.APICallsPeriodEnd.UTC() // stored as a Unix time; compare the instant
	if err != nil || q != providerQuota {
		t.Errorf("LastQuota = %+v, %v; want %+v", q, err, providerQuota)
	}
}

// TestSyncersReadOncePerInterval runs 3 syncers (3 processes) with a
// 1-minute interval: one read between them, not three.
func TestSyncersReadOncePerInterval(t *testing.T) {
	ctx := testContext(t)
	p := &fakeProvider{quota: providerQuota}
	ws := workers(t, 3, p, time.Minute)
	for _, w := range ws {
		w.run(t)
	}
	// Every syncer logs the outcome of each attempt: synced, skipped or failed.
	for _, w := range ws {
		waitFor(t, "every syncer's first attempt", func() bool { return w.logs.Len() > 0 })
	}
	if n := p.reads.Load(); n != 1 {
		t.Errorf("%d provider reads by 3 syncers within an interval, want 1", n)
	}
	for i, w := range ws {
		if b := balance(t, ctx, w.ledger); !b.Synced {
			t.Errorf("process %d sees an unsynced ledger", i)
		}
	}
}

func TestSyncNowIsRateLimitedAcrossProcesses(t *testing.T) {
	ctx := testContext(t)
	p := &fakeProvider{quota: providerQuota}
	ws := workers(t, 3, p, time.Minute, quota.WithSyncNowGap(time.Hour))

	// A burst of quota_exceeded answers in every process.
	var wg sync.WaitGroup
	for _, w := range ws {
		for range 5 {
			wg.Go(func() {
				if err := w.syncer.SyncNow(ctx); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	if n := p.reads.Load(); n != 1 {
		t.Errorf("%d provider reads for 15 SyncNow calls within the gap, want 1", n)
	}
	if b := balance(t, ctx, ws[2].ledger); !b.Synced {
		t.Error("ledger not synced by SyncNow")
	}

	// The periodic read is not due right after an on-demand one.
	ws[0].run(t)
	waitFor(t, "the periodic syncer's first attempt", func() bool {
		return ws[0].logs.FilterMessageSnippet("skipped").Len() > 0
	})
	if n := p.reads.Load(); n != 1 {
		t.Errorf("%d provider reads, want 1: the periodic read came right after SyncNow", n)
	}
}

func TestSyncFailureLeavesLedgerUnchanged(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{name: "provider error", err: &sender.Error{Kind: sender.Transient, Op: "quota", Message: "503 from the provider"}},
		{name: "provider without quotas", err: sender.ErrNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			// Never answers a quota: every read fails.
			p := &fakeProvider{errs: []error{tt.err, tt.err, tt.err, tt.err}}
			w := workers(t, 1, p, time.Hour, quota.WithSyncNowGap(time.Hour))[0]
			now, err := w.ledger.Now(ctx)
			must(t, err)
			must(t, w.ledger.Sync(ctx, 50, now))
			before := balance(t, ctx, w.ledger)

			err = w.syncer.SyncNow(ctx)
			if !errors.Is(err, tt.err) {
				t.Errorf("SyncNow = %v, want the provider's error", err)
			}
			w.run(t)
			waitFor(t, "the failure to be logged", func() bool {
				return w.logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet("quota sync failed").Len() > 0
			})
			if after := balance(t, ctx, w.ledger); after != before {
				t.Errorf("ledger after failed reads = %+v, want unchanged %+v", after, before)
			}
		})
	}
}

// TestSyncerRetriesFailedReadSoon: a failed periodic read is tried again
// after the on-demand gap, not a whole interval later (a worker that starts
// while the provider is down must not wait an interval to send).
func TestSyncerRetriesFailedReadSoon(t *testing.T) {
	ctx := testContext(t)
	p := &fakeProvider{quota: providerQuota, errs: []error{errors.New("connection refused")}}
	w := workers(t, 1, p, time.Hour, quota.WithSyncNowGap(50*time.Millisecond))[0]
	w.run(t)
	waitFor(t, "the ledger to be synced after a failed read", func() bool { return balance(t, ctx, w.ledger).Synced })
	if n := p.reads.Load(); n != 2 {
		t.Errorf("%d provider reads, want 2 (one failed, one retried)", n)
	}
}

// TestAwaitFirstSyncWaitsForAReadUnderWay: on a fresh ledger, a second
// process asking for the first read while another's is under way waits for
// that read instead of reading again or giving up at once.
func TestAwaitFirstSyncWaitsForAReadUnderWay(t *testing.T) {
	ctx := testContext(t)
	p := &fakeProvider{quota: providerQuota, hold: make(chan struct{})}
	ws := workers(t, 2, p, time.Hour, quota.WithSyncNowGap(time.Hour))

	first := make(chan error, 1)
	go func() { first <- ws[0].syncer.SyncNow(ctx) }()
	waitFor(t, "the first read to be under way", func() bool { return p.reads.Load() == 1 })

	type answer struct {
		synced bool
		err    error
	}
	second := make(chan answer, 1)
	go func() {
		synced, err := ws[1].syncer.AwaitFirstSync(ctx, 30*time.Second)
		second <- answer{synced, err}
	}()
	close(p.hold) // the first read completes
	got := <-second
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if !got.synced || got.err != nil {
		t.Errorf("AwaitFirstSync = %v, %v; want synced by the other process's read", got.synced, got.err)
	}
	if n := p.reads.Load(); n != 1 {
		t.Errorf("%d provider reads, want 1: the second process waits for the read under way", n)
	}

	t.Run("patience runs out", func(t *testing.T) {
		ctx := testContext(t)
		p := &fakeProvider{quota: providerQuota, hold: make(chan struct{})}
		t.Cleanup(func() { close(p.hold) })
		ws := workers(t, 2, p, time.Hour, quota.WithSyncNowGap(time.Hour))
		go func() { _ = ws[0].syncer.SyncNow(ctx) }()
		waitFor(t, "the first read to be under way", func() bool { return p.reads.Load() == 1 })
		if synced, err := ws[1].syncer.AwaitFirstSync(ctx, 50*time.Millisecond); synced || err != nil {
			t.Errorf("AwaitFirstSync with a read that never ends = %v, %v; want false, nil", synced, err)
		}
	})
}

// TestSyncerStoppedMidReadHandsTheReadOver: a worker shut down during its
// periodic read frees the read at once, so another process syncs a fresh
// ledger now rather than an interval later.
func TestSyncerStoppedMidReadHandsTheReadOver(t *testing.T) {
	ctx := testContext(t)
	p := &fakeProvider{quota: providerQuota, hold: make(chan struct{})}
	ws := workers(t, 2, p, time.Hour, quota.WithSyncNowGap(time.Hour))

	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ws[0].syncer.Run(runCtx)
	}()
	waitFor(t, "the first read to be under way", func() bool { return p.reads.Load() == 1 })
	stop()
	<-done
	close(p.hold)

	ws[1].run(t)
	waitFor(t, "the other process to sync", func() bool { return balance(t, ctx, ws[1].ledger).Synced })
	if n := p.reads.Load(); n != 2 {
		t.Errorf("%d provider reads, want 2 (the abandoned one, the other process's)", n)
	}
}

// TestSyncerReadsNothingOfAnUnmeteredProvider: a gateway has no quota to
// read; the syncer neither asks for it (an ErrNotSupported every interval)
// nor keeps running.
func TestSyncerReadsNothingOfAnUnmeteredProvider(t *testing.T) {
	p := &fakeProvider{unmetered: true}
	w := workers(t, 1, p, time.Millisecond)[0]
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.syncer.Run(testContext(t))
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run kept running for a provider that meters nothing")
	}
	if err := w.syncer.SyncNow(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if n := p.reads.Load(); n != 0 {
		t.Errorf("%d quota reads of a provider without quotas", n)
	}
}
