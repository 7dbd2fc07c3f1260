package templating

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrEmptyTemplate is returned by Parse for a template with no text, or only
// whitespace.
var ErrEmptyTemplate = errors.New("template is empty")

// SyntaxError reports a template that cannot be used: bad syntax, an unknown
// function, a function given the wrong number of arguments, a field that can
// never have a value (such as {{.campaign.title}}), or something templates
// cannot use because it could run unbounded or print the whole row
// ({{range}}, {{define}}, {{.}}, a wide printf; see the package doc). Its
// message is meant for the person who wrote the template and names what is
// refused.
type SyntaxError struct {
	Line int    // 1-based line in the template text; 0 when not known
	Msg  string // what is wrong, without Go-internal prefixes
}

func (e *SyntaxError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("template line %d: %s", e.Line, e.Msg)
	}
	return "template: " + e.Msg
}

// MissingColumnsError reports fields a template uses that the CSV does not
// have. It is raised before any recipient is enqueued, so an upload with a
// typo is rejected once instead of failing every recipient.
type MissingColumnsError struct {
	Missing   []string // referenced by the template, absent from the CSV; sorted
	Available []string // the CSV's columns (normalized), in CSV order
}

func (e *MissingColumnsError) Error() string {
	var b strings.Builder
	if len(e.Missing) == 1 {
		b.WriteString("the template uses a column the CSV does not have: ")
	} else {
		b.WriteString("the template uses columns the CSV does not have: ")
	}
	available := make(map[string]bool, len(e.Available))
	for _, c := range e.Available {
		available[c] = true
	}
	for i, m := range e.Missing {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(m))
		// {{.First_Name}} for a "First Name" header: point at the spelling
		// that works.
		if n := NormalizeColumn(m); n != m && available[n] {
			fmt.Fprintf(&b, " (did you mean %q?)", n)
		}
	}
	if len(e.Available) == 0 {
		b.WriteString("; the CSV has no usable columns")
	} else {
		b.WriteString("; available columns: ")
		b.WriteString(strings.Join(e.Available, ", "))
	}
	return b.String()
}

// CampaignColumnError reports a template that reads the built-in campaign
// data ({{.campaign.name}}, {{.campaign.id}}) for a CSV that has its own
// column named "campaign". The column wins, so those fields would fail for
// every recipient.
type CampaignColumnError struct {
	Fields []string // "campaign.id", "campaign.name"; sorted
}

func (e *CampaignColumnError) Error() string {
	refs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		refs[i] = "{{." + f + "}}"
	}
	return fmt.Sprintf("the CSV has a column named %q, which replaces the campaign details the template uses (%s); rename the column or remove those fields from the template",
		"campaign", strings.Join(refs, ", "))
}

// RenderError reports a template that failed for one recipient's row, such as
// a row without a value for a column the template uses, or functions that
// handled more text than a Render allows (see the package doc).
type RenderError struct {
	Line int    // 1-based line in the template text; 0 when not known
	Msg  string // what went wrong, without Go-internal prefixes
	Err  error  // the error from text/template
}

func (e *RenderError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("rendering template line %d: %s", e.Line, e.Msg)
	}
	return "rendering template: " + e.Msg
}

func (e *RenderError) Unwrap() error { return e.Err }

// TooLongError reports a rendered message longer than the provider accepts.
// Length and Max count Unicode code points.
type TooLongError struct {
	Length int
	Max    int
	// Stopped: rendering stopped when the text passed 4 bytes for each
	// character allowed (no longer message is ever built), so Length counts
	// the text up to there and the message is longer still.
	Stopped bool
}

func (e *TooLongError) Error() string {
	if e.Stopped {
		return fmt.Sprintf("rendered message is over the limit: the provider accepts at most %d characters, and rendering stopped after %d",
			e.Max, e.Length)
	}
	return fmt.Sprintf("rendered message is %d characters; the provider accepts at most %d", e.Length, e.Max)
}

// splitLocation takes a text/template error message and returns the line it
// names and the message without the "template: NAME:LINE[:COL]: " prefix.
func splitLocation(msg, name string) (line int, rest string) {
	rest, ok := strings.CutPrefix(msg, "template: "+name+":")
	if !ok {
		return 0, strings.TrimPrefix(msg, "template: ")
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	line, err := strconv.Atoi(rest[:i])
	if err != nil {
		return 0, strings.TrimPrefix(msg, "template: ")
	}
	rest = rest[i:]
	if r, ok := strings.CutPrefix(rest, ":"); ok { // column, in execution errors
		j := 0
		for j < len(r) && r[j] >= '0' && r[j] <= '9' {
			j++
		}
		if j > 0 {
			rest = r[j:]
		}
	}
	rest = strings.TrimPrefix(rest, ": ")
	rest = strings.TrimPrefix(rest, "template: ") // "template: multiple definition of ..."
	return line, rest
}

// syntaxError converts an error of text/template's parser.
func syntaxError(err error, name string) *SyntaxError {
	line, msg := splitLocation(err.Error(), name)
	if msg == "unexpected EOF" {
		msg = "the template ends inside a block: an {{if}}, {{range}} or {{with}} is missing its {{end}}"
	}
	return &SyntaxError{Line: line, Msg: msg}
}

// renderError converts an error of text/template's Execute.
func renderError(err error, name string) *RenderError {
	line, msg := splitLocation(err.Error(), name)
	// `executing "NAME" at <.city>: map has no entry for key "city"`
	if _, after, ok := strings.Cut(msg, "executing "); ok {
		if i := strings.Index(after, ">: "); i >= 0 {
			msg = after[i+len(">: "):]
		}
	}
	if key, ok := strings.CutPrefix(msg, "map has no entry for key "); ok {
		msg = "the row has no value for column " + key
	}
	return &RenderError{Line: line, Msg: msg, Err: err}
}
