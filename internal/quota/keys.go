package quota

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keys; see the package documentation for what each holds.
const (
	keyPrefix = "wac:"

	ledgerKey    = keyPrefix + "{credits}"
	openKey      = keyPrefix + "{credits}:open"
	committedKey = keyPrefix + "{credits}:committed"
	costKey      = keyPrefix + "{credits}:cost"

	quotaSnapshotKey = keyPrefix + "quota"
	syncLockKey      = keyPrefix + "quota:lock"
	syncNowLockKey   = keyPrefix + "quota:now-lock"

	intervalsKey = keyPrefix + "intervals"
	apiCallsKey  = keyPrefix + "apicalls"

	accountsKey      = keyPrefix + "accounts"        // HASH account → state JSON
	knownAccountsKey = keyPrefix + "accounts:known"  // SET of accounts campaigns use
	limitsKey        = keyPrefix + "accounts:limits" // HASH account → Limits JSON

	// defaultAccountKey stands for account "" (the provider picks its most
	// recently connected account), which is paced like any other.
	defaultAccountKey = "_default"
)

func accountKey(account string) string {
	if account == "" {
		return defaultAccountKey
	}
	return account
}

// phoneOfKey undoes accountKey.
func phoneOfKey(k string) string {
	if k == defaultAccountKey {
		return ""
	}
	return k
}

func paceKey(account string) string { return keyPrefix + "pace:" + accountKey(account) }
func planKey(account string) string { return keyPrefix + "plan:" + accountKey(account) }

// slowdownField is the field of intervalsKey holding the factor by which
// health slows the account; "#" never occurs in an account key.
func slowdownField(account string) string { return accountKey(account) + slowdownSuffix }

const slowdownSuffix = "#slow"

// healthKey and healthStateKey are an account's recent outcomes and its
// health verdict, which one script updates together: they share the
// account's hash tag.
func healthKey(account string) string { return keyPrefix + "health:{" + accountKey(account) + "}" }
func healthStateKey(account string) string {
	return keyPrefix + "health:{" + accountKey(account) + "}:state"
}

// dayCountKey counts what an account sent (or reserved) on a UTC day.
func dayCountKey(account, day string) string {
	return keyPrefix + "day:" + accountKey(account) + ":" + day
}

// redisRatePrefix is what redis_rate puts in front of every key it is given.
const redisRatePrefix = "rate:"

// rateKeyspace hands redis_rate a client that drops redis_rate's own "rate:"
// key prefix, so that its GCRA keys live under "wac:" with the rest of this
// package's keys: one pattern for operators' SCANs, ACLs and dashboards, and
// no collision with another user of redis_rate on the same server.
type rateKeyspace struct {
	redis.UniversalClient
}

func (r rateKeyspace) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return r.UniversalClient.Eval(ctx, script, withoutRatePrefix(keys), args...)
}

func (r rateKeyspace) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return r.UniversalClient.EvalSha(ctx, sha1, withoutRatePrefix(keys), args...)
}

func (r rateKeyspace) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return r.UniversalClient.EvalRO(ctx, script, withoutRatePrefix(keys), args...)
}

func (r rateKeyspace) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return r.UniversalClient.EvalShaRO(ctx, sha1, withoutRatePrefix(keys), args...)
}

func (r rateKeyspace) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return r.UniversalClient.Del(ctx, withoutRatePrefix(keys)...)
}

func withoutRatePrefix(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.TrimPrefix(k, redisRatePrefix)
	}
	return out
}

// redisNow is the Redis server's clock. Every time this package stores is on
// that one clock, so that processes on machines whose clocks disagree still
// agree on what happened before what.
func redisNow(ctx context.Context, rdb redis.UniversalClient) (time.Time, error) {
	t, err := rdb.Time(ctx).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("quota: read the Redis clock: %w", err)
	}
	return t, nil
}

// luaNowMillis is a Lua snippet that sets now_ms to the Redis clock in
// milliseconds, as a string of digits: numbers that Redis turns into strings
// itself may come out in exponent notation. Scripts that write after reading
// TIME call redis.replicate_commands() first, which Redis before 5 requires
// (and later versions ignore).
const luaNowMillis = `
redis.replicate_commands()
local t = redis.call('TIME')
local now_ms = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
`
