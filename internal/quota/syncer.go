package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/sender"
)

// Defaults of the quota syncer.
const (
	// DefaultQuotaSyncInterval is QUOTA_SYNC_INTERVAL's default.
	DefaultQuotaSyncInterval = time.Minute

	// DefaultSyncNowGap is the least gap between two on-demand reads across
	// processes: a burst of quota_exceeded answers is one read, not a burst.
	// It is also how soon a failed periodic read is tried again.
	DefaultSyncNowGap = 5 * time.Second
)

// QuotaSyncer keeps the credit ledger in step with the provider: it reads
// the provider's quota every interval, and on demand (SyncNow, after a
// quota_exceeded answer). Locks in Redis make the reads of all processes
// together at most one per interval, plus on-demand reads at most one per
// gap. It also stores the provider's API-call budget (APICalls) for the
// status-poll budget.
type QuotaSyncer struct {
	rdb      redis.UniversalClient
	provider sender.Provider
	ledger   *CreditLedger
	interval time.Duration
	nowGap   time.Duration
	log      *zap.Logger
	token    string // this syncer's value in the locks it takes
}

// SyncerOption configures a QuotaSyncer.
type SyncerOption func(*QuotaSyncer)

// WithSyncNowGap sets the least gap between on-demand reads across processes
// (default DefaultSyncNowGap).
func WithSyncNowGap(d time.Duration) SyncerOption {
	return func(s *QuotaSyncer) {
		if d > 0 {
			s.nowGap = d
		}
	}
}

