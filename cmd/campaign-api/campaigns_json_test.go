package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

func TestCampaignFromJSONContacts(t *testing.T) {
	h := newHarness(t)
	h.startWorker()
	cases := []struct {
		name string
		body string
	}{
		{"template first: streamed", `{"name":"JSON","template":"Hi {{.name}} ({{.age}}, vip {{.vip}})","accounts":["+14155550100"],
		  "contacts":[{"phone":"+12025550101","name":"Ann","age":31,"vip":true},
		              {"phone":"(202) 555-0102","name":"Bob","age":40.5},
		              {"phone":"+12025550101","name":"Ann again"},
		              {"phone":"123","name":"Broken"},
		              "not an object",
		              {"phone":"+12025550103","name":{"first":"Cy"}},
		              {"phone":"+12025550104","name":"Dee","extra":"ignored","vip":null}]}`},
		{"contacts first: spooled", `{"contacts":[{"phone":"+12025550101","name":"Ann","age":31,"vip":true},
		              {"phone":"(202) 555-0102","name":"Bob","age":40.5},
		              {"phone":"+12025550101","name":"Ann again"},
		              {"phone":"123","name":"Broken"},
		              "not an object",
		              {"phone":"+12025550103","name":{"first":"Cy"}},
		              {"phone":"+12025550104","name":"Dee","extra":"ignored","vip":null}],
		  "accounts":["+14155550100"],"template":"Hi {{.name}} ({{.age}}, vip {{.vip}})","name":"JSON"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.call(http.MethodPost, "/v1/campaigns", tc.body)
			if res.Code != http.StatusCreated {
				t.Fatalf("%d %s", res.Code, res.Raw)
			}
			id := idOf(t, res)
			c := h.waitCampaign(id, 30*time.Second, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
			if c.Counts.Sent != 3 || c.Duplicates != 1 || c.RejectedCount != 3 || c.Name != "JSON" {
				t.Fatalf("campaign %+v duplicates %d rejected %+v", c.Counts, c.Duplicates, c.Rejected)
			}
			rows := []int{}
			for _, r := range c.Rejected {
				rows = append(rows, r.Row)
			}
			if len(rows) != 3 || rows[0] != 4 || rows[1] != 5 || rows[2] != 6 {
				t.Errorf("rejected %+v; want contacts 4, 5 and 6", c.Rejected)
			}
			texts := map[string]string{}
			for _, r := range h.recipients(id, "") {
				for _, m := range h.sentTo()[r.Phone] {
					texts[r.Phone] = m.Text
				}
			}
			want := map[string]string{"+12025550101": "Hi Ann (31, vip true)", "+12025550102": "Hi Bob (40.5, vip )", "+12025550104": "Hi Dee (, vip )"}
			for phone, text := range want {
				if texts[phone] != text {
					t.Errorf("%s got %q, want %q", phone, texts[phone], text)
				}
			}
		})
	}
}

func TestJSONContactsBadInput(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name, body, field, mentions string
		status                      int
	}{
		{"broken JSON", `{"template":"Hi","contacts":[{"phone":"+12025550101"`, "body", "JSON", 400},
		{"not an object", `["a"]`, "body", "expected", 400},
		{"no contacts", `{"template":"Hi"}`, "contacts", "no contacts", 400},
		{"empty contacts", `{"template":"Hi","contacts":[]}`, "contacts", "empty", 400},
		{"first contact without phone", `{"template":"Hi","contacts":[{"name":"Ann"}]}`, "contacts", "no phone", 400},
		{"template uses a key the contacts lack", `{"template":"Hi {{.city}}","contacts":[{"phone":"+12025550101","name":"Ann"}]}`, "template", "city", 400},
		{"unknown field", `{"template":"Hi","contact":[]}`, "contact", "unknown field", 400},
		{"wrong type", `{"template":7,"contacts":[]}`, "template", "string", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := h.call(http.MethodPost, "/v1/campaigns", tc.body)
			if res.Code != tc.status || len(res.Errors) == 0 || res.Errors[0].Fields[0] != tc.field || !strings.Contains(res.Message, tc.mentions) {
				t.Errorf("%d %s; want %d naming %s and saying %q", res.Code, res.Raw, tc.status, tc.field, tc.mentions)
			}
		})
	}
}
