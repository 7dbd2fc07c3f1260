package recurring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"github.com/wacampaign/wacampaign/internal/campaign"
)

// Store keeps recurring campaigns in Redis.
type Store struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewStore returns a Store on the given Redis client.
func NewStore(rdb redis.UniversalClient) *Store {
	return &Store{rdb: rdb, now: time.Now}
}

// Create validates d and saves it. im checks the draft and the contacts
// exactly as Import will check them at every run (template, accounts,
// label, the CSV's header against the template, at least one valid row), so
// a definition that is saved is one whose runs can import; mistakes are
// *campaign.InputError naming the field (TooLarge for a CSV over
// MaxContactsBytes).
func (rs *Store) Create(ctx context.Context, im *campaign.Importer, d Draft) (*Definition, error) {
	v, err := validate(ctx, im, d)
	if err != nil {
		return nil, err
	}
	now := rs.now()
	id := campaign.NewID(now)
	// The definition's own keys share a slot and go in one transaction; the
	// indexes come after, so they never name a definition without its CSV.
	if _, err := rs.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, recurringSourceKey(id), d.Contacts, 0)
		p.HSet(ctx, recurringKey(id), v.fields(now))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store recurring campaign %s: %w", id, err)
	}
	if _, err := rs.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, recurringIndex, redis.Z{Score: float64(now.UnixMilli()), Member: id})
		p.SAdd(ctx, recurringActiveIndex, id)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list recurring campaign %s: %w", id, err)
	}
	return rs.Get(ctx, id)
}

// validDraft is a Draft that passed every check, as Create stores it.
type validDraft struct {
	name     string
	schedule *Schedule
	campaign *campaign.Campaign // what every run's campaign is
	contacts campaign.ContactsSummary
}

// validate checks a draft; every mistake in its fields is listed at once.
func validate(ctx context.Context, im *campaign.Importer, d Draft) (*validDraft, error) {
	if len(d.Contacts) > MaxContactsBytes {
		msg := fmt.Sprintf("the contacts file of a recurring campaign is kept in full and may be at most %d MiB; this one is %.1f MiB", MaxContactsBytes>>20, float64(len(d.Contacts))/(1<<20))
		return nil, &campaign.InputError{Msg: msg, Problems: []campaign.Problem{{Fields: []string{"contacts"}, Msg: msg}}, TooLarge: true}
	}
	var problems []campaign.Problem
	addProblem := func(err error) error {
		var in *campaign.InputError
		if !errors.As(err, &in) {
			return err
		}
		problems = append(problems, in.Problems...)
		return nil
	}
	v := &validDraft{name: strings.TrimSpace(d.Name)}
	var err error
	if v.schedule, err = ParseSchedule(d.Cron, d.CronZone); err != nil {
		if err := addProblem(err); err != nil {
			return nil, err
		}
	}
	if !d.SendAt.IsZero() {
		problems = append(problems, campaign.Problem{Fields: []string{"send_at"}, Msg: "a recurring campaign starts at the times of its cron spec; send_at does not apply"})
	}
	if v.name == "" {
		v.name = recurringDefaultName
	}
	if utf8.RuneCountInString(v.name) > recurringNameMax {
		problems = append(problems, campaign.Problem{Fields: []string{"name"}, Msg: fmt.Sprintf("name is longer than %d characters (each run's campaign adds the time of its run)", recurringNameMax)})
	}
	draft := d.Draft
	draft.SendAt = time.Time{}
	if v.campaign, err = im.Check(draft); err != nil {
		if err := addProblem(err); err != nil {
			return nil, err
		}
	}
	if len(problems) > 0 {
		return nil, &campaign.InputError{Msg: problems[0].Msg, Problems: problems}
	}
	if v.contacts, err = im.CheckContacts(ctx, d.Template, d.Contacts); err != nil {
		return nil, err
	}
	return v, nil
}

