package quota

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrAllowanceSpent is Reserve's answer when the account has sent today's
// allowance: it sends again tomorrow (UTC).
var ErrAllowanceSpent = errors.New("quota: the account has sent today's allowance")

// Limits are an account's daily cap and warm-up ramp. The zero value
// limits nothing.
type Limits struct {
	// DailyCap is the most messages the account sends in a UTC day; 0: no cap.
	DailyCap int `json:"daily_cap,omitempty"`
	// Warmup ramps a new number up to its full rate.
	Warmup *Warmup `json:"warmup,omitempty"`
}

// Warmup is a ramp from Start messages on its first day to the account's
// full rate (its daily cap, else what its send interval allows in a day)
// after Days days, rising by the same factor every day: new numbers that
// grow steadily are what WhatsApp expects, sudden volume is what it bans.
type Warmup struct {
	Start     int    `json:"start"`      // messages on the first day
	Days      int    `json:"days"`       // days until the full rate
	StartedOn string `json:"started_on"` // the first day, YYYY-MM-DD (UTC)
}

// limited reports whether l holds back anything.
func (l Limits) limited() bool { return l.DailyCap > 0 || l.Warmup != nil }

// DayFormat is how days are written (UTC).
const DayFormat = "2006-01-02"

// Check says what is wrong with l, naming the field; nil when it is usable.
func (l Limits) Check() (field, problem string) {
	if l.DailyCap < 0 || l.DailyCap > MaxDailyCap {
		return "daily_cap", fmt.Sprintf("daily_cap %d is not from 0 (no cap) to %d", l.DailyCap, MaxDailyCap)
	}
	w := l.Warmup
	if w == nil {
		return "", ""
	}
	switch {
	case w.Start < 1 || w.Start > MaxDailyCap:
		return "warmup.start", fmt.Sprintf("warmup.start %d is not from 1 to %d messages on the first day", w.Start, MaxDailyCap)
	case w.Days < 1 || w.Days > 365:
		return "warmup.days", fmt.Sprintf("warmup.days %d is not from 1 to 365", w.Days)
	case l.DailyCap > 0 && w.Start > l.DailyCap:
		return "warmup.start", fmt.Sprintf("warmup.start %d is above daily_cap %d: the ramp would start past its end", w.Start, l.DailyCap)
	}
	if _, err := time.Parse(DayFormat, w.StartedOn); err != nil {
		return "warmup.started_on", fmt.Sprintf("warmup.started_on %q is not a day like 2026-01-31", w.StartedOn)
	}
	return "", ""
}

// MaxDailyCap bounds daily caps and ramp starts: far above what one WhatsApp
// number can send in a day.
const MaxDailyCap = 1_000_000

// fullRate is what the account may send in a day when the ramp is over:
// its cap, else its send interval's worth of a day (no limit for no pacing).
func (l Limits) fullRate(interval time.Duration) int {
	if l.DailyCap > 0 {
		return l.DailyCap
	}
	if interval <= 0 {
		return math.MaxInt32
	}
	return int(min(24*time.Hour/interval, math.MaxInt32))
}

// Ramp is the allowance of each day of the warm-up, its first day first,
// then the full rate; nil without a warm-up.
func (l Limits) Ramp(interval time.Duration) []int {
	if l.Warmup == nil {
		return nil
	}
	out := make([]int, 0, l.Warmup.Days+1)
	for d := 0; d <= l.Warmup.Days; d++ {
		out = append(out, l.allowanceOnDay(d, interval))
	}
	return out
}

// allowanceOnDay is the allowance of warm-up day d (0: the first).
func (l Limits) allowanceOnDay(d int, interval time.Duration) int {
	full := l.fullRate(interval)
	w := l.Warmup
	if w == nil || d >= w.Days {
		return full
	}
	if d < 0 || w.Start >= full {
		return min(w.Start, full)
	}
	// Geometric: the same factor every day, from Start to full in Days.
	v := float64(w.Start) * math.Pow(float64(full)/float64(w.Start), float64(d)/float64(w.Days))
	return min(int(math.Round(v)), full)
}

