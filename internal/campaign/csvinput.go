package campaign

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/transform"

	"github.com/wacampaign/wacampaign/internal/templating"
)

// phoneColumnNames are the header names (normalised) taken as the phone
// column, in order of preference.
var phoneColumnNames = []string{
	"phone", "phone_number", "mobile", "mobile_number", "mobile_phone", "cell", "cell_phone",
	"whatsapp", "whatsapp_number", "whatsapp_phone", "msisdn", "telephone", "tel", "number",
}

// phoneColumn is the index of the first of columns named as a phone column
// (phoneColumnNames, in their order of preference), or -1.
func phoneColumn(columns []string) int {
	for _, want := range phoneColumnNames {
		if i := indexOf(columns, want); i >= 0 {
			return i
		}
	}
	return -1
}

// fileColumn is the column whose value, when not empty, is the file_uid of
// an attachment for that recipient alone (an invoice, a ticket).
const fileColumn = "file_uid"

// layout is the columns of an upload: CSV header or JSON keys.
type layout struct {
	header  []string    // as written in the upload
	columns []string    // normalised names, the template's field names
	keys    []keyColumn // the columns a row's key may be in (address.go), at least one
	file    int         // index of the file_uid column (a per-recipient attachment), or -1
}

// phoneIndex is the index of the phone column, or -1.
func (l *layout) phoneIndex() int {
	for _, k := range l.keys {
		if k.kind == KindPhone {
			return k.index
		}
	}
	return -1
}

// noKeyColumn is the problem of contacts without a column to address
// recipients by; found lists what they have.
func noKeyColumn(found string) error {
	return FieldError("contacts", "no phone column: the first row must be a header with a column named phone "+
		"(or jid for WhatsApp IDs and groups, chat_id for TimelinesAI chats) (found: "+found+")")
}

// rowSource is an upload's contacts, row by row: a CSV file or a JSON array.
type rowSource interface {
	columnsOf() *layout
	// next answers the next row's values and its number for people (the
	// spreadsheet row; the position in a JSON array); a problem rejects the
	// row alone; io.EOF ends the upload; another error breaks it off.
	next() (values []string, row int, problem string, err error)
}

// csvInput is an uploaded contacts file opened for streaming: the header is
// read and checked, rows come one by one.
type csvInput struct {
	layout
	reader *csv.Reader
	rows   rowNumbers

	headerLine    int // the file line the header starts on (1 unless blank lines come first)
	headerEndLine int // the file line it ends on
}

func (in *csvInput) columnsOf() *layout { return &in.layout }

func (in *csvInput) next() ([]string, int, string, error) {
	rec, err := in.reader.Read()
	var perr *csv.ParseError
	switch {
	case err == io.EOF:
		return nil, 0, "", io.EOF
	case errors.As(err, &perr):
		return nil, in.rows.next(perr.StartLine, perr.Line+1), "not valid CSV: " + csvErrMsg(err), nil
	case err != nil:
		return nil, 0, "", err
	}
	line, _ := in.reader.FieldPos(0)
	return rec, in.rows.next(line, line+newlines(rec)+1), "", nil
}

// peekSize is how much of an upload is looked at before reading it as CSV.
const peekSize = 8 << 10

// openCSV sniffs the start of an upload, refuses what is not CSV text with a
// message a person can act on, and reads the header. It handles a UTF-8 BOM,
// Windows-1252 text (what older Excel exports), and comma, semicolon or tab
// as the delimiter.
func openCSV(r io.Reader) (*csvInput, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(peekSize)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, &ReadError{Err: err}
	}
	if len(bytes.TrimSpace(head)) == 0 {
		return nil, FieldError("contacts", "the contacts file is empty")
	}
	if msg := notCSV(head); msg != "" {
		return nil, FieldError("contacts", msg)
	}
	var src io.Reader = br
	switch {
	case bytes.HasPrefix(head, []byte("\xEF\xBB\xBF")):
		_, _ = br.Discard(3)
	case !validUTF8Prefix(head, len(head) == peekSize):
		// Not UTF-8 but text: the Windows code page Excel uses when it does
		// not write "CSV UTF-8". Decoding it beats rejecting every accent.
		src = transform.NewReader(br, charmap.Windows1252.NewDecoder())
	}
	sbr := bufio.NewReaderSize(src, 64<<10)
	first, _ := sbr.Peek(peekSize)
	cr := csv.NewReader(sbr)
	cr.Comma = sniffDelimiter(first)
	cr.FieldsPerRecord = -1 // row length is checked per row, with a row-numbered error
	cr.ReuseRecord = true

	rec, err := cr.Read()
	if err == io.EOF {
		return nil, FieldError("contacts", "the contacts file is empty")
	}
	var perr *csv.ParseError
	if err != nil && !errors.As(err, &perr) {
		return nil, &ReadError{Err: err} // the upload broke off in the header
	}
	if err != nil {
		return nil, FieldError("contacts", "the header row cannot be read as CSV: "+csvErrMsg(err))
	}
	columns, err := templating.NormalizeHeader(rec)
	if err != nil {
		return nil, FieldError("contacts", "the header: "+err.Error())
	}
	headerLine, _ := cr.FieldPos(0)
	in := &csvInput{reader: cr, layout: layout{file: -1}, headerLine: headerLine, headerEndLine: headerLine + newlines(rec)}
	in.rows = rowNumbers{row: headerLine, nextLine: in.headerEndLine + 1}
	for i, h := range rec {
		in.header = append(in.header, strings.TrimSpace(h))
		name := columns[i]
		if name == "" { // a column without a usable header is still a column
			name = fmt.Sprintf("column_%d", i+1)
		}
		in.columns = append(in.columns, name)
	}
	in.file = indexOf(in.columns, fileColumn)
	in.keys = findKeyColumns(in.columns)
	if len(in.keys) == 0 {
		return nil, noKeyColumn(strings.Join(clipAll(in.header, 10), ", "))
	}
	return in, nil
}