// fields are the definition hash of a valid draft created at now.
func (v *validDraft) fields(now time.Time) map[string]any {
	c := v.campaign
	accounts, _ := json.Marshal(c.Accounts)
	columns, _ := json.Marshal(v.contacts.Columns)
	keyColumns, _ := json.Marshal(v.contacts.KeyColumns)
	fields := map[string]any{
		rfName:         v.name,
		rfStatus:       string(Active),
		rfCron:         v.schedule.Spec(),
		rfCronZone:     v.schedule.Zone().String(),
		rfTemplate:     c.Template,
		rfTemplateName: c.TemplateName,
		rfAccounts:     string(accounts),
		rfLabel:        c.Label,
		rfFileUID:      c.FileUID,
		rfColumns:      string(columns),
		rfPhoneColumn:  v.contacts.PhoneColumn,
		rfKeyColumns:   string(keyColumns),
		rfRows:         v.contacts.Rows,
		rfBytes:        v.contacts.Bytes,
		rfCreatedAt:    campaign.UnixMilli(now),
		rfRuns:         0,
	}
	if c.Window != nil {
		fields[rfWindow] = campaign.EncodeWindow(c.Window)
	}
	for field, v := range map[string]*bool{rfTyping: c.TypingSimulation, rfPresence: c.PresenceSimulation} {
		if v != nil {
			fields[field] = strconv.FormatBool(*v)
		}
	}
	return fields
}

// Get reads a definition (without its runs; see Runs).
func (rs *Store) Get(ctx context.Context, id string) (*Definition, error) {
	h, err := rs.rdb.HGetAll(ctx, recurringKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("read recurring campaign %s: %w", id, err)
	}
	if len(h) == 0 {
		return nil, ErrNotFound
	}
	return definitionFromHash(id, h), nil
}

// definitionFromHash decodes a definition hash.
func definitionFromHash(id string, h map[string]string) *Definition {
	n := func(f string) int64 { v, _ := strconv.ParseInt(h[f], 10, 64); return v }
	r := &Definition{
		ID:           id,
		Name:         h[rfName],
		Status:       Status(h[rfStatus]),
		Cron:         h[rfCron],
		CronZone:     h[rfCronZone],
		Template:     h[rfTemplate],
		TemplateName: h[rfTemplateName],
		Label:        h[rfLabel],
		FileUID:      h[rfFileUID],
		Window:       campaign.DecodeWindow(h[rfWindow]),
		Contacts: campaign.ContactsSummary{
			Bytes:       n(rfBytes),
			Rows:        n(rfRows),
			PhoneColumn: h[rfPhoneColumn],
		},
		StoppedAt: campaign.ParseUnixMilli(h[rfStoppedAt]),
		RunsCount: n(rfRuns),
	}
	_ = json.Unmarshal([]byte(h[rfAccounts]), &r.Accounts)
	_ = json.Unmarshal([]byte(h[rfColumns]), &r.Contacts.Columns)
	if json.Unmarshal([]byte(h[rfKeyColumns]), &r.Contacts.KeyColumns) != nil || len(r.Contacts.KeyColumns) == 0 {
		r.Contacts.KeyColumns = []string{r.Contacts.PhoneColumn}
	}
	if r.Accounts == nil {
		r.Accounts = []string{}
	}
	if t := campaign.ParseUnixMilli(h[rfCreatedAt]); t != nil {
		r.CreatedAt = *t
	}
	if h[rfLastTick] != "" {
		t := time.Unix(n(rfLastTick), 0).UTC()
		r.LastRunAt = &t
	}
	if r.Status == Active {
		if sched, err := ParseSchedule(r.Cron, r.CronZone); err == nil {
			if next := sched.Next(anchorOf(h)); !next.IsZero() {
				next = next.UTC()
				r.NextRunAt = &next
			}
		}
	}
	return r
}

// anchorOf is the time after which ticks are due: the last claimed
// tick, or the creation (ticks before it never count), in whole seconds as
// cron's ticks are.
func anchorOf(h map[string]string) time.Time {
	if v, err := strconv.ParseInt(h[rfLastTick], 10, 64); err == nil {
		return time.Unix(v, 0)
	}
	ms, _ := strconv.ParseInt(h[rfCreatedAt], 10, 64)
	return time.Unix(ms/1000, 0)
}

