package campaign

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/templating"
)

// Recurring campaigns: a saved definition (template, accounts, the contacts
// CSV) and a cron spec; every tick of the spec starts a run, which is an
// ordinary campaign imported from the saved CSV.
//
// Any number of worker replicas run a RecurringScheduler, so a tick must
// start exactly one run however many schedulers see it due. Two guards make
// sure of it, each enough alone:
//
//  1. The scheduler claims a tick before it enqueues the run: one Lua script
//     moves the definition's last_tick forward, and only forward, so of all
//     the schedulers that see a tick due exactly one moves last_tick to it.
//  2. The run task records its tick in the definition's runs hash (HSETNX
//     semantics, in a script) before it imports, so a task that is run
//     twice (asynq runs tasks at least once), or enqueued twice after a
//     rollback, imports once.
//
// A scheduler that was down (or a definition created long ago) starts only
// the latest tick it missed, never a backlog: a list messaged ten times in a
// row after an outage is worse than one missed run.
//
// Redis layout (the {id} hash tag keeps one definition's keys in one cluster
// slot, so a script may touch them together):
//
//	wac:recurring            ZSET  definition id → created at (unix ms), for listing
//	wac:recurring:active     SET   definitions the schedulers look at
//	wac:r:{id}               HASH  the definition, its status, last_tick (unix s) and runs (campaigns created)
//	wac:r:{id}:source        STRING the contacts CSV as uploaded
//	wac:r:{id}:runs          HASH  tick (unix s) → run record (JSON): importing, created (with the campaign id), failed
//	wac:r:{id}:ticks         ZSET  the ticks of the runs hash, to list them newest first and trim the oldest

// TypeRecurringRun is the task that imports one run of a recurring campaign.
const TypeRecurringRun = "campaign:recurring-run"

// MaxRecurringContactsBytes caps the contacts CSV of a recurring campaign:
// unlike a campaign's upload, which is streamed into recipients, it is kept
// whole in Redis as one string and read whole at every run.
const MaxRecurringContactsBytes = 32 << 20

// ErrRecurringNotFound is returned for a recurring campaign id that does not
// exist.
var ErrRecurringNotFound = errors.New("recurring campaign not found")

const (
	recurringIndex       = keyPrefix + "recurring"
	recurringActiveIndex = keyPrefix + "recurring:active"

	// recurringNameMax leaves room in a campaign's name for the " · <tick>"
	// each run appends.
	recurringNameMax     = maxNameLength - 40
	recurringDefaultName = "Recurring campaign"

	// recurringRunsKept bounds the runs hash of a definition (a per-second
	// spec would otherwise grow it forever). A run task for a tick older than
	// every kept record cannot tell whether it ran, and does nothing.
	recurringRunsKept = 1000

	// recurringRunLease is how long an importing run counts as alive without
	// a heartbeat; the importing attempt renews it every third of it. A task
	// that finds a lapsed one takes the run over (see takeOver).
	recurringRunLease = 30 * time.Second

	// recurringRunTimeout is the asynq timeout of a run task: a 32 MiB CSV is
	// a million recipients to import and enqueue (like a start task).
	recurringRunTimeout  = 30 * time.Minute
	recurringRunMaxRetry = 20

	// recurringRunNameLayout is how a run's tick appears in its campaign's
	// name, in the definition's zone; the seconds are there because specs
	// may have a seconds field.
	recurringRunNameLayout = "2006-01-02 15:04:05 MST"
)

func recurringKey(id string) string       { return keyPrefix + "r:{" + id + "}" }
func recurringSourceKey(id string) string { return recurringKey(id) + ":source" }
func recurringRunsKey(id string) string   { return recurringKey(id) + ":runs" }
func recurringTicksKey(id string) string  { return recurringKey(id) + ":ticks" }

// Fields of the definition hash.
const (
	rfName         = "name"
	rfStatus       = "status"
	rfCron         = "cron"
	rfCronZone     = "cron_zone"
	rfTemplate     = "template"
	rfTemplateName = "template_name"
	rfAccounts     = "accounts"
	rfLabel        = "label"
	rfFileUID      = "file_uid"
	rfWindow       = "window"
	rfColumns      = "columns"
	rfPhoneColumn  = "phone_column"
	rfRows         = "contacts_rows"
	rfBytes        = "contacts_bytes"
	rfCreatedAt    = "created_at" // unix ms
	rfStoppedAt    = "stopped_at" // unix ms
	rfLastTick     = "last_tick"  // unix s of the latest tick a scheduler claimed; absent: none yet
	rfRuns         = "runs"       // campaigns the runs created
)

// RecurringStatus is whether a definition still starts runs.
type RecurringStatus string

// Statuses of a recurring campaign.
const (
	RecurringActive  RecurringStatus = "active"
	RecurringStopped RecurringStatus = "stopped"
)

// RunState is where one run of a recurring campaign is.
type RunState string

// States of a run.
const (
	RunImporting RunState = "importing" // a worker is importing the contacts
	RunCreated   RunState = "created"   // its campaign exists (CampaignID)
	RunFailed    RunState = "failed"    // no campaign could be made (Reason)
)

