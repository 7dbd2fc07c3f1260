package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/templating"
)

// Onboarding sequences: ordered steps ("welcome" at once, "tips" a day
// later, "check-in" after three days) into which other apps enrol contacts
// one by one. Each step is a campaign of its own that never stops taking
// recipients, so every message goes through the same send path as a
// campaign's (claims, credits, pacing, windows, status history); enrolment
// number n is recipient n of every step, due at the enrolment time plus the
// step's delay.
//
//	wac:sequences           ZSET  sequence id → created at (unix ms)
//	wac:s:{id}              HASH  name, created_at, steps (JSON), fields (JSON), next (enrolment counter), enrolled
//	wac:s:{id}:enrolled     HASH  phone → its latest enrolment (JSON: n, at, status)

// Sequence is an onboarding sequence as the API shows it.
type Sequence struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	CreatedAt time.Time      `json:"created_at"`
	Accounts  []string       `json:"accounts"`
	Label     string         `json:"label,omitempty"`
	Window    *Window        `json:"window,omitempty"`
	Fields    []string       `json:"fields"` // what an enrolment carries for the templates
	Steps     []SequenceStep `json:"steps"`
	Enrolled  int64          `json:"enrolled"` // enrolments made (each phone counts once per enrolment)
}

// SequenceStep is one message of a sequence.
type SequenceStep struct {
	Name         string  `json:"name"`
	Delay        string  `json:"delay"` // after enrolment, like "24h0m0s"
	Template     string  `json:"template"`
	TemplateName string  `json:"template_name,omitempty"`
	FileUID      string  `json:"file_uid,omitempty"`
	CampaignID   string  `json:"campaign_id"` // its recipients, report and events are the campaign's
	Counts       *Counts `json:"counts,omitempty"`
	Funnel       *Funnel `json:"funnel,omitempty"`

	delay time.Duration
}

// NewSequence is what a user asks for.
type NewSequence struct {
	Name     string
	Accounts []string
	Label    string
	Window   *Window
	Fields   []string // declared besides the templates' own
	Steps    []NewStep
}

// NewStep is one step of a NewSequence.
type NewStep struct {
	Name         string
	Delay        time.Duration
	Template     *templating.Template
	TemplateName string
	FileUID      string
}

const (
	sequencesIndex  = KeyPrefix + "sequences"
	maxSequenceStep = 20
)

func sequenceKey(id string) string { return KeyPrefix + "s:{" + id + "}" }
func enrolledKey(id string) string { return sequenceKey(id) + ":enrolled" }

// CreateSequence validates and stores a sequence with a campaign per step.
func (s *Store) CreateSequence(ctx context.Context, ns NewSequence, region string, now time.Time) (*Sequence, error) {
	var problems []Problem
	name := strings.TrimSpace(ns.Name)
	if name == "" {
		problems = append(problems, Problem{Fields: []string{"name"}, Msg: "a sequence needs a name"})
	}
	if len(ns.Steps) == 0 || len(ns.Steps) > maxSequenceStep {
		problems = append(problems, Problem{Fields: []string{"steps"}, Msg: fmt.Sprintf("a sequence has 1 to %d steps", maxSequenceStep)})
	}
	accounts, accountProblems := normalizeAccounts(ns.Accounts, region)
	problems = append(problems, accountProblems...)
	fields := map[string]bool{}
	for _, f := range ns.Fields {
		if n := templating.NormalizeColumn(f); n != "" && n != "phone" {
			fields[n] = true
		}
	}
	for i, st := range ns.Steps {
		at := []string{"steps", strconv.Itoa(i)}
		if st.Template == nil {
			problems = append(problems, Problem{Fields: append(at, "template"), Msg: "each step needs template or template_name"})
			continue
		}
		if st.Delay < 0 {
			problems = append(problems, Problem{Fields: append(at, "delay"), Msg: "a delay cannot be negative"})
		}
		if i > 0 && st.Delay < ns.Steps[i-1].Delay {
			problems = append(problems, Problem{Fields: append(at, "delay"), Msg: "steps are in order: each delay at least the one before"})
		}
		for _, f := range st.Template.Fields() {
			if f != "phone" {
				fields[f] = true
			}
		}
	}
	if len(problems) > 0 {
		return nil, &InputError{Msg: problems[0].Msg, Problems: problems}
	}

	seq := &Sequence{ID: NewID(now), Name: name, CreatedAt: now.UTC(), Accounts: accounts, Label: ns.Label, Window: ns.Window, Fields: []string{}}
	for f := range fields {
		seq.Fields = append(seq.Fields, f)
	}
	sort.Strings(seq.Fields)
	columns := append([]string{"phone"}, seq.Fields...)
	for i, st := range ns.Steps {
		stepName := strings.TrimSpace(st.Name)
		if stepName == "" {
			stepName = fmt.Sprintf("step %d", i+1)
		}
		c := &Campaign{
			ID: NewID(now), Name: name + " · " + stepName, Status: StatusRunning, CreatedAt: now.UTC(),
			Template: st.Template.Source(), TemplateName: st.TemplateName, Accounts: accounts,
			Label: ns.Label, FileUID: st.FileUID, Window: ns.Window, Columns: columns,
			SequenceID: seq.ID, SequenceStep: i + 1,
		}
		if err := s.create(ctx, c, "phone", false); err != nil {
			return nil, err
		}
		seq.Steps = append(seq.Steps, SequenceStep{Name: stepName, Delay: st.Delay.String(), Template: c.Template,
			TemplateName: st.TemplateName, FileUID: st.FileUID, CampaignID: c.ID, delay: st.Delay})
	}
	steps, _ := json.Marshal(seq.Steps)
	accountsJSON, _ := json.Marshal(accounts)
	fieldsJSON, _ := json.Marshal(seq.Fields)
	h := map[string]any{fName: name, fCreatedAt: UnixMilli(now), "steps": string(steps), fAccounts: string(accountsJSON),
		"fields": string(fieldsJSON), fLabel: ns.Label, "next": 0, "enrolled": 0}
	if ns.Window != nil {
		w, _ := json.Marshal(ns.Window)
		h[fWindow] = string(w)
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, sequenceKey(seq.ID), h)
		p.ZAdd(ctx, sequencesIndex, redis.Z{Score: float64(now.UnixMilli()), Member: seq.ID})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store sequence %s: %w", seq.ID, err)
	}
	return seq, nil
}