// Allowance is what an account may send on a UTC day.
func (l Limits) Allowance(day time.Time, interval time.Duration) (allowance int, warmupDay int) {
	if !l.limited() {
		return -1, -1
	}
	if l.Warmup == nil {
		return l.DailyCap, -1
	}
	start, _ := time.Parse(DayFormat, l.Warmup.StartedOn)
	d := int(day.UTC().Truncate(24*time.Hour).Sub(start) / (24 * time.Hour))
	return l.allowanceOnDay(d, interval), d
}

// Today is an account's day so far.
type Today struct {
	Day       string `json:"day"`                  // YYYY-MM-DD, UTC
	Allowance int    `json:"allowance"`            // -1: unlimited
	Sent      int    `json:"sent"`                 // reserved or sent today
	WarmupDay *int   `json:"warmup_day,omitempty"` // 1 on the ramp's first day
}

// DailyLimits holds every account's daily cap and warm-up in Redis and
// counts what each sends per UTC day, so that every worker holds an
// account to its allowance: a send reserves one of today's messages before
// the provider call and gives it back when the message provably did not go
// out, like the credit ledger. A worker that dies in between leaves its
// reservation counted: the account sends one fewer that day, never one more.
type DailyLimits struct {
	rdb      redis.UniversalClient
	pacer    *Pacer
	now      func() time.Time
	cacheFor time.Duration

	mu    sync.Mutex
	cache map[string]cachedLimits
	spent map[string]spentMark // accounts this process found spent today
}

// spentMark is when an account's allowance was found spent, and on which
// day. It is believed for spentRecheck only, so that a cap an operator
// raised in another process is found soon.
type spentMark struct {
	day string
	at  time.Time
}

const spentRecheck = time.Minute

type cachedLimits struct {
	limits Limits
	at     time.Time
}

// NewDailyLimits returns the registry of daily limits; pacer gives the
// interval that sets the full rate of an account without a cap.
func NewDailyLimits(rdb redis.UniversalClient, pacer *Pacer) *DailyLimits {
	return &DailyLimits{rdb: rdb, pacer: pacer, now: time.Now, cacheFor: time.Second,
		cache: map[string]cachedLimits{}, spent: map[string]spentMark{}}
}

// SetClock replaces the clock (tests).
func (d *DailyLimits) SetClock(now func() time.Time) { d.now = now }

// Set replaces an account's limits (zero Limits: none).
func (d *DailyLimits) Set(ctx context.Context, account string, l Limits) error {
	if field, problem := l.Check(); field != "" {
		return errors.New(problem)
	}
	var err error
	if l.limited() {
		b, _ := json.Marshal(l)
		err = d.rdb.HSet(ctx, limitsKey, accountKey(account), string(b)).Err()
	} else {
		err = d.rdb.HDel(ctx, limitsKey, accountKey(account)).Err()
	}
	if err != nil {
		return fmt.Errorf("quota: set the daily limits of %s: %w", account, err)
	}
	d.mu.Lock()
	d.cache[account] = cachedLimits{limits: l, at: time.Now()}
	delete(d.spent, account) // a raised cap may let it send again today
	d.mu.Unlock()
	return nil
}

// Get reads an account's limits (cached for a second).
func (d *DailyLimits) Get(ctx context.Context, account string) (Limits, error) {
	d.mu.Lock()
	c, ok := d.cache[account]
	d.mu.Unlock()
	if ok && time.Since(c.at) < d.cacheFor {
		return c.limits, nil
	}
	raw, err := d.rdb.HGet(ctx, limitsKey, accountKey(account)).Result()
	if err != nil && err != redis.Nil {
		return Limits{}, fmt.Errorf("quota: read the daily limits of %s: %w", account, err)
	}
	var l Limits
	if raw != "" {
		_ = json.Unmarshal([]byte(raw), &l)
	}
	d.mu.Lock()
	d.cache[account] = cachedLimits{limits: l, at: time.Now()}
	d.mu.Unlock()
	return l, nil
}

