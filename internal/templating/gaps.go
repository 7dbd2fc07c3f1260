package templating

import (
	"errors"
	"strings"
)

// gapMarker stands in for an empty value while Gaps looks for it: a
// character of Unicode's private use area, which no row or template has a
// reason to hold and no function of ours changes.
const gapMarker = "\uE000"

// Gaps lists the columns whose empty value leaves a gap in the message of
// this row: "Hi Dana, our sale is on in !" for an empty city. A column is
// a gap when its empty value is printed as it is: the message with the
// column set to a marker is the message with the marker in the hole, and
// nothing else changes. An empty column behind {{default}}, {{if}} or
// {{with}} is no gap: filling it changes more than the hole. The columns
// come in the order Fields lists them; a row the template cannot render
// has none (Render says what is wrong).
func (t *Template) Gaps(row map[string]string, c Campaign) []string {
	base, err := t.Render(row, c)
	if err != nil && !isTooLong(err) {
		return nil
	}
	var gaps []string
	for _, f := range t.used.fields {
		if strings.TrimSpace(row[f]) != "" {
			continue
		}
		marked := make(map[string]string, len(row))
		for k, v := range row {
			marked[k] = v
		}
		marked[f] = gapMarker
		out, err := t.Render(marked, c)
		if err != nil && !isTooLong(err) {
			continue
		}
		if strings.Contains(out, gapMarker) && strings.TrimSpace(strings.ReplaceAll(out, gapMarker, "")) == base {
			gaps = append(gaps, f)
		}
	}
	return gaps
}

func isTooLong(err error) bool {
	var tl *TooLongError
	return errors.As(err, &tl)
}
