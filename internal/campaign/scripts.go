package campaign

import "github.com/redis/go-redis/v9"

// Every Lua script of the campaign store, each with its KEYS and ARGV
// contract above it; the Store methods of store*.go run them and turn their
// answers into typed values. Store is the only holder of the Redis client.
//
// A recipient's state and the campaign's state counters change only here:
// claimScript, settleScript, statusScript,
// skipQueuedScript, requeueFailedScript and resolveUnconfirmedScript move a
// recipient and its counters; addRowOnceScript adds one (queued), as
// Store.addRows does for an import's batches. Each moves the counters and
// appends to the recipient's history in the same atomic step, which is
// what keeps queued+sending+...+unknown equal to total under any
// concurrency and the history true to the counters; and each that settles
// ends by checking whether the campaign is now complete.
//
// A state record is JSON: {"s": state, "r": reason, "a": account,
// "u": message uid, "t": unix ms of the change}. While the recipient is
// "sending" it also names the attempt that claimed it ("o"), when that
// claim lapses ("l", unix ms) and when it was taken, right before the
// request was written ("d", unix ms: the dispatch mark).
// An "unconfirmed" record keeps "o" and "d": the send that may have gone
// out. A history is a string of entries (history.go).

// luaLib is shared by the scripts: completion, history, counters.
const luaLib = `
-- maybe_complete completes a running campaign with nothing left to send.
local function maybe_complete(ck, now)
  local v = redis.call('HMGET', ck, 'status', 'importing', 'queued', 'sending', 'unconfirmed')
  if v[1] == 'running' and v[2] == '0' and tonumber(v[3] or '0') == 0 and tonumber(v[4] or '0') == 0
     and tonumber(v[5] or '0') == 0 then
    redis.call('HSET', ck, 'status', 'completed', 'finished_at', now)
    redis.call('HDEL', ck, 'reason')
    return 1
  end
  return 0
end

-- A history entry is a state code, the time as ms since the campaign was
-- created, and an optional detail (";" separates entries, so it cannot
-- appear in one). created, when the caller knows it (it never changes),
-- spares a read of the campaign.
local function created_of(ck, created)
  return created or tonumber(redis.call('HGET', ck, 'created_at') or '0')
end

local function entry(code, at, detail, created)
  local e = code .. string.format('%d', tonumber(at) - created)
  if detail and detail ~= '' then
    e = e .. ':' .. (string.gsub(string.sub(detail, 1, 300), ';', ','))
  end
  return e
end

-- append_hist appends entries (joined by ";") to a recipient's history.
local function append_hist(hk, seq, e)
  local cur = redis.call('HGET', hk, seq)
  if cur then e = cur .. ';' .. e end
  redis.call('HSET', hk, seq, e)
end

-- hist appends one entry to a recipient's history.
local function hist(ck, hk, seq, code, at, detail, created)
  append_hist(hk, seq, entry(code, at, detail, created_of(ck, created)))
end

-- claimed_entry is the "sending" entry of a claim, which the claim leaves
-- for whoever settles it to write together with the entry that follows
-- (its record has w = "1"): a send then reads and writes its history once,
-- not twice. It carries the claim's time and account. nil: none pending.
local function claimed_entry(rec, created)
  if not rec or rec.w ~= '1' then return nil end
  return entry('g', rec.d or rec.t, rec.a, created)
end

-- with_claimed puts a pending claim entry before entry e.
local function with_claimed(rec, created, e)
  local g = claimed_entry(rec, created)
  if g then return g .. ';' .. e end
  return e
end

local codes = {queued = 'q', sending = 'g', unconfirmed = 'c', sent = 's', delivered = 'd', read = 'r',
  failed = 'f', skipped = 'k', unknown = 'u'}
`