// Recurring is a recurring campaign as the API shows it.
type Recurring struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Status       RecurringStatus   `json:"status"`
	Cron         string            `json:"cron"`
	CronZone     string            `json:"cron_zone"`
	Template     string            `json:"template"`
	TemplateName string            `json:"template_name,omitempty"`
	Accounts     []string          `json:"accounts"`
	Label        string            `json:"label,omitempty"`
	FileUID      string            `json:"file_uid,omitempty"`
	Window       *Window           `json:"window,omitempty"`
	Contacts     RecurringContacts `json:"contacts"`
	CreatedAt    time.Time         `json:"created_at"`
	StoppedAt    *time.Time        `json:"stopped_at,omitempty"`
	// LastRunAt is the latest tick a run was started for.
	LastRunAt *time.Time `json:"last_run_at,omitempty"`
	// NextRunAt is the next tick; in the past when it is due and no
	// scheduler has picked it up yet; absent once stopped.
	NextRunAt *time.Time `json:"next_run_at"`
	RunsCount int64      `json:"runs_count"` // campaigns its runs created
	// Runs are the latest runs, newest first (GET of one definition only).
	Runs []RecurringRun `json:"runs,omitempty"`
}

// RecurringContacts describes the saved contacts file.
type RecurringContacts struct {
	Bytes       int64    `json:"bytes"`
	Rows        int64    `json:"rows"` // distinct valid recipients when it was saved
	Columns     []string `json:"columns"`
	PhoneColumn string   `json:"phone_column"`
}