// List returns definitions newest first: at most limit of them, created
// before the one named by after (empty: from the newest).
func (rs *Store) List(ctx context.Context, limit int, after string) ([]*Definition, error) {
	maxScore := "+inf"
	if after != "" {
		score, err := rs.rdb.ZScore(ctx, recurringIndex, after).Result()
		if errors.Is(err, redis.Nil) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("list recurring campaigns: %w", err)
		}
		maxScore = "(" + strconv.FormatFloat(score, 'f', 0, 64)
	}
	ids, err := rs.rdb.ZRevRangeByScore(ctx, recurringIndex, &redis.ZRangeBy{Max: maxScore, Min: "-inf", Count: int64(limit)}).Result()
	if err != nil {
		return nil, fmt.Errorf("list recurring campaigns: %w", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	if _, err := rs.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, recurringKey(id))
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list recurring campaigns: %w", err)
	}
	out := make([]*Definition, 0, len(ids))
	for i, id := range ids {
		if len(cmds[i].Val()) > 0 {
			out = append(out, definitionFromHash(id, cmds[i].Val()))
		}
	}
	return out, nil
}

// Stop stops a definition: once it answers, no scheduler claims a tick of it
// and no run task that has not begun importing starts one (both check the
// status in the same script that claims). A run already importing finishes;
// its campaign is an ordinary campaign, to pause or cancel as any other.
// Stopping a stopped definition changes nothing.
func (rs *Store) Stop(ctx context.Context, id string) (*Definition, error) {
	found, err := stopRecurringScript.Run(ctx, rs.rdb, []string{recurringKey(id)}, campaign.UnixMilli(rs.now())).Int()
	if err != nil {
		return nil, fmt.Errorf("stop recurring campaign %s: %w", id, err)
	}
	if found == 0 {
		return nil, ErrNotFound
	}
	if err := rs.rdb.SRem(ctx, recurringActiveIndex, id).Err(); err != nil {
		return nil, fmt.Errorf("stop recurring campaign %s: %w", id, err)
	}
	return rs.Get(ctx, id)
}

// Runs lists a definition's latest runs, newest first, at most limit.
func (rs *Store) Runs(ctx context.Context, id string, limit int) ([]Run, error) {
	ticks, err := rs.rdb.ZRevRange(ctx, recurringTicksKey(id), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("read runs of recurring campaign %s: %w", id, err)
	}
	if len(ticks) == 0 {
		return []Run{}, nil
	}
	recs, err := rs.rdb.HMGet(ctx, recurringRunsKey(id), ticks...).Result()
	if err != nil {
		return nil, fmt.Errorf("read runs of recurring campaign %s: %w", id, err)
	}
	out := make([]Run, 0, len(ticks))
	for i, v := range recs {
		s, _ := v.(string)
		rec, err := decodeRunRecord(s)
		if err != nil {
			continue // trimmed meanwhile
		}
		tick, _ := strconv.ParseInt(ticks[i], 10, 64)
		run := Run{Tick: time.Unix(tick, 0).UTC(), State: rec.State, CampaignID: rec.Campaign, Reason: rec.Reason}
		if at := campaign.ParseUnixMilli(rec.At); at != nil {
			run.At = *at
		}
		out = append(out, run)
	}
	return out, nil
}

// claimTick answers whether this caller claimed the tick, and the last_tick
// it replaced (to give it back with unclaimTick).
func (rs *Store) claimTick(ctx context.Context, id string, tick int64) (bool, string, error) {
	res, err := claimTickScript.Run(ctx, rs.rdb, []string{recurringKey(id)}, tick).Slice()
	if err != nil {
		return false, "", fmt.Errorf("claim tick %d of recurring campaign %s: %w", tick, id, err)
	}
	if len(res) < 2 {
		return false, "", nil
	}
	prev, _ := res[1].(string)
	return true, prev, nil
}

func (rs *Store) unclaimTick(ctx context.Context, id string, tick int64, prev string) error {
	if err := unclaimTickScript.Run(ctx, rs.rdb, []string{recurringKey(id)}, tick, prev).Err(); err != nil {
		return fmt.Errorf("give back tick %d of recurring campaign %s: %w", tick, id, err)
	}
	return nil
}

