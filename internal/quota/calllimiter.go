package quota

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultAPICallsPerSecond is the provider's documented ceiling (30 requests
// per second per IP).
const DefaultAPICallsPerSecond = 30

// ErrCallLimited means an API call could not get a slot before its
// context's deadline. The error carrying it has a RetryAfter method.
var ErrCallLimited = errors.New("quota: API call ceiling reached")

// CallLimitError is Wait's answer when the next API-call slot comes after
// the context's deadline: waiting would only end in a timeout, so the caller
// learns now how long to back off (the TimelinesAI client turns it into a
// rate-limited error with that wait).
type CallLimitError struct {
	Wait time.Duration // until the next slot
}

func (e *CallLimitError) Error() string {
	return fmt.Sprintf("%v: next slot in %s, after the call's deadline", ErrCallLimited, e.Wait)
}

// RetryAfter is how long to wait before trying again.
func (e *CallLimitError) RetryAfter() time.Duration { return e.Wait }

// Is makes errors.Is(err, ErrCallLimited) true.
func (e *CallLimitError) Is(target error) bool { return target == ErrCallLimited }

// CallLimiter keeps the API calls of all processes together under one
// ceiling. The TimelinesAI client calls Wait before every HTTP request
// (sends, status polls, quota reads). It is safe for concurrent use.
//
// The ceiling is a timeline of slots 1/perSecond apart in Redis (TAT, like
// GCRA with a burst of one): leaseSlotsScript hands a process the next m
// slots at once, and the process hands them to its callers, each sleeping
// until its slot. m follows the process's demand over callLeaseSpan, at
// most the slots of that span: at the default 30/s it is 1, a script per
// call as with GCRA; at a high ceiling one script serves many calls.
//
// A leased slot nobody took by its time may still be taken, late, until the
// lease is callLeaseSpan old: at a high ceiling a lease's slots are
// microseconds apart while its callers come over milliseconds. A second
// then holds at most the slots of that second and of the span before it
// (rate×1.05 at most, and only at ceilings of 40/s and more, where a lease
// holds more than one slot); under contention callers wait for slots ahead
// of them, which are never late. After the span, untaken slots pass.
type CallLimiter struct {
	rdb      redis.UniversalClient
	slot     time.Duration // between two calls: 1/perSecond, in whole µs (rounded up)
	maxLease int           // slots of one lease at most: those of callLeaseSpan

	mu      sync.Mutex
	lease   slotLease
	demand  demandMeter   // Wait calls of this process lately: the next lease's size
	leasing chan struct{} // one lease at a time: the others wait for it, not for Redis
}

// callLeaseSpan is how far a lease looks at demand, the most time its
// slots cover, and how long its untaken slots may be taken late.
const callLeaseSpan = 50 * time.Millisecond

// leaseSlotsScript leases the next ARGV[1] slots of the ceiling, ARGV[2] µs
// apart. KEYS[1] is the ceiling's first free slot (µs, Redis clock).
// ARGV[3] is the longest the caller may wait for the first slot (µs; -1:
// any). Answers {wait, granted}: the first slot is wait µs from now;
// granted is 0 (and nothing leased) when that wait is too long.
var leaseSlotsScript = redis.NewScript(`
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local start = math.max(tat, now)
local wait = start - now
local limit = tonumber(ARGV[3])
if limit >= 0 and wait > limit then return {wait, 0} end
local m = tonumber(ARGV[1])
local free_at = start + m * tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%d', free_at), 'PX', math.floor((free_at - now) / 1000) + 1000)
return {wait, m}
`)

// slotLease is the slots this process leased and has not handed out.
type slotLease struct {
	first   time.Time // slot 0 (local clock, no earlier than Redis's)
	slot    time.Duration
	count   int
	next    int       // the next slot to hand out
	expires time.Time // untaken slots pass
}

// take hands out the next slot, unless there is none before expiry or it
// comes after deadline (then its time, and false: it stays for another).
func (s *slotLease) take(now, deadline time.Time) (at time.Time, ok bool) {
	if s.next >= s.count || !now.Before(s.expires) {
		return time.Time{}, false
	}
	at = s.first.Add(time.Duration(s.next) * s.slot)
	if !deadline.IsZero() && at.After(deadline) {
		return at, false
	}
	s.next++
	return at, true
}