// normalizeAccounts reads sender accounts as E.164, without repeats.
func normalizeAccounts(raw []string, region string) ([]string, []Problem) {
	out := []string{}
	var problems []Problem
	seen := map[string]bool{}
	for _, a := range raw {
		if strings.TrimSpace(a) == "" {
			continue
		}
		e164, err := NormalizePhone(a, region)
		if err != nil {
			problems = append(problems, Problem{Fields: []string{"accounts"}, Msg: "sender account " + err.Error()})
			continue
		}
		if !seen[e164] {
			seen[e164] = true
			out = append(out, e164)
		}
	}
	return out, problems
}

// GetSequence reads a sequence; withCounts adds each step's counts and
// funnel.
func (s *Store) GetSequence(ctx context.Context, id string, withCounts bool) (*Sequence, error) {
	h, err := s.rdb.HGetAll(ctx, sequenceKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("read sequence %s: %w", id, err)
	}
	if len(h) == 0 {
		return nil, ErrNotFound
	}
	seq := &Sequence{ID: id, Name: h[fName], Label: h[fLabel], Window: DecodeWindow(h[fWindow]), Fields: []string{}, Accounts: []string{}}
	if t := ParseUnixMilli(h[fCreatedAt]); t != nil {
		seq.CreatedAt = *t
	}
	seq.Enrolled, _ = strconv.ParseInt(h["enrolled"], 10, 64)
	_ = json.Unmarshal([]byte(h[fAccounts]), &seq.Accounts)
	_ = json.Unmarshal([]byte(h["fields"]), &seq.Fields)
	if err := json.Unmarshal([]byte(h["steps"]), &seq.Steps); err != nil {
		return nil, fmt.Errorf("sequence %s: steps: %w", id, err)
	}
	for i := range seq.Steps {
		seq.Steps[i].delay, _ = time.ParseDuration(seq.Steps[i].Delay)
		if withCounts {
			c, err := s.Get(ctx, seq.Steps[i].CampaignID)
			if err != nil {
				return nil, err
			}
			seq.Steps[i].Counts, seq.Steps[i].Funnel = &c.Counts, &c.Funnel
		}
	}
	return seq, nil
}

// ListSequences returns the sequences, newest first.
func (s *Store) ListSequences(ctx context.Context) ([]*Sequence, error) {
	ids, err := s.rdb.ZRevRange(ctx, sequencesIndex, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list sequences: %w", err)
	}
	out := make([]*Sequence, 0, len(ids))
	for _, id := range ids {
		seq, err := s.GetSequence(ctx, id, true)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, seq)
	}
	return out, nil
}

// Enrollment is one contact in a sequence.
type Enrollment struct {
	Phone      string         `json:"phone"`
	Status     string         `json:"status"` // active, cancelled
	EnrolledAt time.Time      `json:"enrolled_at"`
	Steps      []EnrolledStep `json:"steps"`
	n          int64
}

// EnrolledStep is where one step of an enrolment is.
type EnrolledStep struct {
	Name       string    `json:"name"`
	CampaignID string    `json:"campaign_id"`
	DueAt      time.Time `json:"due_at"`
	State      State     `json:"state"`
	Reason     string    `json:"reason,omitempty"`
	MessageUID string    `json:"message_uid,omitempty"`
}

