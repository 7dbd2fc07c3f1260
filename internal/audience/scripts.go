package audience

import "github.com/redis/go-redis/v9"

// The Lua scripts of the audience store, each with its KEYS/ARGV contract.
// Every key is under the {aud} hash tag (keys.go).

// suppressScript adds or replaces a suppression entry.
//
// KEYS: suppressed hash, order zset. ARGV: address, entry (JSON).
// Answers 1 when the address was not suppressed before, else 0 (its entry
// is replaced: the latest reason is the one a person reads).
var suppressScript = redis.NewScript(`
local added = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return added
`)

// unsuppressScript lifts a suppression.
//
// KEYS: suppressed hash, order zset. ARGV: address.
// Answers 1 when the address was suppressed, else 0.
var unsuppressScript = redis.NewScript(`
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return removed
`)

// admitScript is the send path's one look at the audience before a
// message: is the address suppressed, and, for a marketing message under a
// frequency cap, is there room in the cap, in which case this recipient's
// slot is reserved (a retry of the same recipient finds its slot again).
//
// KEYS: suppressed hash, the address's cap zset.
// ARGV: address, cap member ("<campaign>/<seq>"), now (unix ms), the cap's
// messages (0: no cap for this message), the cap's period (ms).
//
// Answers {"suppressed", entry JSON}, {"capped", unix ms when the oldest
// message in the period leaves it}, or {"ok"}.
var admitScript = redis.NewScript(`
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if entry then return {'suppressed', entry} end
local limit = tonumber(ARGV[4])
if limit <= 0 then return {'ok'} end
local now, period = tonumber(ARGV[3]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - period)
if redis.call('ZSCORE', KEYS[2], ARGV[2]) then return {'ok'} end
if redis.call('ZCARD', KEYS[2]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {'capped', string.format('%d', tonumber(oldest[2]) + period)}
end
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('PEXPIRE', KEYS[2], period)
return {'ok'}
`)
