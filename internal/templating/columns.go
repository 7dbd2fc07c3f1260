package templating

import (
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// NormalizeColumn turns a CSV header into the name a template uses for that
// column: trimmed, lower-cased, every run of characters other than letters
// and digits replaced by one "_", leading and trailing "_" removed.
//
//	"First Name"    → "first_name"
//	" E-mail "      → "e_mail"
//	"Ciudad/Región" → "ciudad_región"
//
// Unicode letters are kept. The header is first put in NFC form, so an
// accent typed as a separate combining mark ("e" + U+0301) becomes one letter
// ("é") instead of a "_". A header with no letters or digits (""; "---")
// normalizes to "", which no template can refer to.
//
// The result is what text/template accepts after a dot ({{.first_name}}),
// except when it starts with a digit ("2nd phone" → "2nd_phone"): such a
// column is reached with {{index . "2nd_phone"}}.
func NormalizeColumn(header string) string {
	h := strings.ToLower(strings.TrimSpace(norm.NFC.String(header)))
	var b strings.Builder
	b.Grow(len(h))
	pendingSep := false
	for _, r := range h {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if pendingSep && b.Len() > 0 {
				b.WriteByte('_')
			}
			pendingSep = false
			b.WriteRune(r)
			continue
		}
		pendingSep = true
	}
	return b.String()
}

// NormalizeHeader normalizes every header of a CSV with NormalizeColumn,
// keeping their order. Headers that normalize to "" stay "" (no template can
// name them; the caller may ignore those columns). Two headers that normalize
// to the same name ("First Name" and "first_name") would make one of them
// unreachable, so that is a *DuplicateColumnError.
func NormalizeHeader(header []string) ([]string, error) {
	out := make([]string, len(header))
	seen := make(map[string]int, len(header))
	for i, h := range header {
		n := NormalizeColumn(h)
		out[i] = n
		if n == "" {
			continue
		}
		if j, dup := seen[n]; dup {
			return out, &DuplicateColumnError{Name: n, Headers: []string{header[j], h}}
		}
		seen[n] = i
	}
	return out, nil
}

// DuplicateColumnError reports two CSV headers that a template could not tell
// apart, because they normalize to the same name.
type DuplicateColumnError struct {
	Name    string   // the normalized name both headers map to
	Headers []string // the headers as written in the CSV
}

func (e *DuplicateColumnError) Error() string {
	return fmt.Sprintf("CSV columns %q and %q both become %q in templates; rename one of them",
		e.Headers[0], e.Headers[1], e.Name)
}