// notCSV explains why the start of an upload is not CSV text, or returns "".
func notCSV(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return "the contacts file is a zip archive or an Excel workbook (.xlsx), not CSV; in Excel use Save As → CSV UTF-8"
	case bytes.HasPrefix(head, []byte("\xD0\xCF\x11\xE0")):
		return "the contacts file is an old Excel workbook (.xls), not CSV; in Excel use Save As → CSV UTF-8"
	case bytes.HasPrefix(head, []byte("%PDF")):
		return "the contacts file is a PDF, not CSV"
	case bytes.HasPrefix(head, []byte("\xFF\xFE")), bytes.HasPrefix(head, []byte("\xFE\xFF")):
		return "the contacts file is UTF-16 text; save it as CSV UTF-8"
	}
	control := 0
	for _, b := range head {
		if b == 0 {
			return "the contacts file is binary data, not CSV text"
		}
		if b < 0x20 && b != '\t' && b != '\n' && b != '\r' {
			control++
		}
	}
	if control*20 > len(head) { // over 5% control bytes: not a text file
		return "the contacts file is binary data, not CSV text"
	}
	return ""
}

// validUTF8Prefix is utf8.Valid for the start of a stream: when the peek
// filled the buffer, a rune cut off at its end does not count against it.
func validUTF8Prefix(b []byte, cut bool) bool {
	if cut {
		start := len(b) - 1
		for start > 0 && start > len(b)-utf8.UTFMax && !utf8.RuneStart(b[start]) {
			start--
		}
		if start >= 0 && !utf8.FullRune(b[start:]) {
			b = b[:start]
		}
	}
	return utf8.Valid(b)
}

// sniffDelimiter picks the delimiter that splits the header row the most.
func sniffDelimiter(head []byte) rune {
	line := head
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		line = head[:i]
	}
	counts := map[rune]int{}
	inQuotes := false
	for _, c := range string(line) {
		switch {
		case c == '"':
			inQuotes = !inQuotes
		case !inQuotes && (c == ',' || c == ';' || c == '\t'):
			counts[c]++
		}
	}
	best := ','
	for _, d := range []rune{';', '\t'} {
		if counts[d] > counts[best] {
			best = d
		}
	}
	return best
}

func csvErrMsg(err error) string {
	if pe, ok := err.(*csv.ParseError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

func clipAll(list []string, n int) []string {
	out := make([]string, 0, min(n, len(list)))
	for i, s := range list {
		if i == n {
			out = append(out, "…")
			break
		}
		out = append(out, fmt.Sprintf("%q", clip(s)))
	}
	return out
}

// CleanValue drops control characters other than tab and newline: they have
// no place in a message and one of them separates values in storage.
func CleanValue(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' {
			return -1
		}
		return r
	}, s)
}

// ContactsCSV is a contacts CSV read row by row, with the importer's
// parser and header checks, for other packages that take contacts (a
// sequence's enrolments).
type ContactsCSV struct{ in *csvInput }

// ContactRow is one row of a ContactsCSV: its number as a spreadsheet
// shows it, the raw phone and every value by column; or why it cannot be
// read (Problem).
type ContactRow struct {
	Number  int
	Phone   string
	Fields  map[string]string
	Problem string
}

// OpenContactsCSV reads the header of a contacts CSV; a file that is not
// one, or has no phone column, is an *InputError.
func OpenContactsCSV(r io.Reader) (*ContactsCSV, error) {
	in, err := openCSV(r)
	if err != nil {
		return nil, err
	}
	return &ContactsCSV{in: in}, nil
}

// Has says whether the file has the column (a normalised name).
func (c *ContactsCSV) Has(column string) bool { return indexOf(c.in.columns, column) >= 0 }

// Header is the header as written.
func (c *ContactsCSV) Header() []string { return c.in.header }

// Next answers the next row with content (rows of empty cells are skipped);
// io.EOF at the end.
func (c *ContactsCSV) Next() (ContactRow, error) {
	for {
		rec, number, problem, err := c.in.next()
		if err != nil {
			return ContactRow{}, err
		}
		if problem != "" {
			return ContactRow{Number: number, Problem: problem}, nil
		}
		row := ContactRow{Number: number, Fields: map[string]string{}}
		empty := true
		for i, col := range c.in.columns {
			if i < len(rec) {
				row.Fields[col] = rec[i]
				empty = empty && strings.TrimSpace(rec[i]) == ""
			}
		}
		if !empty {
			if i := c.in.phoneIndex(); i >= 0 {
				row.Phone = row.Fields[c.in.columns[i]]
			}
			return row, nil
		}
	}
}
