package main

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// TestBadInput: every mistake a user can make is a 4xx whose body names the
// problem, in the provider's error shape, and creates no campaign.
func TestBadInput(t *testing.T) {
	h := newHarness(t, func(_ *sandbox.Config, cfg *app.Config) { cfg.MaxUploadBytes = 64 << 10 })
	good := "phone,name\n+12025550101,Ann\n"
	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.IntN(256))
	}
	big := "phone,name\n" + strings.Repeat("+12025550101,Someone with a long name to fill the file\n", 2000)
	tmpl := [2]string{"template", "Hi {{.name}}"}

	cases := []struct {
		name     string
		form     form
		status   int
		code     string
		field    string // the first errors[].fields entry
		mentions string // in message
		rawBody  []byte // instead of form
		rawType  string
		noAuth   bool
		badKey   bool
	}{
		{name: "no file", form: form{fields: [][2]string{tmpl}, noFile: true}, status: 400, code: "validation_error", field: "contacts", mentions: "no contacts file"},
		{name: "empty file", form: form{fields: [][2]string{tmpl}, contacts: []byte{}}, status: 400, field: "contacts", mentions: "empty"},
		{name: "blank lines only", form: form{fields: [][2]string{tmpl}, contacts: []byte("\n\n  \n")}, status: 400, field: "contacts", mentions: "empty"},
		{name: "no phone column", form: form{fields: [][2]string{tmpl}, contacts: []byte("name,city\nAnn,Paris\n")}, status: 400, field: "contacts", mentions: "no phone column"},
		{name: "header only", form: form{fields: [][2]string{tmpl}, contacts: []byte("phone,name\n")}, status: 400, field: "contacts", mentions: "no rows"},
		{name: "binary garbage", form: form{fields: [][2]string{tmpl}, contacts: garbage}, status: 400, field: "contacts", mentions: "binary"},
		{name: "excel workbook", form: form{fields: [][2]string{tmpl}, contacts: append([]byte("PK\x03\x04"), garbage[:100]...)}, status: 400, field: "contacts", mentions: "Excel"},
		{name: "template syntax error", form: form{fields: [][2]string{{"template", "Hi {{.name"}}, contacts: []byte(good)}, status: 400, field: "template", mentions: "line 1"},
		// Templates that could exhaust a worker are refused at upload, naming the construct.
		{name: "template looping a billion times", form: form{fields: [][2]string{{"template", `{{range 1000000000}}{{printf "%01000000d" 0}}{{end}}`}}, contacts: []byte(good)}, status: 400, field: "template", mentions: "{{range}}"},
		{name: "template with nested loops", form: form{fields: [][2]string{{"template", "{{range 100000}}{{range 100000}}{{end}}{{end}}"}}, contacts: []byte(good)}, status: 400, field: "template", mentions: "{{range}}"},
		{name: "template of 100 MB", form: form{fields: [][2]string{{"template", "{{range 100000000}}x{{end}}"}}, contacts: []byte(good)}, status: 400, field: "template", mentions: "{{range}}"},
		{name: "template calling another", form: form{fields: [][2]string{{"template", `{{define "x"}}hi{{end}}{{template "x"}}`}}, contacts: []byte(good)}, status: 400, field: "template", mentions: "{{template}}"},
		{name: "template defining another", form: form{fields: [][2]string{{"template", `Hi{{define "x"}}hi{{end}}`}}, contacts: []byte(good)}, status: 400, field: "template", mentions: "{{define}}"},
		{name: "template block", form: form{fields: [][2]string{{"template", `{{block "x" .}}hi{{end}}`}}, contacts: []byte(good)}, status: 400, field: "template", mentions: "{{block}}"},
		{name: "template call", form: form{fields: [][2]string{{"template", `{{call .name}}`}}, contacts: []byte(good)}, status: 400, field: "template", mentions: "call"},
		{name: "template dumping the row", form: form{fields: [][2]string{{"template", "Hi {{.}}"}}, contacts: []byte(good)}, status: 400, field: "template", mentions: "{{.}}"},
		{name: "template with a wide printf", form: form{fields: [][2]string{{"template", `{{printf "%01000000d" 1}}`}}, contacts: []byte(good)}, status: 400, field: "template", mentions: "printf"},
		{name: "template uses a missing column", form: form{fields: [][2]string{{"template", "Hi {{.name}} in {{.city}}"}}, contacts: []byte(good)}, status: 400, field: "template", mentions: "city"},
		{name: "no template", form: form{contacts: []byte(good)}, status: 400, field: "template", mentions: "template is required"},
		{name: "template and template_name", form: form{fields: [][2]string{tmpl, {"template_name", "welcome"}}, contacts: []byte(good)}, status: 400, field: "template", mentions: "not both"},
		{name: "unknown template_name", form: form{fields: [][2]string{{"template_name", "nope"}}, contacts: []byte(good)}, status: 400, field: "template_name", mentions: "welcome"},
		{name: "template_name escaping the folder", form: form{fields: [][2]string{{"template_name", "../go.mod"}}, contacts: []byte(good)}, status: 400, field: "template_name", mentions: "no template named"},
		{name: "every row invalid", form: form{fields: [][2]string{tmpl}, contacts: []byte("phone,name\n123,Ann\nabc,Bob\n")}, status: 400, field: "contacts", mentions: "2 rows rejected"},
		{name: "bad send_at", form: form{fields: [][2]string{tmpl, {"send_at", "tomorrow 9am"}}, contacts: []byte(good)}, status: 400, field: "send_at", mentions: "RFC 3339"},
		{name: "send_at in the past", form: form{fields: [][2]string{tmpl, {"send_at", "2020-01-01T09:00:00Z"}}, contacts: []byte(good)}, status: 400, field: "send_at", mentions: "in the past"},
		{name: "bad account", form: form{fields: [][2]string{tmpl, {"accounts", "+12025550199, nonsense"}}, contacts: []byte(good)}, status: 400, field: "accounts", mentions: "nonsense"},
		{name: "label too long", form: form{fields: [][2]string{tmpl, {"label", strings.Repeat("x", 65)}}, contacts: []byte(good)}, status: 400, field: "label", mentions: "64"},
		{name: "unknown field", form: form{fields: [][2]string{tmpl, {"acounts", "+12025550199"}}, contacts: []byte(good)}, status: 400, field: "acounts", mentions: "unknown field"},
		{name: "oversize file", form: form{fields: [][2]string{tmpl}, contacts: []byte(big)}, status: 413, code: "payload_too_large", field: "contacts", mentions: "64 KiB"},
		{name: "neither multipart nor JSON", rawBody: []byte(`phone,name`), rawType: "text/csv", status: 415, field: "Content-Type", mentions: "multipart/form-data"},
		{name: "missing API key", form: form{fields: [][2]string{tmpl}, contacts: []byte(good)}, noAuth: true, status: 401, code: "missing_credentials", mentions: "Bearer"},
		{name: "unknown API key", form: form{fields: [][2]string{tmpl}, contacts: []byte(good)}, badKey: true, status: 401, code: "invalid_token", mentions: "not valid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var req *http.Request
			if tc.rawBody != nil {
				req = h.request(http.MethodPost, "/v1/campaigns", bytes.NewReader(tc.rawBody), tc.rawType)
			} else {
				body, ct := tc.form.encode(t)
				req = h.request(http.MethodPost, "/v1/campaigns", body, ct)
			}
			switch {
			case tc.noAuth:
				req.Header.Del("Authorization")
			case tc.badKey:
				req.Header.Set("Authorization", "Bearer not-a-key")
			}
			res := h.do(req)
			if res.Code != tc.status || res.Status != "error" {
				t.Fatalf("answered %d %s; want %d", res.Code, res.Raw, tc.status)
			}
			if tc.code != "" && res.ErrorCode != tc.code {
				t.Errorf("error_code %q, want %q", res.ErrorCode, tc.code)
			}
			if !strings.Contains(res.Message, tc.mentions) {
				t.Errorf("message %q does not mention %q", res.Message, tc.mentions)
			}
			if tc.field != "" && (len(res.Errors) == 0 || len(res.Errors[0].Fields) == 0 || res.Errors[0].Fields[0] != tc.field) {
				t.Errorf("errors %+v: want the first to name %q", res.Errors, tc.field)
			}
		})
	}
	list := h.do(h.request(http.MethodGet, "/v1/campaigns", nil, ""))
	if !strings.Contains(list.Raw, `"campaigns":[]`) {
		t.Errorf("bad input created campaigns: %s", list.Raw)
	}
}

func TestUnknownRoutesAnswerInTheErrorShape(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/v1/nope", 404, "not_found"},
		{http.MethodDelete, "/v1/campaigns", 405, "method_not_allowed"},
		{http.MethodGet, "/v1/campaigns/doesnotexist", 404, "not_found"},
		{http.MethodGet, "/v1/campaigns/doesnotexist/recipients", 404, "not_found"},
		{http.MethodGet, "/v1/campaigns?limit=0", 400, "validation_error"},
	} {
		res := h.do(h.request(tc.method, tc.path, nil, ""))
		if res.Code != tc.status || res.ErrorCode != tc.code {
			t.Errorf("%s %s: %d %s; want %d %s", tc.method, tc.path, res.Code, res.Raw, tc.status, tc.code)
		}
	}
}
