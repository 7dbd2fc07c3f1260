package campaign

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The lifecycle of DESIGN.md: draft → scheduled → running → (paused ⇄
// running) → completed | cancelled. Every transition is one Lua script that
// checks the current status, so two operators (or an operator and a worker)
// can never move a campaign through an illegal step.
//
// Starting work is always the same: a start task (TypeStart) that enqueues
// every queued recipient in the campaign's current round. A scheduled
// campaign gets one at send_at; a resumed one gets one at once, in a new
// round, so the tasks of the paused round find themselves outdated. Start
// tasks carry a version: rescheduling or resuming bumps it, and a start task
// of an older version does nothing.

// TransitionError is a lifecycle action the campaign's status does not
// allow; the API answers it 409, naming the status.
type TransitionError struct {
	Action string
	Status Status
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s a campaign that is %s", e.Action, e.Status)
}

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

type transition struct {
	action    string
	from      []Status
	to        Status
	reason    string
	bumpRound bool
	bumpStart bool
}

func (s *Store) transition(ctx context.Context, id string, t transition, now time.Time) (round, version int64, err error) {
	allowed := ","
	for _, st := range t.from {
		allowed += string(st) + ","
	}
	res, err := transitionScript.Run(ctx, s.rdb, []string{campaignKey(id)},
		allowed, string(t.to), t.reason, UnixMilli(now), boolArg(t.bumpRound), boolArg(t.bumpStart)).StringSlice()
	if err != nil {
		return 0, 0, fmt.Errorf("%s campaign %s: %w", t.action, id, err)
	}
	if res[0] != "1" {
		if res[1] == "" {
			return 0, 0, ErrNotFound
		}
		return 0, 0, &TransitionError{Action: t.action, Status: Status(res[1])}
	}
	round, _ = strconv.ParseInt(res[2], 10, 64)
	version, _ = strconv.ParseInt(res[3], 10, 64)
	return round, version, nil
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Pause pauses a running or scheduled campaign, saying why: no recipient is
// claimed once it returns; sends already handed to the provider finish.
func (s *Store) Pause(ctx context.Context, id, reason string, now time.Time) error {
	if reason == "" {
		reason = "paused by an operator"
	}
	_, _, err := s.transition(ctx, id, transition{action: "pause", from: []Status{StatusRunning, StatusScheduled}, to: StatusPaused, reason: reason}, now)
	return err
}

// Resume continues a paused campaign: in a new round, so that the paused
// round's tasks do nothing, with a start task that enqueues the queued
// recipients on their accounts' plans as they are now. A campaign paused
// before its send_at goes back to scheduled. Nobody is sent twice: settled
// recipients are not queued, and claims guard the rest.
func (s *Store) Resume(ctx context.Context, queue *Enqueuer, id string, now time.Time) (*Campaign, error) {
	c, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	to, startAt := StatusRunning, now
	if c.SendAt != nil && c.SendAt.After(now) && c.StartedAt == nil {
		to, startAt = StatusScheduled, *c.SendAt
	}
	_, version, err := s.transition(ctx, id, transition{action: "resume", from: []Status{StatusPaused}, to: to, bumpRound: true, bumpStart: true}, now)
	if err != nil {
		return nil, err
	}
	if err := queue.enqueueStart(ctx, id, startAt, version); err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

// Reschedule moves a scheduled campaign's send_at; the start task of the old
// time, when it fires, finds itself outdated.
func (s *Store) Reschedule(ctx context.Context, queue *Enqueuer, id string, sendAt, now time.Time) (*Campaign, error) {
	if !sendAt.After(now) {
		return nil, FieldError("send_at", "send_at "+sendAt.Format(time.RFC3339)+" is not in the future")
	}
	_, version, err := s.transition(ctx, id, transition{action: "reschedule", from: []Status{StatusScheduled}, to: StatusScheduled, bumpStart: true}, now)
	if err != nil {
		return nil, err
	}
	if err := s.rdb.HSet(ctx, campaignKey(id), fSendAt, UnixMilli(sendAt)).Err(); err != nil {
		return nil, fmt.Errorf("reschedule campaign %s: %w", id, err)
	}
	if err := queue.enqueueStart(ctx, id, sendAt, version); err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

// Cancel ends a campaign: no recipient is claimed after it returns, and every
// recipient still queued is marked skipped with the reason. Messages already
// handed to the provider are not recalled. Cancelling a cancelled campaign
// finishes the sweep of an earlier Cancel that was interrupted.
func (s *Store) Cancel(ctx context.Context, id, reason string, now time.Time) (bool, error) {
	if reason == "" {
		reason = "cancelled"
	}
	_, _, err := s.transition(ctx, id, transition{action: "cancel",
		from: []Status{StatusDraft, StatusScheduled, StatusRunning, StatusPaused}, to: StatusCancelled, reason: reason}, now)
	var te *TransitionError
	changed := err == nil
	if err != nil && !(asTransition(err, &te) && te.Status == StatusCancelled) {
		return false, err
	}
	total, err := s.rdb.HGet(ctx, campaignKey(id), fTotal).Int64()
	if err != nil {
		return changed, fmt.Errorf("cancel campaign %s: %w", id, err)
	}
	rec := record{State: StateSkipped, Reason: reason, At: UnixMilli(now)}.encode()
	for first := int64(0); first < total; first += bucketSize {
		last := min(first+bucketSize, total)
		err := skipQueuedScript.Run(ctx, s.rdb, []string{campaignKey(id), stateKey(id, first), historyKey(id, first)}, first, last, rec, UnixMilli(now), reason).Err()
		if err != nil {
			return changed, fmt.Errorf("skip the queued recipients of cancelled campaign %s: %w", id, err)
		}
	}
	return changed, nil
}

func asTransition(err error, te **TransitionError) bool {
	t, ok := err.(*TransitionError)
	if ok {
		*te = t
	}
	return ok
}

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

// RetryFailed puts every failed recipient back in the queue and enqueues
// them again, leaving everyone else alone. A completed campaign runs again
// until they are settled; a paused one keeps them queued for its resume.
func (s *Store) RetryFailed(ctx context.Context, queue *Enqueuer, id string, now time.Time) (int64, error) {
	c, err := s.Get(ctx, id)
	if err != nil {
		return 0, err
	}
	switch c.Status {
	case StatusRunning, StatusPaused, StatusCompleted:
	default:
		return 0, &TransitionError{Action: "retry the failed recipients of", Status: c.Status}
	}
	if c.Status == StatusCompleted && c.Counts.Failed > 0 {
		if _, _, err := s.transition(ctx, id, transition{action: "retry the failed recipients of", from: []Status{StatusCompleted}, to: StatusRunning}, now); err != nil {
			return 0, err
		}
	}
	var n int64
	for first := int64(0); first < c.Counts.Total; first += bucketSize {
		last := min(first+bucketSize, c.Counts.Total)
		got, err := requeueFailedScript.Run(ctx, s.rdb,
			[]string{campaignKey(id), stateKey(id, first), historyKey(id, first), retryListKey(id)},
			first, last, UnixMilli(now)).Int64()
		if err != nil {
			return n, fmt.Errorf("requeue the failed recipients of campaign %s: %w", id, err)
		}
		n += got
	}
	if n > 0 {
		if err := queue.enqueueRetry(ctx, id, now); err != nil {
			return n, err
		}
	}
	return n, nil
}

// startScript starts a campaign's sending. KEYS: campaign. ARGV: now (unix
// ms), the start task's version. Answers {"started" (a scheduled campaign
// whose time has come) | "running" (resumed, or a replayed start), round},
// or {"outdated" | "early" | status, round} when the task must do nothing.
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

// start runs a start task of the given version.
func (s *Store) start(ctx context.Context, id string, version int64, now time.Time) (outcome string, round int64, err error) {
	res, err := startScript.Run(ctx, s.rdb, []string{campaignKey(id)}, UnixMilli(now), version).StringSlice()
	if err != nil {
		return "", 0, fmt.Errorf("start campaign %s: %w", id, err)
	}
	round, _ = strconv.ParseInt(res[1], 10, 64)
	return res[0], round, nil
}