// NewCallLimiter returns a ceiling of perSecond API calls per second
// (DefaultAPICallsPerSecond if not positive) for every process sharing rdb.
//
// The burst is one call: calls are spaced 1/perSecond apart, so no second
// holds more than perSecond(+1) of them (see CallLimiter for late slots).
// With a burst of b, a second could hold b+perSecond calls, and the
// provider answers bursts with 403/429.
func NewCallLimiter(rdb redis.UniversalClient, perSecond int) *CallLimiter {
	if perSecond <= 0 {
		perSecond = DefaultAPICallsPerSecond
	}
	micros := (int64(time.Second/time.Microsecond) + int64(perSecond) - 1) / int64(perSecond)
	return &CallLimiter{
		rdb:      rdb,
		slot:     time.Duration(micros) * time.Microsecond,
		maxLease: max(1, int(int64(perSecond)*int64(callLeaseSpan)/int64(time.Second))),
		demand:   demandMeter{window: callLeaseSpan},
		leasing:  make(chan struct{}, 1),
	}
}

// Wait returns when the call may be made. It returns early with ctx's
// error when ctx is done, or with a *CallLimitError when the next slot
// comes after ctx's deadline.
func (c *CallLimiter) Wait(ctx context.Context) error {
	at, err := c.grant(ctx)
	if err != nil {
		return err
	}
	if d := time.Until(at); d > 0 {
		if err := sleep(ctx, d); err != nil {
			return fmt.Errorf("quota: waiting for an API call slot: %w", err)
		}
	}
	return nil
}

// grant takes a slot for one call, and answers its time: the call may be
// made then (or at once, when that has passed).
func (c *CallLimiter) grant(ctx context.Context) (time.Time, error) {
	if ctx.Err() != nil {
		return time.Time{}, fmt.Errorf("quota: waiting for an API call slot: %w", context.Cause(ctx))
	}
	deadline, _ := ctx.Deadline()
	c.mu.Lock()
	now := time.Now()
	c.demand.add(now, 1)
	at, ok := c.lease.take(now, deadline)
	c.mu.Unlock()
	if at, done, err := leasedSlot(at, ok); done {
		return at, err
	}
	return c.leaseAndTake(ctx, deadline)
}

// leasedSlot reads what a lease's take answered: a slot (done), a slot after
// the call's deadline (done, with a *CallLimitError), or none left (not
// done: lease more).
func leasedSlot(at time.Time, ok bool) (time.Time, bool, error) {
	switch {
	case ok:
		return at, true, nil
	case !at.IsZero():
		return time.Time{}, true, &CallLimitError{Wait: max(time.Until(at), time.Millisecond)}
	}
	return time.Time{}, false, nil
}

// leaseAndTake leases slots when this process has none left, and takes the
// first.
func (c *CallLimiter) leaseAndTake(ctx context.Context, deadline time.Time) (time.Time, error) {
	select {
	case c.leasing <- struct{}{}:
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("quota: waiting for an API call slot: %w", context.Cause(ctx))
	}
	defer func() { <-c.leasing }()

	c.mu.Lock()
	now := time.Now()
	at, ok := c.lease.take(now, deadline) // another caller leased meanwhile
	want := min(max(c.demand.recent(now), 1), c.maxLease)
	c.mu.Unlock()
	if at, done, err := leasedSlot(at, ok); done {
		return at, err
	}

	maxWait := int64(-1)
	if !deadline.IsZero() {
		maxWait = max(0, time.Until(deadline).Microseconds())
	}
	res, err := leaseSlotsScript.Run(ctx, c.rdb, []string{apiCallsKey}, want, c.slot.Microseconds(), maxWait).Int64Slice()
	if err != nil {
		return time.Time{}, fmt.Errorf("quota: take an API call slot: %w", err)
	}
	if len(res) != 2 {
		return time.Time{}, fmt.Errorf("quota: take an API call slot: unexpected answer %v", res)
	}
	wait := time.Duration(res[0]) * time.Microsecond
	if res[1] == 0 {
		return time.Time{}, &CallLimitError{Wait: max(wait, time.Millisecond)}
	}
	// Read after the script ran, the local clock puts the slots no earlier
	// than Redis did: a round trip late, never early.
	first := time.Now().Add(wait)
	count := int(res[1])
	c.mu.Lock()
	c.lease = slotLease{
		first:   first,
		slot:    c.slot,
		count:   count,
		next:    1,
		expires: maxTime(first.Add(time.Duration(count)*c.slot), time.Now().Add(callLeaseSpan)),
	}
	c.mu.Unlock()
	return first, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
