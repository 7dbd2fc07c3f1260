package templating

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestRefusedAtParse: templates that could run unbounded, or that would
// print every column of a row, are refused at upload with a message naming
// what they use. The first three took a worker down before.
func TestRefusedAtParse(t *testing.T) {
	tests := []struct {
		name string
		text string
		line int
		msg  []string // substrings of the message
	}{
		{"range with a huge printf", `{{range 1000000000}}{{printf "%01000000d" 0}}{{end}}`, 1,
			[]string{"templates cannot use {{range}}: a row's fields are plain text"}},
		{"nested ranges", "Hi\n{{range 100000}}{{range 100000}}{{end}}{{end}}", 2, []string{"templates cannot use {{range}}"}},
		{"range of text", `{{range 100000000}}x{{end}}`, 1, []string{"templates cannot use {{range}}"}},
		{"range over a column", "{{range .items}}{{.}}{{else}}none{{end}}", 1, []string{"{{range}}"}},
		{"break inside range", "{{range .x}}{{break}}{{end}}", 1, []string{"{{range}}"}},
		{"break alone", "{{break}}", 1, []string{"{{break}} outside {{range}}"}},
		{"template", `{{template "x"}}`, 1, []string{"templates cannot use {{template}}"}},
		{"template with data", "Hi\n\n{{template \"x\" .}}", 3, []string{"templates cannot use {{template}}"}},
		{"define", `{{define "x"}}{{end}}`, 1, []string{"templates cannot use {{define}}"}},
		{"define used", "Hi\n{{define \"x\"}}-- {{.agent}}{{end}}", 2, []string{"templates cannot use {{define}}"}},
		{"define in place of the template", `{{define "test"}}Hi {{.name}}{{end}}`, 1, []string{"templates cannot use {{define}}"}},
		{"block", `{{block "x" .}}{{end}}`, 1, []string{"templates cannot use {{block}}"}},
		{"call", `{{call .x}}`, 1, []string{"templates cannot use call: a row's fields are plain text, not functions"}},
		{"call in a pipeline", "x\n{{.a | call .f}}", 2, []string{"templates cannot use call"}},
		{"whole row", `{{.}}`, 1, []string{"{{.}}", "every column", "{{.first_name}}"}},
		{"whole row as dollar", `Hi {{$}}`, 1, []string{"every column"}},
		{"whole row in with", "{{with .}}\n{{.}}{{end}}", 2, []string{"every column"}},
		{"whole row in a variable", `{{$r := .}}{{$r}}`, 1, []string{"every column"}},
		{"whole row printed", `{{printf "%v" .}}`, 1, []string{"every column"}},
		{"whole row by index", `{{index .}}`, 1, []string{"every column"}},
		{"whole row tested", `{{if .}}x{{end}}`, 1, []string{"every column"}},
		{"wide printf", `{{printf "%01000000d" 0}}`, 1, []string{`printf format "%01000000d"`, "width 1000000 is over the limit of 64"}},
		{"wide printf just over", `{{printf "%65s" .x}}`, 1, []string{"width 65 is over"}},
		{"long precision", `{{printf "%.100f" 1.5}}`, 1, []string{"precision 100 is over"}},
		{"star width", `{{printf "%*d" 1000000 1}}`, 1, []string{"a * width is not allowed"}},
		{"star precision", `{{printf "%.*s" 9 .x}}`, 1, []string{"a * precision is not allowed"}},
		{"argument index", `{{printf "%[1]s%[1]s" .x}}`, 1, []string{"argument indexes like [1] are not allowed"}},
		{"argument index before verb", `{{printf "%3.2[1]f" 1.0}}`, 1, []string{"argument indexes"}},
		{"format from a column", `{{printf .fmt .x}}`, 1, []string{"printf needs its format as a quoted string"}},
		{"format piped", `{{"%d" | printf}}`, 1, []string{"printf needs its format as a quoted string"}},
		{"too many operations", strings.Repeat("{{.a}}", maxOperations/2+1), 0, []string{"template: the template has more than 1000 actions"}},
		{"too deeply nested", "{{" + strings.Repeat("(", maxOperations) + ".a" + strings.Repeat(")", maxOperations) + "}}", 0, []string{"more than 1000 actions"}},
		{"too many branches", strings.Repeat("{{if .a}}", maxOperations/2+1) + strings.Repeat("{{end}}", maxOperations/2+1), 0, []string{"more than 1000 actions"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test", tt.text)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) = %v (%T), want *SyntaxError", tt.text, err, err)
			}
			if se.Line != tt.line {
				t.Errorf("Line = %d, want %d (%v)", se.Line, tt.line, err)
			}
			for _, m := range tt.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message %q does not contain %q", err, m)
				}
			}
		})
	}
}

