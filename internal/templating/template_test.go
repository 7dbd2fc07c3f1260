package templating

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

func mustParse(t testing.TB, text string) *Template {
	t.Helper()
	tmpl, err := Parse("test", text)
	if err != nil {
		t.Fatalf("Parse(%q): %v", text, err)
	}
	return tmpl
}

func TestParseEmpty(t *testing.T) {
	for _, text := range []string{"", "   ", "\n\t \n"} {
		if _, err := Parse("empty", text); !errors.Is(err, ErrEmptyTemplate) {
			t.Errorf("Parse(%q) = %v, want ErrEmptyTemplate", text, err)
		}
	}
}

func TestParseSyntaxErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		line int
		msg  string // a substring of the message
	}{
		{"stray brace", "Hi\n{{.name}}}}", 0, ""}, // parses: "}}" outside an action is text
		{"unexpected brace in operand", "Hi there\n{{.name }x}}", 2, `unexpected "}" in operand`},
		{"unclosed action", "Hi\n{{.name", 2, "unclosed action"},
		{"missing end", "Hi\n{{if .vip}}VIP\n", 3, "missing its {{end}}"},
		{"extra end", "Hi\n\n{{end}}", 3, "unexpected {{end}}"},
		{"unknown function", "Hi\n{{shout .name}}", 2, `function "shout" not defined`},
		{"unclosed comment", "{{/* note", 1, "unclosed comment"},
		{"default without fallback", "Hi\n{{default .name}}", 2, "default takes 2 arguments, got 1"},
		{"default piped with too many", "{{.name | default \"a\" \"b\"}}", 1, "default takes 2 arguments, got 3"},
		{"upper without argument", "x\ny\n{{upper}}", 3, "upper takes 1 argument, got 0"},
		{"unknown campaign field", "Hi\n{{.campaign.title}}", 2, `the campaign has no field "title"`},
		{"campaign field of a field", "{{.campaign.name.x}}", 1, `has no field "x"`},
		{"field of a column", "Hi {{.first_name.initial}}", 1, `column "first_name" is text and has no field "initial"`},
		{"undefined template", "Hi\n{{template \"sig\" .}}", 2, `templates cannot use {{template}}`},
		{"recursive template", `{{define "a"}}{{template "a" .}}{{end}}{{template "a" .}}`, 1, `templates cannot use {{template}}`},
		{"redefined template", `{{define "a"}}x{{end}}{{define "a"}}y{{end}}`, 1, `multiple definition of template "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("welcome.tmpl", tt.text)
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) = %v (%T), want *SyntaxError", tt.text, err, err)
			}
			if se.Line != tt.line {
				t.Errorf("Line = %d, want %d (%v)", se.Line, tt.line, err)
			}
			if !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("Msg = %q, want it to contain %q", se.Msg, tt.msg)
			}
			want := fmt.Sprintf("template line %d: ", tt.line)
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q, want prefix %q", err, want)
			}
			for _, noise := range []string{"welcome.tmpl", "template: ", "executing"} {
				if strings.Contains(err.Error(), noise) {
					t.Errorf("Error() = %q contains Go-internal %q", err, noise)
				}
			}
		})
	}
}

func TestFields(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"plain", "Hi {{.first_name}} from {{.city}}, {{.first_name}}", []string{"city", "first_name"}},
		{"none", "Hello!", nil},
		{"if and else", "{{if .vip}}VIP {{.name}}{{else}}{{.nick}}{{end}}", []string{"name", "nick", "vip"}},
		{"else if", "{{if .a}}1{{else if .b}}2{{end}}", []string{"a", "b"}},
		{"pipeline", "{{.name | firstName | title}}", []string{"name"}},
		{"function args", `{{default "there" .nick}} {{printf "%s-%s" .a (upper .b)}}`, []string{"a", "b", "nick"}},
		{"comparison", `{{if eq .plan "gold"}}gold{{end}}`, []string{"plan"}},
		{"and or not", `{{if and .a (or .b (not .c))}}x{{end}}`, []string{"a", "b", "c"}},
		{"index literal", `{{index . "2nd_phone"}} {{index $ "zip"}}`, []string{"2nd_phone", "zip"}},
		{"variable", "{{$c := .city}}{{$c}} {{$c | upper}}", []string{"city"}},
		{"variable holding the row", "{{$r := .}}{{with .items}}{{$r.name}}{{end}}", []string{"items", "name"}},
		{"variable assigned the row", "{{$r := 1}}{{$r = .}}{{$r.name}}", []string{"name"}},
		{"with variable and dollar", "{{with $v := .items}}{{$v}}{{$.city}}{{end}}", []string{"city", "items"}},
		{"with body is not the row", "{{with .address}}{{.street}}{{end}}", []string{"address"}},
		{"with else is the row", "{{with .nick}}{{.}}{{else}}{{.name}}{{end}}", []string{"name", "nick"}},
		{"else with", "{{with .nick}}{{.}}{{else with .name}}{{.}}{{else}}{{.email}}{{end}}", []string{"email", "name", "nick"}},
		{"with dot keeps the row", "{{with .}}{{.name}}{{end}}", []string{"name"}},
		{"with campaign", "{{with .campaign}}{{.name}} ({{.id}}){{end}}", nil},
		{"campaign fields", "{{.campaign.name}} {{.campaign.id}} {{.city}}", []string{"city"}},
		{"chain", "{{(.city)}} {{(.campaign).name}}", []string{"city"}},
		{"comment", `{{/* {{.not_a_field}} */}}Hi`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustParse(t, tt.text).Fields()
			if !slices.Equal(got, tt.want) {
				t.Errorf("Fields() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFieldsIsACopy(t *testing.T) {
	tmpl := mustParse(t, "{{.a}}{{.b}}")
	tmpl.Fields()[0] = "zzz"
	if got := tmpl.Fields(); got[0] != "a" {
		t.Errorf("Fields changed to %q by its caller", got)
	}
}

func TestCheckColumns(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		columns   []string
		missing   []string // nil: no *MissingColumnsError
		campaign  []string // nil: no *CampaignColumnError
		inMessage []string
	}{
		{
			name:    "all present",
			text:    "Hi {{.first_name}} in {{.city}}",
			columns: []string{"phone", "first_name", "city"},
		},
		{
			name:      "missing ones are named, available ones listed",
			text:      "Hi {{.first_name}} in {{.city}}, {{.zip}}",
			columns:   []string{"phone", "first_name"},
			missing:   []string{"city", "zip"},
			inMessage: []string{`"city"`, `"zip"`, "available columns: phone, first_name"},
		},
		{
			name:      "did you mean",
			text:      `Hi {{.First_Name}}`,
			columns:   []string{"phone", "first_name"},
			missing:   []string{"First_Name"},
			inMessage: []string{`"First_Name" (did you mean "first_name"?)`},
		},
		{
			name:    "with bodies are no false reports",
			text:    "{{with .items}}{{.sku}}{{end}}{{with .address}}{{.street}}{{end}}",
			columns: []string{"phone", "items", "address"},
		},
		{
			name:    "campaign details need no column",
			text:    "{{.campaign.name}}: hi {{.name}}",
			columns: []string{"phone", "name"},
		},
		{
			name:    "a campaign column is a column",
			text:    "Your campaign: {{.campaign}}",
			columns: []string{"phone", "campaign"},
		},
		{
			name:      "a campaign column hides campaign details",
			text:      "{{.campaign.name}} {{.campaign.id}}: hi {{.name}}",
			columns:   []string{"phone", "campaign", "name"},
			campaign:  []string{"campaign.id", "campaign.name"},
			inMessage: []string{`column named "campaign"`, "{{.campaign.name}}"},
		},
		{
			name:      "both problems at once",
			text:      "{{.campaign.name}}: hi {{.name}}",
			columns:   []string{"phone", "campaign"},
			missing:   []string{"name"},
			campaign:  []string{"campaign.name"},
			inMessage: []string{`"name"`, `column named "campaign"`},
		},
		{
			name:      "no columns",
			text:      "{{.name}}",
			columns:   nil,
			missing:   []string{"name"},
			inMessage: []string{"no usable columns"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mustParse(t, tt.text).CheckColumns(tt.columns)
			if tt.missing == nil && tt.campaign == nil {
				if err != nil {
					t.Fatalf("CheckColumns: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("CheckColumns: no error")
			}
			var me *MissingColumnsError
			if errors.As(err, &me) != (tt.missing != nil) {
				t.Errorf("err = %v; want *MissingColumnsError: %v", err, tt.missing != nil)
			} else if me != nil && !slices.Equal(me.Missing, tt.missing) {
				t.Errorf("Missing = %q, want %q", me.Missing, tt.missing)
			}
			var ce *CampaignColumnError
			if errors.As(err, &ce) != (tt.campaign != nil) {
				t.Errorf("err = %v; want *CampaignColumnError: %v", err, tt.campaign != nil)
			} else if ce != nil && !slices.Equal(ce.Fields, tt.campaign) {
				t.Errorf("Fields = %q, want %q", ce.Fields, tt.campaign)
			}
			for _, s := range tt.inMessage {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestRender(t *testing.T) {
	camp := Campaign{ID: "c-42", Name: "Spring Sale"}
	tests := []struct {
		name string
		text string
		row  map[string]string
		want string
	}{
		{"fields", "Hi {{.first_name}} from {{.city}}!", map[string]string{"first_name": "Ana", "city": "Lima"}, "Hi Ana from Lima!"},
		{"empty value renders empty", "Hi {{.first_name}}!", map[string]string{"first_name": ""}, "Hi !"},
		{"default on empty", `Hi {{default "there" .first_name}}!`, map[string]string{"first_name": ""}, "Hi there!"},
		{"default on whitespace", `Hi {{default "there" .first_name}}!`, map[string]string{"first_name": "  \t"}, "Hi there!"},
		{"default keeps a value", `Hi {{default "there" .first_name}}!`, map[string]string{"first_name": "Ana"}, "Hi Ana!"},
		{"default piped", `Hi {{.first_name | default "there"}}!`, map[string]string{"first_name": ""}, "Hi there!"},
		{"firstName title default", `Hi {{default "there" (firstName .name | title)}}!`, map[string]string{"name": "  maría  josé garcía "}, "Hi María!"},
		{"firstName of empty", `Hi {{.name | firstName | default "there"}}!`, map[string]string{"name": "   "}, "Hi there!"},
		{"upper lower trim", "{{upper .a}} {{lower .b}} [{{trim .c}}]", map[string]string{"a": "ñandú", "b": "ÉCOLE", "c": "  x y  "}, "ÑANDÚ école [x y]"},
		{"title", "{{title .city}}", map[string]string{"city": "SÃO PAULO"}, "São Paulo"},
		{"campaign", "{{.campaign.name}} ({{.campaign.id}}): {{.city}}", map[string]string{"city": "Lima"}, "Spring Sale (c-42): Lima"},
		{"campaign via index", `{{index . "campaign" "name"}}`, map[string]string{}, "Spring Sale"},
		{"computed index sees all data", `{{$k := "city"}}{{index . $k}} / {{index . "campaign" "id"}}`, map[string]string{"city": "Lima"}, "Lima / c-42"},
		{"campaign column wins", "{{.campaign}}", map[string]string{"campaign": "from the CSV"}, "from the CSV"},
		{"eq on text", `{{if eq .vip "yes"}}VIP{{else}}regular{{end}}`, map[string]string{"vip": "no"}, "regular"},
		{"with", "{{with .nick}}aka {{.}}{{else}}no nick{{end}}", map[string]string{"nick": ""}, "no nick"},
		{"surrounding whitespace trimmed", "\n\n  Hi {{.a}}  \n", map[string]string{"a": "x"}, "Hi x"},
		{"comment leaves nothing", "{{- /* greeting */ -}}\nHi", nil, "Hi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := mustParse(t, tt.text)
			if err := tmpl.CheckColumns(slices.Collect(mapKeys(tt.row))); err != nil {
				t.Fatalf("CheckColumns: %v", err)
			}
			got, err := tmpl.Render(tt.row, camp)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got != tt.want {
				t.Errorf("Render = %q, want %q", got, tt.want)
			}
		})
	}
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		row  map[string]string
		line int
		msg  string
	}{
		{"row lacks a column", "Hi\n{{.first_name}} from {{.city}}", map[string]string{"first_name": "Ana"}, 2, `the row has no value for column "city"`},
		{"row lacks a column, campaign template", "{{.campaign.name}}\n\n{{.city}}", map[string]string{}, 3, `the row has no value for column "city"`},
		{"function given the campaign", "{{upper .campaign}}", map[string]string{}, 1, "wrong type"},
		{"nil row", "{{.a}}", nil, 1, `column "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mustParse(t, tt.text).Render(tt.row, Campaign{})
			var re *RenderError
			if !errors.As(err, &re) {
				t.Fatalf("Render = %v (%T), want *RenderError", err, err)
			}
			if re.Line != tt.line || !strings.Contains(re.Msg, tt.msg) {
				t.Errorf("got line %d %q, want line %d %q", re.Line, re.Msg, tt.line, tt.msg)
			}
			if strings.Contains(err.Error(), "executing") || strings.Contains(err.Error(), "template: ") {
				t.Errorf("Error() = %q has Go-internal noise", err)
			}
			if re.Unwrap() == nil {
				t.Error("RenderError does not wrap the text/template error")
			}
		})
	}
}

