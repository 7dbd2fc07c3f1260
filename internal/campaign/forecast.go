package campaign

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
)

// The forecast of a campaign: what its queued recipients still cost
// against the credits the ledger holds, when the last of them is expected
// to go out, and, for each thing they wait for, why and until when. A
// campaign that waits says so instead of showing an ETA of "now" that keeps
// moving: while nobody can name the end of a wait (credits to be bought, an
// account paused by a person) it has no ETA at all.
//
// For a draft the forecast is that of starting it now (or at its send_at).

// Wait is one thing a campaign's queued recipients wait for.
type Wait struct {
	Cause  string `json:"cause"`  // one of the Wait* causes
	Reason string `json:"reason"` // for people, with the numbers
	// Until is when the wait ends; absent when nobody can say.
	Until      *time.Time `json:"until,omitempty"`
	Recipients int64      `json:"recipients"` // how many it holds back
}

// Causes of a Wait.
const (
	WaitSchedule = "schedule" // a scheduled campaign before its send_at
	WaitPaused   = "paused"   // the campaign is paused
	WaitWindow   = "window"   // recipients outside their send window
	WaitQuota    = "quota"    // not enough credits for every queued recipient
	WaitAccounts = "accounts" // no sender account of the campaign may send
	WaitPacing   = "pacing"   // the accounts' sends are booked until later
)

// QueueSplit splits a campaign's queued recipients.
type QueueSplit struct {
	Due    int64 `json:"due"`    // may go out now, at their accounts' pace
	Window int64 `json:"window"` // outside their send window now
	// Approximate: counted on the first maxZoneScan queued recipients and
	// scaled to all of them.
	Approximate bool `json:"approximate,omitempty"`
}

// ForecastDeps are what a forecast reads.
type ForecastDeps struct {
	Store    *Store
	Pacer    *quota.Pacer
	Accounts *quota.Accounts
	Ledger   *quota.CreditLedger
	// Caps are the provider's: whether messages cost credits at all.
	Caps sender.Capabilities
	// QuotaSyncEvery is how often the ledger reads the quota again
	// (QUOTA_SYNC_INTERVAL): when added credits are seen.
	QuotaSyncEvery time.Duration
}

// Forecaster makes forecasts. It is safe for concurrent use.
type Forecaster struct {
	d     ForecastDeps
	now   func() time.Time
	zones zoneCache
}

// NewForecaster returns a Forecaster.
func NewForecaster(d ForecastDeps) *Forecaster {
	return &Forecaster{d: d, now: time.Now}
}

// outlook is what the forecasts of one request share, read once.
type outlook struct {
	now      time.Time
	balance  quota.Balance
	accounts map[string]quota.Account
}

func (f *Forecaster) look(ctx context.Context) (*outlook, error) {
	o := &outlook{now: f.now().UTC(), accounts: map[string]quota.Account{}}
	var err error
	if o.balance, err = f.d.Ledger.Balance(ctx); err != nil {
		return nil, err
	}
	list, err := f.d.Accounts.List(ctx, nil)
	if err != nil {
		return nil, err
	}
	for _, a := range list {
		o.accounts[a.Phone] = a
	}
	return o, nil
}

// Annotate fills in the forecast of each campaign: Credits.Available and
// Shortfall, ETA, Waiting and Queue.
func (f *Forecaster) Annotate(ctx context.Context, cs ...*Campaign) error {
	if len(cs) == 0 {
		return nil
	}
	o, err := f.look(ctx)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := f.annotate(ctx, o, c); err != nil {
			return err
		}
	}
	return nil
}

func (f *Forecaster) annotate(ctx context.Context, o *outlook, c *Campaign) error {
	f.credits(o, c)
	planned := c.ETA // the store's: the plan's end, when still ahead
	c.ETA, c.Waiting, c.Queue = nil, nil, nil
	pending := c.Counts.Queued
	if pending == 0 || c.Status == StatusCompleted || c.Status == StatusCancelled {
		return nil
	}
	var split []zoneShare
	if c.Window != nil {
		var err error
		if split, c.Queue, err = f.windowSplit(ctx, c, o.now); err != nil {
			return err
		}
	}
	if c.Status == StatusPaused {
		reason := c.Reason
		if reason == "" {
			reason = "paused"
		}
		c.Waiting = []Wait{{Cause: WaitPaused, Reason: reason + "; nothing is sent until it is resumed", Recipients: pending}}
		return nil
	}
	start := o.now
	if (c.Status == StatusDraft || c.Status == StatusScheduled) && c.SendAt != nil && c.SendAt.After(o.now) {
		start = *c.SendAt
		if c.Status == StatusScheduled {
			c.Waiting = append(c.Waiting, Wait{Cause: WaitSchedule, Until: ptr(start), Recipients: pending,
				Reason: "scheduled: it starts " + start.Format(reasonTime)})
		}
	}
	lanes, accountsWait, err := f.lanes(ctx, o, c)
	if err != nil {
		return err
	}
	if accountsWait != nil {
		c.Waiting = append(c.Waiting, *accountsWait)
	}
	if w := f.quotaWait(o, c); w != nil {
		c.Waiting = append(c.Waiting, *w)
	}
	if len(lanes) == 0 {
		return nil // nothing can go: the accounts' wait says why
	}
	c.ETA = sendingTimes(c, lanes, split, start, planned, o.now)
	return nil
}

