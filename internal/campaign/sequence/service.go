package sequence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// Service creates sequences and enrols contacts in them.
type Service struct {
	store     store
	campaigns *campaign.Store     // the steps
	adder     *campaign.Service   // adds enrolments to the steps
	region    string              // DEFAULT_REGION, for phones written without a country code
	caps      sender.Capabilities // the provider's: what a sequence may ask for, and its credits
}

// Option configures a Service.
type Option func(*Service)

// ForProvider makes sequences follow the capabilities of the provider
// their messages go through, as campaign.ForProvider does campaigns.
// Default: TimelinesAI's.
func ForProvider(caps sender.Capabilities) Option {
	return func(s *Service) { s.caps = caps }
}

// NewService returns the sequences on rdb, their steps kept by campaigns
// and added to by adder.
func NewService(rdb redis.UniversalClient, campaigns *campaign.Store, adder *campaign.Service, region string, opts ...Option) *Service {
	s := &Service{store: store{rdb: rdb}, campaigns: campaigns, adder: adder, region: region, caps: sender.TimelinesCapabilities()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Create validates and stores a sequence with a campaign per step.
func (s *Service) Create(ctx context.Context, d Draft, now time.Time) (*Sequence, error) {
	accounts, fields, err := s.validate(d)
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(d.Name)
	seq := &Sequence{ID: campaign.NewID(now), Name: name, CreatedAt: now.UTC(), Accounts: accounts, Label: d.Label, Window: d.Window,
		KeyColumns: campaign.KeyColumnsFor(s.caps), Fields: fields, Transactional: d.Transactional}
	seq.TypingSimulation, seq.PresenceSimulation = campaign.SimulationFlags(s.caps, d.TypingSimulation, d.PresenceSimulation)
	columns := append(slices.Clone(seq.KeyColumns), seq.Fields...)
	phoneColumn := ""
	if slices.Contains(seq.KeyColumns, string(campaign.KindPhone)) {
		phoneColumn = string(campaign.KindPhone)
	}
	for i, st := range d.Steps {
		stepName := strings.TrimSpace(st.Name)
		if stepName == "" {
			stepName = fmt.Sprintf("step %d", i+1)
		}
		c := &campaign.Campaign{
			ID: campaign.NewID(now), Name: name + " · " + stepName, Status: campaign.StatusRunning, CreatedAt: now.UTC(),
			Template: st.Template.Source(), TemplateName: st.TemplateName, Accounts: accounts,
			Label: d.Label, FileUID: st.FileUID, Window: d.Window, Columns: columns, KeyColumns: seq.KeyColumns,
			TypingSimulation: seq.TypingSimulation, PresenceSimulation: seq.PresenceSimulation,
			Credits: campaign.Credits{Metered: s.caps.MeteredCredits}, SequenceID: seq.ID, SequenceStep: i + 1,
			Transactional: d.Transactional,
		}
		if err := s.campaigns.CreateOpen(ctx, c, phoneColumn); err != nil {
			return nil, err
		}
		seq.Steps = append(seq.Steps, Step{Name: stepName, Delay: st.Delay.String(), Template: c.Template,
			TemplateName: st.TemplateName, FileUID: st.FileUID, CampaignID: c.ID, delay: st.Delay})
	}
	if err := s.store.save(ctx, seq); err != nil {
		return nil, err
	}
	return seq, nil
}

// validate checks a draft and answers its accounts as E.164 and the fields
// an enrolment carries (the templates' and the declared ones, sorted).
func (s *Service) validate(d Draft) ([]string, []string, error) {
	var problems []campaign.Problem
	if strings.TrimSpace(d.Name) == "" {
		problems = append(problems, campaign.Problem{Fields: []string{"name"}, Msg: "a sequence needs a name"})
	}
	if len(d.Steps) == 0 || len(d.Steps) > maxSteps {
		problems = append(problems, campaign.Problem{Fields: []string{"steps"}, Msg: fmt.Sprintf("a sequence has 1 to %d steps", maxSteps)})
	}
	accounts, accountProblems := campaign.NormalizeAccounts(d.Accounts, s.region)
	problems = append(problems, accountProblems...)
	problems = append(problems, campaign.ProviderProblems(s.caps, d.Label, "", d.TypingSimulation, d.PresenceSimulation)...)
	fields := map[string]bool{}
	for _, f := range d.Fields {
		if n := templating.NormalizeColumn(f); n != "" && !isKeyColumn(n) {
			fields[n] = true
		}
	}
	for i, st := range d.Steps {
		at := []string{"steps", strconv.Itoa(i)}
		if st.Template == nil {
			problems = append(problems, campaign.Problem{Fields: append(at, "template"), Msg: "each step needs template or template_name"})
			continue
		}
		if st.Delay < 0 {
			problems = append(problems, campaign.Problem{Fields: append(at, "delay"), Msg: "a delay cannot be negative"})
		}
		if i > 0 && st.Delay < d.Steps[i-1].Delay {
			problems = append(problems, campaign.Problem{Fields: append(at, "delay"), Msg: "steps are in order: each delay at least the one before"})
		}
		for _, p := range campaign.ProviderProblems(s.caps, "", st.FileUID, nil, nil) {
			problems = append(problems, campaign.Problem{Fields: append(slices.Clone(at), p.Fields...), Msg: p.Msg})
		}
		for _, f := range st.Template.Fields() {
			if !isKeyColumn(f) {
				fields[f] = true
			}
		}
	}
	if len(problems) > 0 {
		return nil, nil, &campaign.InputError{Msg: problems[0].Msg, Problems: problems}
	}
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	sort.Strings(names)
	return accounts, names, nil
}

// isKeyColumn says whether a field is one of the columns an enrolment's
// contact is addressed by, which are not fields it carries.
func isKeyColumn(name string) bool {
	k := campaign.Kind(name)
	return k == campaign.KindPhone || k == campaign.KindJID || k == campaign.KindChatID
}

// Get reads a sequence; withCounts adds each step's counts and funnel.
func (s *Service) Get(ctx context.Context, id string, withCounts bool) (*Sequence, error) {
	seq, err := s.store.get(ctx, id)
	if err != nil || !withCounts {
		return seq, err
	}
	for i := range seq.Steps {
		c, err := s.campaigns.Get(ctx, seq.Steps[i].CampaignID)
		if err != nil {
			return nil, err
		}
		seq.Steps[i].Counts, seq.Steps[i].Funnel = &c.Counts, &c.Funnel
	}
	return seq, nil
}

// List returns the sequences, newest first.
func (s *Service) List(ctx context.Context) ([]*Sequence, error) {
	ids, err := s.store.ids(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Sequence, 0, len(ids))
	for _, id := range ids {
		seq, err := s.Get(ctx, id, true)
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

// Enroll puts a contact into a sequence: each step is queued for the
// enrolment time plus its delay. The contact is addressed like a row of a
// contacts file: by phone, JID or chat id, the first given (KeyColumns).
// Enrolling a contact that is enrolled already changes nothing and answers
// that enrolment (created false); one whose enrolment was cancelled is
// enrolled anew. Missing fields the templates use are an InputError naming
// them.
func (s *Service) Enroll(ctx context.Context, seq *Sequence, to campaign.Address, fields map[string]string, now time.Time) (*Enrollment, bool, error) {
	key, values, err := s.row(seq, to, fields)
	if err != nil {
		return nil, false, err
	}
	n, at, claim, err := s.store.claimEnrolment(ctx, seq.ID, key, now)
	if err != nil {
		return nil, false, err
	}
	if claim == enrolActive {
		e, err := s.Enrollment(ctx, seq, key)
		return e, false, err
	}
	for _, st := range seq.Steps {
		// Rounded up to the second: asynq keeps due times in whole seconds,
		// rounded down, and a delay must not be cut short. A step due now is
		// booked on its account's plan like any campaign's send, so a burst
		// of enrolments is paced instead of piling up on the account.
		var due time.Time
		if st.delay > 0 {
			due = at.Add(st.delay).Add(time.Second - 1).Truncate(time.Second)
		}
		credits := s.caps.Credits(sender.Message{Text: st.Template, FileUID: st.FileUID})
		if err := s.adder.AddRecipient(ctx, campaign.NewRecipient{Campaign: st.CampaignID, Seq: n, Values: values, Credits: credits, DueAt: due}); err != nil {
			return nil, false, fmt.Errorf("enrol in step %s of sequence %s: %w", st.Name, seq.ID, err)
		}
	}
	if err := s.store.setEnrolment(ctx, seq.ID, key, storedEnrollment{N: n, T: campaign.UnixMilli(at), S: "active"}); err != nil {
		return nil, false, err
	}
	e, err := s.Enrollment(ctx, seq, key)
	return e, true, err
}

// row is an enrolment's key (a phone in E.164, a JID, a chat id) and its
// values in the steps' column order (the key columns, then the sequence's
// fields).
func (s *Service) row(seq *Sequence, to campaign.Address, fields map[string]string) (string, []string, error) {
	kind, key, err := campaign.ReadAddress(to, s.caps, s.region)
	if err != nil {
		return "", nil, err
	}
	if !slices.Contains(seq.KeyColumns, string(kind)) {
		return "", nil, campaign.FieldError(string(kind), fmt.Sprintf("this sequence addresses contacts by %s, not %s", strings.Join(seq.KeyColumns, " or "), kind))
	}
	values := make([]string, len(seq.KeyColumns), len(seq.KeyColumns)+len(seq.Fields))
	values[slices.Index(seq.KeyColumns, string(kind))] = key
	normalized := map[string]string{}
	for k, v := range fields {
		normalized[templating.NormalizeColumn(k)] = campaign.CleanValue(strings.TrimSpace(v))
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
		return "", nil, campaign.FieldError("fields", "the sequence's templates use fields the enrolment lacks: "+strings.Join(missing, ", "))
	}
	return key, values, nil
}

// Enrollment reads a contact's latest enrolment, by its key (a phone in
// E.164, a JID, a chat id), and where each step is.
func (s *Service) Enrollment(ctx context.Context, seq *Sequence, key string) (*Enrollment, error) {
	stored, err := s.store.enrolment(ctx, seq.ID, key)
	if err != nil {
		return nil, err
	}
	e := &Enrollment{Key: key, Kind: keyKind(key), Status: stored.S, n: stored.N}
	if e.Kind == campaign.KindPhone {
		e.Phone = key
	}
	if t := campaign.ParseUnixMilli(stored.T); t != nil {
		e.EnrolledAt = *t
	}
	if e.Status == string(enrolPending) {
		e.Status = "active"
	}
	for _, st := range seq.Steps {
		r, err := s.campaigns.Recipient(ctx, st.CampaignID, stored.N)
		if err != nil {
			return nil, err
		}
		e.Steps = append(e.Steps, EnrolledStep{Name: st.Name, CampaignID: st.CampaignID, DueAt: e.EnrolledAt.Add(st.delay),
			State: r.State, Reason: r.Reason, MessageUID: r.MessageUID})
	}
	return e, nil
}

// keyKind is the kind of a normalised key: a JID has its @, a phone its +.
func keyKind(key string) campaign.Kind {
	switch {
	case strings.Contains(key, "@"):
		return campaign.KindJID
	case strings.HasPrefix(key, "+"):
		return campaign.KindPhone
	}
	return campaign.KindChatID
}

// Unenroll cancels the steps of a contact's enrolment (by its key) that
// have not gone out; steps already sent (or being sent) stay as they are.
// It answers how many steps it cancelled.
func (s *Service) Unenroll(ctx context.Context, seq *Sequence, key string, now time.Time) (int, error) {
	e, err := s.Enrollment(ctx, seq, key)
	if err != nil {
		return 0, err
	}
	cancelled := 0
	for _, st := range seq.Steps {
		ok, err := s.campaigns.SkipQueued(ctx, st.CampaignID, e.n, "unenrolled", now)
		if err != nil {
			return cancelled, err
		}
		if ok {
			cancelled++
		}
	}
	err = s.store.setEnrolment(ctx, seq.ID, key, storedEnrollment{N: e.n, T: campaign.UnixMilli(e.EnrolledAt), S: "cancelled"})
	return cancelled, err
}

// EnrollCSV enrols every row of a contacts CSV (a phone, jid or chat_id column and the
// sequence's fields), streaming it. A header without the fields the
// templates use is an InputError before anything is enrolled; bad rows are
// listed while the good ones are enrolled.
func (s *Service) EnrollCSV(ctx context.Context, seq *Sequence, contacts io.Reader, now func() time.Time) (*EnrollReport, error) {
	in, err := campaign.OpenContactsCSV(contacts)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, f := range seq.Fields {
		if !in.Has(f) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("the contacts lack columns the sequence's templates use: %s (found: %s)", strings.Join(missing, ", "), strings.Join(in.Header(), ", "))
		return nil, campaign.FieldError("contacts", msg)
	}
	report := &EnrollReport{Rejected: []campaign.RejectedRow{}}
	reject := func(row int, msg string) {
		report.RejectedCount++
		if len(report.Rejected) < campaign.MaxRejectedListed {
			report.Rejected = append(report.Rejected, campaign.RejectedRow{Row: row, Msg: msg})
		}
	}
	for {
		row, err := in.Next()
		if err == io.EOF {
			return report, nil
		}
		if err != nil {
			return report, err
		}
		if row.Problem != "" {
			reject(row.Number, row.Problem)
			continue
		}
		to := campaign.Address{Phone: row.Phone, JID: row.Fields[string(campaign.KindJID)], ChatID: row.Fields[string(campaign.KindChatID)]}
		_, created, err := s.Enroll(ctx, seq, to, row.Fields, now())
		var bad *campaign.InputError
		switch {
		case errors.As(err, &bad):
			reject(row.Number, bad.Msg)
		case err != nil:
			return report, err
		case created:
			report.Enrolled++
		default:
			report.AlreadyEnrolled++
		}
	}
}