// RecurringRun is one run: the tick it is for, and the campaign it made.
type RecurringRun struct {
	Tick       time.Time `json:"tick"`
	State      RunState  `json:"state"`
	CampaignID string    `json:"campaign_id,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	At         time.Time `json:"at"` // when it got to State
}

// RecurringDraft is what a user asks for when creating a recurring campaign.
// Draft carries what every run's campaign gets; its SendAt must be zero (the
// cron spec says when runs start).
type RecurringDraft struct {
	Draft
	Cron     string // 5 fields, or 6 with seconds first; may start with CRON_TZ=<zone>
	CronZone string // IANA zone the spec's times are in; empty: UTC
	Contacts []byte // the CSV, saved and imported at every run
}

// cronParser reads standard 5-field specs, an optional leading seconds field
// (second-level schedules), and descriptors such as @daily.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// CronSchedule is a parsed cron spec in its zone.
type CronSchedule struct {
	spec      *cron.SpecSchedule
	zone      *time.Location
	everyHour bool // the hour field is "*": it fires in a repeated hour again
	text      string
}

// ParseCronSchedule validates a spec and zone as a user wrote them; mistakes
// are *InputError naming cron or cron_zone.
func ParseCronSchedule(spec, zone string) (*CronSchedule, error) {
	spec = strings.Join(strings.Fields(spec), " ")
	zone = strings.TrimSpace(zone)
	if spec == "" {
		return nil, inputErr("cron", `a cron spec is required, like "0 9 * * mon-fri" (minute hour day-of-month month day-of-week; a leading seconds field is optional)`)
	}
	if first, rest, _ := strings.Cut(spec, " "); strings.HasPrefix(first, "CRON_TZ=") || strings.HasPrefix(first, "TZ=") {
		_, named, _ := strings.Cut(first, "=")
		if zone != "" && zone != named {
			return nil, inputErr("cron_zone", fmt.Sprintf("the cron spec names the zone %q and cron_zone is %q; give the zone once", named, zone))
		}
		zone, spec = named, rest
	}
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil || zone == "Local" {
		return nil, inputErr("cron_zone", fmt.Sprintf("cron_zone %q is not an IANA time zone, like Europe/Madrid or America/New_York", zone))
	}
	if strings.HasPrefix(spec, "@every") {
		return nil, inputErr("cron", "@every is not supported: runs happen at clock times; write a cron spec such as \"*/15 * * * *\"")
	}
	parsed, err := cronParser.Parse(spec)
	if err != nil {
		return nil, inputErr("cron", fmt.Sprintf("cron %q: %v; write minute hour day-of-month month day-of-week, with an optional leading seconds field", spec, err))
	}
	ss, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, inputErr("cron", fmt.Sprintf("cron %q is not a clock-time spec", spec))
	}
	ss.Location = loc
	const allHours = 1<<24 - 1
	s := &CronSchedule{spec: ss, zone: loc, everyHour: ss.Hour&allHours == allHours, text: spec}
	if s.Next(time.Now()).IsZero() {
		return nil, inputErr("cron", fmt.Sprintf("cron %q never fires (a date that does not exist, like 30 February?)", spec))
	}
	return s, nil
}

// Spec is the spec without a zone prefix; Zone is the IANA zone.
func (s *CronSchedule) Spec() string { return s.text }

// Zone is the zone the spec's clock times are in.
func (s *CronSchedule) Zone() *time.Location { return s.zone }

// Next is the first tick after t, or the zero time if there is none within
// five years. A spec with fixed hours fires once per wall-clock time: in the
// hour a DST change repeats, cron would fire "30 2 * * *" twice, and a daily
// campaign would message its list twice that night; as in Vixie cron, only
// specs that fire every hour fire in the repeated hour again. (A wall time
// that a DST change skips, 02:30 on the night clocks jump from 02:00 to
// 03:00, has no tick: cron's behaviour, kept.)
func (s *CronSchedule) Next(t time.Time) time.Time {
	for {
		n := s.spec.Next(t)
		if n.IsZero() || !s.repeatsWallClock(n) {
			return n
		}
		t = n
	}
}

// repeatsWallClock says whether tick t is the second occurrence of its wall
// clock time (the hour after a fall-back), for a spec with fixed hours.
func (s *CronSchedule) repeatsWallClock(t time.Time) bool {
	if s.everyHour {
		return false
	}
	local := t.In(s.zone)
	_, now := local.Zone()
	_, before := t.Add(-12 * time.Hour).In(s.zone).Zone()
	if before <= now {
		return false
	}
	earlier := t.Add(-time.Duration(before-now) * time.Second).In(s.zone)
	const wall = "2006-01-02T15:04:05"
	return earlier.Format(wall) == local.Format(wall)
}

// Latest is the latest tick in (after, now], or the zero time when there is
// none: what a scheduler starts, so that a long outage starts one run, not a
// backlog. It searches back from now in doubling spans, so a per-second spec
// after a week's outage costs a handful of Next calls, not 600,000.
func (s *CronSchedule) Latest(after, now time.Time) time.Time {
	if !now.After(after) {
		return time.Time{}
	}
	for span := time.Second; ; span *= 2 {
		from := now.Add(-span)
		if !from.After(after) {
			from = after
		}
		if t := s.Next(from); !t.IsZero() && !t.After(now) {
			for {
				n := s.Next(t)
				if n.IsZero() || n.After(now) {
					return t
				}
				t = n
			}
		}
		if from.Equal(after) {
			return time.Time{}
		}
	}
}

// RecurringStore keeps recurring campaigns in Redis.
type RecurringStore struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewRecurringStore returns a RecurringStore on the given Redis client.
func NewRecurringStore(rdb redis.UniversalClient) *RecurringStore {
	return &RecurringStore{rdb: rdb, now: time.Now}
}

// Create validates d and saves it. im checks the draft and the contacts
// exactly as Import will check them at every run (template, accounts,
// label, the CSV's header against the template, at least one valid row), so
// a definition that is saved is one whose runs can import; mistakes are
// *InputError naming the field (TooLarge for a CSV over
// MaxRecurringContactsBytes).
func (rs *RecurringStore) Create(ctx context.Context, im *Importer, d RecurringDraft) (*Recurring, error) {
	if len(d.Contacts) > MaxRecurringContactsBytes {
		msg := fmt.Sprintf("the contacts file of a recurring campaign is kept in full and may be at most %d MiB; this one is %.1f MiB", MaxRecurringContactsBytes>>20, float64(len(d.Contacts))/(1<<20))
		return nil, &InputError{Msg: msg, Problems: []Problem{{Fields: []string{"contacts"}, Msg: msg}}, TooLarge: true}
	}
	var problems []Problem
	addProblem := func(err error) error {
		var in *InputError
		if !errors.As(err, &in) {
			return err
		}
		problems = append(problems, in.Problems...)
		return nil
	}
	sched, err := ParseCronSchedule(d.Cron, d.CronZone)
	if err != nil {
		if err := addProblem(err); err != nil {
			return nil, err
		}
	}
	if !d.SendAt.IsZero() {
		problems = append(problems, Problem{Fields: []string{"send_at"}, Msg: "a recurring campaign starts at the times of its cron spec; send_at does not apply"})
	}
	d.Name = strings.TrimSpace(d.Name)
	if d.Name == "" {
		d.Name = recurringDefaultName
	}
	if utf8.RuneCountInString(d.Name) > recurringNameMax {
		problems = append(problems, Problem{Fields: []string{"name"}, Msg: fmt.Sprintf("name is longer than %d characters (each run's campaign adds the time of its run)", recurringNameMax)})
	}
	draft := d.Draft
	draft.SendAt = time.Time{}
	c, err := im.prepare(draft)
	if err != nil {
		if err := addProblem(err); err != nil {
			return nil, err
		}
	}
	if len(problems) > 0 {
		return nil, &InputError{Msg: problems[0].Msg, Problems: problems}
	}
	contacts, err := im.checkContacts(ctx, d.Template, d.Contacts)
	if err != nil {
		return nil, err
	}

	now := rs.now()
	id := newID(now)
	accounts, _ := json.Marshal(c.Accounts)
	columns, _ := json.Marshal(contacts.Columns)
	fields := map[string]any{
		rfName:         d.Name,
		rfStatus:       string(RecurringActive),
		rfCron:         sched.Spec(),
		rfCronZone:     sched.Zone().String(),
		rfTemplate:     c.Template,
		rfTemplateName: c.TemplateName,
		rfAccounts:     string(accounts),
		rfLabel:        c.Label,
		rfFileUID:      c.FileUID,
		rfColumns:      string(columns),
		rfPhoneColumn:  contacts.PhoneColumn,
		rfRows:         contacts.Rows,
		rfBytes:        len(d.Contacts),
		rfCreatedAt:    unixMilli(now),
		rfRuns:         0,
	}
	if c.Window != nil {
		w, _ := json.Marshal(c.Window)
		fields[rfWindow] = string(w)
	}
	// The definition's own keys share a slot and go in one transaction; the
	// indexes come after, so they never name a definition without its CSV.
	if _, err := rs.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, recurringSourceKey(id), d.Contacts, 0)
		p.HSet(ctx, recurringKey(id), fields)
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

// checkContacts reads a whole contacts file the way an import does (the same
// parser, row checks and de-duplication, by running the importer's own
// parse stage), without storing anything, and describes it. A file no run
// could import is an *InputError, as Import would answer it.
func (im *Importer) checkContacts(ctx context.Context, tmpl *templating.Template, contacts []byte) (RecurringContacts, error) {
	in, err := openCSV(bytes.NewReader(contacts))
	if err != nil {
		return RecurringContacts{}, err
	}
	if tmpl != nil {
		if err := tmpl.CheckColumns(in.columns); err != nil {
			return RecurringContacts{}, &InputError{Msg: err.Error(), Problems: []Problem{{Fields: []string{"template"}, Msg: err.Error()}}}
		}
	}
	run := &importRun{im: im, src: in, lay: in.columnsOf()}
	items := make(chan importItem, batchRows)
	parsed := make(chan error, 1)
	go func() {
		defer close(items)
		parsed <- run.parse(ctx, items)
	}()
	for it := range items {
		switch {
		case it.row != nil:
			run.accepted++
		case it.rejected != nil:
			run.rejected++
			if len(run.heldRejected) < 20 {
				run.heldRejected = append(run.heldRejected, *it.rejected)
			}
		case it.duplicate:
			run.duplicates++
		}
	}
	if err := <-parsed; err != nil {
		return RecurringContacts{}, fmt.Errorf("read the contacts file: %w", err)
	}
	if run.accepted == 0 {
		return RecurringContacts{}, run.nothingToSend()
	}
	return RecurringContacts{
		Bytes:       int64(len(contacts)),
		Rows:        run.accepted,
		Columns:     in.columns,
		PhoneColumn: in.columns[in.phone],
	}, nil
}

// Get reads a definition (without its runs; see Runs).
func (rs *RecurringStore) Get(ctx context.Context, id string) (*Recurring, error) {
	h, err := rs.rdb.HGetAll(ctx, recurringKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("read recurring campaign %s: %w", id, err)
	}
	if len(h) == 0 {
		return nil, ErrRecurringNotFound
	}
	return recurringFromHash(id, h), nil
}

// recurringFromHash decodes a definition hash.
func recurringFromHash(id string, h map[string]string) *Recurring {
	n := func(f string) int64 { v, _ := strconv.ParseInt(h[f], 10, 64); return v }
	r := &Recurring{
		ID:           id,
		Name:         h[rfName],
		Status:       RecurringStatus(h[rfStatus]),
		Cron:         h[rfCron],
		CronZone:     h[rfCronZone],
		Template:     h[rfTemplate],
		TemplateName: h[rfTemplateName],
		Label:        h[rfLabel],
		FileUID:      h[rfFileUID],
		Window:       decodeWindow(h[rfWindow]),
		Contacts: RecurringContacts{
			Bytes:       n(rfBytes),
			Rows:        n(rfRows),
			PhoneColumn: h[rfPhoneColumn],
		},
		StoppedAt: parseMilli(h[rfStoppedAt]),
		RunsCount: n(rfRuns),
	}
	_ = json.Unmarshal([]byte(h[rfAccounts]), &r.Accounts)
	_ = json.Unmarshal([]byte(h[rfColumns]), &r.Contacts.Columns)
	if r.Accounts == nil {
		r.Accounts = []string{}
	}
	if t := parseMilli(h[rfCreatedAt]); t != nil {
		r.CreatedAt = *t
	}
	if h[rfLastTick] != "" {
		t := time.Unix(n(rfLastTick), 0).UTC()
		r.LastRunAt = &t
	}
	if r.Status == RecurringActive {
		if sched, err := ParseCronSchedule(r.Cron, r.CronZone); err == nil {
			if next := sched.Next(recurringAnchor(h)); !next.IsZero() {
				next = next.UTC()
				r.NextRunAt = &next
			}
		}
	}
	return r
}

// recurringAnchor is the time after which ticks are due: the last claimed
// tick, or the creation (ticks before it never count), in whole seconds as
// cron's ticks are.
func recurringAnchor(h map[string]string) time.Time {
	if v, err := strconv.ParseInt(h[rfLastTick], 10, 64); err == nil {
		return time.Unix(v, 0)
	}
	ms, _ := strconv.ParseInt(h[rfCreatedAt], 10, 64)
	return time.Unix(ms/1000, 0)
}

// List returns definitions newest first: at most limit of them, created
// before the one named by after (empty: from the newest).
func (rs *RecurringStore) List(ctx context.Context, limit int, after string) ([]*Recurring, error) {
	maxScore := "+inf"
	if after != "" {
		score, err := rs.rdb.ZScore(ctx, recurringIndex, after).Result()
		if errors.Is(err, redis.Nil) {
			return nil, ErrRecurringNotFound
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
	out := make([]*Recurring, 0, len(ids))
	for i, id := range ids {
		if len(cmds[i].Val()) > 0 {
			out = append(out, recurringFromHash(id, cmds[i].Val()))
		}
	}
	return out, nil
}

// stopRecurringScript marks a definition stopped. KEYS: definition. ARGV:
// now (unix ms). Answers 0 when it does not exist.
var stopRecurringScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'status') == 'active' then
  redis.call('HSET', KEYS[1], 'status', 'stopped', 'stopped_at', ARGV[1])
end
return 1
`)