func TestLengthLimit(t *testing.T) {
	tests := []struct {
		name  string
		value string
		runes int // 0: fits
	}{
		{"ascii exactly max", strings.Repeat("a", MaxLength), 0},
		{"ascii one over", strings.Repeat("a", MaxLength+1), MaxLength + 1},
		{"two-byte letters exactly max", strings.Repeat("é", MaxLength), 0},
		{"emoji exactly max", strings.Repeat("🎉", MaxLength), 0},
		{"emoji one over", strings.Repeat("🎉", MaxLength+1), MaxLength + 1},
		{"mixed one over", strings.Repeat("ñ", 1000) + strings.Repeat("x", 1001), MaxLength + 1},
		{"surrounding whitespace does not count", "  \n" + strings.Repeat("a", MaxLength) + "\n ", 0},
		{"long", strings.Repeat("ü", 2417), 2417},
	}
	tmpl := mustParse(t, "{{.text}}")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tmpl.Render(map[string]string{"text": tt.value}, Campaign{})
			if tt.runes == 0 {
				if err != nil {
					t.Fatalf("Render: %v", err)
				}
				if got != strings.TrimSpace(tt.value) {
					t.Error("Render changed the text")
				}
				return
			}
			var tl *TooLongError
			if !errors.As(err, &tl) {
				t.Fatalf("Render = %v, want *TooLongError", err)
			}
			if tl.Length != tt.runes || tl.Max != MaxLength {
				t.Errorf("got %+v, want Length %d Max %d", tl, tt.runes, MaxLength)
			}
			want := fmt.Sprintf("rendered message is %d characters; the provider accepts at most 2000", tt.runes)
			if err.Error() != want {
				t.Errorf("Error() = %q, want %q", err, want)
			}
			if got != tt.value {
				t.Error("the too-long text is not returned for a preview")
			}
		})
	}
}

