package quota

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultSendInterval is the least gap between two sends of one account
// (SEND_INTERVAL): the provider spaces an account's messages ~2 s apart
// anyway and queues the excess, charging credits at queue time.
const DefaultSendInterval = 2 * time.Second

// Pacer spaces the sends of each WhatsApp account: at most one per interval
// per account, across all workers. Take enforces it at send time (GCRA with a
// burst of one, in Redis); Plan books slots ahead at enqueue time, so that
// tasks become due at the rate they may be sent; WentOutLate moves the next
// slot when a send left the process well after its slot. It is safe for
// concurrent use.
//
// The slot script is this package's own rather than redis_rate's (which the
// API-call ceiling uses): a burst of one is just "the account's next free
// moment", and redis_rate has no way to move that moment forward after a
// late send.
type Pacer struct {
	rdb      redis.UniversalClient
	interval time.Duration
	jitter   time.Duration

	// Overrides are read once a second per process, all of them in one
	// HGETALL (only overridden accounts have one), not on every send nor
	// once per account: a change reaches every worker within a second, and
	// a worker pacing a thousand accounts reads Redis once a second for it.
	intervals snapshot[map[string]time.Duration] // accounts with an interval of their own (override, slowdown)
}

const overrideCacheFor = time.Second

// NewPacer returns a Pacer whose accounts send at most once per interval
// unless SetInterval says otherwise. An interval of 0 turns pacing off (for
// a provider that paces by itself, and for measuring the send path): accounts
// without an override then send as fast as the rest allows. jitter (0: none)
// adds a random extra in [0, jitter) to every wait Take answers and to the
// step of every Plan, so sends do not tick like a clock; the least gap stays
// the interval.
func NewPacer(rdb redis.UniversalClient, interval, jitter time.Duration) *Pacer {
	if interval < 0 {
		interval = DefaultSendInterval
	}
	return &Pacer{
		rdb:       rdb,
		interval:  interval,
		jitter:    max(0, jitter),
		intervals: snapshot[map[string]time.Duration]{ttl: overrideCacheFor},
	}
}

// takeScript takes the slot KEYS[1] (the account's next free moment, in ms
// of the Redis clock) when it has come, and sets the next one ARGV[1] ms
// later. Answers 0 when taken, else the ms until the slot.
var takeScript = redis.NewScript(luaNowMillis + `
local now = tonumber(now_ms)
local free_at = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if free_at > now then
  return free_at - now
end
local interval = tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', now + interval), 'PX', interval)
return 0
`)

// lateScript moves the slot KEYS[1] to no earlier than ARGV[1] ms from now
// (a send that went out late holds the account until an interval after it
// went out).
var lateScript = redis.NewScript(luaNowMillis + `
local now = tonumber(now_ms)
local free_at = now + tonumber(ARGV[1])
if free_at > (tonumber(redis.call('GET', KEYS[1]) or '0') or 0) then
  redis.call('SET', KEYS[1], string.format('%d', free_at), 'PX', tonumber(ARGV[1]))
end
return 0
`)

// Take claims the account's send slot. It answers 0 when the slot was free
// and is now taken: send now. Otherwise it answers how long until the next
// slot (plus jitter), and nothing is taken.
func (p *Pacer) Take(ctx context.Context, account string) (time.Duration, error) {
	interval, err := p.Interval(ctx, account)
	if err != nil {
		return 0, err
	}
	if interval == 0 {
		return 0, nil // pacing is off
	}
	waitMillis, err := takeScript.Run(ctx, p.rdb, []string{paceKey(account)}, ceilMillis(interval)).Int64()
	if err != nil {
		return 0, fmt.Errorf("quota: take send slot of account %q: %w", account, err)
	}
	if waitMillis <= 0 {
		return 0, nil
	}
	return time.Duration(waitMillis)*time.Millisecond + p.randomJitter(), nil
}

// WentOutLate tells the pacer that a send of the account left this process
// ago before now, later than its slot: the account's next slot is moved to
// an interval after the send went out, if it was sooner. Take spaces the
// slots; this keeps the sends themselves spaced when something (a stalled
// machine, a slow Redis) held one back between its slot and the wire, so the
// provider never sees two of an account's sends closer than the interval
// because the first was late.
func (p *Pacer) WentOutLate(ctx context.Context, account string, ago time.Duration) error {
	interval, err := p.Interval(ctx, account)
	if err != nil || interval == 0 {
		return err
	}
	left := interval - max(0, ago)
	if left <= 0 {
		return nil // an interval has passed since: the slot is free anyway
	}
	if err := lateScript.Run(ctx, p.rdb, []string{paceKey(account)}, ceilMillis(left)).Err(); err != nil {
		return fmt.Errorf("quota: move the send slot of account %q after a late send: %w", account, err)
	}
	return nil
}

