package campaign

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// What an import checks before it stores anything: the draft, the
// template against the contacts' columns, and (for contacts kept to be
// imported later, like a recurring campaign's) the whole file.

// checkTemplate answers an *InputError when the template uses a column the
// contacts lack.
func checkTemplate(tmpl *templating.Template, columns []string) error {
	if err := tmpl.CheckColumns(columns); err != nil {
		return &InputError{Msg: err.Error(), Problems: []Problem{{Fields: []string{"template"}, Msg: err.Error()}}}
	}
	return nil
}

// Check validates a draft as Import does and answers the campaign it
// describes, without storing anything.
func (im *Importer) Check(d Draft) (*Campaign, error) {
	var problems []Problem
	if d.Template == nil {
		problems = append(problems, Problem{Fields: []string{"template"}, Msg: "a template is required: send template (the text) or template_name (a file in templates/)"})
	}
	name := strings.TrimSpace(d.Name)
	if utf8.RuneCountInString(name) > MaxNameLength {
		problems = append(problems, Problem{Fields: []string{"name"}, Msg: fmt.Sprintf("name is longer than %d characters", MaxNameLength)})
	}
	now := im.now().UTC()
	if name == "" {
		name = "Campaign of " + now.Format("2006-01-02 15:04 MST")
	}
	problems = append(problems, im.providerProblems(d)...)
	if !ValidCapPolicy(d.CapPolicy) {
		problems = append(problems, Problem{Fields: []string{"cap_policy"}, Msg: fmt.Sprintf("cap_policy %q is neither %s nor %s", d.CapPolicy, CapSkip, CapDefer)})
	}
	problems = append(problems, draftVariantProblems(d)...)
	accounts, accountProblems := NormalizeAccounts(d.Accounts, im.region)
	problems = append(problems, accountProblems...)
	status := StatusRunning
	var sendAt *time.Time
	if !d.SendAt.IsZero() {
		switch {
		case d.SendAt.Before(now.Add(-sendAtTooEarly)):
			problems = append(problems, Problem{Fields: []string{"send_at"}, Msg: "send_at " + d.SendAt.Format(time.RFC3339) + " is in the past"})
		case d.SendAt.After(now):
			t := d.SendAt.UTC()
			sendAt = &t
			status = StatusScheduled
		}
	}
	if len(problems) > 0 {
		return nil, &InputError{Msg: problems[0].Msg, Problems: problems}
	}
	if d.AsDraft {
		status = StatusDraft // send_at is kept: Start schedules it then
	}
	id := d.ID
	if id == "" {
		id = NewID(now)
	}
	c := &Campaign{
		ID:            id,
		Name:          name,
		Status:        status,
		CreatedAt:     now,
		SendAt:        sendAt,
		Template:      d.Template.Source(),
		TemplateName:  d.TemplateName,
		Accounts:      accounts,
		Label:         d.Label,
		FileUID:       d.FileUID,
		Window:        d.Window,
		Credits:       Credits{Metered: im.caps.MeteredCredits},
		CapPolicy:     d.CapPolicy,
		Transactional: d.Transactional,
	}
	c.TypingSimulation, c.PresenceSimulation = SimulationFlags(im.caps, d.TypingSimulation, d.PresenceSimulation)
	setVariants(c, d, now)
	return c, nil
}

// providerProblems are what a draft asks of the provider that it cannot
// do: a label (or one too long), an attachment, typing or presence
// simulation. Each names its field.
func (im *Importer) providerProblems(d Draft) []Problem {
	return ProviderProblems(im.caps, d.Label, d.FileUID, d.TypingSimulation, d.PresenceSimulation)
}

// ProviderProblems checks what a campaign or a sequence asks of the
// provider with caps (a label, an attachment, typing and presence
// simulation; "" and nil ask nothing), naming each field it cannot take.
func ProviderProblems(caps sender.Capabilities, label, fileUID string, typing, presence *bool) []Problem {
	var problems []Problem
	cannot := func(field, what string) {
		problems = append(problems, Problem{Fields: []string{field}, Msg: fmt.Sprintf("%s cannot send %s", caps.Name, what)})
	}
	switch n := utf8.RuneCountInString(label); {
	case label == "":
	case !caps.Labels:
		cannot("label", "label (chat labels)")
	case caps.MaxLabelLength > 0 && n > caps.MaxLabelLength:
		problems = append(problems, Problem{Fields: []string{"label"}, Msg: fmt.Sprintf("label is %d characters; %s accepts at most %d", n, caps.Name, caps.MaxLabelLength)})
	}
	if fileUID != "" && !caps.Attachments {
		cannot("file_uid", "file_uid (attachments)")
	}
	if typing != nil && !caps.TypingSimulation {
		cannot("typing_simulation", "typing_simulation (it has no typing simulation)")
	}
	if presence != nil && !caps.TypingSimulation {
		cannot("presence_simulation", "presence_simulation (it has no presence simulation)")
	}
	return problems
}

// orOn is a simulation flag with its default, on.
func orOn(v *bool) *bool {
	on := v == nil || *v
	return &on
}

// ContactsSummary describes a contacts file CheckContacts read whole.
type ContactsSummary struct {
	Bytes       int64    `json:"bytes"`
	Rows        int64    `json:"rows"` // distinct valid recipients when it was saved
	Columns     []string `json:"columns"`
	PhoneColumn string   `json:"phone_column"` // "": none
	KeyColumns  []string `json:"key_columns"`  // what recipients are addressed by (address.go)
	// Suppressed is how many of Rows are on the suppression list: an
	// import counts them suppressed and queues them not.
	Suppressed int64 `json:"suppressed"`
}