// NewQuotaSyncer returns a syncer of ledger from p, reading every interval
// (DefaultQuotaSyncInterval if not positive).
func NewQuotaSyncer(rdb redis.UniversalClient, p sender.Provider, l *CreditLedger, interval time.Duration, log *zap.Logger, opts ...SyncerOption) *QuotaSyncer {
	if interval <= 0 {
		interval = DefaultQuotaSyncInterval
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &QuotaSyncer{
		rdb:      rdb,
		provider: p,
		ledger:   l,
		interval: interval,
		nowGap:   DefaultSyncNowGap,
		log:      log,
		token:    randomToken(),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Run syncs at once, then keeps syncing until ctx is done. Every process may
// run one; together they read at most once per interval. Failures are logged
// and leave the ledger as it was.
//
// A provider that meters no credits (sender.Capabilities.MeteredCredits
// false: a gateway) has no quota to read: Run returns at once, and the
// ledger stays unsynced, which nobody asks of such a provider.
func (s *QuotaSyncer) Run(ctx context.Context) {
	if !s.provider.Capabilities().MeteredCredits {
		s.log.Info("the provider meters no credits: no quota reads")
		return
	}
	// Checking more often than the interval keeps the gap between two reads
	// close to the interval whatever the phase of each process's ticker, and
	// lets a failed read be tried again after the gap (see syncIfDue); the
	// lock keeps the reads at most one per interval. A check is one SET NX.
	tick := time.NewTicker(max(min(s.interval/4, s.nowGap), time.Millisecond))
	defer tick.Stop()
	for {
		s.syncIfDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// syncIfDue reads the quota if no process did in the last interval.
func (s *QuotaSyncer) syncIfDue(ctx context.Context) {
	taken, err := s.rdb.SetNX(ctx, syncLockKey, s.token, s.interval).Result()
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("quota sync: lock", zap.Error(err))
		}
		return
	}
	if !taken {
		s.log.Debug("quota sync: skipped, another process read the quota recently")
		return
	}
	if err := s.sync(ctx); err != nil {
		if ctx.Err() != nil {
			// Shutting down in the middle of the read: hand the read to
			// the other processes now, not an interval from now (a worker
			// stopped during its first read would otherwise leave a fresh
			// ledger unsynced for a whole interval).
			s.releaseLock(syncLockKey)
			return
		}
		s.log.Warn("quota sync failed; ledger unchanged", zap.Error(err))
		// Try again after the on-demand gap rather than a whole interval:
		// a ledger that was never synced lets nothing be sent.
		if err := shortenLockScript.Run(ctx, s.rdb, []string{syncLockKey}, s.token, s.nowGap.Milliseconds()).Err(); err != nil {
			s.log.Warn("quota sync: shorten lock after failure", zap.Error(err))
		}
	}
}

// shortenLockScript sets lock KEYS[1]'s expiry to ARGV[2] ms if it is still
// held by ARGV[1].
var shortenLockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// SyncNow reads the quota now (after a quota_exceeded answer, for example)
// unless some process read on demand less than the gap ago, in which case it
// does nothing and answers nil.
func (s *QuotaSyncer) SyncNow(ctx context.Context) error {
	if !s.provider.Capabilities().MeteredCredits {
		return nil // nothing to read (see Run)
	}
	taken, err := s.rdb.SetNX(ctx, syncNowLockKey, s.token, s.nowGap).Result()
	if err != nil {
		return fmt.Errorf("quota: sync now: lock: %w", err)
	}
	if !taken {
		s.log.Debug("quota sync now: skipped, another process read the quota moments ago")
		return nil
	}
	if err := s.sync(ctx); err != nil {
		if ctx.Err() != nil {
			s.releaseLock(syncNowLockKey) // abandoned, not failed: let another process read
		}
		return fmt.Errorf("quota: sync now: %w", err)
	}
	// The periodic read is not due for another interval.
	if err := s.rdb.Set(ctx, syncLockKey, s.token, s.interval).Err(); err != nil {
		s.log.Warn("quota sync now: postpone the periodic read", zap.Error(err))
	}
	return nil
}

// AwaitFirstSync is for a ledger that has never been synced (a fresh
// Redis): it asks for a read now (SyncNow), then waits up to patience for
// the ledger to show one, this process's or another's already under way.
// Answers whether the ledger is synced. Without the wait, every caller but
// the one that took the read would find the ledger still unsynced and back
// off, and the first sends of a campaign would start late.
func (s *QuotaSyncer) AwaitFirstSync(ctx context.Context, patience time.Duration) (bool, error) {
	// The read itself outlives a caller that gives up: others wait on it.
	if err := s.SyncNow(context.WithoutCancel(ctx)); err != nil {
		return false, err
	}
	deadline := time.Now().Add(patience)
	for {
		b, err := s.ledger.Balance(ctx)
		if err != nil {
			return false, err
		}
		if b.Synced {
			return true, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		if err := sleep(ctx, min(left, firstSyncPoll)); err != nil {
			return false, err
		}
	}
}

// firstSyncPoll is how often AwaitFirstSync looks at the ledger: a quota
// read is one HTTP call, done in tens of milliseconds.
const firstSyncPoll = 20 * time.Millisecond

// releaseLock drops lock key if this syncer still holds it.
func (s *QuotaSyncer) releaseLock(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := releaseLockScript.Run(ctx, s.rdb, []string{key}, s.token).Err(); err != nil {
		s.log.Warn("quota sync: release lock", zap.String("lock", key), zap.Error(err))
	}
}

// releaseLockScript deletes lock KEYS[1] if it is still held by ARGV[1].
var releaseLockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// sync reads the provider's quota and applies it to the ledger and the
// stored snapshot.
func (s *QuotaSyncer) sync(ctx context.Context) error {
	readStarted, err := s.ledger.Now(ctx)
	if err != nil {
		return err
	}
	q, err := s.provider.Quota(ctx)
	if err != nil {
		return fmt.Errorf("read the provider's quota: %w", err)
	}
	if err := s.ledger.Sync(ctx, q.CreditsRemaining(), readStarted); err != nil {
		return err
	}
	if err := s.storeSnapshot(ctx, q, readStarted); err != nil {
		return err
	}
	s.log.Info("quota synced",
		zap.Int64("credits_remaining", q.CreditsRemaining()),
		zap.Int64("api_calls_remaining", q.APICallsRemaining()),
		zap.Time("read_started", readStarted))
	return nil
}

// storeSnapshotScript writes the provider's quota answer KEYS[1] unless a
// read that started later is already there (two reads that raced).
var storeSnapshotScript = redis.NewScript(`
local stored = tonumber(redis.call('HGET', KEYS[1], 'read_at'))
if stored and stored > tonumber(ARGV[2]) then return 0 end
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
`)

// Fields of the quota snapshot (wac:quota), with read_at first: the script
// compares it.
const (
	fieldReadAt              = "read_at"
	fieldMessagingTotal      = "messaging_total"
	fieldMessagingUsed       = "messaging_used"
	fieldMessagingPeriodEnd  = "messaging_period_end"
	fieldNonRecurringBalance = "non_recurring_balance"
	fieldAPICallsTotal       = "api_calls_total"
	fieldAPICallsUsed        = "api_calls_used"
	fieldAPICallsPeriodEnd   = "api_calls_period_end"
)

func (s *QuotaSyncer) storeSnapshot(ctx context.Context, q sender.Quota, readStarted time.Time) error {
	args := []any{
		fieldReadAt, readStarted.UnixMilli(),
		fieldMessagingTotal, q.MessagingTotal,
		fieldMessagingUsed, q.MessagingUsed,
		fieldMessagingPeriodEnd, unixMilliOrZero(q.MessagingPeriodEnd),
		fieldNonRecurringBalance, q.NonRecurringBalance,
		fieldAPICallsTotal, q.APICallsTotal,
		fieldAPICallsUsed, q.APICallsUsed,
		fieldAPICallsPeriodEnd, unixMilliOrZero(q.APICallsPeriodEnd),
	}
	if err := storeSnapshotScript.Run(ctx, s.rdb, []string{quotaSnapshotKey}, args...).Err(); err != nil {
		return fmt.Errorf("store the provider's quota: %w", err)
	}
	return nil
}

// APICalls is the provider's API-call budget as last read: total and used
// this period, and when the read started. It answers ErrNotSynced before the
// first read.
func (s *QuotaSyncer) APICalls(ctx context.Context) (total, used int64, syncedAt time.Time, err error) {
	q, at, err := s.LastQuota(ctx)
	if err != nil {
		return 0, 0, time.Time{}, err
	}
	return q.APICallsTotal, q.APICallsUsed, at, nil
}

// LastQuota is the provider's last quota answer and when its read started.
// It answers ErrNotSynced before the first read.
func (s *QuotaSyncer) LastQuota(ctx context.Context) (sender.Quota, time.Time, error) {
	return ReadLastQuota(ctx, s.rdb)
}

// ReadLastQuota is LastQuota for processes that do not sync (the API).
func ReadLastQuota(ctx context.Context, rdb redis.UniversalClient) (sender.Quota, time.Time, error) {
	fields := []string{
		fieldReadAt, fieldMessagingTotal, fieldMessagingUsed, fieldMessagingPeriodEnd,
		fieldNonRecurringBalance, fieldAPICallsTotal, fieldAPICallsUsed, fieldAPICallsPeriodEnd,
	}
	vals, err := rdb.HMGet(ctx, quotaSnapshotKey, fields...).Result()
	if err != nil {
		return sender.Quota{}, time.Time{}, fmt.Errorf("quota: read the stored provider quota: %w", err)
	}
	if vals[0] == nil {
		return sender.Quota{}, time.Time{}, ErrNotSynced
	}
	n := make([]int64, len(vals))
	for i, v := range vals {
		str, _ := v.(string)
		if n[i], err = strconv.ParseInt(str, 10, 64); err != nil {
			return sender.Quota{}, time.Time{}, fmt.Errorf("quota: read the stored provider quota: %s is %q: %w", fields[i], str, err)
		}
	}
	q := sender.Quota{
		MessagingTotal:      n[1],
		MessagingUsed:       n[2],
		MessagingPeriodEnd:  timeOrZero(n[3]),
		NonRecurringBalance: n[4],
		APICallsTotal:       n[5],
		APICallsUsed:        n[6],
		APICallsPeriodEnd:   timeOrZero(n[7]),
	}
	return q, time.UnixMilli(n[0]), nil
}

func unixMilliOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func timeOrZero(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// randomToken identifies a lock's holder.
func randomToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