// TestProviderLengthLimit: another provider's limit (the gateway's 65536)
// lets through what TimelinesAI's 2000 refuses, and is itself enforced,
// rendering stopping past it.
func TestProviderLengthLimit(t *testing.T) {
	tmpl := mustParse(t, "{{.text}}")
	long := strings.Repeat("ü", 5000)
	if _, err := tmpl.Render(map[string]string{"text": long}, Campaign{}); err == nil {
		t.Fatal("Render let 5000 characters through TimelinesAI's limit")
	}
	got, err := tmpl.RenderUpTo(map[string]string{"text": long}, Campaign{}, 65536)
	if err != nil || got != long {
		t.Fatalf("RenderUpTo 65536 of 5000 characters: %d characters, %v", len([]rune(got)), err)
	}
	var tl *TooLongError
	_, err = tmpl.RenderUpTo(map[string]string{"text": long}, Campaign{}, 4000)
	if !errors.As(err, &tl) || tl.Max != 4000 || tl.Length != 5000 {
		t.Fatalf("RenderUpTo 4000 of 5000 characters: %v", err)
	}
	got, err = tmpl.RenderUpTo(map[string]string{"text": strings.Repeat("a", 300000)}, Campaign{}, 65536)
	if !errors.As(err, &tl) || !tl.Stopped || len(got) > 4*65537 {
		t.Fatalf("RenderUpTo 65536 of 300000 characters: %d bytes, %v; want a stop at 4 bytes a character", len(got), err)
	}
}