// claimScript is the worker's claim on a recipient, taken right before its
// request is written to the provider, after every wait (render, credits,
// pacing, the API-call ceiling): the "SET NX of an attempt record" of
// DESIGN.md and the dispatch mark in one step. From the moment it answers
// "claimed" a lost answer means "maybe sent"; before it, nothing of this
// attempt can have reached the provider. There is no state in between, so
// a worker that dies leaves either a queued recipient or a dispatched one.
//
// KEYS: campaign, state bucket, history bucket.
// ARGV: seq, now (unix ms), account, attempt id, claim lease (ms), the
// task's round, reason recorded when a dispatched attempt is found dead,
// mode ("dispatch" to claim; "inspect" only settles a dead attempt's claim
// and answers {"free"} where it would have claimed), the campaign's
// created_at ("": read it), "1" when the campaign is known to have
// started_at (it is set once and never changes).
//
// The lease tells a live attempt from a dead one. It outlasts the provider
// call (the client's timeout) but ends before asynq hands a dead worker's task
// to another worker, so a claim found with its lease running belongs to an
// attempt still in flight (a duplicate task running at the same time: leave
// it alone). A claim found lapsed belongs to an attempt that died after its
// request may have left: the recipient becomes unconfirmed, for
// reconciliation, and is not sent again here. (A lapsed claim without a
// dispatch mark, written before claims and marks were one step, never
// reached the provider and is simply claimed again.)
//
// A claim also clears the campaign's "waiting for ..." reason: a send is
// going out, so the campaign is moving again. (The settle that follows
// need not read the reason: it reads the campaign only when its send was
// the last in flight, to see whether the campaign is complete.)
//
// Answers {"claimed"}, {"free"} (inspect: nothing held it), {"settled",
// state} (an earlier attempt finished, or reconciliation has it),
// {"inflight", lease end}, {"unconfirmed", dispatched at, account},
// {"stale"} (the task belongs to an earlier round), {"status", status}
// (the campaign is not running), or {"gone"} (no such campaign).
var claimScript = redis.NewScript(luaLib + `
local ck, sk, hk = KEYS[1], KEYS[2], KEYS[3]
local seq, now = ARGV[1], ARGV[2]
local v = redis.call('HMGET', ck, 'status', 'round', 'reason')
local status = v[1]
if not status then return {'gone'} end
if (v[2] or '0') ~= ARGV[6] then return {'stale'} end
if status ~= 'running' then return {'status', status} end
local dispatch = ARGV[8] == 'dispatch'
local claim
if dispatch then
  local lease = string.format('%d', tonumber(now) + tonumber(ARGV[5]))
  claim = cjson.encode({s = 'sending', a = ARGV[3], t = now, o = ARGV[4], l = lease, d = now, w = '1'})
end

-- claimed finishes a claim written over no record (a queued recipient) or
-- over a lapsed undispatched one (retaken: already counted sending).
local function claimed(retaken)
  if not retaken then
    redis.call('HINCRBY', ck, 'queued', -1)
    redis.call('HINCRBY', ck, 'sending', 1)
  end
  if ARGV[10] ~= '1' then redis.call('HSETNX', ck, 'started_at', now) end
  if v[3] and string.sub(v[3], 1, 12) == 'waiting for ' then
    redis.call('HDEL', ck, 'reason') -- a send is going out: it is moving again
  end
  return {'claimed'}
end

-- A queued recipient has no record: the common case claims it in one
-- command, and only a recipient with a record is read.
if dispatch and redis.call('HSETNX', sk, seq, claim) == 1 then return claimed(false) end
local cur = redis.call('HGET', sk, seq)
if not cur then return {'free'} end -- inspecting: nothing holds it (dispatching, HSETNX claimed it)
local rec = cjson.decode(cur)
if rec.s ~= 'sending' then return {'settled', rec.s} end
if tonumber(rec.l or '0') > tonumber(now) then return {'inflight', rec.l or '0'} end
if rec.d and rec.d ~= '' then
  local created = created_of(ck, tonumber(ARGV[9]))
  local e = with_claimed(rec, created, entry('c', now, ARGV[7], created))
  rec.s, rec.r, rec.t, rec.l, rec.w = 'unconfirmed', ARGV[7], now, nil, nil
  redis.call('HSET', sk, seq, cjson.encode(rec))
  redis.call('HINCRBY', ck, 'sending', -1)
  redis.call('HINCRBY', ck, 'unconfirmed', 1)
  append_hist(hk, seq, e)
  return {'unconfirmed', rec.d, rec.a or ''}
end
if not dispatch then return {'free'} end
redis.call('HSET', sk, seq, claim)
return claimed(true)
`)

