package quota_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/redistest"
)

// TestAbandonedBlockStaysReservedUntilTheLeakGrace: a process that dies
// with blocks open (credits handed out and never settled, credits not
// handed out yet) leaves all of them reserved, for every process, until a
// sync that started a leak grace after them.
func TestAbandonedBlockStaysReservedUntilTheLeakGrace(t *testing.T) {
	const grace = time.Minute
	ctx := testContext(t)
	c := processes(t, 2)
	dying := quota.NewCreditLedger(c[0], quota.WithLeakGrace(grace))
	other := quota.NewCreditLedger(c[1], quota.WithLeakGrace(grace))
	now, err := other.Now(ctx)
	must(t, err)
	syncLedger(t, ctx, other, 100, now)

	for range 8 { // demand grows, and so do the blocks; the last is not used up
		reserve(t, ctx, dying, 1)
	}
	held := balance(t, ctx, other).Reserved
	if held <= 8 {
		t.Fatalf("reserved after 8 quick reservations = %d, want their blocks, more than 8", held)
	}
	if b := balance(t, ctx, other); b.Available != 100-held {
		t.Errorf("available to another process = %d, want %d", b.Available, 100-held)
	}

	syncLedger(t, ctx, other, 100, now.Add(grace/2))
	if b := balance(t, ctx, other); b.Reserved != held {
		t.Errorf("reserved after a sync within the grace = %d, want %d", b.Reserved, held)
	}
	syncLedger(t, ctx, other, 100, now.Add(grace+time.Second))
	if b := balance(t, ctx, other); b.Reserved != 0 || b.Available != 100 {
		t.Errorf("after a sync past the grace: %+v, want nothing reserved, 100 available", b)
	}
}

// TestExhaustedStopsHandingOutAtOnce: after quota_exceeded the process's
// block, credits left in it or not, hands nothing more out; what it had
// handed out still settles, and what it had not is released.
func TestExhaustedStopsHandingOutAtOnce(t *testing.T) {
	ctx := testContext(t)
	l := quota.NewCreditLedger(processes(t, 1)[0])
	now, err := l.Now(ctx)
	must(t, err)
	syncLedger(t, ctx, l, 100, now)
	var held []*quota.Reservation
	for range 4 { // the fourth is in a block of 4: 3 credits left in it
		held = append(held, reserve(t, ctx, l, 1))
	}

	must(t, l.Exhausted(ctx))
	if _, err := l.Reserve(ctx, 1); !errors.Is(err, quota.ErrInsufficientCredits) {
		t.Fatalf("Reserve after Exhausted with credits left in the block: %v, want ErrInsufficientCredits", err)
	}
	for _, r := range held {
		must(t, r.Commit(ctx))
	}
	if b := balance(t, ctx, l); b.Spent != 4 || b.Reserved != 0 || !b.Exhausted {
		t.Errorf("after the held reservations settled: %+v, want 4 spent, nothing reserved, exhausted", b)
	}
}

// TestBlockDroppedAsLeakedStillCountsItsSpending: a sync that dropped a
// block as leaked (its process was too slow, not dead) does not make its
// spending disappear: the provider took those messages.
func TestBlockDroppedAsLeakedStillCountsItsSpending(t *testing.T) {
	const grace = time.Minute
	ctx := testContext(t)
	l := quota.NewCreditLedger(processes(t, 1)[0], quota.WithLeakGrace(grace))
	now, err := l.Now(ctx)
	must(t, err)
	syncLedger(t, ctx, l, 10, now)
	r1, r2, r3 := reserve(t, ctx, l, 1), reserve(t, ctx, l, 1), reserve(t, ctx, l, 1) // blocks of 1 and 2

	syncLedger(t, ctx, l, 10, now.Add(grace+time.Second))
	if b := balance(t, ctx, l); b.Reserved != 0 {
		t.Fatalf("reserved after the drop = %d, want 0", b.Reserved)
	}
	must(t, r1.Commit(ctx))
	must(t, r2.Commit(ctx))
	must(t, r3.Release(ctx))
	want := ledgerAmounts{Available: 8, Spent: 2, Remaining: 10}
	b := balance(t, ctx, l)
	if got := (ledgerAmounts{Available: b.Available, Reserved: b.Reserved, Spent: b.Spent, Remaining: b.Remaining}); got != want {
		t.Errorf("ledger = %+v, want %+v", got, want)
	}
}

