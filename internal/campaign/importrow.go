package campaign

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// One row of an upload on its way in: numbered as a spreadsheet numbers it,
// its shape and size checked, its values cleaned and its key normalised.
// What is wrong with a row rejects that row only (importer.go lists it).

// rowNumbers numbers records the way a spreadsheet numbers rows: blank lines
// count (encoding/csv skips them silently), and a cell spanning several
// lines is still one row.
type rowNumbers struct {
	row      int // of the last record
	nextLine int // the file line the next record starts on when no blank line comes between
}

// next numbers a record starting on file line start; the record after it
// would start on line following.
func (n *rowNumbers) next(start, following int) int {
	n.row += 1 + max(0, start-n.nextLine)
	n.nextLine = following
	return n.row
}

func newlines(rec []string) int {
	count := 0
	for _, v := range rec {
		count += strings.Count(v, "\n")
	}
	return count
}

// checkRow validates one CSV record and returns its cleaned values with its
// key normalised (a phone in E.164), and the key; or the reason it is
// rejected. Both are empty for a row without any content.
func (r *importRun) checkRow(rec []string) ([]string, recipientKey, string) {
	values, problem := r.cleanRow(rec)
	if values == nil || problem != "" {
		return nil, recipientKey{}, problem
	}
	key, problem := r.rowKey(values)
	if problem != "" {
		return nil, recipientKey{}, problem
	}
	return values, key, ""
}

// cleanRow checks a record's shape and size and answers its values,
// trimmed and cleaned; nil for a row without any content.
func (r *importRun) cleanRow(rec []string) ([]string, string) {
	in := r.lay
	empty := true
	size := 0
	for _, v := range rec {
		if strings.TrimSpace(v) != "" {
			empty = false
		}
		size += len(v)
	}
	if empty {
		return nil, ""
	}
	if len(rec) > len(in.columns) {
		extra := rec[len(in.columns):]
		allEmpty := true
		for _, v := range extra {
			if strings.TrimSpace(v) != "" {
				allEmpty = false
			}
		}
		if !allEmpty { // trailing empty cells are what spreadsheets leave; values are not
			return nil, fmt.Sprintf("the row has %d values but the header has %d columns", len(rec), len(in.columns))
		}
	}
	if size > rowMaxBytes {
		return nil, fmt.Sprintf("the row is longer than %d KiB", rowMaxBytes>>10)
	}
	values := make([]string, len(in.columns)) // short rows: the missing cells are empty
	for i := range values {
		if i < len(rec) {
			if !utf8.ValidString(rec[i]) {
				return nil, fmt.Sprintf("column %q is not UTF-8 text; save the file as CSV UTF-8", in.header[i])
			}
			values[i] = CleanValue(strings.TrimSpace(rec[i]))
		}
	}
	return values, ""
}