// settleScript moves a recipient from the state the caller saw to a new one.
// Moving to "queued" deletes the record (a released claim, or an unconfirmed
// send to be sent again); the history keeps why. A recipient moved back to
// the queue after the campaign was cancelled ends skipped, with the cancel's
// reason.
//
// KEYS: campaign, state bucket, history bucket, the campaign's poll set.
// ARGV: seq, expected state, new state, new record (JSON), credits spent,
// now (unix ms), attempt id ("" when any holder may settle), history detail,
// when the first status poll is due (unix ms; "" none), the campaign's
// created_at ("": read it), "1" when the claim settled never had its
// request written.
//
// A settled claim's "sending" entry, left by claimScript, is written to
// the history with the entry of the move (claimed_entry), unless its
// request was never written (a recipient found opted out as it was
// claimed).
//
// With an attempt id, only that attempt's record may be settled; an attempt
// expecting "sending" also settles its own send after it was found
// unconfirmed meanwhile: its answer, when it finally came, beats
// reconciliation.
//
// A recipient moved to "sent" with a first poll due is entered in the poll
// set in the same step, for the poll sweeper to enqueue: a worker dying
// right after this script cannot leave a sent message unfollowed.
//
// Answers 1, or 0 when the recipient is no longer in the expected state
// (someone else settled it; nothing changed).
var settleScript = redis.NewScript(luaLib + `
local ck, sk, hk = KEYS[1], KEYS[2], KEYS[3]
local seq, from, to, rec, credits, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local cur = redis.call('HGET', sk, seq)
local curState = 'queued'
local old
if cur then
  old = cjson.decode(cur)
  curState = old.s
  if ARGV[7] ~= '' and (curState == 'sending' or curState == 'unconfirmed') then
    if old.o ~= ARGV[7] then return 0 end
    if curState == 'unconfirmed' and from == 'sending' then from = 'unconfirmed' end
  end
end
if curState ~= from then return 0 end
local created = created_of(ck, tonumber(ARGV[10] or ''))
local entries = {}
if ARGV[11] ~= '1' then entries = {claimed_entry(old, created)} end
if to == 'queued' and (from == 'sending' or from == 'unconfirmed') then
  local v = redis.call('HMGET', ck, 'status', 'reason')
  if v[1] == 'cancelled' then
    -- Cancel's sweep has passed this recipient while it was claimed; the
    -- released claim must not leave it queued with no task to send it.
    table.insert(entries, entry('q', now, ARGV[8], created))
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
local left = redis.call('HINCRBY', ck, from, -1)
redis.call('HINCRBY', ck, to, 1)
table.insert(entries, entry(codes[to], now, ARGV[8], created))
append_hist(hk, seq, table.concat(entries, ';'))
if credits ~= 0 then redis.call('HINCRBY', ck, 'credits_spent', credits) end
if to == 'sent' and (ARGV[9] or '') ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[9], seq)
end
-- A campaign with other sends in flight cannot be complete: the last of
-- them to settle looks.
if from ~= 'sending' or left == 0 then maybe_complete(ck, now) end
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

// replyScript records that a recipient wrote back within REPLY_WINDOW of
// its message, and whether the reply was an opt-out keyword. A recipient
// counts once in replied and once in opted_out however many times it
// writes (a retried webhook, a second reply), so the funnel's rates stay
// rates of recipients; its history gets each the first time ("y" replied,
// "o" opted out). The state does not move: a reply is not a send state.
//
// KEYS: campaign, state bucket, history bucket.
// ARGV: seq, now (unix ms), opted out ("1"/"0").
//
// Answers 1 when something was recorded, 0 when it was already (or the
// recipient has no record: it was never sent to).
var replyScript = redis.NewScript(luaLib + `
local ck, sk, hk = KEYS[1], KEYS[2], KEYS[3]
local seq, now = ARGV[1], ARGV[2]
local cur = redis.call('HGET', sk, seq)
if not cur then return 0 end
local rec = cjson.decode(cur)
local changed = 0
if not rec.rp then
  rec.rp = now
  redis.call('HINCRBY', ck, 'replied', 1)
  hist(ck, hk, seq, 'y', now, '')
  changed = 1
end
if ARGV[3] == '1' and not rec.oo then
  rec.oo = now
  redis.call('HINCRBY', ck, 'opted_out', 1)
  hist(ck, hk, seq, 'o', now, '')
  changed = 1
end
if changed == 1 then redis.call('HSET', sk, seq, cjson.encode(rec)) end
return changed
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

// Lifecycle scripts: transitions, retry-failed, the start of a round.

// transitionScript moves a campaign between statuses. KEYS: campaign.
// ARGV: allowed statuses (comma separated, wrapped in commas), new status,
// reason ("" clears it), now (unix ms), bump the round (1/0), bump the start
// version (1/0). Answers {1, status, round, version} or {0, current status}.
var transitionScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'status', 'round', 'start_version')
if not v[1] then return {'0', ''} end
if not string.find(ARGV[1], ',' .. v[1] .. ',', 1, true) then return {'0', v[1]} end
local round, version = tonumber(v[2] or '0'), tonumber(v[3] or '0')
if ARGV[5] == '1' then round = round + 1 end
if ARGV[6] == '1' then version = version + 1 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'round', round, 'start_version', version)
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], 'reason') else redis.call('HSET', KEYS[1], 'reason', ARGV[3]) end
if ARGV[2] == 'cancelled' then redis.call('HSET', KEYS[1], 'finished_at', ARGV[4]) end
if ARGV[2] == 'running' then redis.call('HDEL', KEYS[1], 'finished_at') end
return {'1', ARGV[2], tostring(round), tostring(version)}
`)

// requeueFailedScript puts the failed recipients of one bucket back in the
// queue and lists them for the retry task. KEYS: campaign, state bucket,
// history bucket, retry list. ARGV: first seq, seq after the last, now.
// Answers how many it requeued.
var requeueFailedScript = redis.NewScript(luaLib + `
local ck, sk, hk, lk = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local n, undelivered = 0, 0
for seq = tonumber(ARGV[1]), tonumber(ARGV[2]) - 1 do
  local cur = redis.call('HGET', sk, seq)
  if cur then
    local rec = cjson.decode(cur)
    if rec.s == 'failed' then
      if rec.u and rec.u ~= '' then undelivered = undelivered + 1 end
      redis.call('HDEL', sk, seq)
      hist(ck, hk, seq, 'q', ARGV[3], 'retry of failed recipients')
      redis.call('RPUSH', lk, seq)
      n = n + 1
    end
  end
