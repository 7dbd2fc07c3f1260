package quota

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrInsufficientCredits is Reserve's answer when the ledger does not hold the
// credits now. The campaign waits for quota; it is not a failed send.
var ErrInsufficientCredits = errors.New("quota: not enough message credits")

// ErrNotSynced means the provider's quota has not been read yet. Reserve
// wraps it together with ErrInsufficientCredits.
var ErrNotSynced = errors.New("quota: not synced with the provider yet")

// Defaults of the credit ledger.
const (
	// DefaultLeakGrace is how long a reservation may stay open before a sync
	// treats it as leaked by a crashed worker. It is well above the longest a
	// send can take (the provider client times out after 30 s), so a live
	// worker's reservation is never dropped.
	DefaultLeakGrace = 5 * time.Minute

	// DefaultClockSkew widens "committed before the quota read started": a
	// commit is trusted to be reflected in a read only if it happened this
	// much before the read started. It covers the gap between two Redis
	// clocks after a failover; the price is counting a few recent sends twice
	// until the next sync.
	DefaultClockSkew = 2 * time.Second
)

// CreditLedger is the workspace's message credits as every worker sees them:
// what GET /quotas said was remaining, minus what was spent since, minus
// what is reserved by sends in flight. It is safe for concurrent use, and
// any number of ledgers (in any number of processes) on one Redis are one
// ledger.
//
// Spending is conservative: the ledger never lets the campaigns spend more
// than it holds, and when it cannot tell whether the provider's number
// already reflects a send, it counts the send as not reflected (spent twice
// until the next sync) rather than as reflected.
//
// Credits are leased from Redis in blocks (creditblock.go): Reserve hands
// them out from this process's block, so that a fast campaign runs two
// scripts per block rather than two per message.
type CreditLedger struct {
	rdb       redis.UniversalClient
	leakGrace time.Duration
	clockSkew time.Duration
	maxBlock  int

	mu      sync.Mutex
	current *creditBlock  // the block Reserve hands out from; nil: none
	demand  demandMeter   // credits this process asked for lately: the next block's size
	epoch   int           // Exhausted calls so far: a block leased across one hands nothing out
	leasing chan struct{} // one block lease at a time: the others wait for it, not for Redis

	unclosed []*creditBlock // blocks whose close failed, to be tried again
	retrying bool           // a timer tries them again
}

// LedgerOption configures a CreditLedger.
type LedgerOption func(*CreditLedger)

// WithLeakGrace sets how old an open reservation must be, relative to the
// start of a quota read, for that sync to drop it as leaked (default
// DefaultLeakGrace).
func WithLeakGrace(d time.Duration) LedgerOption {
	return func(l *CreditLedger) {
		if d > 0 {
			l.leakGrace = d
		}
	}
}

// WithClockSkew sets the margin of DefaultClockSkew (0 trusts the clocks
// exactly).
func WithClockSkew(d time.Duration) LedgerOption {
	return func(l *CreditLedger) {
		if d >= 0 {
			l.clockSkew = d
		}
	}
}

// WithMaxCreditBlock sets the most credits this process leases at once
// (default DefaultMaxCreditBlock); 1 leases every reservation on its own,
// as the ledger did before blocks.
func WithMaxCreditBlock(n int) LedgerOption {
	return func(l *CreditLedger) {
		if n > 0 {
			l.maxBlock = n
		}
	}
}

// NewCreditLedger returns the ledger kept in rdb. Each process should make
// one and share it among its goroutines: its credit block is its own.
func NewCreditLedger(rdb redis.UniversalClient, opts ...LedgerOption) *CreditLedger {
	l := &CreditLedger{
		rdb:       rdb,
		leakGrace: DefaultLeakGrace,
		clockSkew: DefaultClockSkew,
		maxBlock:  DefaultMaxCreditBlock,
		demand:    demandMeter{window: creditDemandWindow},
		leasing:   make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(l)
	}
	return l
}

// ledgerKeys are the keys every ledger script is given, in this order.
var ledgerKeys = []string{ledgerKey, openKey, costKey, committedKey}

// syncScript sets the ledger from a quota read: ARGV[1] remaining, read
// started at ARGV[2] (ms); open reservations older than ARGV[3] (ms) are
// dropped as leaked, commits older than ARGV[4] (ms) are reflected in the
// read. A read older than the one the ledger has is ignored (two syncs that
// raced). Answers 1 applied, 0 ignored.
var syncScript = redis.NewScript(`
local read = tonumber(ARGV[2])
local synced = tonumber(redis.call('HGET', KEYS[1], 'synced_at'))
if synced and synced > read then return 0 end

local function drop_before(zkey, cutoff)
  local ids = redis.call('ZRANGEBYSCORE', zkey, '-inf', '(' .. cutoff)
  for _, id in ipairs(ids) do redis.call('HDEL', KEYS[3], id) end
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', '(' .. cutoff)
end
local function total(zkey)
  local sum = 0
  for _, id in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do
    sum = sum + (tonumber(redis.call('HGET', KEYS[3], id)) or 0)
  end
  return string.format('%d', sum)
end

drop_before(KEYS[2], ARGV[3])
drop_before(KEYS[4], ARGV[4])
redis.call('HSET', KEYS[1], 'remaining', ARGV[1], 'synced_at', ARGV[2],
  'reserved', total(KEYS[2]), 'spent', total(KEYS[4]))
local exhausted = tonumber(redis.call('HGET', KEYS[1], 'exhausted_at'))
if exhausted and exhausted <= read then redis.call('HDEL', KEYS[1], 'exhausted_at') end
return 1
`)