// takeHeldScript is takeScript for a send that holds the account until it
// is answered: when the slot KEYS[1] has come, the next one is set ARGV[1]
// ms later (the longest the send may take). Answers {0, the slot set (ms)}
// when taken, else {ms until the slot, 0}.
var takeHeldScript = redis.NewScript(luaNowMillis + `
local now = tonumber(now_ms)
local free_at = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if free_at > now then
  return {free_at - now, 0}
end
local hold = tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', now + hold), 'PX', hold)
return {0, now + hold}
`)

// answeredScript ends a hold: the slot KEYS[1] becomes ARGV[2] ms from now
// (an interval after the send went out) if it still is the hold ARGV[1]
// (ms) this send set; else (the hold lapsed and another send took the slot)
// it only moves later, as lateScript does.
var answeredScript = redis.NewScript(luaNowMillis + `
local now = tonumber(now_ms)
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local free_at = now + tonumber(ARGV[2])
if cur ~= tonumber(ARGV[1]) and free_at <= cur then return 0 end
if free_at > now then
  redis.call('SET', KEYS[1], string.format('%d', free_at), 'PX', free_at - now)
else
  redis.call('DEL', KEYS[1])
end
return 1
`)

// TakeHeld is Take for a provider that answers a send only once the
// message has gone out (the gateway, after "typing" it for seconds): the
// slot, once taken, holds the account for hold (the longest the send may
// take) rather than an interval, and the Hold's Answered frees it an
// interval after the answer. So an account's next send starts an interval
// after its last one went out, however long the provider took: counted
// from the request, a long typing simulation would eat the gap. A wait
// answers a nil Hold; so does an account without pacing (interval 0).
func (p *Pacer) TakeHeld(ctx context.Context, account string, hold time.Duration) (time.Duration, *Hold, error) {
	interval, err := p.Interval(ctx, account)
	if err != nil || interval == 0 {
		return 0, nil, err
	}
	res, err := takeHeldScript.Run(ctx, p.rdb, []string{paceKey(account)}, ceilMillis(max(hold, interval))).Int64Slice()
	if err != nil || len(res) != 2 {
		return 0, nil, fmt.Errorf("quota: take send slot of account %q: %v %w", account, res, err)
	}
	if wait := time.Duration(res[0]) * time.Millisecond; wait > 0 {
		if wait > interval {
			// Held by a send still waiting for its answer, which may come
			// any moment: look again soon, not when the hold would lapse.
			wait = min(wait, max(interval, heldRecheck))
		}
		return wait + p.randomJitter(), nil, nil
	}
	return 0, &Hold{pacer: p, account: account, until: res[1], interval: interval}, nil
}

// heldRecheck is how soon TakeHeld tells a send to look again at an
// account held by another send (a slot further than an interval away can
// only be a hold): often enough to follow the answer closely, seldom
// enough not to spin while a gateway types for seconds.
const heldRecheck = 250 * time.Millisecond

// Hold is an account's slot held by a send until its answer (TakeHeld).
type Hold struct {
	pacer    *Pacer
	account  string
	until    int64 // the slot the hold set (ms, Redis clock)
	interval time.Duration
}

// Answered ends the hold: the send went out ago before now (the provider's
// answer; 0 for a send that failed or never went out, which holds the
// account a full interval from now), and the account's next slot is an
// interval (plus jitter) after that. Nil does nothing.
func (h *Hold) Answered(ctx context.Context, ago time.Duration) error {
	if h == nil {
		return nil
	}
	next := h.interval + h.pacer.randomJitter() - max(0, ago)
	if err := answeredScript.Run(ctx, h.pacer.rdb, []string{paceKey(h.account)}, h.until, ceilMillis(next)).Err(); err != nil {
		return fmt.Errorf("quota: free the send slot of account %q after its answer: %w", h.account, err)
	}
	return nil
}

