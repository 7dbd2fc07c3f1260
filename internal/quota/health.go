package quota

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Outcome is one thing that happened to a message of an account, as its
// health counts it.
type Outcome string

const (
	OutcomeSent    Outcome = "sent"    // the provider took a message
	OutcomeRefused Outcome = "refused" // the provider refused a message (its number or text)
	OutcomeFailed  Outcome = "failed"  // a sent message became failed or undelivered
	OutcomeOptOut  Outcome = "opt_out" // a recipient opted out after a message
	OutcomeReply   Outcome = "reply"   // a recipient replied to a message
)

// outcomeCodes are the outcomes as stored, one letter each.
var outcomeCodes = map[Outcome]string{OutcomeSent: "s", OutcomeRefused: "x", OutcomeFailed: "f", OutcomeOptOut: "o", OutcomeReply: "r"}

// HealthState is an account's health verdict.
type HealthState string

const (
	HealthOK      HealthState = "ok"
	HealthSlowed  HealthState = "slowed"  // past a warning threshold: its interval is doubled
	HealthStopped HealthState = "stopped" // past a stop threshold: paused, with the reason
)

// HealthThresholds say when an account's recent numbers slow or stop it.
// Rates are fractions of the messages in the window (0: never).
type HealthThresholds struct {
	Window      int // the last this many messages of the account
	MinMessages int // no verdict on fewer messages than this
	FailureWarn float64
	FailureStop float64
	OptOutWarn  float64
	OptOutStop  float64
}

// DefaultHealthThresholds: a healthy list bounces a few percent (numbers
// not on WhatsApp) and a marketing message loses well under 1 % to
// opt-outs; a quarter of messages failing, or 4 % opting out, is the kind
// of signal WhatsApp bans numbers for.
var DefaultHealthThresholds = HealthThresholds{
	Window: 200, MinMessages: 50,
	FailureWarn: 0.10, FailureStop: 0.25,
	OptOutWarn: 0.02, OptOutStop: 0.04,
}

// AccountHealth is an account's health over its recent messages.
type AccountHealth struct {
	State    HealthState `json:"state"`
	Messages int         `json:"messages"` // in the window
	Failures int         `json:"failures"` // refused or failed
	OptOuts  int         `json:"opt_outs"`
	Replies  int         `json:"replies"`
	// Rates in percent of Messages.
	FailureRate float64 `json:"failure_rate"`
	OptOutRate  float64 `json:"opt_out_rate"`
	ReplyRate   float64 `json:"reply_rate"`
}

// Health keeps each account's recent outcomes in Redis and acts on them:
// past a warning threshold the account's interval is doubled (Pacer
// SetSlowdown), past a stop threshold it is paused with the reason
// (Accounts.Pause). The verdict is taken in the same script that records
// the outcome, so exactly one Note acts on each change however many
// workers note at once. A stopped account stays stopped until Reset (an
// operator resuming it), which also forgets its window.
type Health struct {
	rdb      redis.UniversalClient
	accounts *Accounts
	pacer    *Pacer
	th       HealthThresholds
}

// NewHealth returns the health keeper; zero thresholds take the defaults.
func NewHealth(rdb redis.UniversalClient, accounts *Accounts, pacer *Pacer, th HealthThresholds) *Health {
	if th.Window <= 0 {
		th = DefaultHealthThresholds
	}
	return &Health{rdb: rdb, accounts: accounts, pacer: pacer, th: th}
}

// Thresholds are the thresholds in use.
func (h *Health) Thresholds() HealthThresholds { return h.th }

// Note records an outcome of one of the account's messages and acts when
// the account's verdict changes. Account "" (the provider's default) is
// not kept: it names no one number.
func (h *Health) Note(ctx context.Context, account string, o Outcome) error {
	code, ok := outcomeCodes[o]
	if account == "" || !ok {
		return nil
	}
	th := h.th
	res, err := noteHealthScript.Run(ctx, h.rdb, []string{healthKey(account), healthStateKey(account)},
		code, th.Window, th.MinMessages, ratio(th.FailureWarn), ratio(th.FailureStop), ratio(th.OptOutWarn), ratio(th.OptOutStop)).StringSlice()
	if err != nil {
		return fmt.Errorf("quota: note a %s of account %s: %w", o, account, err)
	}
	before, after := HealthState(res[0]), HealthState(res[1])
	if before == after {
		return nil
	}
	return h.act(ctx, account, after, countsOf(res[2:]))
}

// act carries out a new verdict.
func (h *Health) act(ctx context.Context, account string, state HealthState, c AccountHealth) error {
	switch state {
	case HealthSlowed:
		return h.pacer.SetSlowdown(ctx, account, 2)
	case HealthOK:
		return h.pacer.SetSlowdown(ctx, account, 1)
	case HealthStopped:
		return h.accounts.Pause(ctx, account, "account health: "+h.stopReason(c))
	}
	return nil
}