// enrolScript claims an enrolment number for a phone, unless the phone is
// enrolled already. KEYS: sequence, enrolled. ARGV: phone, now (unix ms).
// Answers {n, enrolled at, "new" | "active" | "pending"}: "pending" is an
// enrolment whose steps a crash may have left half written; it is finished
// like a new one (every write is idempotent).
var enrolScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if cur then
  local e = cjson.decode(cur)
  if e.s == 'active' or e.s == 'pending' then return {tostring(e.n), tostring(e.t), e.s} end
end
local n = redis.call('HINCRBY', KEYS[1], 'next', 1) - 1
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({n = n, t = ARGV[2], s = 'pending'}))
redis.call('HINCRBY', KEYS[1], 'enrolled', 1)
return {tostring(n), ARGV[2], 'new'}
`)

// addRowOnceScript adds recipient seq to a step campaign if it is not there
// yet, counting it. KEYS: campaign, rows bucket. ARGV: seq, row, credits.
var addRowOnceScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'total', 1)
redis.call('HINCRBY', KEYS[1], 'queued', 1)
redis.call('HINCRBY', KEYS[1], 'credits_estimated', ARGV[3])
return 1
`)

// Enroll puts a contact into a sequence: each step is queued for the
// enrolment time plus its delay. Enrolling a phone that is enrolled already
// changes nothing and answers that enrolment (created false); a phone whose
// enrolment was cancelled is enrolled anew. Missing fields the templates
// use are an InputError naming them.
func (s *Store) Enroll(ctx context.Context, queue *Enqueuer, seq *Sequence, rawPhone string, fields map[string]string, region string, now time.Time) (*Enrollment, bool, error) {
	phone, err := NormalizePhone(rawPhone, region)
	if err != nil {
		return nil, false, FieldError("phone", err.Error())
	}
	values := []string{phone}
	normalized := map[string]string{}
	for k, v := range fields {
		normalized[templating.NormalizeColumn(k)] = cleanValue(strings.TrimSpace(v))
	}
	var missing []string
	for _, f := range seq.Fields {
		v, ok := normalized[f]
		if !ok {
			missing = append(missing, f)
		}
		values = append(values, v)
	}
	if len(missing) > 0 {
		msg := "the sequence's templates use fields the enrolment lacks: " + strings.Join(missing, ", ")
		return nil, false, &InputError{Msg: msg, Problems: []Problem{{Fields: []string{"fields"}, Msg: msg}}}
	}
	res, err := enrolScript.Run(ctx, s.rdb, []string{sequenceKey(seq.ID), enrolledKey(seq.ID)}, phone, UnixMilli(now)).StringSlice()
	if err != nil {
		return nil, false, fmt.Errorf("enrol in sequence %s: %w", seq.ID, err)
	}
	n, _ := strconv.ParseInt(res[0], 10, 64)
	at := *ParseUnixMilli(res[1])
	if res[2] == "active" {
		e, err := s.Enrollment(ctx, seq, phone)
		return e, false, err
	}
	row := encodeRow(values)
	for _, st := range seq.Steps {
		credits := 1
		if st.FileUID != "" {
			credits = 2
		}
		if err := addRowOnceScript.Run(ctx, s.rdb, []string{campaignKey(st.CampaignID), rowsKey(st.CampaignID, n)}, n, row, credits).Err(); err != nil {
			return nil, false, fmt.Errorf("enrol in step %s of sequence %s: %w", st.Name, seq.ID, err)
		}
		// Rounded up to the second: asynq keeps due times in whole seconds,
		// rounded down, and a delay must not be cut short.
		due := at.Add(st.delay).Add(time.Second - 1).Truncate(time.Second)
		if st.delay == 0 {
			// Due now: book the slot like any campaign's send, so a burst of
			// enrolments is paced instead of piling up on the account.
			slots, err := queue.plan(ctx, seq.Accounts, []int64{n})
			if err != nil {
				return nil, false, err
			}
			due = slots[0]
		}
		if err := queue.enqueueSend(ctx, st.CampaignID, n, 0, due); err != nil {
			return nil, false, err
		}
		if err := s.notePlanEnd(ctx, st.CampaignID, due); err != nil {
			return nil, false, err
		}
	}
	done, _ := json.Marshal(map[string]any{"n": n, "t": res[1], "s": "active"})
	if err := s.rdb.HSet(ctx, enrolledKey(seq.ID), phone, string(done)).Err(); err != nil {
		return nil, false, fmt.Errorf("enrol in sequence %s: %w", seq.ID, err)
	}
	e, err := s.Enrollment(ctx, seq, phone)
	return e, true, err
}

