package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
	"github.com/wacampaign/wacampaign/internal/templating"
)

func (f *fixture) importJSON(tmpl, contacts string, inArray bool) (*Campaign, error) {
	f.t.Helper()
	parsed, err := templating.Parse("t", tmpl)
	if err != nil {
		f.t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(contacts))
	if inArray {
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			f.t.Fatalf("contacts do not open an array: %v %v", tok, err)
		}
	}
	return f.importer.ImportJSON(context.Background(), Draft{Name: "JSON", Template: parsed}, dec, inArray)
}

// TestImportJSONContacts: contacts as JSON objects become recipients like
// CSV rows: the first object's keys are the columns, numbers and booleans
// become text, phones are normalised and de-duplicated, and a bad contact
// is rejected with its position in the array while the rest go on.
func TestImportJSONContacts(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	contacts := `[{"phone":"+12025550143","Name":"Ana","vip":true},
		{"phone":"(415) 555-0100","name":"Brian","vip":false,"ignored":"x"},
		{"phone":"12345","name":"Bad"},
		{"phone":"+12025550143","name":"Ana again"},
		{"phone":"+12025550144","name":7}]`
	c, err := f.importJSON("Hi {{.name}} {{.vip}}", contacts, true)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Columns, ",") != "phone,name,vip" || c.PhoneColumn != "phone" {
		t.Errorf("columns %v phone %q", c.Columns, c.PhoneColumn)
	}
	if c.Counts.Total != 3 || c.Duplicates != 1 || c.RejectedCount != 1 || len(c.Rejected) != 1 || c.Rejected[0].Row != 3 {
		t.Errorf("total %d duplicates %d rejected %d %+v", c.Counts.Total, c.Duplicates, c.RejectedCount, c.Rejected)
	}
	if n := f.runQueued(QueueSend, TypeSend, "", f.handler); n != 3 {
		t.Fatalf("ran %d send tasks, want 3", n)
	}
	got := map[string]string{}
	for _, m := range f.sandbox.Messages() {
		got[m.Recipient] = m.Text
	}
	want := map[string]string{"+12025550143": "Hi Ana true", "+14155550100": "Hi Brian false", "+12025550144": "Hi 7"}
	for phone, text := range want {
		if got[phone] != text {
			t.Errorf("%s got %q, want %q", phone, got[phone], text)
		}
	}
	if len(got) != len(want) {
		t.Errorf("the sandbox got %v", got)
	}

	// JSON lines read the same way.
	lines, err := f.importJSON("Hi {{.name}}", "{\"phone\":\"+12025550150\",\"name\":\"Cy\"}\n{\"phone\":\"+12025550151\",\"name\":\"Di\"}\n", false)
	if err != nil || lines.Counts.Total != 2 {
		t.Fatalf("JSON lines: %v %v", lines, err)
	}

	var input *InputError
	for name, tc := range map[string]struct{ tmpl, contacts, field string }{
		"no phone":          {"Hi", `[{"name":"Ana"}]`, "contacts"},
		"empty":             {"Hi", `[]`, "contacts"},
		"a missing column":  {"Hi {{.city}}", `[{"phone":"+12025550143"}]`, "template"},
		"no valid contact":  {"Hi", `[{"phone":"12"}]`, "contacts"},
		"two keys for name": {"Hi", `[{"phone":"+12025550143","Name":"a","name":"b"}]`, "contacts"},
	} {
		if _, err := f.importJSON(tc.tmpl, tc.contacts, true); !errors.As(err, &input) || input.Problems[0].Fields[0] != tc.field {
			t.Errorf("%s: %v; want an InputError on %s", name, err, tc.field)
		}
	}
}