// Today reads an account's allowance and what it has sent today.
func (d *DailyLimits) Today(ctx context.Context, account string) (Today, Limits, error) {
	l, err := d.Get(ctx, account)
	if err != nil {
		return Today{}, l, err
	}
	now := d.now().UTC()
	t := Today{Day: now.Format(DayFormat), Allowance: -1}
	interval, err := d.pacer.Interval(ctx, account)
	if err != nil {
		return t, l, err
	}
	allowance, wd := l.Allowance(now, interval)
	t.Allowance = allowance
	if wd >= 0 {
		t.WarmupDay = new(int)
		*t.WarmupDay = wd + 1
	}
	n, err := d.rdb.Get(ctx, dayCountKey(account, t.Day)).Int()
	if err != nil && err != redis.Nil {
		return t, l, fmt.Errorf("quota: read what %s sent today: %w", account, err)
	}
	t.Sent = n
	return t, l, nil
}

// interval is the pacing interval this registry reads full rates with.
func (d *DailyLimits) interval(ctx context.Context, account string) (time.Duration, error) {
	return d.pacer.Interval(ctx, account)
}

// DayReservation is one of today's messages, taken by a send.
type DayReservation struct {
	rdb redis.UniversalClient
	key string
}

// Reserve takes one of today's messages of the account: nil when the
// account has no limits, ErrAllowanceSpent when today's are taken.
func (d *DailyLimits) Reserve(ctx context.Context, account string) (*DayReservation, error) {
	l, err := d.Get(ctx, account)
	if err != nil || !l.limited() {
		return nil, err
	}
	interval, err := d.interval(ctx, account)
	if err != nil {
		return nil, err
	}
	now := d.now().UTC()
	allowance, _ := l.Allowance(now, interval)
	day := now.Format(DayFormat)
	key := dayCountKey(account, day)
	n, err := reserveDayScript.Run(ctx, d.rdb, []string{key}, allowance, int64(dayCountTTL/time.Second)).Int()
	if err != nil {
		return nil, fmt.Errorf("quota: reserve one of today's messages of %s: %w", account, err)
	}
	if n < 0 {
		d.mu.Lock()
		d.spent[account] = spentMark{day: day, at: time.Now()}
		d.mu.Unlock()
		return nil, ErrAllowanceSpent
	}
	return &DayReservation{rdb: d.rdb, key: key}, nil
}

// SpentToday reports whether this process has found the account's
// allowance spent today: the account choice skips it without a Redis call.
func (d *DailyLimits) SpentToday(account string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.spent[account]
	return ok && m.day == d.now().UTC().Format(DayFormat) && time.Since(m.at) < spentRecheck
}

// UntilTomorrow is how long until the next UTC day.
func (d *DailyLimits) UntilTomorrow() time.Duration {
	now := d.now().UTC()
	return now.Truncate(24 * time.Hour).Add(24 * time.Hour).Sub(now)
}

// Release gives the message back: the send provably did not go out.
func (r *DayReservation) Release(ctx context.Context) error {
	if r == nil {
		return nil
	}
	if err := releaseDayScript.Run(ctx, r.rdb, []string{r.key}).Err(); err != nil {
		return fmt.Errorf("quota: give back one of today's messages: %w", err)
	}
	return nil
}

// dayCountTTL keeps a day's count a day after it ends, for the views.
const dayCountTTL = 48 * time.Hour

// reserveDayScript counts one more message of the day, if the allowance
// holds it.
//
// KEYS[1]: the account's count of the day. ARGV[1]: the allowance; ARGV[2]:
// the count's time to live (s). Answers the count after, or -1 when the
// allowance is spent (nothing counted).
var reserveDayScript = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return -1 end
n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return n
`)

// releaseDayScript takes back one counted message (never below zero).
//
// KEYS[1]: the account's count of the day. Answers the count after.
var releaseDayScript = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n <= 0 then return 0 end
return redis.call('DECR', KEYS[1])
`)
