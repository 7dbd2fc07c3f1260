package campaign

import "github.com/redis/go-redis/v9"

// The Lua scripts below are the only code that changes a recipient's state.
// Each one moves the campaign's counters and appends to the recipient's
// history in the same atomic step, which is what keeps
// queued+sending+...+unknown equal to total under any concurrency and the
// history true to the counters; and each one ends by checking whether the
// campaign is now complete.
//
// A state record is JSON: {"s": state, "r": reason, "a": account,
// "u": message uid, "t": unix ms of the change}; while the recipient is
// "sending" it also names the attempt that claimed it ("o") and when that
// claim lapses ("l", unix ms). A history is a string of entries (history.go).

// luaLib is shared by the scripts: completion, history, counters.
const luaLib = `
local function maybe_complete(ck, now)
  local v = redis.call('HMGET', ck, 'status', 'importing', 'queued', 'sending')
  if v[1] == 'running' and v[2] == '0' and tonumber(v[3] or '0') == 0 and tonumber(v[4] or '0') == 0 then
    redis.call('HSET', ck, 'status', 'completed', 'finished_at', now)
    redis.call('HDEL', ck, 'reason')
    return 1
  end
  return 0
end

-- hist appends an entry to a recipient's history: a state code, the time as
-- ms since the campaign was created, and an optional detail (";" separates
-- entries, so it cannot appear in one).
local function hist(ck, hk, seq, code, at, detail)
  local created = tonumber(redis.call('HGET', ck, 'created_at') or '0')
  local e = code .. string.format('%d', tonumber(at) - created)
  if detail and detail ~= '' then
    e = e .. ':' .. (string.gsub(string.sub(detail, 1, 300), ';', ','))
  end
  local cur = redis.call('HGET', hk, seq)
  if cur then e = cur .. ';' .. e end
  redis.call('HSET', hk, seq, e)
end

local codes = {queued = 'q', sending = 'g', sent = 's', delivered = 'd', read = 'r', failed = 'f', skipped = 'k', unknown = 'u'}
`

// claimScript is the worker's claim on a recipient before it calls the
// provider: the "SET NX of an attempt record" of DESIGN.md.
//
// KEYS: campaign, state bucket, rows bucket, history bucket.
// ARGV: seq, now (unix ms), account, reason recorded when an earlier attempt
// died mid-call, attempt id, claim lease (ms), the task's round.
//
// The lease tells a live attempt from a dead one. It outlasts the provider
// call (the client's timeout) but ends before asynq hands a dead worker's task
// to another worker, so a claim found with its lease running belongs to an
// attempt still in flight (a duplicate task running at the same time: leave
// it alone), and one found lapsed belongs to an attempt that died during the
// call.
//
// Answers {"claimed", row}, {"settled", state} (an earlier attempt finished),
// {"inflight"} (another attempt holds the claim now), {"unknown", row} (an
// earlier attempt claimed it and died without a result: it may have been
// sent, so it is marked unknown, never resent), {"stale"} (the task belongs to an earlier
// round), {"status", status} (the campaign is not running), or {"gone"} (no
// such campaign or row).
var claimScript = redis.NewScript(luaLib + `
local ck, sk, rk, hk = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local seq, now = ARGV[1], ARGV[2]
local v = redis.call('HMGET', ck, 'status', 'round')
local status = v[1]
if not status then return {'gone'} end
if (v[2] or '0') ~= ARGV[7] then return {'stale'} end
if status ~= 'running' then return {'status', status} end
local cur = redis.call('HGET', sk, seq)
if cur then
  local rec = cjson.decode(cur)
  if rec.s == 'sending' then
    if tonumber(rec.l or '0') > tonumber(now) then return {'inflight'} end
    redis.call('HSET', sk, seq, cjson.encode({s = 'unknown', r = ARGV[4], a = rec.a, t = now}))
    redis.call('HINCRBY', ck, 'sending', -1)
    redis.call('HINCRBY', ck, 'unknown', 1)
    hist(ck, hk, seq, 'u', now, ARGV[4])
    maybe_complete(ck, now)
    return {'unknown', redis.call('HGET', rk, seq) or ''}
  end
  return {'settled', rec.s}
end
local row = redis.call('HGET', rk, seq)
if not row then return {'gone'} end
local lease = string.format('%d', tonumber(now) + tonumber(ARGV[6]))
redis.call('HSET', sk, seq, cjson.encode({s = 'sending', a = ARGV[3], t = now, o = ARGV[5], l = lease}))
redis.call('HINCRBY', ck, 'queued', -1)
redis.call('HINCRBY', ck, 'sending', 1)
hist(ck, hk, seq, 'g', now, ARGV[3])
if redis.call('HEXISTS', ck, 'started_at') == 0 then
  redis.call('HSET', ck, 'started_at', now)
end
return {'claimed', row}
`)

