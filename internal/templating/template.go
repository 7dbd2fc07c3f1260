// Package templating turns a campaign's message template and one recipient's
// CSV row into the text sent to that recipient.
//
// A template is text/template text whose data is the row, by normalized
// column name (see NormalizeColumn), plus the campaign's own details:
//
//	Hi {{.name | firstName | title | default "there"}}, your appointment in
//	{{.city}} is on {{.date}}. {{.campaign.name}} team
//
// The life of a template follows the upload (DESIGN.md, "Data flow"): Parse
// it once; CheckColumns against the CSV header before any row is enqueued, so
// a typo in a field name is one 400 at upload and not a failure for every
// recipient; then Render it per recipient, from as many goroutines as wanted.
//
// Data a template sees:
//   - {{.first_name}}: the row's value of the column whose header normalizes
//     to "first_name" ("First Name"). An empty cell is "", and renders as
//     nothing; {{default "there" .first_name}} gives a fallback. Every value
//     is text: {{if .vip}} is true for any non-empty value, "no" included;
//     compare instead: {{if eq .vip "yes"}}.
//   - {{.campaign.name}}, {{.campaign.id}}: the campaign's. If the CSV has a
//     column named "campaign", that column wins and {{.campaign}} is its
//     value; CheckColumns then rejects templates that use .campaign.name or
//     .campaign.id, which could no longer work.
//   - A column whose name starts with a digit ("2nd_phone") is written
//     {{index . "2nd_phone"}}.
//
// Functions, besides text/template's built-ins (eq, printf, index, ...):
//   - default FALLBACK VALUE: VALUE, or FALLBACK when VALUE is empty or only
//     whitespace. Piped, the value comes last: {{.nick | default "there"}}.
//   - upper, lower, trim: strings.ToUpper, strings.ToLower, strings.TrimSpace.
//   - title: each word's first letter upper-case, the rest lower-case, by
//     Unicode rules ("maría JOSÉ" → "María José").
//   - firstName: the first word of a full name, trimmed, in the casing the
//     CSV has ("  maría josé garcía " → "maría"); pipe it into title to fix
//     the casing.
//   - pick A B ...: one of its arguments, chosen by a hash of the campaign
//     id, the recipient (Campaign.Recipient) and which pick of the message
//     this is: {{pick "Hi" "Hello" "Hey"}}. The same recipient of the same
//     campaign always gets the same words (preview, retries, reports); the
//     recipients of a campaign get them in about equal shares.
//
// None reads files, the environment, the network, the clock or a random
// source: a message depends only on its row, campaign and recipient, so a
// preview shows what is sent.
// Output is plain text; nothing is HTML-escaped.
//
// # Bounded by construction
//
// Templates come from users and run in the worker for every recipient, so
// Parse accepts only templates that render any row within a small, fixed
// cost. It refuses, with a *SyntaxError naming the construct:
//   - {{range}} (and so {{break}}, {{continue}}), {{template}}, {{define}},
//     {{block}} and call: a row's fields are plain text, so there is nothing
//     to loop over, no other template and no function to call;
//   - {{.}} (or $) where it is the whole row: it would print every column,
//     internal notes included, to the customer. {{index . "col"}}, {{with}}
//     and {{$r := .}} stay allowed;
//   - printf whose format is not a quoted string in the template, or has a
//     width or precision over 64, a * width or an argument index ("%[1]s"):
//     each verb then prints its own argument once, padded by at most 64;
//   - more than 1000 actions, commands and operands, nested ones included.
//
// {{if}}/{{else}} and {{with}} stay. With no loop and no template call, each
// node of the tree runs at most once, so a Render does at most 1000
// operations. What each may cost is bounded too:
//   - Text written: Render writes into a buffer that stops it once the
//     message passes 4*(MaxLength+1) bytes (leading whitespace aside), with a
//     *TooLongError; no longer message is ever built.
//   - Text made by functions: ours and the built-ins that make text (print,
//     printf, println, html, js, urlquery) charge a per-Render budget of 64
//     KiB with the bytes they read before working and the bytes they make
//     after; past it they fail (a *RenderError). One call makes at most 6
//     times what it reads (js), plus printf's padding, so nesting cannot grow
//     text without end.
//   - The other built-ins (eq, ne, lt, le, gt, ge, and, or, not, len, index,
//     slice) make no text; the slowest compares two values of at most a
//     row's 64 KiB.
//
// So a Render costs at most about 1000 operations of text/template (some
// 100 KB and a millisecond), 64 KiB of function text plus one call's
// overshoot (at most 6 times 64 KiB), a few hundred compares of at most 64
// KiB each, and an 8 KB message: under the 10 ms and 1 MB that FuzzTemplate
// asserts for any accepted template and any row of up to 64 KiB.
package templating

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"text/template"
	"unicode/utf8"
)

// MaxLength is the longest message, in Unicode code points, that Render
// allows: TimelinesAI's limit. Other providers' limits go to RenderUpTo.
const MaxLength = 2000

// Campaign holds the campaign details a template can use as
// {{.campaign.name}} and {{.campaign.id}}.
type Campaign struct {
	ID, Name string
	// Recipient is who the message is for (its phone, JID or chat id): with
	// ID, it seeds {{pick}}, so that a preview, a retry and the report of
	// one recipient show the same choices. It is not template data.
	Recipient string
}

// Template is a parsed message template. It does not change after Parse and
// is safe for concurrent use.
type Template struct {
	name string
	src  string
	tmpl *template.Template // as parsed; Render runs clones of it
	used usage
	// renderers holds *renderer, each with its own budget for the
	// functions, so Render may run from many goroutines.
	renderers sync.Pool
}

