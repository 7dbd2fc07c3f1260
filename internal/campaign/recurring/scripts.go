package recurring

import "github.com/redis/go-redis/v9"

// The Lua scripts of recurring campaigns, each with its KEYS and ARGV
// contract; store.go runs them and turns their answers into typed values.

// stopRecurringScript marks a definition stopped. KEYS: definition. ARGV:
// now (unix ms). Answers 0 when it does not exist.
var stopRecurringScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'status') == 'active' then
  redis.call('HSET', KEYS[1], 'status', 'stopped', 'stopped_at', ARGV[1])
end
return 1
`)

// claimTickScript lets exactly one scheduler start a tick: it moves
// last_tick forward to the tick, never back, and only while the definition
// is active. KEYS: definition. ARGV: tick (unix s). Answers {1, the previous
// last_tick or ""} to the one that claimed it, {0} to the others.
var claimTickScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'status', 'last_tick', 'created_at')
if v[1] ~= 'active' then return {0} end
local last = tonumber(v[2]) or math.floor(tonumber(v[3]) / 1000)
if tonumber(ARGV[1]) <= last then return {0} end
redis.call('HSET', KEYS[1], 'last_tick', ARGV[1])
return {1, v[2] or ''}
`)

// unclaimTickScript gives a tick back when its run could not be enqueued,
// unless a later tick was claimed meanwhile. KEYS: definition. ARGV: tick,
// the last_tick before it ("" none).
var unclaimTickScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'last_tick') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'last_tick') else redis.call('HSET', KEYS[1], 'last_tick', ARGV[2]) end
return 1
`)

// claimRunScript records that a run task is importing a tick, unless the
// tick has a record already: the guard that makes a replayed run task
// import nothing. KEYS: definition, runs, ticks. ARGV: tick, the importing
// record, now (unix ms), how many records are kept. Answers {outcome,
// existing record}: claimed; recorded (a record exists: done, failed, or
// importing with a live lease); lapsed (importing, but its lease ran out);
// stopped; gone (no definition); expired (older than every kept record):
// the runClaim values.
var claimRunScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone', ''} end
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if rec then
  local r = cjson.decode(rec)
  if r.state == 'importing' and tonumber(r.lease) < tonumber(ARGV[3]) then return {'lapsed', rec} end
  return {'recorded', rec}
end
if redis.call('HGET', KEYS[1], 'status') ~= 'active' then return {'stopped', ''} end
local kept = tonumber(ARGV[4])
if redis.call('ZCARD', KEYS[3]) >= kept then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if tonumber(ARGV[1]) < tonumber(oldest[2]) then return {'expired', ''} end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[1])
while redis.call('ZCARD', KEYS[3]) > kept do
  local popped = redis.call('ZPOPMIN', KEYS[3])
  redis.call('HDEL', KEYS[2], popped[1])
end
return {'claimed', ''}
`)

// updateRunScript replaces a run record if the attempt named still holds it.
// KEYS: definition, runs, ticks. ARGV: tick, attempt, new record ("": drop
// the record, giving the tick back to a retry), count a campaign (1/0).
// Answers 1 if it did.
var updateRunScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if not cur or cjson.decode(cur).attempt ~= ARGV[2] then return 0 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[1], 'runs', 1) end
return 1
`)

// renewRunScript extends an importing attempt's lease. KEYS: runs. ARGV:
// tick, attempt, new lease (unix ms).
var renewRunScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local r = cjson.decode(cur)
if r.attempt ~= ARGV[2] or r.state ~= 'importing' then return 0 end
r.lease = ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(r))
return 1
`)

// runClaim is claimRunScript's answer.
type runClaim string

const (
	runClaimed  runClaim = "claimed"  // this attempt imports the tick
	runRecorded runClaim = "recorded" // a record exists: created, failed, or importing with a live lease
	runLapsed   runClaim = "lapsed"   // importing, but its attempt stopped renewing the lease
	runStopped  runClaim = "stopped"  // the definition was stopped before the run began
	runGone     runClaim = "gone"     // no such definition
	runExpired  runClaim = "expired"  // older than every kept record: whether it ran cannot be told
)