// settleScript moves a recipient from the state the caller saw to a new one.
// Moving to "queued" releases a claim (the provider call provably did not
// happen) by deleting the record; the history keeps why. A claim released
// after the campaign was cancelled ends skipped, with the cancel's reason.
//
// KEYS: campaign, state bucket, history bucket.
// ARGV: seq, expected state, new state, new record (JSON), credits spent,
// now (unix ms), attempt id (when the expected state is "sending": only the
// attempt that holds the claim may settle it), history detail.
//
// Answers 1, or 0 when the recipient is no longer in the expected state
// (someone else settled it; nothing changed).
var settleScript = redis.NewScript(luaLib + `
local ck, sk, hk = KEYS[1], KEYS[2], KEYS[3]
local seq, from, to, rec, credits, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local cur = redis.call('HGET', sk, seq)
local curState = 'queued'
if cur then
  local old = cjson.decode(cur)
  curState = old.s
  if curState == 'sending' and ARGV[7] ~= '' and old.o ~= ARGV[7] then return 0 end
end
if curState ~= from then return 0 end
if to == 'queued' and from == 'sending' then
  local v = redis.call('HMGET', ck, 'status', 'reason')
  if v[1] == 'cancelled' then
    -- Cancel's sweep has passed this recipient while it was claimed; the
    -- released claim must not leave it queued with no task to send it.
    hist(ck, hk, seq, 'q', now, ARGV[8])
    to = 'skipped'
    rec = cjson.encode({s = 'skipped', r = v[2] or 'cancelled', t = now})
    ARGV[8] = v[2] or 'cancelled'
  end
end
if to == 'queued' then
  redis.call('HDEL', sk, seq)
else
  redis.call('HSET', sk, seq, rec)
end
redis.call('HINCRBY', ck, from, -1)
redis.call('HINCRBY', ck, to, 1)
hist(ck, hk, seq, codes[to], now, ARGV[8])
if credits ~= 0 then redis.call('HINCRBY', ck, 'credits_spent', credits) end
if to == 'sent' then
  local reason = redis.call('HGET', ck, 'reason')
  if reason and string.sub(reason, 1, 12) == 'waiting for ' then
    redis.call('HDEL', ck, 'reason') -- it is moving again
  end
end
maybe_complete(ck, now)
return 1
`)

// statusScript applies what the provider reports about a sent message: each
// report not yet in the history is appended with the provider's word and
// time, and the recipient moves forward (never back) to the state the words
// map to; a report of failure after sending counts as undelivered.
//
// KEYS: campaign, state bucket, history bucket.
// ARGV: seq, now (unix ms), then triples of (provider word, unix ms of the
// report, our state it maps to or "").
//
// Answers the recipient's state afterwards ("" when it has no record).
var statusScript = redis.NewScript(luaLib + `
local ck, sk, hk = KEYS[1], KEYS[2], KEYS[3]
local seq, now = ARGV[1], ARGV[2]
local cur = redis.call('HGET', sk, seq)
if not cur then return '' end
local rec = cjson.decode(cur)
local rank = {sent = 1, delivered = 2, read = 3, failed = 4}
if not rank[rec.s] then return rec.s end
local seen = redis.call('HGET', hk, seq) or ''
local created = tonumber(redis.call('HGET', ck, 'created_at') or '0')
local state = rec.s
for i = 3, #ARGV, 3 do
  local word, at, to = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = 'P' .. string.format('%d', tonumber(at) - created) .. ':' .. word
  if not string.find(';' .. seen .. ';', ';' .. key .. ';', 1, true) then
    hist(ck, hk, seq, 'P', at, word)
    seen = redis.call('HGET', hk, seq)
  end
  if to ~= '' and rank[to] and rank[to] > rank[state] and state ~= 'failed' then
    state = to
  end
end
if state ~= rec.s then
  redis.call('HINCRBY', ck, rec.s, -1)
  redis.call('HINCRBY', ck, state, 1)
  if state == 'failed' then redis.call('HINCRBY', ck, 'undelivered', 1) end
  rec.s = state
  rec.t = now
  if state == 'failed' then rec.r = 'the provider reports the message failed' end
  redis.call('HSET', sk, seq, cjson.encode(rec))
end
return state
`)

// finishImportScript records that the upload has been read to its end, which
// may complete a campaign whose recipients were all sent meanwhile.
//
// KEYS: campaign. ARGV: now (unix ms).
var finishImportScript = redis.NewScript(luaLib + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'importing', '0')
return maybe_complete(KEYS[1], ARGV[1])
`)

// skipQueuedScript marks every still-queued recipient of one bucket skipped.
// KEYS: campaign, state bucket, history bucket. ARGV: first seq, seq after
// the last, record (JSON), now, reason. Answers how many it skipped.
var skipQueuedScript = redis.NewScript(luaLib + `
local n = 0
for seq = tonumber(ARGV[1]), tonumber(ARGV[2]) - 1 do
  if redis.call('HSETNX', KEYS[2], seq, ARGV[3]) == 1 then
    hist(KEYS[1], KEYS[3], seq, 'k', ARGV[4], ARGV[5])
    n = n + 1
  end
end
if n > 0 then
  redis.call('HINCRBY', KEYS[1], 'queued', -n)
  redis.call('HINCRBY', KEYS[1], 'skipped', n)
end
return n
`)