// CheckContacts reads a whole contacts file the way an import does (the same
// parser, row checks and de-duplication, by running the importer's own
// parse stage), without storing anything, and describes it. A file no run
// could import is an *InputError, as Import would answer it.
func (im *Importer) CheckContacts(ctx context.Context, tmpl *templating.Template, contacts []byte) (ContactsSummary, error) {
	in, err := openCSV(bytes.NewReader(contacts))
	if err != nil {
		return ContactsSummary{}, err
	}
	if tmpl != nil {
		if err := tmpl.CheckColumns(in.columns); err != nil {
			return ContactsSummary{}, &InputError{Msg: err.Error(), Problems: []Problem{{Fields: []string{"template"}, Msg: err.Error()}}}
		}
	}
	run, err := im.newRun(nil, in)
	if err != nil {
		return ContactsSummary{}, err
	}
	items := make(chan importItem, batchRows)
	parsed := make(chan error, 1)
	go func() {
		defer close(items)
		parsed <- run.parse(ctx, items)
	}()
	var addresses []string
	for it := range items {
		switch {
		case it.row != nil:
			run.accepted++
			addresses = append(addresses, it.row.address)
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
		return ContactsSummary{}, fmt.Errorf("read the contacts file: %w", err)
	}
	if run.accepted == 0 {
		return ContactsSummary{}, run.nothingToSend()
	}
	summary := ContactsSummary{Bytes: int64(len(contacts)), Rows: run.accepted, Columns: in.columns}
	if summary.Suppressed, err = im.countSuppressed(ctx, addresses); err != nil {
		return ContactsSummary{}, storeFailed(ctx, err)
	}
	for _, k := range run.keys {
		if k.kind == KindPhone {
			summary.PhoneColumn = in.columns[k.index]
		}
		summary.KeyColumns = append(summary.KeyColumns, in.columns[k.index])
	}
	return summary, nil
}

// countSuppressed counts the suppressed among addresses, a batch per
// round trip.
func (im *Importer) countSuppressed(ctx context.Context, addresses []string) (int64, error) {
	if im.audience == nil {
		return 0, nil
	}
	var n int64
	for start := 0; start < len(addresses); start += batchRows {
		suppressed, err := im.audience.Suppressed(ctx, addresses[start:min(start+batchRows, len(addresses))])
		if err != nil {
			return 0, err
		}
		for _, s := range suppressed {
			if s {
				n++
			}
		}
	}
	return n, nil
}

// newRun prepares the import of src into c (nil: a check that stores
// nothing), with the key columns the provider can address. Contacts whose
// every key column is of a kind it cannot address, or that carry their own
// attachments to a provider without them, are an *InputError.
func (im *Importer) newRun(c *Campaign, src rowSource) (*importRun, error) {
	lay := src.columnsOf()
	run := &importRun{im: im, c: c, src: src, lay: lay, dedupe: newDedupe()}
	for _, k := range lay.keys {
		if addressable(im.caps, k.kind) {
			run.keys = append(run.keys, k)
		} else {
			run.refused = append(run.refused, k)
		}
	}
	if len(run.keys) == 0 {
		return nil, FieldError("contacts", fmt.Sprintf("%s cannot address recipients by %s (column %q); give a %s column",
			im.caps.Name, run.refused[0].kind, lay.header[run.refused[0].index], addressableKinds(im.caps)))
	}
	if lay.file >= 0 && !im.caps.Attachments {
		return nil, FieldError("contacts", fmt.Sprintf("the contacts have a file_uid column, and %s cannot send file_uid (attachments)", im.caps.Name))
	}
	return run, nil
}

// addressableKinds lists the kinds caps can address, for a person.
func addressableKinds(caps sender.Capabilities) string {
	var kinds []string
	for _, k := range keyKinds {
		if addressable(caps, k) {
			kinds = append(kinds, string(k))
		}
	}
	return strings.Join(kinds, " or ")
}

// rowKey finds the row's key, its first key column that is filled, and
// normalises it in place. A row whose only key is of a kind the provider
// cannot address is rejected saying so.
func (r *importRun) rowKey(values []string) (recipientKey, string) {
	for _, k := range r.keys {
		if values[k.index] == "" {
			continue
		}
		norm, err := normalizeKey(k.kind, values[k.index], r.im.region)
		if err != nil {
			return recipientKey{}, fmt.Sprintf("column %q: %v", r.lay.header[k.index], err)
		}
		values[k.index] = norm
		return recipientKey{k.kind, norm}, ""
	}
	for _, k := range r.refused {
		if values[k.index] != "" {
			return recipientKey{}, fmt.Sprintf("column %q: %s cannot address recipients by %s", r.lay.header[k.index], r.im.caps.Name, k.kind)
		}
	}
	if len(r.lay.keys) == 1 {
		k := r.keys[0]
		return recipientKey{}, fmt.Sprintf("column %q: %s is empty", r.lay.header[k.index], k.kind)
	}
	names := make([]string, len(r.lay.keys))
	for i, k := range r.lay.keys {
		names[i] = r.lay.header[k.index]
	}
	return recipientKey{}, "the row has no recipient: " + strings.Join(names, ", ") + " are all empty"
}

// NormalizeAccounts reads sender accounts as E.164, without repeats.
func NormalizeAccounts(raw []string, region string) ([]string, []Problem) {
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
