package templating

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The bound FuzzTemplate asserts for one Render, first use of the template
// included. It is far above what a template needs (a few microseconds and
// kilobytes) and far below what the refused templates took.
const (
	renderTimeBound   = 10 * time.Millisecond
	renderMemoryBound = 1 << 20  // bytes allocated
	maxRowBytes       = 64 << 10 // internal/campaign's maxFieldsLength
)

// FuzzTemplate checks the package's promise: any template Parse accepts
// renders any row of at most 64 KiB in under 10 ms and 1 MB, and what it
// returns keeps to the length limit. values is split at "|" into the row's
// values, each repeated repeat times (up to the row limit) to reach sizes a
// mutator rarely builds. Its seeds run in every plain go test.
func FuzzTemplate(f *testing.F) {
	for _, text := range seedTemplates(f) {
		f.Add(text, "Ana María López|lima|yes|2024-05-14", uint16(0))
		f.Add(text, `&<"'\`+"\x00é🎉 \t"+`|%!x|{{.}}`, uint16(8000))
	}
	f.Fuzz(func(t *testing.T, text, values string, repeat uint16) {
		tmpl, err := Parse("fuzz", text)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) && !errors.Is(err, ErrEmptyTemplate) {
				t.Fatalf("Parse error %v is %T, want *SyntaxError", err, err)
			}
			return // refused at upload: never rendered
		}
		checkRenderBound(t, tmpl, fuzzRow(tmpl.Fields(), values, int(repeat)))
	})
}

// fuzzRow gives every column the template uses, and a few it might reach
// by a computed index, a value cut from values, within maxRowBytes.
func fuzzRow(fields []string, values string, repeat int) map[string]string {
	parts := strings.Split(values, "|")
	columns := append([]string{"name", "city", "x", "y"}, fields...)
	share := maxRowBytes / len(columns)
	row := make(map[string]string, len(columns))
	for i, col := range columns {
		v := parts[i%len(parts)]
		if repeat > 1 && len(v) > 0 {
			v = strings.Repeat(v, min(repeat, share/len(v)+1))
		}
		row[col] = v[:min(len(v), share)]
	}
	return row
}

// checkRenderBound renders once for the row and fails if that took more
// than renderTimeBound or allocated more than renderMemoryBound. A shared
// machine can stall any one measurement (another process, a collection the
// render did not cause), so it collects garbage and measures again, up to
// five times, before failing: a render that is truly over the bound is over
// it every time.
func checkRenderBound(t *testing.T, tmpl *Template, row map[string]string) {
	t.Helper()
	var measured []string
	for range 5 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		msg, err := tmpl.Render(row, Campaign{ID: "c-1", Name: "Fuzz"})
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		allocated := after.TotalAlloc - before.TotalAlloc
		checkRendered(t, msg, err)
		if took < renderTimeBound && allocated < renderMemoryBound {
			return
		}
		measured = append(measured, fmt.Sprintf("%v and %d bytes", took, allocated))
		runtime.GC()
	}
	t.Fatalf("Render of %q took %s; the bound is %v and %d bytes",
		tmpl.Source(), strings.Join(measured, ", then "), renderTimeBound, renderMemoryBound)
}

// checkRendered checks what Render returned against the length limit.
func checkRendered(t *testing.T, msg string, err error) {
	t.Helper()
	if len(msg) > maxMessageBytes {
		t.Fatalf("Render returned %d bytes; it stops at %d", len(msg), maxMessageBytes)
	}
	var tl *TooLongError
	var re *RenderError
	switch {
	case err == nil:
		if n := utf8.RuneCountInString(msg); n > MaxLength {
			t.Fatalf("Render returned %d characters without an error", n)
		}
	case errors.As(err, &tl), errors.As(err, &re):
	default:
		t.Fatalf("Render error %v is %T, want *TooLongError or *RenderError", err, err)
	}
}

// seedTemplates are the templates that took workers down, the shipped
// templates, the README's examples, the package doc's, and accepted
// templates that do the most work the limits allow.
func seedTemplates(f *testing.F) []string {
	seeds := []string{
		`{{range 1000000000}}{{printf "%01000000d" 0}}{{end}}`,
		`{{range 100000}}{{range 100000}}{{end}}{{end}}`,
		`{{range 100000000}}x{{end}}`,
		`Hi {{.name | firstName | title | default "there"}}, your appointment in {{.city}} is on {{.date}}. {{.campaign.name}} team`,
		nested("html", 8),
		nested("js", 10),
		nested("urlquery", 8),
		nested(`printf "% #x"`, 4),
		`{{upper (lower (title (upper (lower (title .x)))))}}`,
		`{{pick "Hi" "Hello" .x}} {{pick .x .y .x .y .x .y .x .y}}{{html (pick (js .x) (js .y))}}`,
		`{{printf "%64s%-64.64s%064d%64v" .x .y 1 .campaign}}`,
		`{{println .x .y .x .y .x .y .x .y}}{{print .x .y .x .y}}`,
		`{{with .x}}{{.}}{{.}}{{.}}{{end}}{{$k := "y"}}{{index . $k}}`,
		strings.Repeat(`{{if eq .x .y}}{{else if lt .y .x}}{{end}}`, maxOperations/12),
		strings.Repeat(`{{if trim .x}}{{end}}`, maxOperations/4),
		strings.Repeat(`{{.x}}`, maxOperations/2),
		strings.Repeat(`{{$a := .x}}`, maxOperations/2),
	}
	return append(append(seeds, shippedTemplates(f)...), readmeTemplates(f)...)
}

func shippedTemplates(f *testing.F) []string {
	paths, err := filepath.Glob(filepath.Join(shippedDir, "*.tmpl"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no shipped templates in %s: %v", shippedDir, err)
	}
	var texts []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		texts = append(texts, string(b))
	}
	return texts
}

// readmeTemplates finds the templates in README.md: inline code with an
// action, and the template fields of its curl examples.
var readmeTemplate = regexp.MustCompile("`([^`\n]*\\{\\{[^`\n]*)`" + `|template='([^']*)'|"template":("(?:[^"\\]|\\.)*")`)

func readmeTemplates(f *testing.F) []string {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		f.Fatal(err)
	}
	var texts []string
	for _, m := range readmeTemplate.FindAllStringSubmatch(string(readme), -1) {
		text := m[1] + m[2]
		if m[3] != "" {
			if text, err = strconv.Unquote(m[3]); err != nil {
				f.Fatalf("README template %s: %v", m[3], err)
			}
		}
		texts = append(texts, text)
	}
	if len(texts) < 4 {
		f.Fatalf("found %d templates in README.md; the pattern no longer matches its examples", len(texts))
	}
	return texts
}