// Parse parses a message template. name is used for nothing but Name; errors
// are about lines of text. Text that is empty or only whitespace is
// ErrEmptyTemplate; a template that cannot work is a *SyntaxError (bad
// syntax, an unknown function, a function given the wrong number of
// arguments, a field that can never have a value), and so is one that uses
// what the package doc lists as refused, to keep Render bounded.
func Parse(name, text string) (*Template, error) {
	if strings.TrimSpace(text) == "" {
		return nil, ErrEmptyTemplate
	}
	tmpl, err := template.New(name).Option("missingkey=error").Funcs(stringFuncs(nil, nil)).Parse(text)
	if err != nil {
		return nil, syntaxError(err, name)
	}
	used, serr := findUsage(tmpl, text)
	if serr == nil {
		serr = definitionProblem(tmpl, name, text)
	}
	if serr != nil {
		return nil, serr
	}
	return &Template{name: name, src: text, tmpl: tmpl, used: used}, nil
}

// ParseFS reads the template file name from fsys (such as os.DirFS of the
// shipped templates/ directory) and parses it. The name must be a plain
// fs.ValidPath, so a request cannot reach outside fsys with "../".
func ParseFS(fsys fs.FS, name string) (*Template, error) {
	text, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	return Parse(name, string(text))
}

// Name returns the name given to Parse.
func (t *Template) Name() string { return t.name }

// Source returns the template text given to Parse.
func (t *Template) Source() string { return t.src }

// Fields returns the row columns the template references, sorted, each once.
// The campaign details ({{.campaign.name}}) are not columns and are not
// listed. Fields inside {{with}} bodies, where dot is not the row, are not
// listed either; $.col there is.
func (t *Template) Fields() []string { return slices.Clone(t.used.fields) }

// CheckColumns reports whether rows with the given columns (normalized
// names, as NormalizeColumn or NormalizeHeader return them) have everything
// the template uses. It returns a *MissingColumnsError naming the fields the
// columns lack, a *CampaignColumnError if a "campaign" column hides campaign
// details the template reads, or both joined.
func (t *Template) CheckColumns(columns []string) error {
	have := make(map[string]bool, len(columns))
	available := make([]string, 0, len(columns))
	for _, c := range columns {
		if c == "" || have[c] {
			continue
		}
		have[c] = true
		available = append(available, c)
	}
	var missing []string
	for _, f := range t.used.fields {
		if !have[f] {
			missing = append(missing, f)
		}
	}
	var errs []error
	if len(missing) > 0 {
		errs = append(errs, &MissingColumnsError{Missing: missing, Available: available})
	}
	if have[campaignKey] && len(t.used.campaign) > 0 {
		errs = append(errs, &CampaignColumnError{Fields: slices.Clone(t.used.campaign)})
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}

// Render renders the message for one recipient. row maps normalized column
// names to the recipient's values and must hold every column the template
// uses (an empty cell as ""): a column it lacks is a *RenderError, as is any
// other failure while executing the template.
//
// Leading and trailing whitespace is removed from the result: it never means
// anything in a chat message, and template files end with a newline.
//
// A result longer than MaxLength code points is a *TooLongError. The text is
// returned with it, so a preview can show what is too long. Rendering stops
// once the text passes 4*(MaxLength+1) bytes, too long whatever code points
// they hold; the text returned then is what came before, and the error says
// rendering stopped.
func (t *Template) Render(row map[string]string, c Campaign) (string, error) {
	return t.RenderUpTo(row, c, MaxLength)
}

// RenderUpTo is Render with the provider's own text limit, maxLength code
// points (not positive: MaxLength): limits differ per provider
// (sender.Capabilities.MaxTextLength).
func (t *Template) RenderUpTo(row map[string]string, c Campaign, maxLength int) (string, error) {
	if maxLength <= 0 {
		maxLength = MaxLength
	}
	r, _ := t.renderers.Get().(*renderer)
	if r == nil {
		var err error
		if r, err = newRenderer(t.tmpl); err != nil {
			return "", &RenderError{Msg: err.Error(), Err: err}
		}
	}
	defer t.renderers.Put(r)
	err := r.execute(t.data(row, c), pickSeed(c.ID, c.Recipient), maxMessageBytesFor(maxLength))
	msg := strings.TrimSpace(string(r.out.buf))
	switch {
	case errors.Is(err, errMessageTooLong):
		return msg, &TooLongError{Length: utf8.RuneCountInString(msg), Max: maxLength, Stopped: true}
	case err != nil:
		return "", renderError(err, t.name)
	}
	if len(msg) > maxLength { // bytes ≥ code points: count only when it may matter
		if n := utf8.RuneCountInString(msg); n > maxLength {
			return msg, &TooLongError{Length: n, Max: maxLength}
		}
	}
	return msg, nil
}

// data is what the template executes on: the row itself when the template
// reads no campaign details, else a copy with them.
func (t *Template) data(row map[string]string, c Campaign) any {
	switch {
	case t.used.wholeData:
		m := make(map[string]any, len(row)+1)
		m[campaignKey] = campaignData(c)
		for k, v := range row {
			m[k] = v // a "campaign" column wins
		}
		return m
	case t.used.readsCampaign:
		// Copy only what the template reads: rows may have many columns.
		m := make(map[string]any, len(t.used.fields)+1)
		m[campaignKey] = campaignData(c)
		if v, ok := row[campaignKey]; ok {
			m[campaignKey] = v // a "campaign" column wins
		}
		for _, f := range t.used.fields {
			if v, ok := row[f]; ok { // absent: Execute reports it
				m[f] = v
			}
		}
		return m
	}
	return row // no copy
}

func campaignData(c Campaign) map[string]string {
	return map[string]string{"name": c.Name, "id": c.ID}
}