// stopReason says which rate stopped the account, in words.
func (h *Health) stopReason(c AccountHealth) string {
	if h.th.OptOutStop > 0 && c.OptOutRate >= h.th.OptOutStop*100 {
		return fmt.Sprintf("opt-out rate %.1f %% over the last %d messages", c.OptOutRate, c.Messages)
	}
	return fmt.Sprintf("failure rate %.1f %% (refused or undelivered) over the last %d messages", c.FailureRate, c.Messages)
}

// Reset forgets the account's recent outcomes and verdict, and its
// slowdown: an operator resuming a stopped account starts it afresh.
func (h *Health) Reset(ctx context.Context, account string) error {
	if err := h.rdb.Del(ctx, healthKey(account), healthStateKey(account)).Err(); err != nil {
		return fmt.Errorf("quota: reset the health of account %s: %w", account, err)
	}
	return h.pacer.SetSlowdown(ctx, account, 1)
}

// Of reads an account's health.
func (h *Health) Of(ctx context.Context, account string) (AccountHealth, error) {
	res, err := readHealthScript.Run(ctx, h.rdb, []string{healthKey(account), healthStateKey(account)}, h.th.Window).StringSlice()
	if err != nil {
		return AccountHealth{}, fmt.Errorf("quota: read the health of account %s: %w", account, err)
	}
	c := countsOf(res[1:])
	c.State = HealthState(res[0])
	return c, nil
}

// countsOf reads a script's {messages, failures, opt-outs, replies}.
func countsOf(v []string) AccountHealth {
	n := make([]int, 4)
	for i := range n {
		if i < len(v) {
			n[i], _ = strconv.Atoi(v[i])
		}
	}
	c := AccountHealth{Messages: n[0], Failures: n[1], OptOuts: n[2], Replies: n[3]}
	if c.Messages > 0 {
		c.FailureRate = percent(c.Failures, c.Messages)
		c.OptOutRate = percent(c.OptOuts, c.Messages)
		c.ReplyRate = percent(c.Replies, c.Messages)
	}
	return c
}

func percent(n, of int) float64 { return float64(int(float64(n)*1000/float64(of)+0.5)) / 10 }

// ratio is a threshold as the scripts take it ("0": never).
func ratio(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// luaHealthCounts sets messages, failures, optouts and replies from the
// list KEYS[1] (newest first): the outcomes of the last `window` messages
// (sent or refused), and the failures, opt-outs and replies noted since
// the oldest of them.
const luaHealthCounts = `
local function counts(key, window)
  local ev = redis.call('LRANGE', key, 0, -1)
  local m, f, o, r = 0, 0, 0, 0
  for i = 1, #ev do
    local c = ev[i]
    if c == 's' or c == 'x' then
      if m >= window then break end
      m = m + 1
      if c == 'x' then f = f + 1 end
    elseif c == 'f' then f = f + 1
    elseif c == 'o' then o = o + 1
    elseif c == 'r' then r = r + 1
    end
  end
  return m, f, o, r
end
`

// noteHealthScript records one outcome and takes the verdict.
//
// KEYS[1]: the account's outcomes (LIST, newest first); KEYS[2]: its
// verdict. ARGV: outcome code, window, min messages, failure warn, failure
// stop, opt-out warn, opt-out stop (fractions; 0: never). Answers {verdict
// before, verdict after, messages, failures, opt-outs, replies}. A stopped
// account stays stopped (until the keys are deleted).
var noteHealthScript = redis.NewScript(luaHealthCounts + `
local window, least = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('LPUSH', KEYS[1], ARGV[1])
-- Each message has at most a few outcomes: four per message keeps the window.
redis.call('LTRIM', KEYS[1], 0, window * 4 - 1)
local m, f, o, r = counts(KEYS[1], window)
local before = redis.call('GET', KEYS[2]) or 'ok'
local after = 'ok'
local function over(n, t)
  t = tonumber(t)
  return t > 0 and n >= t * m
end
if before == 'stopped' then
  after = 'stopped'
elseif m >= least then
  if over(f, ARGV[5]) or over(o, ARGV[7]) then
    after = 'stopped'
  elseif over(f, ARGV[4]) or over(o, ARGV[6]) then
    after = 'slowed'
  end
end
if after ~= before then redis.call('SET', KEYS[2], after) end
return {before, after, tostring(m), tostring(f), tostring(o), tostring(r)}
`)

// readHealthScript reads the verdict and the counts.
//
// KEYS as noteHealthScript's; ARGV[1]: window. Answers {verdict, messages,
// failures, opt-outs, replies}.
var readHealthScript = redis.NewScript(luaHealthCounts + `
local m, f, o, r = counts(KEYS[1], tonumber(ARGV[1]))
return {redis.call('GET', KEYS[2]) or 'ok', tostring(m), tostring(f), tostring(o), tostring(r)}
`)
