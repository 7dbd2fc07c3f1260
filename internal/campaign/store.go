package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotFound is returned for a campaign id that does not exist.
var ErrNotFound = errors.New("campaign not found")

// Store keeps campaigns and their recipients in Redis.
type Store struct {
	rdb redis.UniversalClient
}

// NewStore returns a Store on the given Redis client.
func NewStore(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// UnixMilli is how every record of the product stores a time: unix ms as
// text (Lua's cjson would round a large number).
func UnixMilli(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// EncodeRecord is how the stores keep a record their Lua scripts read and
// write: JSON of strings (cjson would round a large number).
func EncodeRecord(v any) string {
	b, _ := json.Marshal(v) // cannot fail: records are strings only
	return string(b)
}

// DecodeRecord reads back a record EncodeRecord wrote.
func DecodeRecord[T any](s string) (T, error) {
	var r T
	err := json.Unmarshal([]byte(s), &r)
	return r, err
}

// ParseUnixMilli reads a time UnixMilli stored; nil when absent or zero.
func ParseUnixMilli(s string) *time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms == 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

// create writes a new campaign's record and, when listed, lists it among
// the campaigns (a sequence's steps are not).
func (s *Store) create(ctx context.Context, c *Campaign, phoneColumn string, listed bool) error {
	fields := campaignFields(c, phoneColumn)
	if listed {
		fields[fFixedList] = "1" // an unlisted one keeps taking recipients
	}
	// Not a transaction: the keys live in different cluster slots. The
	// record goes first, so an index never names a missing campaign.
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, campaignKey(c.ID), fields)
		if listed {
			p.ZAdd(ctx, campaignsIndex, redis.Z{Score: float64(c.CreatedAt.UnixMilli()), Member: c.ID})
		}
		p.SAdd(ctx, activeIndex, c.ID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store campaign %s: %w", c.ID, err)
	}
	return nil
}

// createOnce writes an unlisted campaign's record unless a campaign of its
// id exists (whose record, counts and all, it leaves as they are), and
// answers whether it wrote it. A campaign whose id is derived from what
// asks for it (a keyword's confirmation, confirm.go) is so made once
// however often it is asked for.
func (s *Store) createOnce(ctx context.Context, c *Campaign, phoneColumn string) (bool, error) {
	fields := campaignFields(c, phoneColumn)
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	n, err := createOnceScript.Run(ctx, s.rdb, []string{campaignKey(c.ID)}, args...).Int()
	if err != nil {
		return false, fmt.Errorf("store campaign %s: %w", c.ID, err)
	}
	// Again on a retry: the first may have stopped between the two.
	if err := s.rdb.SAdd(ctx, activeIndex, c.ID).Err(); err != nil {
		return false, fmt.Errorf("store campaign %s: %w", c.ID, err)
	}
	return n == 1, nil
}

// campaignFields are a new campaign's hash fields.
func campaignFields(c *Campaign, phoneColumn string) map[string]any {
	accounts, _ := json.Marshal(c.Accounts)
	columns, _ := json.Marshal(c.Columns)
	fields := map[string]any{
		fName:         c.Name,
		fStatus:       string(c.Status),
		fCreatedAt:    UnixMilli(c.CreatedAt),
		fImporting:    "1",
		fTemplate:     c.Template,
		fTemplateName: c.TemplateName,
		fAccounts:     string(accounts),
		fLabel:        c.Label,
		fFileUID:      c.FileUID,
		fColumns:      string(columns),
		fPhoneColumn:  phoneColumn,
		fEstimated:    0,
		fRound:        0,
		fTotal:        0,
		fDuplicates:   0,
		fRejected:     0,
		fCreditsSpent: 0,
	}
	for _, st := range States {
		fields[string(st)] = 0
	}
	if c.SendAt != nil {
		fields[fSendAt] = UnixMilli(*c.SendAt)
	}
	if c.Window != nil {
		w, _ := json.Marshal(c.Window)
		fields[fWindow] = string(w)
	}
	if c.SequenceID != "" {
		fields[fSequence] = c.SequenceID
		fields[fStep] = c.SequenceStep
	}
	if c.TestOf != "" {
		fields[fTestOf] = c.TestOf
	}
	if c.CapPolicy != "" {
		fields[fCapPolicy] = c.CapPolicy
	}
	if c.Transactional {
		fields[fTransactional] = "1"
	}
	if c.Confirms != "" {
		fields[fConfirms] = c.Confirms
	}
	addVariantFields(fields, c)
	addProviderFields(fields, c)
	return fields
}

// addProviderFields adds to a new campaign's hash fields what follows its
// provider: the key columns, whether credits are metered, the simulation
// flags.
func addProviderFields(fields map[string]any, c *Campaign) {
	keys, _ := json.Marshal(c.KeyColumns)
	fields[fKeyColumns] = string(keys)
	if !c.Credits.Metered {
		fields[fUnmetered] = "1"
	}
	if c.TypingSimulation != nil {
		fields[fTyping] = flag(*c.TypingSimulation)
	}
	if c.PresenceSimulation != nil {
		fields[fPresence] = flag(*c.PresenceSimulation)
	}
}

// readProviderFields reads what addProviderFields wrote.
func readProviderFields(c *Campaign, h map[string]string) {
	c.KeyColumns = storedKeyColumns(h)
	c.TypingSimulation, c.PresenceSimulation = parseFlag(h[fTyping]), parseFlag(h[fPresence])
	c.Credits.Metered = h[fUnmetered] != "1"
	if !c.Credits.Metered {
		c.Credits.Status = CreditsNotMetered
	}
}

// flag is a boolean as the campaign hash keeps it.
func flag(on bool) string {
	if on {
		return "1"
	}
	return "0"
}

// parseFlag reads a flag; nil when absent.
func parseFlag(s string) *bool {
	if s == "" {
		return nil
	}
	on := s == "1"
	return &on
}

// storedKeyColumns reads fKeyColumns; a campaign from before recipient
// kinds is addressed by its phone column.
func storedKeyColumns(h map[string]string) []string {
	var keys []string
	if json.Unmarshal([]byte(h[fKeyColumns]), &keys) != nil || len(keys) == 0 {
		keys = []string{h[fPhoneColumn]}
	}
	return keys
}

// Get reads a campaign with its counters and listed rejected rows.
func (s *Store) Get(ctx context.Context, id string) (*Campaign, error) {
	var (
		hash     *redis.MapStringStringCmd
		rejected *redis.StringSliceCmd
	)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		hash = p.HGetAll(ctx, campaignKey(id))
		rejected = p.LRange(ctx, rejectedKey(id), 0, -1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read campaign %s: %w", id, err)
	}
	if len(hash.Val()) == 0 {
		return nil, ErrNotFound
	}
	c := campaignFromHash(id, hash.Val())
	c.Rejected = make([]RejectedRow, 0, len(rejected.Val()))
	for _, item := range rejected.Val() {
		var r RejectedRow
		if json.Unmarshal([]byte(item), &r) == nil {
			c.Rejected = append(c.Rejected, r)
		}
	}
	return c, nil
}

// List returns campaigns newest first: at most limit of them, created before
// the campaign named by after (empty: from the newest).
func (s *Store) List(ctx context.Context, limit int, after string) ([]*Campaign, error) {
	maxScore := "+inf"
	if after != "" {
		score, err := s.rdb.ZScore(ctx, campaignsIndex, after).Result()
		if errors.Is(err, redis.Nil) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("list campaigns: %w", err)
		}
		maxScore = "(" + strconv.FormatFloat(score, 'f', 0, 64)
	}
	ids, err := s.rdb.ZRevRangeByScore(ctx, campaignsIndex, &redis.ZRangeBy{
		Max: maxScore, Min: "-inf", Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, campaignKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	out := make([]*Campaign, 0, len(ids))
	for i, id := range ids {
		if len(cmds[i].Val()) == 0 {
			continue // deleted meanwhile
		}
		c := campaignFromHash(id, cmds[i].Val())
		c.Rejected = nil // the list stays light; GET /v1/campaigns/{id} has them
		out = append(out, c)
	}
	return out, nil
}

// Active returns the campaigns that have not ended (running, scheduled,
// paused). Ended ones are skipped (the retention pass takes them off the
// index); drafts stay listed but are not returned: they need nothing until
// they start.
func (s *Store) Active(ctx context.Context) ([]*Campaign, error) {
	ids, err := s.rdb.SMembers(ctx, activeIndex).Result()
	if err != nil {
		return nil, fmt.Errorf("list active campaigns: %w", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, campaignKey(id))
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list active campaigns: %w", err)
	}
	var out []*Campaign
	for i, id := range ids {
		h := cmds[i].Val()
		st := Status(h[fStatus])
		if len(h) == 0 || st == StatusCompleted || st == StatusCancelled {
			continue // the retention pass takes it off the index (retention.go)
		}
		if st != StatusDraft {
			out = append(out, campaignFromHash(id, h))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

func campaignFromHash(id string, h map[string]string) *Campaign {
	n := func(f string) int64 { v, _ := strconv.ParseInt(h[f], 10, 64); return v }
	c := &Campaign{
		ID:           id,
		Name:         h[fName],
		Status:       Status(h[fStatus]),
		Reason:       h[fReason],
		SendAt:       ParseUnixMilli(h[fSendAt]),
		StartedAt:    ParseUnixMilli(h[fStartedAt]),
		FinishedAt:   ParseUnixMilli(h[fFinishedAt]),
		Importing:    h[fImporting] == "1",
		Template:     h[fTemplate],
		TemplateName: h[fTemplateName],
		Label:        h[fLabel],
		FileUID:      h[fFileUID],
		PhoneColumn:  h[fPhoneColumn],
		SequenceID:   h[fSequence],
		Counts: Counts{
			Total:       n(fTotal),
			Queued:      n(string(StateQueued)),
			Sending:     n(string(StateSending)),
			Unconfirmed: n(string(StateUnconfirmed)),
			Sent:        n(string(StateSent)),
			Delivered:   n(string(StateDelivered)),
			Read:        n(string(StateRead)),
			Failed:      n(string(StateFailed)),
			Skipped:     n(string(StateSkipped)),
			Unknown:     n(string(StateUnknown)),
		},
		Duplicates:    n(fDuplicates),
		RejectedCount: n(fRejected),
	}
	readVariantFields(c, h)
	if t := ParseUnixMilli(h[fCreatedAt]); t != nil {
		c.CreatedAt = *t
	}
	_ = json.Unmarshal([]byte(h[fAccounts]), &c.Accounts)
	_ = json.Unmarshal([]byte(h[fColumns]), &c.Columns)
	c.Window = DecodeWindow(h[fWindow])
	c.SequenceStep = int(n(fStep))
	if c.Accounts == nil {
		c.Accounts = []string{}
	}
	readProviderFields(c, h)
	c.Credits.Spent = n(fCreditsSpent)
	c.Credits.Estimated = n(fEstimated)
	if c.Counts.Total > 0 {
		// The queued share of the estimate, rounded up.
		c.Credits.Needed = (c.Credits.Estimated*c.Counts.Queued + c.Counts.Total - 1) / c.Counts.Total
	}
	c.Funnel = newFunnel(c.Counts, n(fUndelivered), audienceFigures{replied: n(fReplied), optedOut: n(fOptedOut)})
	c.Suppressed = n(fSuppressed)
	c.CapPolicy = h[fCapPolicy]
	c.Transactional = h[fTransactional] == "1"
	c.Tracking.Polling = "normal"
	if at := ParseUnixMilli(h[fPollSlowedAt]); at != nil && time.Since(*at) < pollSlowedShown {
		c.Tracking.Polling = "slowed"
		c.Tracking.Reason = "status polls wait for the API-call budget: " + h[fPollBasis]
	}
	if end := ParseUnixMilli(h[fPlanEnd]); end != nil && c.Counts.Queued > 0 && end.After(time.Now()) {
		// As planned; an overdue plan says nothing about when (the
		// forecast, forecast.go, tells what it waits for).
		c.ETA = end
	}
	c.TestOf = h[fTestOf]
	c.Confirms = h[fConfirms]
	return c
}

// accountsOf reads a campaign's sender accounts.
func (s *Store) accountsOf(ctx context.Context, id string) ([]string, error) {
	v, err := s.rdb.HGet(ctx, campaignKey(id), fAccounts).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read campaign %s: %w", id, err)
	}
	var accounts []string
	_ = json.Unmarshal([]byte(v), &accounts)
	return accounts, nil
}

// sendingSpec reads what every recipient of a campaign shares.
func (s *Store) sendingSpec(ctx context.Context, id string) (map[string]string, error) {
	names := []string{fName, fCreatedAt, fTemplate, fAccounts, fLabel, fFileUID, fColumns, fPhoneColumn, fWindow, fTestOf, fKeyColumns, fTyping, fPresence, fTransactional, fCapPolicy, fVariants, fWinner, fConfirms, fFixedList}
	h, err := s.rdb.HMGet(ctx, campaignKey(id), names...).Result()
	if err != nil {
		return nil, fmt.Errorf("read campaign %s: %w", id, err)
	}
	if h[0] == nil {
		return nil, ErrNotFound
	}
	out := make(map[string]string, len(names))
	for i, v := range h {
		if str, ok := v.(string); ok {
			out[names[i]] = str
		}
	}
	return out, nil
}

// pollSlowedShown is how long a campaign shows that its polls waited for the
// budget after the last time one did.
const pollSlowedShown = 10 * time.Minute

// DecodeWindow reads a window EncodeWindow stored ("" or broken: none).
func DecodeWindow(s string) *Window {
	if s == "" {
		return nil
	}
	var w Window
	if json.Unmarshal([]byte(s), &w) != nil {
		return nil
	}
	return &w
}

// notePlanEnd records that a recipient is planned to go out at t.
func (s *Store) notePlanEnd(ctx context.Context, id string, t time.Time) error {
	if t.IsZero() {
		return nil
	}
	if err := notePlanEndScript.Run(ctx, s.rdb, []string{campaignKey(id)}, t.UnixMilli()).Err(); err != nil {
		return fmt.Errorf("note the plan of campaign %s: %w", id, err)
	}
	return nil
}

// sendGate is what a send task checks first: whether its campaign is
// sending, in which round, and whether the request creating it is still
// being read (held: nothing may be sent before the upload has arrived whole).
type sendGate struct {
	status  Status
	round   int64
	held    bool
	winner  string     // the A/B winner once chosen ("" before, or no winner mode)
	started *time.Time // when its first recipient was claimed
}

// gate reads a campaign's status and round (ErrNotFound when it is gone).
func (s *Store) gate(ctx context.Context, id string) (sendGate, error) {
	v, err := s.rdb.HMGet(ctx, campaignKey(id), fStatus, fRound, fHeld, fWinner, fStartedAt).Result()
	if err != nil {
		return sendGate{}, fmt.Errorf("read campaign %s: %w", id, err)
	}
	status, _ := v[0].(string)
	if status == "" {
		return sendGate{}, ErrNotFound
	}
	round, _ := v[1].(string)
	g := sendGate{status: Status(status)}
	g.round, _ = strconv.ParseInt(round, 10, 64)
	g.held = v[2] == "1"
	if raw, _ := v[3].(string); raw != "" {
		var w Winner
		_ = json.Unmarshal([]byte(raw), &w)
		g.winner = w.Variant
	}
	started, _ := v[4].(string)
	g.started = ParseUnixMilli(started)
	return g, nil
}

// setReason is best effort: the reason is for people, the wait happens anyway.
func (s *Store) setReason(ctx context.Context, id, reason string) {
	_ = setReasonScript.Run(ctx, s.rdb, []string{campaignKey(id)}, reason).Err()
}

// noteSlowPolling shows on the campaign that its status polls wait for the
// API-call budget.
func (s *Store) noteSlowPolling(ctx context.Context, id, basis string) {
	_ = s.rdb.HSet(ctx, campaignKey(id), fPollSlowedAt, UnixMilli(time.Now()), fPollBasis, basis).Err()
}

// QueuedSends is how many sends the active campaigns still have to make:
// the API calls the status polls must leave them.
func (s *Store) QueuedSends(ctx context.Context) (int64, error) {
	active, err := s.Active(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, c := range active {
		n += c.Counts.Queued + c.Counts.Sending
	}
	return n, nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}