// TestAllowedNearTheLimits: what stays allowed beside the refusals renders
// as text/template always did.
func TestAllowedNearTheLimits(t *testing.T) {
	row := map[string]string{"name": "María", "city": "Lima", "2nd_phone": "+51 1 555", "code": "ab"}
	tests := []struct {
		name string
		text string
		want string
	}{
		{"with body dot", `{{with .name}}Hi {{.}}{{end}}`, "Hi María"},
		{"index a digit column", `{{index . "2nd_phone"}}`, "+51 1 555"},
		{"computed index", `{{$k := "city"}}{{index . $k}}`, "Lima"},
		{"variable holding the row", `{{$r := .}}{{$r.city}}`, "Lima"},
		{"if else", `{{if eq .city "Lima"}}Perú{{else}}elsewhere{{end}}`, "Perú"},
		{"printf at the widest", `{{printf "[%64s]" .code}}`, "[" + strings.Repeat(" ", 62) + "ab]"},
		{"printf flags and precision", `{{printf "%-5.1s|%05d|%%|%x" .code 42 .code}}`, "a    |00042|%|6162"},
		{"printf without verbs", `{{printf "100%%"}}`, "100%"},
		{"print and println", `{{print .code 1 true}} {{println .code}}`, "ab1 true ab"},
		{"urlquery", `https://example.com/?n={{urlquery .name}}`, "https://example.com/?n=Mar%C3%ADa"},
		{"html and js", `{{html "<b>"}} {{js "it's"}}`, `&lt;b&gt; it\'s`},
		{"len slice and index", `{{len .code}} {{slice .code 1}} {{index .code 0}}`, "2 b 97"},
		{"at most the operations", strings.Repeat("{{.code}}", maxOperations/2), strings.Repeat("ab", maxOperations/2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mustParse(t, tt.text).Render(row, Campaign{})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got != tt.want {
				t.Errorf("Render = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRenderStopsAtTheLimit: a template that would write far more than a
// message holds stops at the limit with an error saying the message is over
// it, and the text so far for a preview.
func TestRenderStopsAtTheLimit(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		value string
	}{
		{"repeated long value", strings.Repeat("{{.x}}", 400), strings.Repeat("a", 5000)},
		{"one huge value", "Hi {{.x}}", strings.Repeat("x", 64<<10)},
		{"multi-byte value cut", strings.Repeat("{{.x}}", 10), strings.Repeat("é🎉", 1000)},
		{"literal text", strings.Repeat("Hello there, friend. ", 500) + "{{.x}}", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mustParse(t, tt.text).Render(map[string]string{"x": tt.value}, Campaign{})
			var tl *TooLongError
			if !errors.As(err, &tl) || !tl.Stopped {
				t.Fatalf("Render = %v, want a *TooLongError that stopped rendering", err)
			}
			if !strings.Contains(err.Error(), "over the limit") || !strings.Contains(err.Error(), "at most 2000 characters") {
				t.Errorf("Error() = %q", err)
			}
			if len(got) > maxMessageBytes || len(got) < MaxLength {
				t.Errorf("preview text is %d bytes; want what came before the stop", len(got))
			}
			if !utf8.ValidString(got) {
				t.Error("the preview text ends in a cut character")
			}
			if tl.Length != utf8.RuneCountInString(got) || tl.Length <= MaxLength {
				t.Errorf("Length = %d for a preview of %d characters", tl.Length, utf8.RuneCountInString(got))
			}
		})
	}
}

// TestLeadingWhitespaceIsFree: whitespace before the message does not count
// toward the limit, as Render trims it.
func TestLeadingWhitespaceIsFree(t *testing.T) {
	pad := strings.Repeat(" \n\t", 10000)
	got, err := mustParse(t, "{{.pad}}{{.pad}} Hi {{.name}}").Render(map[string]string{"pad": pad, "name": "Ana"}, Campaign{})
	if err != nil || got != "Hi Ana" {
		t.Errorf("Render = %q, %v; want %q", got, err, "Hi Ana")
	}
}

// TestFunctionBudget: functions nested so that their text grows without
// end fail with a clear error; the same functions used once work.
func TestFunctionBudget(t *testing.T) {
	tests := []struct {
		name string
		text string
	}{
		{"html of html", nested("html", 8)},
		{"js of js", nested("js", 10)},
		{"urlquery of urlquery", nested("urlquery", 7)},
		{"printf %q of printf %q", nested(`printf "%q"`, 6)},
		{"print of many", `{{if print` + strings.Repeat(" .x", 100) + `}}{{end}}`},
		{"functions in conditions", strings.Repeat(`{{if eq (upper .x) "A"}}{{end}}`, 40)},
	}
	x := strings.Repeat(`&"\`, 1000) // every escaper doubles it at least
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mustParse(t, tt.text).Render(map[string]string{"x": x}, Campaign{})
			var re *RenderError
			if !errors.As(err, &re) || !errors.Is(err, errTooMuchText) {
				t.Fatalf("Render = %v, want a *RenderError for too much text", err)
			}
			if !strings.Contains(err.Error(), "functions handled more than 64 KiB") {
				t.Errorf("Error() = %q", err)
			}
		})
	}
	// Each Render has its own budget: many renders of a template that
	// spends most of it all succeed.
	tmpl := mustParse(t, `{{if upper .x}}ok{{end}}`)
	row := map[string]string{"x": strings.Repeat("a", 30<<10)}
	for i := range 5 {
		if got, err := tmpl.Render(row, Campaign{}); err != nil || got != "ok" {
			t.Fatalf("render %d: %q, %v", i, got, err)
		}
	}
}

// nested calls fn on .x, then on that, n times: {{fn (fn (fn .x))}}.
func nested(fn string, n int) string {
	return "{{" + strings.Repeat(fn+" (", n-1) + fn + " .x" + strings.Repeat(")", n-1) + "}}"
}