// Stop stops a definition: once it answers, no scheduler claims a tick of it
// and no run task that has not begun importing starts one (both check the
// status in the same script that claims). A run already importing finishes;
// its campaign is an ordinary campaign, to pause or cancel as any other.
// Stopping a stopped definition changes nothing.
func (rs *RecurringStore) Stop(ctx context.Context, id string) (*Recurring, error) {
	found, err := stopRecurringScript.Run(ctx, rs.rdb, []string{recurringKey(id)}, unixMilli(rs.now())).Int()
	if err != nil {
		return nil, fmt.Errorf("stop recurring campaign %s: %w", id, err)
	}
	if found == 0 {
		return nil, ErrRecurringNotFound
	}
	if err := rs.rdb.SRem(ctx, recurringActiveIndex, id).Err(); err != nil {
		return nil, fmt.Errorf("stop recurring campaign %s: %w", id, err)
	}
	return rs.Get(ctx, id)
}

// Runs lists a definition's latest runs, newest first, at most limit.
func (rs *RecurringStore) Runs(ctx context.Context, id string, limit int) ([]RecurringRun, error) {
	ticks, err := rs.rdb.ZRevRange(ctx, recurringTicksKey(id), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("read runs of recurring campaign %s: %w", id, err)
	}
	if len(ticks) == 0 {
		return []RecurringRun{}, nil
	}
	recs, err := rs.rdb.HMGet(ctx, recurringRunsKey(id), ticks...).Result()
	if err != nil {
		return nil, fmt.Errorf("read runs of recurring campaign %s: %w", id, err)
	}
	out := make([]RecurringRun, 0, len(ticks))
	for i, v := range recs {
		s, _ := v.(string)
		rec, err := decodeRunRecord(s)
		if err != nil {
			continue // trimmed meanwhile
		}
		tick, _ := strconv.ParseInt(ticks[i], 10, 64)
		run := RecurringRun{Tick: time.Unix(tick, 0).UTC(), State: rec.State, CampaignID: rec.Campaign, Reason: rec.Reason}
		if at := parseMilli(rec.At); at != nil {
			run.At = *at
		}
		out = append(out, run)
	}
	return out, nil
}