// runRecord is a run as stored in the runs hash. Times are unix ms in
// strings: Lua's cjson rounds large numbers.
type runRecord struct {
	State    RunState `json:"state"`
	Campaign string   `json:"campaign,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	At       string   `json:"at"`
	Attempt  string   `json:"attempt,omitempty"` // the task run importing it
	Lease    string   `json:"lease,omitempty"`   // an importing attempt counts as alive until then
}

func (r runRecord) encode() string { return campaign.EncodeRecord(r) }

func decodeRunRecord(s string) (runRecord, error) { return campaign.DecodeRecord[runRecord](s) }

func runKeys(id string) []string {
	return []string{recurringKey(id), recurringRunsKey(id), recurringTicksKey(id)}
}

func (rs *Store) claimRun(ctx context.Context, id string, tick int64, rec runRecord) (runClaim, runRecord, error) {
	res, err := claimRunScript.Run(ctx, rs.rdb, runKeys(id), tick, rec.encode(), campaign.UnixMilli(rs.now()), recurringRunsKept).StringSlice()
	if err != nil {
		return "", runRecord{}, fmt.Errorf("claim run %d of recurring campaign %s: %w", tick, id, err)
	}
	var existing runRecord
	if res[1] != "" {
		existing, _ = decodeRunRecord(res[1])
	}
	return runClaim(res[0]), existing, nil
}

// updateRun replaces the record attempt holds with rec (nil: drops it).
func (rs *Store) updateRun(ctx context.Context, id string, tick int64, attempt string, rec *runRecord) (bool, error) {
	encoded, counted := "", "0"
	if rec != nil {
		encoded = rec.encode()
		if rec.State == RunCreated {
			counted = "1"
		}
	}
	ok, err := updateRunScript.Run(ctx, rs.rdb, runKeys(id), tick, attempt, encoded, counted).Int()
	if err != nil {
		return false, fmt.Errorf("record run %d of recurring campaign %s: %w", tick, id, err)
	}
	return ok == 1, nil
}

func (rs *Store) renewRun(ctx context.Context, id string, tick int64, attempt string) error {
	lease := campaign.UnixMilli(rs.now().Add(recurringRunLease))
	return renewRunScript.Run(ctx, rs.rdb, []string{recurringRunsKey(id)}, tick, attempt, lease).Err()
}

// activeIDs are the definitions the schedulers look at.
func (rs *Store) activeIDs(ctx context.Context) ([]string, error) {
	ids, err := rs.rdb.SMembers(ctx, recurringActiveIndex).Result()
	if err != nil {
		return nil, fmt.Errorf("list active recurring campaigns: %w", err)
	}
	return ids, nil
}

// timingFields are what a scheduler reads of a definition.
var timingFields = []string{rfStatus, rfCron, rfCronZone, rfLastTick, rfCreatedAt}

// timings reads, in one round trip, the timingFields of each definition.
func (rs *Store) timings(ctx context.Context, ids []string) ([]map[string]string, error) {
	cmds := make([]*redis.SliceCmd, len(ids))
	if _, err := rs.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, recurringKey(id), timingFields...)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read recurring campaigns: %w", err)
	}
	out := make([]map[string]string, len(ids))
	for i, cmd := range cmds {
		out[i] = map[string]string{}
		for j, f := range timingFields {
			if v, ok := cmd.Val()[j].(string); ok {
				out[i][f] = v
			}
		}
	}
	return out, nil
}

// runDefinition reads what a run imports: the definition and its CSV.
func (rs *Store) runDefinition(ctx context.Context, id string) (map[string]string, string, error) {
	var (
		hash   *redis.MapStringStringCmd
		source *redis.StringCmd
	)
	if _, err := rs.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		hash = p.HGetAll(ctx, recurringKey(id))
		source = p.Get(ctx, recurringSourceKey(id))
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, "", fmt.Errorf("read recurring campaign %s: %w", id, err)
	}
	if len(hash.Val()) == 0 || errors.Is(source.Err(), redis.Nil) {
		return nil, "", ErrNotFound
	}
	return hash.Val(), source.Val(), nil
}
