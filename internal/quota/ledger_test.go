package quota_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/quota"
)

// TestReserveNeverSpendsMoreThanTheLedgerHolds runs 50 goroutines over 3
// ledgers on 3 clients (3 processes) against 100 credits, with demand well
// above it: never more than the credits held are spent, and once the
// processes' blocks closed for want of use, one process can spend all that
// the others left: exactly the credits held are spent.
func TestReserveNeverSpendsMoreThanTheLedgerHolds(t *testing.T) {
	tests := []struct {
		name         string
		releaseEvery int // every n-th successful reservation of a goroutine is released (0: none)
	}{
		{name: "every reservation committed"},
		{name: "every third reservation released", releaseEvery: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			var ledgers []*quota.CreditLedger
			for _, c := range processes(t, 3) {
				ledgers = append(ledgers, quota.NewCreditLedger(c))
			}
			const credits = 100
			now, err := ledgers[0].Now(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := ledgers[0].Sync(ctx, credits, now); err != nil {
				t.Fatal(err)
			}

			var committed, released atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, 50)
			for g := range 50 {
				wg.Go(func() {
					l := ledgers[g%len(ledgers)]
					for i := 0; ; i++ {
						n := 1 + (g+i)%2
						r, err := l.Reserve(ctx, n)
						if errors.Is(err, quota.ErrInsufficientCredits) && n == 2 {
							n = 1
							r, err = l.Reserve(ctx, n)
						}
						if errors.Is(err, quota.ErrInsufficientCredits) {
							return // nothing left for this goroutine
						}
						if err != nil {
							errs <- err
							return
						}
						if tt.releaseEvery > 0 && i%tt.releaseEvery == 0 {
							if err := r.Release(ctx); err != nil {
								errs <- err
								return
							}
							released.Add(int64(n))
							continue
						}
						if err := r.Commit(ctx); err != nil {
							errs <- err
							return
						}
						committed.Add(int64(n))
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if got := committed.Load(); got > credits {
				t.Fatalf("credits committed = %d of %d", got, credits)
			}

			// Blocks the goroutines left with credits in them close when
			// idle; what they held is then anyone's.
			waitFor(t, "the idle blocks to close", func() bool { return balance(t, ctx, ledgers[1]).Reserved == 0 })
			for {
				r, err := ledgers[0].Reserve(ctx, 1)
				if errors.Is(err, quota.ErrInsufficientCredits) {
					break
				}
				must(t, err)
				must(t, r.Commit(ctx))
				committed.Add(1)
			}
			if got := committed.Load(); got != credits {
				t.Errorf("credits committed = %d, want exactly %d", got, credits)
			}
			if tt.releaseEvery > 0 && released.Load() == 0 {
				t.Error("no reservation was released; the case tests nothing")
			}
			b, err := ledgers[1].Balance(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := quota.Balance{Available: 0, Reserved: 0, Spent: credits, Remaining: credits, SyncedAt: b.SyncedAt, Synced: true}
			if b != want {
				t.Errorf("balance = %+v, want %+v", b, want)
			}
		})
	}
}

// ledgerAmounts is the part of a Balance the lifecycle cases check.
type ledgerAmounts struct {
	Available, Reserved, Spent, Remaining int64
	Exhausted                             bool
}

func TestLedgerLifecycle(t *testing.T) {
	const grace = time.Minute
	tests := []struct {
		name string
		// run acts on a ledger whose clock read now (Redis clock) at the start.
		run  func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time)
		want ledgerAmounts
	}{
		{
			name: "never synced: nothing to reserve",
			run: func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time) {
				_, err := l.Reserve(ctx, 1)
				if !errors.Is(err, quota.ErrInsufficientCredits) || !errors.Is(err, quota.ErrNotSynced) {
					t.Errorf("Reserve on a never-synced ledger: %v, want ErrInsufficientCredits and ErrNotSynced", err)
				}
			},
			want: ledgerAmounts{},
		},
		{
			name: "reserve holds credits until settled",
			run: func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time) {
				syncLedger(t, ctx, l, 10, now)
				reserve(t, ctx, l, 2)
				reserve(t, ctx, l, 1)
			},
			want: ledgerAmounts{Available: 7, Reserved: 3, Remaining: 10},
		},
		{
			name: "more than available is refused, what fits is not",
			run: func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time) {
				syncLedger(t, ctx, l, 1, now)
				if _, err := l.Reserve(ctx, 2); !errors.Is(err, quota.ErrInsufficientCredits) {
					t.Errorf("Reserve(2) of 1 credit: %v, want ErrInsufficientCredits", err)
				}
				reserve(t, ctx, l, 1)
			},
			want: ledgerAmounts{Available: 0, Reserved: 1, Remaining: 1},
		},
		{
			name: "release gives the credits back",
			run: func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time) {
				syncLedger(t, ctx, l, 10, now)
				must(t, reserve(t, ctx, l, 2).Release(ctx))
			},
			want: ledgerAmounts{Available: 10, Remaining: 10},
		},
		{
			name: "commit keeps the credits spent",
			run: func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time) {
				syncLedger(t, ctx, l, 10, now)
				must(t, reserve(t, ctx, l, 2).Commit(ctx))
			},
			want: ledgerAmounts{Available: 8, Spent: 2, Remaining: 10},
		},
		{
			name: "settling twice changes nothing",
			run: func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time) {
				syncLedger(t, ctx, l, 10, now)
				r := reserve(t, ctx, l, 2)
				must(t, r.Commit(ctx))
				must(t, r.Commit(ctx))
				must(t, r.Release(ctx))
			},
			want: ledgerAmounts{Available: 8, Spent: 2, Remaining: 10},
		},
		{
			name: "sync keeps open reservations reserved",
			run: func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time) {
				syncLedger(t, ctx, l, 10, now)
				reserve(t, ctx, l, 3)
				syncLedger(t, ctx, l, 20, now.Add(time.Second))
			},
			want: ledgerAmounts{Available: 17, Reserved: 3, Remaining: 20},
		},
		{
			name: "commits before the read started are in the provider's number",
			run: func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time) {
				syncLedger(t, ctx, l, 10, now)
				must(t, reserve(t, ctx, l, 2).Commit(ctx))
				syncLedger(t, ctx, l, 8, now.Add(quota.DefaultClockSkew+time.Second))
			},
			want: ledgerAmounts{Available: 8, Remaining: 8},
		},
		{
			name: "commits after the read started still count as spent",
			run: func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time) {
				syncLedger(t, ctx, l, 10, now)
				must(t, reserve(t, ctx, l, 2).Commit(ctx))
				syncLedger(t, ctx, l, 10, now.Add(time.Millisecond)) // read started before the commit
			},
			want: ledgerAmounts{Available: 8, Spent: 2, Remaining: 10},
		},
		{
			name: "a leaked reservation is dropped by a read started after it plus the grace",
			run: func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time) {
				syncLedger(t, ctx, l, 10, now)
				reserve(t, ctx, l, 2) // its worker "crashes": never settled
				syncLedger(t, ctx, l, 10, now.Add(grace/2))
				if b := balance(t, ctx, l); b.Reserved != 2 {
					t.Errorf("reserved after a sync within the grace = %d, want 2", b.Reserved)
				}
				syncLedger(t, ctx, l, 10, now.Add(grace+time.Second))
			},
			want: ledgerAmounts{Available: 10, Remaining: 10},
		},
		{
			name: "a dropped reservation committed late still counts as spent",
			run: func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time) {
				syncLedger(t, ctx, l, 10, now)
				r := reserve(t, ctx, l, 2)
				syncLedger(t, ctx, l, 10, now.Add(grace+time.Second))
				must(t, r.Commit(ctx))
			},
			want: ledgerAmounts{Available: 8, Spent: 2, Remaining: 10},
		},
		{
			name: "a dropped reservation released late gives nothing twice",
			run: func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time) {
				syncLedger(t, ctx, l, 10, now)
				r := reserve(t, ctx, l, 2)
				syncLedger(t, ctx, l, 10, now.Add(grace+time.Second))
				must(t, r.Release(ctx))
			},
			want: ledgerAmounts{Available: 10, Remaining: 10},
		},
		{
			name: "exhausted: nothing available until a read started after it",
			run: func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time) {
				syncLedger(t, ctx, l, 10, now.Add(-time.Second))
				must(t, l.Exhausted(ctx))
				if _, err := l.Reserve(ctx, 1); !errors.Is(err, quota.ErrInsufficientCredits) {
					t.Errorf("Reserve after Exhausted: %v, want ErrInsufficientCredits", err)
				}
				if b := balance(t, ctx, l); b.Available != 0 || !b.Exhausted {
					t.Errorf("balance after Exhausted = %+v, want nothing available", b)
				}
				syncLedger(t, ctx, l, 10, now.Add(-time.Second/2)) // started before the 403: does not lift it
				if b := balance(t, ctx, l); b.Available != 0 {
					t.Errorf("available after a read older than the 403 = %d, want 0", b.Available)
				}
				syncLedger(t, ctx, l, 5, now.Add(time.Minute))
			},
			want: ledgerAmounts{Available: 5, Remaining: 5},
		},
		{
			name: "a read older than the ledger's is ignored",
			run: func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time) {
				syncLedger(t, ctx, l, 10, now)
				syncLedger(t, ctx, l, 50, now.Add(-time.Second))
			},
			want: ledgerAmounts{Available: 10, Remaining: 10},
		},
		{
			name: "a negative remaining is nothing",
			run: func(t *testing.T, ctx context.Context, l *quota.CreditLedger, now time.Time) {
				syncLedger(t, ctx, l, -3, now)
			},
			want: ledgerAmounts{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			// Blocks of one credit: these cases are the ledger's rules for
			// one reservation; creditblock_test.go has those of blocks.
			l := quota.NewCreditLedger(processes(t, 1)[0], quota.WithLeakGrace(grace), quota.WithMaxCreditBlock(1))
			now, err := l.Now(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tt.run(t, ctx, l, now)
			b := balance(t, ctx, l)
			got := ledgerAmounts{Available: b.Available, Reserved: b.Reserved, Spent: b.Spent, Remaining: b.Remaining, Exhausted: b.Exhausted}
			if got != tt.want {
				t.Errorf("ledger = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReserveRejectsNonPositiveCost(t *testing.T) {
	ctx := testContext(t)
	l := quota.NewCreditLedger(processes(t, 1)[0])
	_, err := l.Reserve(ctx, 0)
	if err == nil || errors.Is(err, quota.ErrInsufficientCredits) {
		t.Errorf("Reserve(0) = %v, want an error that is not ErrInsufficientCredits", err)
	}
}

func syncLedger(t *testing.T, ctx context.Context, l *quota.CreditLedger, remaining int64, readStarted time.Time) {
	t.Helper()
	must(t, l.Sync(ctx, remaining, readStarted))
}

func reserve(t *testing.T, ctx context.Context, l *quota.CreditLedger, n int) *quota.Reservation {
	t.Helper()
	r, err := l.Reserve(ctx, n)
	if err != nil {
		t.Fatalf("Reserve(%d): %v", n, err)
	}
	return r
}

func balance(t *testing.T, ctx context.Context, l *quota.CreditLedger) quota.Balance {
	t.Helper()
	b, err := l.Balance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSyncsRacingSendsNeverOverspend simulates the provider as well: workers
// in 3 processes reserve, "send" (the provider takes the credits), and
// commit or release, while a syncer keeps re-reading the provider's
// remaining credits into the ledger. The provider must never be asked for a
// credit it does not have, whatever the interleaving of reads and sends.
func TestSyncsRacingSendsNeverOverspend(t *testing.T) {
	tests := []struct {
		name       string
		failEvery  int // every n-th send is refused by the provider (released)
		crashEvery int // every n-th send is taken, then its worker dies (never settled)
	}{
		{name: "every send accepted"},
		{name: "some sends refused", failEvery: 4},
		{name: "some workers crash after sending", crashEvery: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			var ledgers []*quota.CreditLedger
			for _, c := range processes(t, 3) {
				// No clock-skew margin: one Redis, one clock; the ordering of
				// commits and reads alone must keep the ledger safe.
				ledgers = append(ledgers, quota.NewCreditLedger(c, quota.WithClockSkew(0)))
			}
			const credits = 100
			var providerRemaining atomic.Int64
			providerRemaining.Store(credits)
			readQuota := func(l *quota.CreditLedger) {
				readStarted, err := l.Now(ctx)
				must(t, err)
				must(t, l.Sync(ctx, providerRemaining.Load(), readStarted))
			}
			readQuota(ledgers[0])

			stopSyncing := make(chan struct{})
			syncerDone := make(chan struct{})
			go func() {
				defer close(syncerDone)
				for {
					select {
					case <-stopSyncing:
						return
					default:
						readQuota(ledgers[2])
					}
				}
			}()

			var wg sync.WaitGroup
			for g := range 30 {
				wg.Go(func() {
					l := ledgers[g%len(ledgers)]
					for i := 1; ; i++ {
						n := 1 + (g+i)%2
						r, err := l.Reserve(ctx, n)
						if errors.Is(err, quota.ErrInsufficientCredits) {
							return
						}
						if err != nil {
							t.Error(err)
							return
						}
						if tt.failEvery > 0 && i%tt.failEvery == 0 {
							must(t, r.Release(ctx))
							continue
						}
						if left := providerRemaining.Add(-int64(n)); left < 0 {
							t.Errorf("the provider was asked for %d credits with %d left", n, left+int64(n))
						}
						if tt.crashEvery > 0 && i%tt.crashEvery == 0 {
							return // the reservation stays open until its grace passes
						}
						must(t, r.Commit(ctx))
					}
				})
			}
			wg.Wait()
			close(stopSyncing)
			<-syncerDone
			for _, l := range ledgers { // everything settled: the blocks close
				must(t, l.Flush(ctx))
			}

			if left := providerRemaining.Load(); left < 0 {
				t.Fatalf("provider overspent: %d credits left", left)
			}
			// Once everything settled, a read started after the last send
			// (and after the grace of the crashed workers' reservations)
			// makes the ledger agree with the provider exactly.
			now, err := ledgers[1].Now(ctx)
			must(t, err)
			must(t, ledgers[1].Sync(ctx, providerRemaining.Load(), now.Add(quota.DefaultLeakGrace+time.Minute)))
			b := balance(t, ctx, ledgers[1])
			if b.Available != providerRemaining.Load() || b.Reserved != 0 || b.Spent != 0 {
				t.Errorf("settled ledger = %+v, want %d available like the provider, nothing reserved or spent", b, providerRemaining.Load())
			}
		})
	}
}
