package templating

import (
	"fmt"
	"strings"
	"sync"
	"text/template"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

// stringFuncs are the functions templates may call besides text/template's
// built-ins, and the built-ins that build text (print, printf, println, html,
// js, urlquery) in versions that charge budget with the bytes they read and
// make, so that one Render cannot handle more than maxFunctionBytes of text
// however its calls are nested (html of html of html... would grow fivefold
// each time). The other built-ins (eq, lt, len, index, slice, and, or, not)
// make no text and take at most the time to compare two values. With a nil
// budget nothing is counted: that map serves Parse, which only needs the
// names.
//
// Ours are pure string functions: none reads files, the environment, the
// network or the clock, so a message depends only on its row and campaign,
// and a preview shows exactly what will be sent. All take strings; CSV
// values are strings. In a pipeline the piped value is the last argument:
// {{.nick | default "there"}} is {{default "there" .nick}}.
//
// pick chooses one of its arguments by picks, the renderer's per-recipient
// seed; with nil picks (Parse) it is never run.
func stringFuncs(budget *workBudget, picks *pickState) template.FuncMap {
	return template.FuncMap{
		"pick":      budget.pickString(picks),
		"default":   budget.chooseString(defaultValue),
		"upper":     budget.mapString(strings.ToUpper),
		"lower":     budget.mapString(strings.ToLower),
		"title":     budget.mapString(title),
		"trim":      budget.cutString(strings.TrimSpace),
		"firstName": budget.cutString(firstName),

		"print":    budget.joinValues(fmt.Sprint),
		"println":  budget.joinValues(fmt.Sprintln),
		"html":     budget.joinValues(template.HTMLEscaper),
		"js":       budget.joinValues(template.JSEscaper),
		"urlquery": budget.joinValues(template.URLQueryEscaper),
		"printf":   budget.printf,
	}
}

// funcArity is how many arguments each of our functions takes, checked at Parse so a
// template like {{default .nick}} is rejected at upload instead of failing
// for every recipient.
var funcArity = map[string]int{
	"default":   2,
	"upper":     1,
	"lower":     1,
	"title":     1,
	"trim":      1,
	"firstName": 1,
}

// funcMinArity is the fewest arguments our variadic functions take.
var funcMinArity = map[string]int{
	"pick": 1,
}

// defaultValue returns value, or fallback when value is empty or only
// whitespace (a CSV cell holding " " is as good as empty). value is returned
// as it is, not trimmed.
func defaultValue(fallback, value string) string {
	if strings.TrimSpace(value) == "" {
		return fallback
	}
	return value
}

// titleCasers holds title-casers for reuse: a cases.Caser keeps state while
// it works, so it must not be shared between goroutines, and building one per
// call costs more than the casing itself.
var titleCasers = sync.Pool{New: func() any {
	c := cases.Title(language.Und)
	return &c
}}

// title upper-cases the first letter of every word and lower-cases the rest,
// by Unicode rules: "maría JOSÉ" → "María José", "jean-luc" → "Jean-Luc".
func title(s string) string {
	c := titleCasers.Get().(*cases.Caser)
	defer titleCasers.Put(c)
	return c.String(s)
}

// firstName returns the first word of a full name, trimmed, with the casing
// it has in the CSV: "  maría  josé garcía " → "maría". Pipe it into title to
// fix the casing: {{.name | firstName | title}}. It returns "" for an empty
// name, which default can replace.
func firstName(name string) string {
	name = strings.TrimLeftFunc(name, unicode.IsSpace)
	if i := strings.IndexFunc(name, unicode.IsSpace); i >= 0 {
		name = name[:i]
	}
	return name
}

// workBudget is what is left of maxFunctionBytes in one Render. Every
// function charges the bytes it reads before it works and the bytes it makes
// after, so the text they make together, and the time they take, are
// bounded by the budget plus one call's output (at most 6 times its input,
// for js).
type workBudget struct {
	left int
}

// errTooMuchText is a function's error once the budget is spent.
var errTooMuchText = fmt.Errorf("the template's functions handled more than %d KiB of text for this row, and a message holds at most %d characters",
	maxFunctionBytes>>10, MaxLength)

func (b *workBudget) spend(n int) error {
	if b == nil {
		return nil
	}
	b.left -= n
	if b.left < 0 {
		return errTooMuchText
	}
	return nil
}

// mapString charges f, which turns one string into another.
func (b *workBudget) mapString(f func(string) string) func(string) (string, error) {
	return func(s string) (string, error) {
		if err := b.spend(len(s)); err != nil {
			return "", err
		}
		out := f(s)
		return out, b.spend(len(out))
	}
}

// cutString charges f, which returns part of its argument: it reads it and
// makes nothing new.
func (b *workBudget) cutString(f func(string) string) func(string) (string, error) {
	return func(s string) (string, error) {
		if err := b.spend(len(s)); err != nil {
			return "", err
		}
		return f(s), nil
	}
}

// chooseString charges f, which returns one of its arguments.
func (b *workBudget) chooseString(f func(x, y string) string) func(string, string) (string, error) {
	return func(x, y string) (string, error) {
		if err := b.spend(len(x) + len(y)); err != nil {
			return "", err
		}
		return f(x, y), nil
	}
}

// pickString charges pick, which returns one of its arguments.
func (b *workBudget) pickString(picks *pickState) func(...string) (string, error) {
	return func(choices ...string) (string, error) {
		n := 0
		for _, c := range choices {
			n += len(c)
		}
		if err := b.spend(n); err != nil {
			return "", err
		}
		return picks.pick(choices)
	}
}

// joinValues charges f, which makes one string of any number of values, as
// print and html do. fmt formats the values into
// one buffer, so they are charged before.
func (b *workBudget) joinValues(f func(...any) string) func(...any) (string, error) {
	return func(args ...any) (string, error) {
		if err := b.spend(valuesBytes(args)); err != nil {
			return "", err
		}
		out := f(args...)
		return out, b.spend(len(out))
	}
}

// printf is fmt.Sprintf, charged. Its format is a literal that Parse
// checked (formatProblem), so padding adds at most maxPrintfWidth bytes per
// argument.
func (b *workBudget) printf(format string, args ...any) (string, error) {
	if err := b.spend(len(format) + valuesBytes(args)); err != nil {
		return "", err
	}
	out := fmt.Sprintf(format, args...)
	return out, b.spend(len(out))
}

// valuesBytes estimates the bytes of values as fmt prints them, before they
// are printed. Values in a template are strings, the campaign details (a
// small map), or what a literal or a built-in makes: numbers, booleans, nil,
// a byte; none of those prints longer than 64 bytes.
func valuesBytes(values []any) int {
	n := 0
	for _, v := range values {
		switch v := v.(type) {
		case string:
			n += len(v)
		case map[string]string:
			for k, s := range v {
				n += len(k) + len(s) + 2
			}
		default:
			n += 64
		}
	}
	return n
}