// Enrollment reads a phone's latest enrolment and where each step is.
func (s *Store) Enrollment(ctx context.Context, seq *Sequence, phone string) (*Enrollment, error) {
	raw, err := s.rdb.HGet(ctx, enrolledKey(seq.ID), phone).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read enrolment: %w", err)
	}
	var stored struct {
		N int64  `json:"n"`
		T string `json:"t"`
		S string `json:"s"`
	}
	if err := json.Unmarshal([]byte(raw), &stored); err != nil {
		return nil, fmt.Errorf("read enrolment: %w", err)
	}
	e := &Enrollment{Phone: phone, Status: stored.S, n: stored.N}
	if t := ParseUnixMilli(stored.T); t != nil {
		e.EnrolledAt = *t
	}
	if e.Status == "pending" {
		e.Status = "active"
	}
	for _, st := range seq.Steps {
		rec, _, err := s.tracking(ctx, st.CampaignID, stored.N)
		if err != nil {
			return nil, err
		}
		e.Steps = append(e.Steps, EnrolledStep{Name: st.Name, CampaignID: st.CampaignID, DueAt: e.EnrolledAt.Add(st.delay),
			State: rec.State, Reason: rec.Reason, MessageUID: rec.UID})
	}
	return e, nil
}

// Unenroll cancels the steps of a phone's enrolment that have not gone out;
// steps already sent (or being sent) stay as they are. It answers how many
// steps it cancelled.
func (s *Store) Unenroll(ctx context.Context, seq *Sequence, phone string, now time.Time) (int, error) {
	e, err := s.Enrollment(ctx, seq, phone)
	if err != nil {
		return 0, err
	}
	cancelled := 0
	for _, st := range seq.Steps {
		ok, err := s.settle(ctx, settleParams{Campaign: st.CampaignID, Seq: e.n, From: StateQueued,
			Record: record{State: StateSkipped, Reason: "unenrolled"}, Detail: "unenrolled", Now: now})
		if err != nil {
			return cancelled, err
		}
		if ok {
			cancelled++
		}
	}
	done, _ := json.Marshal(map[string]any{"n": e.n, "t": UnixMilli(e.EnrolledAt), "s": "cancelled"})
	if err := s.rdb.HSet(ctx, enrolledKey(seq.ID), phone, string(done)).Err(); err != nil {
		return cancelled, fmt.Errorf("unenrol: %w", err)
	}
	return cancelled, nil
}

// EnrollReport is what enrolling a CSV did.
type EnrollReport struct {
	Enrolled        int64         `json:"enrolled"`
	AlreadyEnrolled int64         `json:"already_enrolled"`
	RejectedCount   int64         `json:"rejected_count"`
	Rejected        []RejectedRow `json:"rejected"`
}

// EnrollCSV enrols every row of a contacts CSV (a phone column and the
// sequence's fields), streaming it. A header without the fields the
// templates use is an InputError before anything is enrolled; bad rows are
// listed while the good ones are enrolled.
func (s *Store) EnrollCSV(ctx context.Context, queue *Enqueuer, seq *Sequence, contacts io.Reader, region string, now func() time.Time) (*EnrollReport, error) {
	in, err := openCSV(contacts)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, f := range seq.Fields {
		if indexOf(in.columns, f) < 0 {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("the contacts lack columns the sequence's templates use: %s (found: %s)", strings.Join(missing, ", "), strings.Join(in.header, ", "))
		return nil, &InputError{Msg: msg, Problems: []Problem{{Fields: []string{"contacts"}, Msg: msg}}}
	}
	report := &EnrollReport{Rejected: []RejectedRow{}}
	reject := func(row int, msg string) {
		report.RejectedCount++
		if len(report.Rejected) < MaxRejectedListed {
			report.Rejected = append(report.Rejected, RejectedRow{Row: row, Msg: msg})
		}
	}
	for {
		rec, rowNum, problem, err := in.next()
		if err == io.EOF {
			return report, nil
		}
		if err != nil {
			return report, err
		}
		if problem != "" {
			reject(rowNum, problem)
			continue
		}
		fields := map[string]string{}
		empty := true
		for i, col := range in.columns {
			if i < len(rec) {
				fields[col] = rec[i]
				if strings.TrimSpace(rec[i]) != "" {
					empty = false
				}
			}
		}
		if empty {
			continue
		}
		_, created, err := s.Enroll(ctx, queue, seq, fields[in.columns[in.phone]], fields, region, now())
		var bad *InputError
		switch {
		case errors.As(err, &bad):
			reject(rowNum, bad.Msg)
		case err != nil:
			return report, err
		case created:
			report.Enrolled++
		default:
			report.AlreadyEnrolled++
		}
	}
}
