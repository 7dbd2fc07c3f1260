package quota

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Credit blocks. A ledger leases credits from Redis a block at a time: one
// open reservation of k credits (leaseScript), from which Reserve hands out
// reservations under a mutex, and which one script closes (closeScript)
// once it hands out nothing more and every reservation taken from it is
// settled: its spent part becomes committed, the rest is released. For
// Redis an open block is an open reservation like any other, so Sync's
// leak rule and Balance count it reserved until it closes, and the ledger
// never lets all processes together spend more than it holds.
//
// k is what this process asked for over the last creditDemandWindow (at
// least the reservation at hand, at most the ledger's maxBlock): a paced
// campaign leases a block of one per message (a lease and a close, as many
// scripts as a reservation and its commit), a fast one amortises both over
// up to maxBlock messages.

// DefaultMaxCreditBlock is the most credits a process leases at once. It
// bounds what a crashed process leaves reserved until the leak grace and
// what one process may hold while another waits for quota.
const DefaultMaxCreditBlock = 64

const (
	// creditDemandWindow is how far back a block's size looks at demand.
	creditDemandWindow = 100 * time.Millisecond

	// blockIdleClose closes a block nobody took from for this long: credits
	// a process holds without using them come back to the others.
	blockIdleClose = 200 * time.Millisecond

	// blockMaxAge stops handing out from a block this old, so that a busy
	// process's blocks still close (and its spending reaches the ledger)
	// every few seconds, and a block is never near the leak grace.
	blockMaxAge = 5 * time.Second

	// A close that fails (Redis unreachable) is tried again before this
	// process's next lease, by Flush, and every blockCloseRetry, until the
	// ledger's leak grace has passed: a sync has dropped the block by then,
	// as it would a crashed process's. Meanwhile all its credits count as
	// reserved, never as available. Retries do not hammer an outage: after
	// a run of failed dials go-redis stops dialing for a while, which would
	// hold up the send path's own recovery.
	blockCloseRetry   = 30 * time.Second
	blockCloseTimeout = 10 * time.Second
)

// leaseScript opens a block: an open reservation of up to ARGV[1] credits
// and at least ARGV[2]. KEYS are ledgerKeys. Answers {id, credits,
// available after} on success, {0, 0, available} when fewer than ARGV[2]
// are available, {-1, 0, 0} when never synced, {-2, 0, 0} when exhausted.
var leaseScript = redis.NewScript(`
local want, least = tonumber(ARGV[1]), tonumber(ARGV[2])
local f = redis.call('HMGET', KEYS[1], 'synced_at', 'remaining', 'spent', 'reserved', 'exhausted_at')
if not f[1] then return {-1, 0, 0} end
if f[5] then return {-2, 0, 0} end
local available = (tonumber(f[2]) or 0) - (tonumber(f[3]) or 0) - (tonumber(f[4]) or 0)
if available < least then return {0, 0, available} end
local take = math.min(want, available)
` + luaNowMillis + `
local id = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[2], now_ms, id)
redis.call('HSET', KEYS[3], id, take)
redis.call('HINCRBY', KEYS[1], 'reserved', take)
return {id, take, available - take}
`)

// closeScript closes block ARGV[1], of which ARGV[2] credits were spent:
// those are committed as of now (later than the sends, so a quota read
// that started before now counts them as not reflected yet: never an
// overspend), the rest is released. A block a sync dropped as leaked still
// has its spent part counted, like a late commit: the provider took the
// messages, and the read that dropped the block may have started before.
// KEYS are ledgerKeys. Answers 1 closed, 2 counted after having been
// dropped, 0 closed already.
var closeScript = redis.NewScript(luaNowMillis + `
local id, spent = ARGV[1], tonumber(ARGV[2])
local function commit()
  redis.call('HSET', KEYS[3], id, spent)
  redis.call('HINCRBY', KEYS[1], 'spent', spent)
  redis.call('ZADD', KEYS[4], now_ms, id)
end
if redis.call('ZREM', KEYS[2], id) == 1 then
  local leased = tonumber(redis.call('HGET', KEYS[3], id)) or 0
  redis.call('HINCRBY', KEYS[1], 'reserved', -leased)
  if spent > 0 then commit() else redis.call('HDEL', KEYS[3], id) end
  return 1
end
if spent == 0 or redis.call('ZSCORE', KEYS[4], id) then return 0 end
commit()
return 2
`)

// creditBlock is credits this process leased, as Redis's open reservation
// id. Its fields are guarded by the ledger's mutex until closing is set;
// after that nothing changes them.
type creditBlock struct {
	ledger   *CreditLedger
	id       string
	free     int // leased, not handed out
	out      int // handed out, not settled yet
	spent    int // committed by the reservations taken from it
	handed   int // reservations taken from it, for their IDs
	leasedAt time.Time
	lastUsed time.Time // of the last hand-out
	retired  bool      // hands out nothing more; closes once out is 0
	closing  bool      // its close has started
}