// exhaustedScript marks the ledger exhausted as of now (Redis clock).
var exhaustedScript = redis.NewScript(luaNowMillis + `
redis.call('HSET', KEYS[1], 'exhausted_at', now_ms)
return 1
`)

// Sync sets the ledger from the provider's number of remaining credits
// (sender.Quota.CreditsRemaining()), read by a request that started at
// readStarted. readStarted should be on the Redis clock (see Now): it is
// compared with the times at which reservations were taken and committed.
//
//   - Credits committed before readStarted (less the clock-skew margin) are
//     in the provider's number and stop counting as spent; later ones keep
//     counting (maybe twice, until the next sync: never an overspend).
//   - Open reservations stay reserved, except those taken before
//     readStarted minus the leak grace: a worker that held credits that long
//     crashed, and the provider's number reflects whatever became of them.
//   - A read that started before the one the ledger already has is ignored.
//   - Exhausted is lifted only by a read that started after it.
func (l *CreditLedger) Sync(ctx context.Context, remaining int64, readStarted time.Time) error {
	read := readStarted.UnixMilli()
	args := []any{
		max(0, remaining),
		read,
		read - l.leakGrace.Milliseconds(),
		read - l.clockSkew.Milliseconds(),
	}
	if err := syncScript.Run(ctx, l.rdb, ledgerKeys, args...).Err(); err != nil {
		return fmt.Errorf("quota: sync ledger to %d credits read at %s: %w", remaining, readStarted.Format(time.RFC3339Nano), err)
	}
	return nil
}

// Exhausted records that the provider answered 403 quota_exceeded: nothing
// is available until a quota read that started after now is synced. This
// process stops handing out its block's credits at once; another process
// stops at its next lease, within a block's age at most, and meets the
// provider's 403 meanwhile, as a send racing the mark always could.
func (l *CreditLedger) Exhausted(ctx context.Context) error {
	l.mu.Lock()
	l.epoch++
	idle := l.retireLocked()
	l.mu.Unlock()
	var err error
	if err = exhaustedScript.Run(ctx, l.rdb, ledgerKeys).Err(); err != nil {
		err = fmt.Errorf("quota: mark ledger exhausted: %w", err)
	}
	if idle != nil {
		err = errors.Join(err, l.closeBlock(ctx, idle))
	}
	return err
}

// Now is the Redis server's clock, the clock of the ledger's timestamps; a
// quota read's start time for Sync should come from here.
func (l *CreditLedger) Now(ctx context.Context) (time.Time, error) {
	return redisNow(ctx, l.rdb)
}

// Balance is the state of the ledger.
type Balance struct {
	Available int64     // what Reserve may take now
	Reserved  int64     // held by sends in flight
	Spent     int64     // committed since the last read (as far as the read may not reflect it)
	Remaining int64     // what the provider said at the last read
	SyncedAt  time.Time // when that read started (Redis clock)
	Synced    bool      // false until the first read
	Exhausted bool      // the provider answered quota_exceeded since the last read
}

// Balance reads the ledger (one atomic read).
func (l *CreditLedger) Balance(ctx context.Context) (Balance, error) {
	vals, err := l.rdb.HMGet(ctx, ledgerKey, "remaining", "spent", "reserved", "synced_at", "exhausted_at").Result()
	if err != nil {
		return Balance{}, fmt.Errorf("quota: read ledger: %w", err)
	}
	ints := make([]int64, len(vals))
	for i, v := range vals {
		if v == nil {
			continue
		}
		s, _ := v.(string)
		if ints[i], err = strconv.ParseInt(s, 10, 64); err != nil {
			return Balance{}, fmt.Errorf("quota: read ledger: field %d is %q: %w", i, s, err)
		}
	}
	b := Balance{
		Remaining: ints[0],
		Spent:     ints[1],
		Reserved:  ints[2],
		Synced:    vals[3] != nil,
		Exhausted: vals[4] != nil,
	}
	if b.Synced {
		b.SyncedAt = time.UnixMilli(ints[3])
	}
	if b.Synced && !b.Exhausted {
		b.Available = max(0, b.Remaining-b.Spent-b.Reserved)
	}
	return b, nil
}
