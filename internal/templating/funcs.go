package templating

import (
	"strings"
	"sync"
	"text/template"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

// funcs are the functions templates may call besides text/template's
// built-ins. They are pure string functions: none reads files, the
// environment, the network or the clock, so a message depends only on its row
// and campaign, and a preview shows exactly what will be sent.
//
// All take strings; CSV values are strings. In a pipeline the piped value is
// the last argument: {{.nick | default "there"}} is {{default "there" .nick}}.
var funcs = template.FuncMap{
	"default":   defaultValue,
	"upper":     strings.ToUpper,
	"lower":     strings.ToLower,
	"title":     title,
	"trim":      strings.TrimSpace,
	"firstName": firstName,
}

// funcArity is how many arguments each of funcs takes, checked at Parse so a
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