// ceilMillis is d in whole milliseconds, rounded up: slots are kept in ms,
// and rounding down would put two sends closer than the interval.
func ceilMillis(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// SetInterval overrides the account's interval for every worker (d = 0 goes
// back to the default). Intervals are kept to the millisecond.
func (p *Pacer) SetInterval(ctx context.Context, account string, d time.Duration) error {
	var err error
	switch {
	case d == 0:
		err = p.rdb.HDel(ctx, intervalsKey, accountKey(account)).Err()
	case d < time.Millisecond:
		return fmt.Errorf("quota: send interval of account %q: %s is not a positive number of milliseconds", account, d)
	default:
		err = p.rdb.HSet(ctx, intervalsKey, accountKey(account), d.Milliseconds()).Err()
	}
	if err != nil {
		return fmt.Errorf("quota: set send interval of account %q to %s: %w", account, d, err)
	}
	p.intervals.forget()
	return nil
}

// SetSlowdown multiplies the account's interval by factor (1: back to its
// own), for every worker: account health slows an account whose numbers
// look bad. The override and the slowdown are kept apart, so that an
// operator's interval and health's doubling never undo each other.
func (p *Pacer) SetSlowdown(ctx context.Context, account string, factor int) error {
	var err error
	if factor <= 1 {
		err = p.rdb.HDel(ctx, intervalsKey, slowdownField(account)).Err()
	} else {
		err = p.rdb.HSet(ctx, intervalsKey, slowdownField(account), factor).Err()
	}
	if err != nil {
		return fmt.Errorf("quota: slow account %q down by %d: %w", account, factor, err)
	}
	p.intervals.forget()
	return nil
}

// Interval is the account's least gap between two sends: its override, or
// the Pacer's default, times the slowdown health set (SetSlowdown).
func (p *Pacer) Interval(ctx context.Context, account string) (time.Duration, error) {
	intervals, err := p.intervals.get(ctx, func(ctx context.Context) (map[string]time.Duration, error) {
		raw, err := p.rdb.HGetAll(ctx, intervalsKey).Result()
		if err != nil {
			return nil, fmt.Errorf("quota: read send intervals: %w", err)
		}
		return p.effectiveIntervals(raw), nil
	})
	if err != nil {
		return 0, err
	}
	if d, ok := intervals[account]; ok {
		return d, nil
	}
	return p.interval, nil
}

// effectiveIntervals turns the intervals hash (each account's override, in
// ms, and the slowdown factor health set, in its "#slow" field) into each
// such account's interval: its override or the default, times its factor.
func (p *Pacer) effectiveIntervals(raw map[string]string) map[string]time.Duration {
	own := make(map[string]time.Duration, len(raw))
	factors := map[string]int64{}
	for k, v := range raw {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			continue
		}
		if account, slow := strings.CutSuffix(k, slowdownSuffix); slow {
			factors[phoneOfKey(account)] = n
			continue
		}
		own[phoneOfKey(k)] = time.Duration(n) * time.Millisecond
	}
	for account, factor := range factors {
		if _, ok := own[account]; !ok {
			own[account] = p.interval
		}
		own[account] *= time.Duration(factor)
	}
	return own
}

// planScript books ARGV[1] slots ARGV[2] ms apart on the timeline KEYS[1]:
// first = the tail, or ARGV[3] ms from now when the timeline is idle (its
// tail passed); tail = first + n*step. Answers first (ms).
var planScript = redis.NewScript(luaNowMillis + `
local n, step = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = tonumber(now_ms)
local first = tonumber(redis.call('HGET', KEYS[1], 'tail')) or 0
if first < now then first = now + tonumber(ARGV[3]) end
local tail = first + n * step
redis.call('HSET', KEYS[1], 'tail', string.format('%d', tail), 'last', string.format('%d', tail - step))
-- Once the tail has passed, an empty timeline means the same thing.
redis.call('PEXPIRE', KEYS[1], string.format('%d', tail - now))
return first
`)

// Plan books n future send slots on the account's timeline and answers when
// the first is and the step between them: the slots are first, first+step,
// ..., first+(n-1)*step (Redis clock). Booking is atomic, so campaigns that
// share an account queue behind each other, and an idle account's first
// slot is within IdleSpread of now. The step is the account's interval
// plus PlanSlack and a jitter drawn once per plan.
//
// Enqueuers give each task its slot (a little ahead) as its asynq
// ProcessAt, so tasks become due at the rate they may be sent and a slow
// or paused account's tasks never sit in front of another account's; Take
// stays the safety net. It is PlanEach for one account.
func (p *Pacer) Plan(ctx context.Context, account string, n int) (first time.Time, step time.Duration, err error) {
	bookings, err := p.PlanEach(ctx, map[string]int{account: n})
	if err != nil {
		return time.Time{}, 0, err
	}
	return bookings[account].First, bookings[account].Step, nil
}