// Reserve takes n credits (1, or 2 for text with an attachment) for one
// send. It never takes more than the ledger holds, whatever the number of
// concurrent callers and processes. When the credits are not there it
// answers an error wrapping ErrInsufficientCredits (and ErrNotSynced when
// the quota has never been read).
//
// Every Reservation must end in Commit or Release; one that does not (its
// worker crashed) keeps its block, and so its credits, reserved until a
// sync a grace period later.
func (l *CreditLedger) Reserve(ctx context.Context, n int) (*Reservation, error) {
	if n < 1 {
		return nil, fmt.Errorf("quota: reserve %d credits: a message costs at least 1", n)
	}
	l.mu.Lock()
	l.demand.add(time.Now(), n)
	r := l.takeLocked(n)
	l.mu.Unlock()
	if r != nil {
		return r, nil
	}
	select {
	case l.leasing <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("quota: reserve %d credits: %w", n, context.Cause(ctx))
	}
	defer func() { <-l.leasing }()
	return l.leaseAndTake(ctx, n)
}

// takeLocked hands out n credits of the current block, or answers nil when
// it has not got them (or is too old to hand out).
func (l *CreditLedger) takeLocked(n int) *Reservation {
	b := l.current
	now := time.Now()
	if b == nil || b.free < n || now.Sub(b.leasedAt) >= blockMaxAge {
		return nil
	}
	r := b.take(n, now)
	if b.free == 0 {
		l.retireLocked() // emptied: it closes when its last reservation settles
	}
	return r
}

func (b *creditBlock) take(n int, now time.Time) *Reservation {
	b.free -= n
	b.out += n
	b.handed++
	b.lastUsed = now
	return &Reservation{block: b, id: b.id + "." + strconv.Itoa(b.handed), credits: n}
}

// retireLocked stops the current block handing out. It answers the block
// when it is to be closed now (nothing of it is out), else nil: it will be
// closed by its last settlement.
func (l *CreditLedger) retireLocked() *creditBlock {
	b := l.current
	if b == nil {
		return nil
	}
	l.current = nil
	b.retired = true
	if b.out > 0 || b.closing {
		return nil
	}
	b.closing = true
	return b
}

// Flush closes this process's block now rather than when it idles, if
// nothing of it is out (else its last settlement closes it): a process that
// stops sending gives back the credits it held at once, and what it spent
// reaches the ledger. Reserve leases a new block afterwards as usual.
func (l *CreditLedger) Flush(ctx context.Context) error {
	l.mu.Lock()
	idle := l.retireLocked()
	l.mu.Unlock()
	l.retryUnclosed(ctx)
	if idle == nil {
		return nil
	}
	return l.closeBlock(ctx, idle)
}

// leaseAndTake replaces the current block, which cannot serve n credits,
// by a new one and takes n of it. The caller holds l.leasing.
func (l *CreditLedger) leaseAndTake(ctx context.Context, n int) (*Reservation, error) {
	l.mu.Lock()
	if r := l.takeLocked(n); r != nil { // another caller leased a block meanwhile
		l.mu.Unlock()
		return r, nil
	}
	old := l.retireLocked()
	want := max(n, min(l.maxBlock, l.demand.recent(time.Now())))
	epoch := l.epoch
	l.mu.Unlock()
	// Closed blocks' rests come back before the lease asks for more. A
	// failed close is tried again later; the lease does not need it.
	l.retryUnclosed(ctx)
	if old != nil {
		_ = l.closeBlock(ctx, old)
	}
	b, err := l.lease(ctx, n, want)
	if err != nil {
		return nil, err
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	r := b.take(n, b.leasedAt)
	if epoch != l.epoch || b.free == 0 {
		// Exhausted was marked during the lease: this caller is served, as
		// a reservation just before the mark would have been, and nobody
		// else. An emptied block needs no timer either.
		b.retired = true
		return r, nil
	}
	l.current = b
	l.closeWhenIdle(b, blockIdleClose)
	return r, nil
}

// lease opens a block of up to want credits and at least n.
func (l *CreditLedger) lease(ctx context.Context, n, want int) (*creditBlock, error) {
	res, err := leaseScript.Run(ctx, l.rdb, ledgerKeys, want, n).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("quota: reserve %d credits: %w", n, err)
	}
	if len(res) != 3 {
		return nil, fmt.Errorf("quota: reserve %d credits: unexpected answer %v", n, res)
	}
	switch id, credits, available := res[0], res[1], res[2]; {
	case id == -1:
		return nil, fmt.Errorf("%w: %w", ErrInsufficientCredits, ErrNotSynced)
	case id == -2:
		return nil, fmt.Errorf("%w: the provider answered quota_exceeded; waiting for the next quota read", ErrInsufficientCredits)
	case id == 0:
		return nil, fmt.Errorf("%w: %d needed, %d available", ErrInsufficientCredits, n, max(0, available))
	default:
		now := time.Now()
		return &creditBlock{ledger: l, id: strconv.FormatInt(id, 10), free: int(credits), leasedAt: now, lastUsed: now}, nil
	}
}