// TestCreditBlocksAmortiseRedisWork counts the scripts the ledger runs: a
// fast stream of reservations shares blocks (well under one script per
// reservation), a paced one leases a block of one per message, which
// closes with its commit, leaving nothing held between messages.
func TestCreditBlocksAmortiseRedisWork(t *testing.T) {
	t.Run("fast: 32 goroutines", func(t *testing.T) {
		ctx := testContext(t)
		l, scripts := countedLedger(t, ctx, 1_000_000)
		before := scripts.n.Load()

		const goroutines, each = 32, 200
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for range each {
					r, err := l.Reserve(ctx, 1)
					if err != nil {
						t.Error(err)
						return
					}
					if err := r.Commit(ctx); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		perReservation := float64(scripts.n.Load()-before) / (goroutines * each)
		t.Logf("%.3f scripts per reservation", perReservation)
		if perReservation > 0.1 {
			t.Errorf("%.3f scripts per reservation, want at most 0.1", perReservation)
		}
		waitFor(t, "the last block to close", func() bool { return balance(t, ctx, l).Reserved == 0 })
		if b := balance(t, ctx, l); b.Spent != goroutines*each {
			t.Errorf("spent = %d, want %d", b.Spent, goroutines*each)
		}
	})
	t.Run("paced: one message at a time", func(t *testing.T) {
		ctx := testContext(t)
		l, scripts := countedLedger(t, ctx, 100)
		must(t, reserve(t, ctx, l, 1).Release(ctx)) // loads the scripts
		for i := range 3 {
			time.Sleep(250 * time.Millisecond) // the pace: a message now and then
			before := scripts.n.Load()
			must(t, reserve(t, ctx, l, 2).Commit(ctx))
			if n := scripts.n.Load() - before; n != 2 {
				t.Errorf("message %d: %d scripts, want 2 (a lease and a close)", i, n)
			}
			if b := balance(t, ctx, l); b.Reserved != 0 || b.Spent != int64(2*(i+1)) {
				t.Errorf("after message %d: %+v, want nothing held, %d spent", i, b, 2*(i+1))
			}
		}
	})
}

// TestFailedCloseIsTriedAgain: a block whose close fails (Redis is down as
// its last reservation commits) keeps its credits reserved, never
// available, and is closed before the process's next lease: its spending
// reaches the ledger.
func TestFailedCloseIsTriedAgain(t *testing.T) {
	ctx := testContext(t)
	srv := redistest.Start(t)
	l := quota.NewCreditLedger(srv.Client(t))
	now, err := l.Now(ctx)
	must(t, err)
	syncLedger(t, ctx, l, 10, now)
	r := reserve(t, ctx, l, 1)

	srv.Stop(t)
	if err := r.Commit(ctx); err == nil {
		t.Fatal("Commit with Redis down answered no error")
	}
	srv.Restart(t)
	if b := balance(t, ctx, l); b.Reserved != 1 || b.Spent != 0 {
		t.Errorf("after the failed close: %+v, want its credit reserved", b)
	}
	var next *quota.Reservation
	waitFor(t, "a reservation once Redis is back", func() bool {
		next, err = l.Reserve(ctx, 1)
		return err == nil
	})
	must(t, next.Commit(ctx))
	if b := balance(t, ctx, l); b.Reserved != 0 || b.Spent != 2 || b.Available != 8 {
		t.Errorf("after the next lease: %+v, want 2 spent, nothing reserved, 8 available", b)
	}
}

// countedLedger is a ledger synced to credits on a fresh Redis whose client
// counts the scripts it runs.
func countedLedger(t *testing.T, ctx context.Context, credits int64) (*quota.CreditLedger, *scriptCalls) {
	t.Helper()
	c := processes(t, 1)[0]
	scripts := countScripts(c)
	l := quota.NewCreditLedger(c)
	now, err := l.Now(ctx)
	must(t, err)
	syncLedger(t, ctx, l, credits, now)
	return l, scripts
}