// claimTickScript lets exactly one scheduler start a tick: it moves
// last_tick forward to the tick, never back, and only while the definition
// is active. KEYS: definition. ARGV: tick (unix s). Answers {1, the previous
// last_tick or ""} to the one that claimed it, {0} to the others.
var claimTickScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'status', 'last_tick', 'created_at')
if v[1] ~= 'active' then return {0} end
local last = tonumber(v[2]) or math.floor(tonumber(v[3]) / 1000)
if tonumber(ARGV[1]) <= last then return {0} end
redis.call('HSET', KEYS[1], 'last_tick', ARGV[1])
return {1, v[2] or ''}
`)

// unclaimTickScript gives a tick back when its run could not be enqueued,
// unless a later tick was claimed meanwhile. KEYS: definition. ARGV: tick,
// the last_tick before it ("" none).
var unclaimTickScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'last_tick') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'last_tick') else redis.call('HSET', KEYS[1], 'last_tick', ARGV[2]) end
return 1
`)

// claimTick answers whether this caller claimed the tick, and the last_tick
// it replaced (to give it back with unclaimTick).
func (rs *RecurringStore) claimTick(ctx context.Context, id string, tick int64) (bool, string, error) {
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

func (rs *RecurringStore) unclaimTick(ctx context.Context, id string, tick int64, prev string) error {
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
	Since    string   `json:"since,omitempty"`   // when importing began: its campaign was created after
}

func (r runRecord) encode() string {
	b, _ := json.Marshal(r) // cannot fail: strings only
	return string(b)
}

func decodeRunRecord(s string) (runRecord, error) {
	var r runRecord
	err := json.Unmarshal([]byte(s), &r)
	return r, err
}

// claimRunScript records that a run task is importing a tick, unless the
// tick has a record already: the guard that makes a replayed run task
// import nothing. KEYS: definition, runs, ticks. ARGV: tick, the importing
// record, now (unix ms), how many records are kept. Answers {outcome,
// existing record}: claimed; recorded (a record exists: done, failed, or
// importing with a live lease); lapsed (importing, but its lease ran out);
// stopped; gone (no definition); expired (older than every kept record).
var claimRunScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone', ''} end
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if rec then
  local r = cjson.decode(rec)
  if r.state == 'importing' and tonumber(r.lease) < tonumber(ARGV[3]) then return {'lapsed', rec} end
  return {'recorded', rec}
end
if redis.call('HGET', KEYS[1], 'status') ~= 'active' then return {'stopped', ''} end
local kept = tonumber(ARGV[4])
if redis.call('ZCARD', KEYS[3]) >= kept then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if tonumber(ARGV[1]) < tonumber(oldest[2]) then return {'expired', ''} end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[1])
while redis.call('ZCARD', KEYS[3]) > kept do
  local popped = redis.call('ZPOPMIN', KEYS[3])
  redis.call('HDEL', KEYS[2], popped[1])
end
return {'claimed', ''}
`)

// updateRunScript replaces a run record if the attempt named still holds it.
// KEYS: definition, runs, ticks. ARGV: tick, attempt, new record ("": drop
// the record, giving the tick back to a retry), count a campaign (1/0).
// Answers 1 if it did.
var updateRunScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if not cur or cjson.decode(cur).attempt ~= ARGV[2] then return 0 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[1], 'runs', 1) end
return 1
`)

