package quota

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
type CreditLedger struct {
	rdb       redis.UniversalClient
	leakGrace time.Duration
	clockSkew time.Duration
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

// NewCreditLedger returns the ledger kept in rdb.
func NewCreditLedger(rdb redis.UniversalClient, opts ...LedgerOption) *CreditLedger {
	l := &CreditLedger{rdb: rdb, leakGrace: DefaultLeakGrace, clockSkew: DefaultClockSkew}
	for _, o := range opts {
		o(l)
	}
	return l
}

// ledgerKeys are the keys every ledger script is given, in this order.
var ledgerKeys = []string{ledgerKey, openKey, costKey, committedKey}

// reserveScript takes ARGV[1] credits if the ledger holds them. Answers
// {id, available after} on success, {0, available} when too few are
// available, {-1, 0} when never synced, {-2, 0} when exhausted.
var reserveScript = redis.NewScript(`
local n = tonumber(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'synced_at', 'remaining', 'spent', 'reserved', 'exhausted_at')
if not f[1] then return {-1, 0} end
if f[5] then return {-2, 0} end
local available = (tonumber(f[2]) or 0) - (tonumber(f[3]) or 0) - (tonumber(f[4]) or 0)
if available < n then return {0, available} end
` + luaNowMillis + `
local id = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[2], now_ms, id)
redis.call('HSET', KEYS[3], id, n)
redis.call('HINCRBY', KEYS[1], 'reserved', n)
return {id, available - n}
`)

// commitScript turns reservation ARGV[1] (of ARGV[2] credits) into spent
// credits. A reservation a sync dropped as leaked is counted as spent all
// the same: the provider took the message, and the read that dropped it may
// have started before that. Answers 1 committed, 0 already committed,
// 2 committed after having been dropped.
var commitScript = redis.NewScript(luaNowMillis + `
local id = ARGV[1]
if redis.call('ZREM', KEYS[2], id) == 1 then
  local cost = tonumber(redis.call('HGET', KEYS[3], id)) or tonumber(ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'reserved', -cost)
  redis.call('HINCRBY', KEYS[1], 'spent', cost)
  redis.call('ZADD', KEYS[4], now_ms, id)
  return 1
end
if redis.call('ZSCORE', KEYS[4], id) then return 0 end
redis.call('HSET', KEYS[3], id, ARGV[2])
redis.call('HINCRBY', KEYS[1], 'spent', ARGV[2])
redis.call('ZADD', KEYS[4], now_ms, id)
return 2
`)

// releaseScript gives reservation ARGV[1] back if it is still open.
// Answers 1 released, 0 not open (committed, released or dropped).
var releaseScript = redis.NewScript(`
local id = ARGV[1]
if redis.call('ZREM', KEYS[2], id) == 0 then return 0 end
local cost = tonumber(redis.call('HGET', KEYS[3], id)) or 0
redis.call('HDEL', KEYS[3], id)
redis.call('HINCRBY', KEYS[1], 'reserved', -cost)
return 1
`)

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

// Reserve atomically takes n credits (1, or 2 for text with an attachment)
// from what is available. It never takes more than the ledger holds,
// whatever the number of concurrent callers and processes. When the credits
// are not there it answers an error wrapping ErrInsufficientCredits (and
// ErrNotSynced when the quota has never been read).
//
// Every Reservation must end in Commit or Release; one that does not (its
// worker crashed) stays reserved until a sync a grace period later.
func (l *CreditLedger) Reserve(ctx context.Context, n int) (*Reservation, error) {
	if n < 1 {
		return nil, fmt.Errorf("quota: reserve %d credits: a message costs at least 1", n)
	}
	res, err := reserveScript.Run(ctx, l.rdb, ledgerKeys, n).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("quota: reserve %d credits: %w", n, err)
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("quota: reserve %d credits: unexpected answer %v", n, res)
	}
	switch id, available := res[0], res[1]; {
	case id == -1:
		return nil, fmt.Errorf("%w: %w", ErrInsufficientCredits, ErrNotSynced)
	case id == -2:
		return nil, fmt.Errorf("%w: the provider answered quota_exceeded; waiting for the next quota read", ErrInsufficientCredits)
	case id == 0:
		return nil, fmt.Errorf("%w: %d needed, %d available", ErrInsufficientCredits, n, max(0, available))
	default:
		return &Reservation{ledger: l, id: strconv.FormatInt(id, 10), credits: n}, nil
	}
}

// Reservation is credits taken for one send that is in flight. It is used by
// the one goroutine making that send.
type Reservation struct {
	ledger  *CreditLedger
	id      string
	credits int
	settled bool
}

// ID identifies the reservation in the ledger (for logs).
func (r *Reservation) ID() string { return r.id }

// Credits is what the reservation holds.
func (r *Reservation) Credits() int { return r.credits }

// Commit records that the provider accepted the message: the credits are
// spent. Calling it again, or after Release, changes nothing.
func (r *Reservation) Commit(ctx context.Context) error {
	if r.settled {
		return nil
	}
	if err := commitScript.Run(ctx, r.ledger.rdb, ledgerKeys, r.id, r.credits).Err(); err != nil {
		return fmt.Errorf("quota: commit reservation %s of %d credits: %w", r.id, r.credits, err)
	}
	r.settled = true
	return nil
}

// Release gives the credits back: the provider definitely did not take the
// message (the request was refused or never sent). When it is not known
// whether the provider took it, Commit instead: an unknown outcome must not
// make credits reappear. Calling it again, or after Commit, changes nothing.
func (r *Reservation) Release(ctx context.Context) error {
	if r.settled {
		return nil
	}
	if err := releaseScript.Run(ctx, r.ledger.rdb, ledgerKeys, r.id).Err(); err != nil {
		return fmt.Errorf("quota: release reservation %s of %d credits: %w", r.id, r.credits, err)
	}
	r.settled = true
	return nil
}

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
// is available until a quota read that started after now is synced.
func (l *CreditLedger) Exhausted(ctx context.Context) error {
	if err := exhaustedScript.Run(ctx, l.rdb, ledgerKeys).Err(); err != nil {
		return fmt.Errorf("quota: mark ledger exhausted: %w", err)
	}
	return nil
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