// IdleSpread is the most an idle account's first planned slot is put off.
// Were it now, every account of a campaign uploaded at once would send in
// the same instant of each interval: a thousand accounts at 2 s made a
// thousand tasks due in one second of every two (asynq keeps due times in
// whole seconds), more than three workers dequeue, one round trip each,
// before their slots. Spread over the interval, a second's share comes due
// each second.
const IdleSpread = 2 * time.Second

// idleOffset is how far from now an idle account's timeline starts: a
// random point of the interval, of IdleSpread at most, so that a long
// interval does not hold back a first message.
func idleOffset(interval time.Duration) time.Duration {
	return rand.N(min(interval, IdleSpread))
}

// PlanSlack is what a plan's step adds to the interval: 0.5 %. Each send
// reaches the wire a little after its slot (a round trip for the claim, a
// timer waking), and the account's next slot is counted from the wire, so
// a plan stepping by the bare interval books faster than the account can
// send: the account falls further behind its plan at every send, until
// its tasks come too early for a nap and one gives its slot up. The slack
// lets sends catch up with the plan by up to 10 ms a send at 2 s (1 %
// cost figure 4 a point of utilisation, 0.978–0.990, for no better p99).
func PlanSlack(interval time.Duration) time.Duration {
	return interval / 200
}

// Booking is one account's share of PlanEach: its slots are First,
// First+Step, ... (a zero Step: pacing is off, all of them are due now).
type Booking struct {
	First time.Time
	Step  time.Duration
}

// PlanEach is Plan for several accounts at once (counts: the slots each
// needs), in one round trip: a campaign of a thousand accounts books a
// batch of its recipients in one, not in a thousand. Each account's
// booking is atomic, as Plan's is.
func (p *Pacer) PlanEach(ctx context.Context, counts map[string]int) (map[string]Booking, error) {
	out := make(map[string]Booking, len(counts))
	var accounts []string
	var args [][]any
	for account, n := range counts {
		if n < 1 {
			return nil, fmt.Errorf("quota: plan %d send slots of account %q: need at least 1", n, account)
		}
		interval, err := p.Interval(ctx, account)
		if err != nil {
			return nil, err
		}
		if interval == 0 {
			out[account] = Booking{First: time.Now()} // pacing is off: everything is due now
			continue
		}
		step := ceilMillis(interval + p.randomJitter() + PlanSlack(interval))
		accounts = append(accounts, account)
		args = append(args, []any{n, step, idleOffset(interval).Milliseconds()})
	}
	firsts, err := p.runPlans(ctx, accounts, args)
	if err != nil {
		return nil, err
	}
	for i, account := range accounts {
		out[account] = Booking{First: time.UnixMilli(firsts[i]), Step: time.Duration(args[i][1].(int64)) * time.Millisecond}
	}
	return out, nil
}

// runPlans runs planScript for each account in one pipeline. A pipeline
// cannot fall back from EVALSHA to EVAL as Script.Run does, so a plan that
// found its node without the script (a restarted Redis, a Cluster node that
// has not seen it yet) runs again alone through Run: NOSCRIPT means it
// did not run.
func (p *Pacer) runPlans(ctx context.Context, accounts []string, args [][]any) ([]int64, error) {
	if len(accounts) == 0 {
		return nil, nil
	}
	cmds, _ := p.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, account := range accounts {
			planScript.EvalSha(ctx, pipe, []string{planKey(account)}, args[i]...)
		}
		return nil
	}) // each command keeps its own answer and error
	firsts := make([]int64, len(cmds))
	for i, c := range cmds {
		first, err := c.(*redis.Cmd).Int64()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			first, err = planScript.Run(ctx, p.rdb, []string{planKey(accounts[i])}, args[i]...).Int64()
		}
		if err != nil {
			return nil, fmt.Errorf("quota: plan send slots of account %q: %w", accounts[i], err)
		}
		firsts[i] = first
	}
	return firsts, nil
}

// PlanTail answers when the account's last booked slot is (for ETAs): zero
// when nothing is booked ahead.
func (p *Pacer) PlanTail(ctx context.Context, account string) (time.Time, error) {
	s, err := p.rdb.HGet(ctx, planKey(account), "last").Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("quota: read send plan of account %q: %w", account, err)
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("quota: read send plan of account %q: last slot %q: %w", account, s, err)
	}
	return time.UnixMilli(ms), nil
}

func (p *Pacer) randomJitter() time.Duration {
	if p.jitter <= 0 {
		return 0
	}
	return rand.N(p.jitter)
}