// renewRunScript extends an importing attempt's lease. KEYS: runs. ARGV:
// tick, attempt, new lease (unix ms).
var renewRunScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local r = cjson.decode(cur)
if r.attempt ~= ARGV[2] or r.state ~= 'importing' then return 0 end
r.lease = ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(r))
return 1
`)

func runKeys(id string) []string {
	return []string{recurringKey(id), recurringRunsKey(id), recurringTicksKey(id)}
}

func (rs *RecurringStore) claimRun(ctx context.Context, id string, tick int64, rec runRecord) (string, runRecord, error) {
	res, err := claimRunScript.Run(ctx, rs.rdb, runKeys(id), tick, rec.encode(), unixMilli(rs.now()), recurringRunsKept).StringSlice()
	if err != nil {
		return "", runRecord{}, fmt.Errorf("claim run %d of recurring campaign %s: %w", tick, id, err)
	}
	var existing runRecord
	if res[1] != "" {
		existing, _ = decodeRunRecord(res[1])
	}
	return res[0], existing, nil
}

// updateRun replaces the record attempt holds with rec (nil: drops it).
func (rs *RecurringStore) updateRun(ctx context.Context, id string, tick int64, attempt string, rec *runRecord) (bool, error) {
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

func (rs *RecurringStore) renewRun(ctx context.Context, id string, tick int64, attempt string) error {
	lease := unixMilli(rs.now().Add(recurringRunLease))
	return renewRunScript.Run(ctx, rs.rdb, []string{recurringRunsKey(id)}, tick, attempt, lease).Err()
}

// runDefinition reads what a run imports: the definition and its CSV.
func (rs *RecurringStore) runDefinition(ctx context.Context, id string) (map[string]string, string, error) {
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
		return nil, "", ErrRecurringNotFound
	}
	return hash.Val(), source.Val(), nil
}

// campaignNamed finds the campaign an attempt that did not get to record it
// created: the one with the run's name created since the attempt began (a
// minute's slack for clocks of different machines). "" when there is none.
func (rs *RecurringStore) campaignNamed(ctx context.Context, name string, since time.Time) (string, error) {
	ids, err := rs.rdb.ZRangeByScore(ctx, campaignsIndex, &redis.ZRangeBy{
		Min: strconv.FormatInt(since.Add(-time.Minute).UnixMilli(), 10), Max: "+inf",
	}).Result()
	if err != nil {
		return "", fmt.Errorf("look for the campaign %q: %w", name, err)
	}
	names := make([]*redis.StringCmd, len(ids))
	if _, err := rs.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			names[i] = p.HGet(ctx, campaignKey(id), fName)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("look for the campaign %q: %w", name, err)
	}
	for i, cmd := range names {
		if cmd.Val() == name {
			return ids[i], nil
		}
	}
	return "", nil
}

// recurringRunPayload names a run: the definition and the tick (unix s).
type recurringRunPayload struct {
	ID   string `json:"r"`
	Tick int64  `json:"t"`
}

// recurringRunTaskID makes enqueueing a run idempotent while its task is in
// the queue; the run record makes it idempotent after.
func recurringRunTaskID(id string, tick int64) string {
	return "run:" + id + ":" + strconv.FormatInt(tick, 10)
}

// enqueueRecurringRun enqueues the task that imports one run.
func enqueueRecurringRun(ctx context.Context, client *asynq.Client, id string, tick int64) error {
	payload, _ := json.Marshal(recurringRunPayload{ID: id, Tick: tick})
	_, err := client.EnqueueContext(ctx, asynq.NewTask(TypeRecurringRun, payload),
		asynq.TaskID(recurringRunTaskID(id, tick)),
		asynq.Queue(QueueControl),
		asynq.MaxRetry(recurringRunMaxRetry),
		asynq.Timeout(recurringRunTimeout),
	)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue run %d of recurring campaign %s: %w", tick, id, err)
	}
	return nil
}

// RecurringScheduler starts the runs of recurring campaigns at their ticks.
// Every worker replica runs one; the tick claim (claimTickScript) lets one
// of them start each tick.
type RecurringScheduler struct {
	rs    *RecurringStore
	queue *asynq.Client
	log   *zap.Logger
	every time.Duration    // how often it looks; a spec has whole seconds
	now   func() time.Time // the clock ticks are compared with

	started atomic.Int64 // runs this scheduler started

	mu        sync.Mutex
	schedules map[string]*CronSchedule // parsed specs: a pass each second should not reload zones
}

// NewRecurringScheduler returns a scheduler enqueueing run tasks on queue.
func NewRecurringScheduler(rs *RecurringStore, queue *asynq.Client, log *zap.Logger) *RecurringScheduler {
	return &RecurringScheduler{rs: rs, queue: queue, log: log, every: time.Second, now: time.Now, schedules: map[string]*CronSchedule{}}
}

// schedule parses a stored spec once.
func (s *RecurringScheduler) schedule(spec, zone string) (*CronSchedule, error) {
	key := zone + "\x00" + spec
	s.mu.Lock()
	defer s.mu.Unlock()
	if sched, ok := s.schedules[key]; ok {
		return sched, nil
	}
	sched, err := ParseCronSchedule(spec, zone)
	if err != nil {
		return nil, err
	}
	s.schedules[key] = sched
	return sched, nil
}

// Run looks for due ticks every second until ctx ends. Errors are logged and
// the next pass tries again: a Redis blip must not stop the schedule.
func (s *RecurringScheduler) Run(ctx context.Context) {
	ticker := time.NewTicker(s.every)
	defer ticker.Stop()
	for {
		if _, err := s.Pass(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("recurring campaigns: a pass failed; the next one tries again", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// recurringPassBatch is how many definitions a pass reads per round trip.
const recurringPassBatch = 256

// Pass looks once at every active definition, starts the runs that are due
// (the latest due tick of each) and answers how many it started.
func (s *RecurringScheduler) Pass(ctx context.Context) (int, error) {
	ids, err := s.rs.rdb.SMembers(ctx, recurringActiveIndex).Result()
	if err != nil {
		return 0, fmt.Errorf("list active recurring campaigns: %w", err)
	}
	started := 0
	var errs []error
	for first := 0; first < len(ids); first += recurringPassBatch {
		batch := ids[first:min(first+recurringPassBatch, len(ids))]
		cmds := make([]*redis.SliceCmd, len(batch))
		if _, err := s.rs.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range batch {
				cmds[i] = p.HMGet(ctx, recurringKey(id), rfStatus, rfCron, rfCronZone, rfLastTick, rfCreatedAt)
			}
			return nil
		}); err != nil {
			return started, fmt.Errorf("read recurring campaigns: %w", err)
		}
		now := s.now()
		for i, id := range batch {
			h := map[string]string{}
			for j, f := range []string{rfStatus, rfCron, rfCronZone, rfLastTick, rfCreatedAt} {
				if v, ok := cmds[i].Val()[j].(string); ok {
					h[f] = v
				}
			}
			if h[rfStatus] != string(RecurringActive) {
				continue // stopped: Stop takes it out of the set right after
			}
			ok, err := s.startDue(ctx, id, h, now)
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				started++
			}
		}
	}
	return started, errors.Join(errs...)
}

// startDue claims the latest due tick of one definition and enqueues its run.
func (s *RecurringScheduler) startDue(ctx context.Context, id string, h map[string]string, now time.Time) (bool, error) {
	sched, err := s.schedule(h[rfCron], h[rfCronZone])
	if err != nil {
		return false, fmt.Errorf("recurring campaign %s: stored spec: %w", id, err)
	}
	tick := sched.Latest(recurringAnchor(h), now)
	if tick.IsZero() {
		return false, nil
	}
	claimed, prev, err := s.rs.claimTick(ctx, id, tick.Unix())
	if err != nil || !claimed {
		return false, err
	}
	if err := enqueueRecurringRun(ctx, s.queue, id, tick.Unix()); err != nil {
		// Give the tick back, so the next pass (of any scheduler) retries.
		if uerr := s.rs.unclaimTick(context.WithoutCancel(ctx), id, tick.Unix(), prev); uerr != nil {
			err = errors.Join(err, uerr)
		}
		return false, err
	}
	s.started.Add(1)
	s.log.Info("recurring campaign: run started", zap.String("recurring", id), zap.Time("tick", tick))
	return true, nil
}

// RecurringRunner is the asynq handler of TypeRecurringRun: it imports the
// saved contacts as a new campaign, once per tick however often the task
// runs.
type RecurringRunner struct {
	rs  *RecurringStore
	im  *Importer
	log *zap.Logger
}

// NewRecurringRunner returns the handler of run tasks; im imports the runs.
func NewRecurringRunner(rs *RecurringStore, im *Importer, log *zap.Logger) *RecurringRunner {
	return &RecurringRunner{rs: rs, im: im, log: log}
}

// ProcessTask implements asynq.Handler.
func (h *RecurringRunner) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p recurringRunPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.ID == "" || p.Tick <= 0 {
		return fmt.Errorf("malformed recurring run task %q: %w", t.Payload(), asynq.SkipRetry)
	}
	log := h.log.With(zap.String("recurring", p.ID), zap.Int64("tick", p.Tick))
	now := h.rs.now()
	mine := runRecord{
		State:   RunImporting,
		At:      unixMilli(now),
		Attempt: newAttempt(),
		Lease:   unixMilli(now.Add(recurringRunLease)),
		Since:   unixMilli(now),
	}
	outcome, existing, err := h.rs.claimRun(ctx, p.ID, p.Tick, mine)
	if err != nil {
		return err
	}
	switch outcome {
	case "claimed":
		return h.run(ctx, log, p, mine)
	case "lapsed":
		return h.takeOver(ctx, log, p, existing, mine)
	case "recorded":
		if existing.State == RunImporting {
			// Another attempt is importing it right now (asynq handed a
			// task on whose worker looked dead). Look again when its lease
			// would have run out: if it died, this task takes over.
			lease, _ := strconv.ParseInt(existing.Lease, 10, 64)
			return &WaitError{Delay: max(time.Until(time.UnixMilli(lease)), 0) + time.Second, Reason: "another attempt is importing this run"}
		}
		log.Info("recurring run already recorded; nothing to do", zap.String("state", string(existing.State)), zap.String("campaign", existing.Campaign))
		return nil
	case "stopped":
		log.Info("recurring campaign stopped before this run began; nothing started")
		return nil
	case "gone":
		log.Warn("recurring run of a recurring campaign that does not exist")
		return nil
	case "expired":
		log.Warn("recurring run older than every kept run record; not started, as it cannot be told whether it ran")
		return nil
	}
	return fmt.Errorf("recurring run: unexpected claim outcome %q", outcome)
}

// run imports the run attempt has claimed and records what came of it.
func (h *RecurringRunner) run(ctx context.Context, log *zap.Logger, p recurringRunPayload, attempt runRecord) error {
	def, source, err := h.rs.runDefinition(ctx, p.ID)
	if err != nil {
		return h.giveBack(ctx, p, attempt, err)
	}
	draft, err := recurringRunDraft(def, p.Tick)
	if err != nil {
		return h.record(ctx, log, p, attempt, runRecord{State: RunFailed, Reason: err.Error()})
	}

	stopRenewing := h.keepLease(ctx, log, p, attempt.Attempt)
	c, err := h.im.Import(ctx, draft, strings.NewReader(source))
	stopRenewing()

	var input *InputError
	var aborted *AbortedImportError
	switch {
	case err == nil:
		log.Info("recurring run imported", zap.String("campaign", c.ID), zap.Int64("recipients", c.Counts.Total))
		return h.record(ctx, log, p, attempt, runRecord{State: RunCreated, Campaign: c.ID})
	case errors.As(err, &aborted):
		// Its campaign exists, cancelled: the run happened and must not be
		// imported again (those it reached got their message).
		return h.record(ctx, log, p, attempt, runRecord{State: RunCreated, Campaign: aborted.CampaignID, Reason: aborted.Error()})
	case errors.As(err, &input):
		// The same file gives the same answer on a retry: record why.
		return h.record(ctx, log, p, attempt, runRecord{State: RunFailed, Reason: input.Error()})
	}
	// Import failed without saying whether it created a campaign (Redis
	// failing before or after the rows were written): look for it before
	// letting a retry import again, as a second import would message the
	// whole list twice.
	lookup := context.WithoutCancel(ctx)
	id, ferr := h.rs.campaignNamed(lookup, draft.Name, time.UnixMilli(mustMilli(attempt.Since)))
	if ferr != nil {
		// Unknown: leave the record importing; its lease lapses and the
		// retry's takeOver looks again.
		return fmt.Errorf("recurring run %d of %s: %w", p.Tick, p.ID, errors.Join(err, ferr))
	}
	if id != "" {
		return h.record(lookup, log, p, attempt, runRecord{State: RunCreated, Campaign: id, Reason: "imported; recording it failed first: " + err.Error()})
	}
	return h.giveBack(ctx, p, attempt, fmt.Errorf("recurring run %d of %s: %w", p.Tick, p.ID, err))
}

// takeOver continues a run whose importing attempt stopped renewing its
// lease (its worker died): if that attempt created the campaign, the run is
// recorded with it; if not, this attempt imports.
func (h *RecurringRunner) takeOver(ctx context.Context, log *zap.Logger, p recurringRunPayload, lapsed, mine runRecord) error {
	def, _, err := h.rs.runDefinition(ctx, p.ID)
	if err != nil {
		return err
	}
	name := recurringRunName(def, p.Tick)
	id, err := h.rs.campaignNamed(ctx, name, time.UnixMilli(mustMilli(lapsed.Since)))
	if err != nil {
		return err
	}
	if id != "" {
		log.Warn("the attempt importing a recurring run stopped; its campaign is recorded, not imported again (it may hold only part of the contacts)", zap.String("campaign", id))
		return h.record(ctx, log, p, lapsed, runRecord{State: RunCreated, Campaign: id, Reason: "the worker importing it stopped before it finished; the campaign may hold only part of the contacts"})
	}
	ok, err := h.rs.updateRun(ctx, p.ID, p.Tick, lapsed.Attempt, &mine)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("recurring run %d of %s changed while taking it over; retrying", p.Tick, p.ID)
	}
	log.Warn("the attempt importing a recurring run stopped before it created a campaign; importing it now")
	return h.run(ctx, log, p, mine)
}

// record finishes attempt's run with rec.
func (h *RecurringRunner) record(ctx context.Context, log *zap.Logger, p recurringRunPayload, attempt, rec runRecord) error {
	rec.At = unixMilli(h.rs.now())
	ok, err := h.rs.updateRun(context.WithoutCancel(ctx), p.ID, p.Tick, attempt.Attempt, &rec)
	if err != nil {
		return err
	}
	if !ok {
		log.Error("recurring run record was taken over while this attempt imported", zap.String("state", string(rec.State)), zap.String("campaign", rec.Campaign))
	}
	if rec.State == RunFailed {
		log.Error("recurring run failed", zap.String("reason", rec.Reason))
	}
	return nil
}

// giveBack drops attempt's record, so that asynq's retry of cause claims the
// run afresh.
func (h *RecurringRunner) giveBack(ctx context.Context, p recurringRunPayload, attempt runRecord, cause error) error {
	if _, err := h.rs.updateRun(context.WithoutCancel(ctx), p.ID, p.Tick, attempt.Attempt, nil); err != nil {
		return errors.Join(cause, err)
	}
	if errors.Is(cause, ErrRecurringNotFound) {
		return fmt.Errorf("recurring run %d of %s: %w", p.Tick, p.ID, errors.Join(cause, asynq.SkipRetry))
	}
	return cause
}

// keepLease renews attempt's lease while an import runs, so that a live
// import is never taken over; the returned func stops it.
func (h *RecurringRunner) keepLease(ctx context.Context, log *zap.Logger, p recurringRunPayload, attempt string) func() {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ticker := time.NewTicker(recurringRunLease / 3)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				if err := h.rs.renewRun(ctx, p.ID, p.Tick, attempt); err != nil && ctx.Err() == nil {
					log.Warn("renew the lease of a recurring run", zap.Error(err))
				}
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// recurringRunDraft is the campaign draft of one run.
func recurringRunDraft(def map[string]string, tick int64) (Draft, error) {
	tmpl, err := templating.Parse("template", def[rfTemplate])
	if err != nil {
		return Draft{}, fmt.Errorf("the saved template no longer parses: %w", err)
	}
	d := Draft{
		Name:         recurringRunName(def, tick),
		Template:     tmpl,
		TemplateName: def[rfTemplateName],
		Label:        def[rfLabel],
		FileUID:      def[rfFileUID],
		Window:       decodeWindow(def[rfWindow]),
	}
	_ = json.Unmarshal([]byte(def[rfAccounts]), &d.Accounts)
	return d, nil
}

// recurringRunName names a run's campaign: the definition's name and the
// tick in the definition's zone.
func recurringRunName(def map[string]string, tick int64) string {
	loc, err := time.LoadLocation(def[rfCronZone])
	if err != nil {
		loc = time.UTC
	}
	return def[rfName] + " · " + time.Unix(tick, 0).In(loc).Format(recurringRunNameLayout)
}

func newAttempt() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func mustMilli(s string) int64 {
	v, _ := strconv.ParseInt(s, 10, 64)
	return v
}