func TestFuncs(t *testing.T) {
	tests := []struct {
		fn   func(string) string
		name string
		in   string
		want string
	}{
		{firstName, "firstName", "  maría  josé garcía ", "maría"},
		{firstName, "firstName", "ANA", "ANA"},
		{firstName, "firstName", "Ana\tLópez", "Ana"},
		{firstName, "firstName", "", ""},
		{firstName, "firstName", " \u00a0 ", ""},
		{title, "title", "maría JOSÉ garcía", "María José García"},
		{title, "title", "jean-luc", "Jean-Luc"},
		{title, "title", "ǆemal", "ǅemal"}, // titlecase digraph, not upper-case
		{title, "title", "", ""},
		{strings.TrimSpace, "trim", "\t x \n", "x"},
		{func(s string) string { return defaultValue("there", s) }, "default", " ", "there"},
		{func(s string) string { return defaultValue("there", s) }, "default", " Ana ", " Ana "},
	}
	for _, tt := range tests {
		if got := tt.fn(tt.in); got != tt.want {
			t.Errorf("%s(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

// TestConcurrentRender renders one template from many goroutines; run it
// with -race.
func TestConcurrentRender(t *testing.T) {
	tmpl := mustParse(t, `Hi {{.name | firstName | title | default "there"}} from {{title .city}} ({{.campaign.name}})`)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				name := fmt.Sprintf("ana%d lópez", g*1000+i)
				got, err := tmpl.Render(map[string]string{"name": name, "city": "lima"}, Campaign{Name: fmt.Sprint("c", g)})
				want := fmt.Sprintf("Hi Ana%d from Lima (c%d)", g*1000+i, g)
				if err != nil || got != want {
					errs <- fmt.Errorf("got %q, %v; want %q", got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// BenchmarkRender renders a typical 5-field template with functions.
func BenchmarkRender(b *testing.B) {
	tmpl := mustParse(b, `Hi {{default "there" (firstName .name | title)}}, your order {{.order_id}} ships to {{.city}} on {{.date}}. Questions? Call {{.agent_phone}}.`)
	row := map[string]string{
		"phone": "+14155550100", "name": "maría garcía", "order_id": "A-1042",
		"city": "Lima", "date": "Tue 14 May", "agent_phone": "+51 1 555 0100",
	}
	camp := Campaign{ID: "c-1", Name: "Orders"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tmpl.Render(row, camp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderPlain(b *testing.B) {
	tmpl := mustParse(b, `Hi {{.name}}, your order {{.order_id}} ships to {{.city}} on {{.date}}. Questions? Call {{.agent_phone}}.`)
	row := map[string]string{
		"phone": "+14155550100", "name": "maría", "order_id": "A-1042",
		"city": "Lima", "date": "Tue 14 May", "agent_phone": "+51 1 555 0100",
	}
	camp := Campaign{ID: "c-1", Name: "Orders"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tmpl.Render(row, camp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderWithCampaign(b *testing.B) {
	tmpl := mustParse(b, `{{.campaign.name}}: hi {{.name}}, your order {{.order_id}} ships to {{.city}} on {{.date}}. Questions? Call {{.agent_phone}}.`)
	row := map[string]string{
		"phone": "+14155550100", "name": "maría", "order_id": "A-1042",
		"city": "Lima", "date": "Tue 14 May", "agent_phone": "+51 1 555 0100",
	}
	camp := Campaign{ID: "c-1", Name: "Orders"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tmpl.Render(row, camp); err != nil {
			b.Fatal(err)
		}
	}
}

// TestGapsFindEmptyFieldsPrintedBare: the README's sample sent "our sale is
// on in !" to a row with an empty city; Gaps names city there, and names
// nothing where the template gives a fallback, skips the field, or the
// cell has a value.
func TestGapsFindEmptyFieldsPrintedBare(t *testing.T) {
	for _, tc := range []struct {
		name, template string
		row            map[string]string
		want           []string
	}{
		{"the README's sample", `Hi {{default "there" (firstName .name)}}, our sale is on in {{.city}}!`,
			map[string]string{"name": "Dana Smith", "city": ""}, []string{"city"}},
		{"a fallback fills it", `Hi {{default "there" (firstName .name)}}, our sale is on in {{default "your town" .city}}!`,
			map[string]string{"name": "", "city": ""}, nil},
		{"a condition skips it", `Hi{{if .city}} from {{.city}}{{end}}!`, map[string]string{"city": ""}, nil},
		{"with skips it", `Hi{{with .city}} from {{.}}{{end}}!`, map[string]string{"city": ""}, nil},
		{"filled", `In {{.city}}`, map[string]string{"city": "Madrid"}, nil},
		{"at the end, trimmed away", `Hi {{.name}}`, map[string]string{"name": ""}, []string{"name"}},
		{"through a function", `In {{title .city}}, {{upper .name}}.`, map[string]string{"city": "", "name": "x"}, []string{"city"}},
		{"two gaps", `{{.a}} and {{.b}}`, map[string]string{"a": "", "b": " "}, []string{"a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := Parse("t", tc.template)
			if err != nil {
				t.Fatal(err)
			}
			if got := tmpl.Gaps(tc.row, Campaign{ID: "c1", Name: "Spring"}); !slices.Equal(got, tc.want) {
				t.Errorf("Gaps = %q, want %q", got, tc.want)
			}
		})
	}
}