// closeWhenIdle closes b once nobody took from it for blockIdleClose, or
// once it is blockMaxAge old, whichever comes first. A timer rather than a
// goroutine: nothing to stop when the ledger is dropped.
func (l *CreditLedger) closeWhenIdle(b *creditBlock, after time.Duration) {
	time.AfterFunc(after, func() {
		l.mu.Lock()
		if l.current != b {
			l.mu.Unlock()
			return // retired already: its last settlement closes it
		}
		now := time.Now()
		idleFor, age := now.Sub(b.lastUsed), now.Sub(b.leasedAt)
		if idleFor < blockIdleClose && age < blockMaxAge {
			l.mu.Unlock()
			l.closeWhenIdle(b, min(blockIdleClose-idleFor, blockMaxAge-age))
			return
		}
		idle := l.retireLocked()
		l.mu.Unlock()
		if idle != nil {
			ctx, cancel := context.WithTimeout(context.Background(), blockCloseTimeout)
			defer cancel()
			_ = l.closeBlock(ctx, idle) // tried again on its own when it fails
		}
	})
}

// closeBlock runs b's close script. When that fails b joins the unclosed
// blocks, tried again later, and the error is answered.
func (l *CreditLedger) closeBlock(ctx context.Context, b *creditBlock) error {
	err := l.runClose(ctx, b)
	if err != nil {
		l.mu.Lock()
		l.unclosed = append(l.unclosed, b)
		arm := !l.retrying
		l.retrying = true
		l.mu.Unlock()
		if arm {
			l.retryUnclosedLater(time.Now().Add(l.leakGrace))
		}
	}
	return err
}

// retryUnclosed tries again to close the blocks whose close failed. Each
// is taken off the list while it is tried, so no block is closed twice at
// once; one that fails again goes back on it.
func (l *CreditLedger) retryUnclosed(ctx context.Context) {
	l.mu.Lock()
	blocks := l.unclosed
	l.unclosed = nil
	l.mu.Unlock()
	var failed []*creditBlock
	for _, b := range blocks {
		if l.runClose(ctx, b) != nil {
			failed = append(failed, b)
		}
	}
	if len(failed) > 0 {
		l.mu.Lock()
		l.unclosed = append(l.unclosed, failed...)
		l.mu.Unlock()
	}
}

// retryUnclosedLater tries the unclosed blocks every blockCloseRetry until
// there are none or giveUp has passed. One runs at a time (l.retrying).
func (l *CreditLedger) retryUnclosedLater(giveUp time.Time) {
	time.AfterFunc(blockCloseRetry, func() {
		ctx, cancel := context.WithTimeout(context.Background(), blockCloseTimeout)
		defer cancel()
		l.retryUnclosed(ctx)
		l.mu.Lock()
		left := len(l.unclosed) > 0
		if left && !time.Now().Before(giveUp) {
			l.unclosed = nil // dropped by a sync by now, as leaked
			left = false
		}
		l.retrying = left
		l.mu.Unlock()
		if left {
			l.retryUnclosedLater(giveUp)
		}
	})
}

func (l *CreditLedger) runClose(ctx context.Context, b *creditBlock) error {
	if err := closeScript.Run(ctx, l.rdb, ledgerKeys, b.id, b.spent).Err(); err != nil {
		return fmt.Errorf("quota: close credit block %s (%d credits spent): %w", b.id, b.spent, err)
	}
	return nil
}

// settle ends reservation r: its credits are spent, or given back to its
// block (reused by this process's next Reserve, or released when the block
// closes). The settlement that leaves a retired block with nothing out
// closes it.
func (l *CreditLedger) settle(ctx context.Context, r *Reservation, spent bool) error {
	b := r.block
	l.mu.Lock()
	b.out -= r.credits
	if spent {
		b.spent += r.credits
	} else if !b.retired {
		b.free += r.credits
	}
	closeNow := b.retired && b.out == 0 && !b.closing
	if closeNow {
		b.closing = true
	}
	l.mu.Unlock()
	if closeNow {
		return l.closeBlock(ctx, b)
	}
	return nil
}

// Reservation is credits taken for one send that is in flight. It is used by
// the one goroutine making that send.
type Reservation struct {
	block   *creditBlock
	id      string
	credits int
	settled bool
}

// ID identifies the reservation (block.n, for logs).
func (r *Reservation) ID() string { return r.id }

// Credits is what the reservation holds.
func (r *Reservation) Credits() int { return r.credits }

// Commit records that the provider accepted the message: the credits are
// spent. Calling it again, or after Release, changes nothing. The spending
// reaches Redis when the block closes; an error is that close failing
// (it is tried again on its own, and the credits stay counted reserved
// meanwhile, never available).
func (r *Reservation) Commit(ctx context.Context) error {
	return r.end(ctx, true)
}

// Release gives the credits back: the provider definitely did not take the
// message (the request was refused or never sent). When it is not known
// whether the provider took it, Commit instead: an unknown outcome must not
// make credits reappear. Calling it again, or after Commit, changes nothing.
func (r *Reservation) Release(ctx context.Context) error {
	return r.end(ctx, false)
}

func (r *Reservation) end(ctx context.Context, spent bool) error {
	if r.settled {
		return nil
	}
	r.settled = true
	return r.block.ledger.settle(ctx, r, spent)
}