// sendingTimes adds the waits for the accounts' pace and the send window
// to c and answers its ETA: after every wait with an end, at the pace of
// its lanes, within the window in each zone; nil while a wait has none.
func sendingTimes(c *Campaign, lanes []lane, split []zoneShare, start time.Time, planned *time.Time, now time.Time) *time.Time {
	pending := c.Counts.Queued
	begin, known := start, true
	for _, w := range c.Waiting {
		if w.Until == nil {
			known = false
		} else if w.Until.After(begin) {
			begin = *w.Until
		}
	}
	pace := paceOf(lanes, pending, begin, planned, c.Status == StatusRunning && begin.Equal(now))
	if pace.first.After(begin.Add(max(pace.step, time.Second))) {
		c.Waiting = append(c.Waiting, Wait{Cause: WaitPacing, Until: ptr(pace.first), Recipients: pending,
			Reason: fmt.Sprintf("waiting for the sender accounts' pace: their sends are booked until %s (one message every %s per account)",
				pace.first.Format(reasonTime), pace.step)})
	}
	if w := windowWait(c, split, now); w != nil {
		c.Waiting = append(c.Waiting, *w)
	}
	if !known {
		return nil // a wait without an end: no ETA anyone could stand by
	}
	eta := pace.end
	for _, z := range split {
		n := (z.n + int64(len(lanes)) - 1) / int64(len(lanes))
		if end := windowFinish(c.Window, z.loc, pace.first, time.Duration(n)*pace.step); end.After(eta) {
			eta = end
		}
	}
	return &eta
}

// reasonTime is how times read in reasons: the API's times are UTC.
const reasonTime = "Mon 2 Jan 15:04 MST"

func ptr[T any](v T) *T { return &v }

// credits fills in what the ledger holds against what the campaign needs.
func (f *Forecaster) credits(o *outlook, c *Campaign) {
	c.Credits.Available, c.Credits.Shortfall = nil, nil
	if !f.d.Caps.MeteredCredits || !o.balance.Synced {
		return
	}
	c.Credits.Available = ptr(o.balance.Available)
	c.Credits.Shortfall = ptr(max(0, c.Credits.Needed-o.balance.Available))
}

// quotaWait is the wait of the recipients the available credits do not
// cover: they wait until credits are added, which nobody can date.
func (f *Forecaster) quotaWait(o *outlook, c *Campaign) *Wait {
	if c.Credits.Shortfall == nil || *c.Credits.Shortfall == 0 {
		return nil
	}
	// The recipients the available credits cover, at the campaign's
	// average cost a message; the rest are held.
	covered := *c.Credits.Available
	if c.Credits.Estimated > 0 {
		covered = *c.Credits.Available * c.Counts.Total / c.Credits.Estimated
	}
	held := max(0, c.Counts.Queued-covered)
	reason := fmt.Sprintf("waiting for quota: the queued recipients need %s credits and %s are available; %s recipients wait until credits are added",
		thousands(c.Credits.Needed), thousands(*c.Credits.Available), thousands(held))
	if f.d.QuotaSyncEvery > 0 {
		reason += " (the quota is read again every " + f.d.QuotaSyncEvery.String() + ")"
	}
	return &Wait{Cause: WaitQuota, Reason: reason, Recipients: held}
}

// lane is a sender account the campaign's recipients may go through.
type lane struct {
	interval time.Duration
	tail     time.Time // the last send booked on it, by any campaign
}