end
if n > 0 then
  redis.call('HINCRBY', ck, 'failed', -n)
  redis.call('HINCRBY', ck, 'queued', n)
end
if undelivered > 0 then redis.call('HINCRBY', ck, 'undelivered', -undelivered) end
return n
`)

// startScript starts a campaign's sending. KEYS: campaign. ARGV: now (unix
// ms), the start task's version. Answers {a startOutcome, round}: started
// (a scheduled campaign whose time has come) or running (resumed, or a
// replayed start) enqueue the round; outdated, early, gone or the status
// the campaign is in (paused, cancelled...) do nothing.
var startScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'status', 'send_at', 'round', 'start_version')
if not v[1] then return {'gone', '0'} end
local round = v[3] or '0'
if (v[4] or '0') ~= ARGV[2] then return {'outdated', round} end
if v[1] == 'running' then return {'running', round} end
if v[1] ~= 'scheduled' then return {v[1], round} end
if tonumber(v[2] or '0') > tonumber(ARGV[1]) then return {'early', round} end
redis.call('HSET', KEYS[1], 'status', 'running')
if redis.call('HEXISTS', KEYS[1], 'started_at') == 0 then redis.call('HSET', KEYS[1], 'started_at', ARGV[1]) end
return {'started', round}
`)

// startOutcome is startScript's answer.
type startOutcome string

const (
	startStarted  startOutcome = "started"  // a scheduled campaign whose time has come: now running
	startRunning  startOutcome = "running"  // already running (resumed, or a replayed start)
	startOutdated startOutcome = "outdated" // a start task of an earlier version
	startEarly    startOutcome = "early"    // send_at moved later
)

// enqueues says whether a start task of this outcome enqueues its round;
// any other (outdated, early, gone, a paused or cancelled status) does
// nothing.
func (o startOutcome) enqueues() bool { return o == startStarted || o == startRunning }