// lanes are the campaign's usable sender accounts (the provider's default
// one when it names none); when none is usable, the wait says why and
// until when the first comes back, and the lanes are those that will.
func (f *Forecaster) lanes(ctx context.Context, o *outlook, c *Campaign) ([]lane, *Wait, error) {
	phones := c.Accounts
	if len(phones) == 0 {
		phones = []string{""}
	}
	var now, later []lane // usable now; disconnected, tried again later
	var why []string
	var back *time.Time
	for _, phone := range phones {
		a, known := o.accounts[phone]
		var retry time.Time
		switch {
		case known && a.Status == quota.AccountPaused:
			why = append(why, "sender account "+phone+" is paused")
			continue
		case known && a.Status == quota.AccountDisconnected && a.Since != nil && o.now.Before(a.Since.Add(quota.DisconnectRecheck)):
			retry = a.Since.Add(quota.DisconnectRecheck)
			why = append(why, "sender account "+phone+" is disconnected ("+a.Reason+"); it is tried again "+retry.Format(reasonTime))
			if back == nil || retry.Before(*back) {
				back = &retry
			}
		}
		l, err := f.lane(ctx, phone)
		if err != nil {
			return nil, nil, err
		}
		if retry.IsZero() {
			now = append(now, l)
			continue
		}
		if retry.After(l.tail) {
			l.tail = retry
		}
		later = append(later, l)
	}
	if len(now) > 0 {
		return now, nil, nil
	}
	reason := "waiting for a sender account: " + strings.Join(why, "; ")
	if back == nil {
		reason += "; nothing is sent until one is resumed"
	}
	return later, &Wait{Cause: WaitAccounts, Reason: reason, Until: back, Recipients: c.Counts.Queued}, nil
}

// lane reads an account's pace: its interval and the last send booked.
func (f *Forecaster) lane(ctx context.Context, phone string) (lane, error) {
	interval, err := f.d.Pacer.Interval(ctx, phone)
	if err != nil {
		return lane{}, err
	}
	tail, err := f.d.Pacer.PlanTail(ctx, phone)
	if err != nil {
		return lane{}, err
	}
	return lane{interval: interval, tail: tail}, nil
}

// pace is when a campaign's pending recipients go out on its lanes: the
// first and the last, and the widest gap between two of one account.
type pace struct {
	first, end time.Time
	step       time.Duration
}

// paceOf spreads pending recipients over the lanes from begin, each lane
// after what is booked on it already. booked is the end of the campaign's
// own plan when its recipients are on the accounts' timelines already (a
// running campaign moving as planned).
func paceOf(lanes []lane, pending int64, begin time.Time, planned *time.Time, booked bool) pace {
	perLane := (pending + int64(len(lanes)) - 1) / int64(len(lanes))
	var p pace
	for i, l := range lanes {
		p.step = max(p.step, l.interval)
		free := begin
		if l.tail.After(free) {
			free = l.tail
		}
		end := free.Add(time.Duration(perLane) * l.interval)
		if i == 0 || free.Before(p.first) {
			p.first = free
		}
		if end.After(p.end) {
			p.end = end
		}
	}
	if booked && planned != nil {
		p.end = *planned
		p.first = planned.Add(-time.Duration(perLane-1) * p.step)
		if p.first.Before(begin) {
			p.first = begin
		}
	}
	return p
}

// zoneShare is how many queued recipients live in one zone.
type zoneShare struct {
	loc *time.Location
	n   int64
}

// windowWait is the wait of the recipients outside their window now: until
// the first zone that holds some opens.
func windowWait(c *Campaign, split []zoneShare, now time.Time) *Wait {
	if c.Queue == nil || c.Queue.Window == 0 {
		return nil
	}
	var first time.Time
	var firstLoc *time.Location
	for _, z := range split {
		if open := c.Window.NextOpen(now, z.loc); open.After(now) && (first.IsZero() || open.Before(first)) {
			first, firstLoc = open, z.loc
		}
	}
	about := ""
	if c.Queue.Approximate {
		about = "about "
	}
	reason := fmt.Sprintf("outside the send window until %s in the recipients' local time (%s); %s%s recipients wait for it",
		first.In(firstLoc).Format("Mon 15:04"), first.UTC().Format(reasonTime), about, thousands(c.Queue.Window))
	return &Wait{Cause: WaitWindow, Reason: reason, Until: ptr(first.UTC()), Recipients: c.Queue.Window}
}

// windowFinish is when d of sending ends that starts at from and may only
// run while w is open in loc.
func windowFinish(w *Window, loc *time.Location, from time.Time, d time.Duration) time.Time {
	t := w.NextOpen(from, loc)
	for i := 0; i < 3660 && d > 0; i++ { // ten years of days: the bound of a loop that cannot run away
		local := t.In(loc)
		closes := time.Date(local.Year(), local.Month(), local.Day(), int(w.end/time.Hour), int(w.end%time.Hour/time.Minute), 0, 0, loc)
		if !t.Add(d).After(closes) {
			return t.Add(d)
		}
		d -= closes.Sub(t)
		t = w.NextOpen(closes, loc)
	}
	return t
}

// thousands writes n with thousands separators: 2412 → "2,412".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