// addRowOnceScript adds recipient seq to a campaign that keeps taking
// recipients (a sequence step) if it is not there yet, counting it queued.
// Answers 1 if it added it. KEYS: campaign, rows bucket. ARGV: seq, row, credits.
var addRowOnceScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'total', 1)
redis.call('HINCRBY', KEYS[1], 'queued', 1)
redis.call('HINCRBY', KEYS[1], 'credits_estimated', ARGV[3])
return 1
`)

// createOnceScript writes a new campaign's hash unless it exists. Answers
// 1 if it wrote it. KEYS: campaign. ARGV: field, value, field, value, ….
var createOnceScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`)

// Campaign-hash scripts of the send path: the plan's end, a waiting reason.

// notePlanEndScript keeps the latest planned due time. KEYS: campaign.
// ARGV: unix ms.
var notePlanEndScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'plan_end') or '0')
if tonumber(ARGV[1]) > cur then redis.call('HSET', KEYS[1], 'plan_end', ARGV[1]) end
return 0
`)

// setReasonScript shows why a running campaign is not progressing, without
// overwriting a reason already there (a pause says more than a wait).
// KEYS: campaign. ARGV: reason.
var setReasonScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'status', 'reason')
if (v[1] == 'running' or v[1] == 'scheduled') and (not v[2] or v[2] == '') then
  redis.call('HSET', KEYS[1], 'reason', ARGV[1])
end
return 0
`)

// resolveUnconfirmedScript makes an unconfirmed (or unknown) recipient
// sent, with the uid a sent event named, if the event fits: same account,
// soon after the send was dispatched. KEYS: campaign, state bucket, history
// bucket. ARGV: seq, uid, event time (unix ms), now, the event's account
// phone, window (ms). Answers 1 when it resolved the recipient.
var resolveUnconfirmedScript = redis.NewScript(luaLib + `
local ck, sk, hk = KEYS[1], KEYS[2], KEYS[3]
local seq, uid, at, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local cur = redis.call('HGET', sk, seq)
if not cur then return 0 end
local rec = cjson.decode(cur)
if rec.s ~= 'unknown' and rec.s ~= 'unconfirmed' then return 0 end
if rec.a and rec.a ~= '' and ARGV[5] ~= '' and rec.a ~= ARGV[5] then return 0 end
local t = tonumber(rec.d or rec.t or '0')
if tonumber(at) < t - 60000 or tonumber(at) > t + tonumber(ARGV[6]) then return 0 end
redis.call('HSET', sk, seq, cjson.encode({s = 'sent', a = rec.a, u = uid, t = now}))
redis.call('HINCRBY', ck, rec.s, -1)
redis.call('HINCRBY', ck, 'sent', 1)
hist(ck, hk, seq, 's', at, uid)
hist(ck, hk, seq, 'P', at, 'Sent')
maybe_complete(ck, now)
return 1
`)

// Scripts of drafts: edits while a campaign is a draft, and deletion.

// editDraftScript writes fields of a campaign hash only while the campaign
// is a draft, so an edit racing a start cannot change a campaign that has
// begun sending. KEYS: campaign. ARGV: field, value, field, value...
// Answers "draft" when written, else the status it found ("" when gone).
var editDraftScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return '' end
if st ~= 'draft' then return st end
if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return st
`)

// deleteScript deletes every key of a campaign when its status allows it.
// KEYS: the campaign hash, then every other key of the campaign
// (campaignKeys). ARGV: the statuses that allow it (comma separated,
// wrapped in commas; "" any), the total the keys were listed for.
// Answers {"deleted"}, {"gone"}, {"status", status}, or {"changed"} when
// the campaign gained recipients since the keys were listed.
var deleteScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'status', 'total')
if not v[1] then return {'gone'} end
if ARGV[1] ~= '' and not string.find(ARGV[1], ',' .. v[1] .. ',', 1, true) then return {'status', v[1]} end
if (v[2] or '0') ~= ARGV[2] then return {'changed'} end
for i = 1, #KEYS, 500 do
  redis.call('DEL', unpack(KEYS, i, math.min(i + 499, #KEYS)))
end
return {'deleted'}
`)

// newTestScript numbers a campaign's next test send and lists it. KEYS:
// campaign, its tests list. ARGV: the campaign id. Answers the test send's
// number, or 0 when the campaign is gone.
var newTestScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'tests_made', 1)
redis.call('RPUSH', KEYS[2], ARGV[1] .. '.t' .. n)
return n
`)
