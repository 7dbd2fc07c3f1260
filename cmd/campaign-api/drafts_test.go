package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// exampleContacts is examples/contacts.csv as the README ships it: five
// good rows, a bad phone (row 7), a duplicate, and Dana without a city.
var exampleContacts = csvLines(
	"name,phone,city",
	"Ana María López,+1 202-555-0143,Washington",
	"Brian O'Neil,(415) 555-0100,san francisco",
	"Chen Wei,+1 312 555 0177,Chicago",
	"Dana Smith,202-555-0198,",
	`"Eve ""Evie"" Adams",+12125550199,New York`,
	"not a person,12345,Nowhere",
	"Ana María López,+12025550143,Washington",
)

const readmeSample = `Hi {{default "there" (firstName .name)}}, our sale is on in {{.city}}!`

// TestDraftPreviewTestEditStartDelete is the new-campaign flow through the
// API: a draft queues nothing and sends nothing; its preview names the
// rejected row, the duplicate and the gap of Dana's empty city; a test
// reaches the user's phone once and stays out of the counts; the template
// is fixed by PATCH (a mistake is refused naming the field); the start
// sends each recipient once; PATCH, start and DELETE answer 409 where the
// status does not allow them, naming it; DELETE of the finished campaign
// leaves nothing.
func TestDraftPreviewTestEditStartDelete(t *testing.T) {
	h := newHarness(t)
	h.startWorker()
	c := h.createCampaign(form{fields: [][2]string{{"template", readmeSample}, {"name", "Spring launch"}, {"draft", "true"}}, contacts: exampleContacts})
	if c.Status != campaign.StatusDraft || c.Counts.Total != 5 || c.Duplicates != 1 || c.RejectedCount != 1 {
		t.Fatalf("the draft: %s %+v", c.Status, c.Counts)
	}

	var p campaign.Preview
	decode(t, h.call(http.MethodGet, "/v1/campaigns/"+c.ID+"/preview?limit=5", ""), http.StatusOK, &p)
	if p.Rows.Read != 7 || p.Rows.Valid != 5 || p.Rows.Duplicates != 1 || p.Rows.Rejected != 1 || p.Rejected[0].Row != 7 || len(p.Messages) != 5 {
		t.Fatalf("preview: %+v", p)
	}
	if dana := p.Messages[3]; dana.Row != 5 || len(dana.Warnings) != 1 || dana.Warnings[0].Field != "city" {
		t.Errorf("Dana's message in the preview: %+v", dana)
	}
	if p.Credits.Needed != 5 || p.Credits.Available == nil || p.ETA == nil {
		t.Errorf("the preview's forecast: credits %+v, ETA %v", p.Credits, p.ETA)
	}
	if res := h.call(http.MethodGet, "/v1/campaigns/"+c.ID+"/preview?limit=500", ""); res.Code != http.StatusBadRequest || res.Errors[0].Fields[0] != "limit" {
		t.Errorf("a preview of 500: %d %s", res.Code, res.Raw)
	}

	var test campaign.TestSend
	decode(t, h.call(http.MethodPost, "/v1/campaigns/"+c.ID+"/test", `{"phone":"+1 (415) 555-0199"}`), http.StatusCreated, &test)
	var tests struct{ Tests []campaign.TestSend }
	deadline := time.Now().Add(30 * time.Second)
	for {
		decode(t, h.call(http.MethodGet, "/v1/campaigns/"+c.ID+"/test", ""), http.StatusOK, &tests)
		if len(tests.Tests) == 1 && tests.Tests[0].State == campaign.StateSent || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := h.sentTo()["+14155550199"]
	if len(got) != 1 || got[0].Text != "Hi Ana, our sale is on in Washington!" || len(tests.Tests) != 1 || tests.Tests[0].MessageUID != got[0].UID {
		t.Fatalf("the test: the provider got %+v; the test reads %+v", got, tests.Tests)
	}
	if now := h.campaign(c.ID); now.Status != campaign.StatusDraft || now.Counts.Sent != 0 || len(h.sandbox.Messages()) != 1 {
		t.Fatalf("after the test the draft is %s %+v and the provider has %d messages", now.Status, now.Counts, len(h.sandbox.Messages()))
	}

	res := h.call(http.MethodPatch, "/v1/campaigns/"+c.ID, `{"template":"Hi {{.first_name}}"}`)
	if res.Code != http.StatusBadRequest || res.Errors[0].Fields[0] != "template" || !strings.Contains(res.Message, "first_name") {
		t.Errorf("PATCH with a column the file lacks: %d %s", res.Code, res.Raw)
	}
	if res := h.call(http.MethodPatch, "/v1/campaigns/"+c.ID, `{"colour":"red"}`); res.Code != http.StatusBadRequest || res.Errors[0].Fields[0] != "colour" {
		t.Errorf("PATCH of an unknown field: %d %s", res.Code, res.Raw)
	}
	var fixed campaign.Campaign
	decode(t, h.call(http.MethodPatch, "/v1/campaigns/"+c.ID, `{"template":"Hi {{default \"there\" (firstName .name)}}, our sale is on in {{default \"your town\" .city}}! (fixed)","label":"spring"}`), http.StatusOK, &fixed)
	if fixed.Status != campaign.StatusDraft || fixed.Label != "spring" || !strings.Contains(fixed.Template, "your town") {
		t.Fatalf("after PATCH: %+v", fixed)
	}
	decode(t, h.call(http.MethodGet, "/v1/campaigns/"+c.ID+"/preview", ""), http.StatusOK, &p)
	if p.Warned != 0 || p.Messages[3].Text != "Hi Dana, our sale is on in your town! (fixed)" {
		t.Errorf("the preview after the fix: %d warned, Dana gets %q", p.Warned, p.Messages[3].Text)
	}

	other := h.createCampaign(form{fields: [][2]string{{"template", readmeSample}, {"draft", "true"}}, contacts: exampleContacts})
	if res := h.call(http.MethodDelete, "/v1/campaigns/"+other.ID, ""); res.Code != http.StatusOK {
		t.Errorf("DELETE of a draft: %d %s", res.Code, res.Raw)
	}
	var started campaign.Campaign
	decode(t, h.call(http.MethodPost, "/v1/campaigns/"+c.ID+"/start", ""), http.StatusOK, &started)
	if started.Status != campaign.StatusRunning {
		t.Fatalf("start: %s", started.Status)
	}
	for _, tc := range []struct{ method, path, body, status string }{
		{http.MethodPost, "/start", "", "running"},
		{http.MethodPatch, "", `{"name":"late"}`, "running"},
		{http.MethodDelete, "", "", "running"},
	} {
		res := h.call(tc.method, "/v1/campaigns/"+c.ID+tc.path, tc.body)
		if res.Code != http.StatusConflict || !strings.Contains(res.Message, "that is "+tc.status) {
			t.Errorf("%s %s of a running campaign: %d %s; want 409 naming %s", tc.method, tc.path, res.Code, res.Raw, tc.status)
		}
	}
	done := h.waitCampaign(c.ID, 30*time.Second, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
	if done.Counts.Sent+done.Counts.Delivered+done.Counts.Read != 5 {
		t.Errorf("the started campaign: %+v", done.Counts)
	}
	for phone, msgs := range h.sentTo() {
		if len(msgs) != 1 {
			t.Errorf("%s got %d messages", phone, len(msgs))
		}
	}
	var deleted struct {
		ID      string `json:"id"`
		Deleted bool   `json:"deleted"`
	}
	decode(t, h.call(http.MethodDelete, "/v1/campaigns/"+c.ID, ""), http.StatusOK, &deleted)
	if !deleted.Deleted || deleted.ID != c.ID {
		t.Errorf("DELETE answered %+v", deleted)
	}
	if res := h.call(http.MethodGet, "/v1/campaigns/"+c.ID, ""); res.Code != http.StatusNotFound {
		t.Errorf("GET of a deleted campaign: %d", res.Code)
	}
}

// TestDraftFromJSONAndBadDraftField: draft is a boolean in JSON, true or
// false in a form; anything else is a 400 naming it.
func TestDraftFromJSONAndBadDraftField(t *testing.T) {
	h := newHarness(t)
	res := h.call(http.MethodPost, "/v1/campaigns", `{"template":"Hi {{.name}}","draft":true,"contacts":[{"phone":"+12025550143","name":"Ana"}]}`)
	var c campaign.Campaign
	decode(t, res, http.StatusCreated, &c)
	if c.Status != campaign.StatusDraft {
		t.Errorf("a JSON draft is %s", c.Status)
	}
	if res := h.upload(form{fields: [][2]string{{"template", "Hi"}, {"draft", "maybe"}}, contacts: exampleContacts}); res.Code != http.StatusBadRequest || res.Errors[0].Fields[0] != "draft" {
		t.Errorf("draft=maybe: %d %s", res.Code, res.Raw)
	}
	if res := h.call(http.MethodPost, "/v1/campaigns", `{"template":"Hi","draft":"yes","contacts":[{"phone":"+12025550143"}]}`); res.Code != http.StatusBadRequest || res.Errors[0].Fields[0] != "draft" {
		t.Errorf(`"draft":"yes": %d %s`, res.Code, res.Raw)
	}
}

// TestWaitingCampaignSaysWhy: a campaign whose only account is paused
// shows the wait and no ETA, where it used to show "now".
func TestWaitingCampaignSaysWhy(t *testing.T) {
	h := newHarness(t)
	h.startWorker()
	if res := h.call(http.MethodPost, "/v1/accounts/%2B14155550100/pause", ""); res.Code != http.StatusOK {
		t.Fatal(res.Raw)
	}
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hi"}, {"accounts", "+14155550100"}}, contacts: exampleContacts})
	got := h.waitCampaign(c.ID, 10*time.Second, "waiting for its account", func(c campaign.Campaign) bool { return len(c.Waiting) > 0 })
	if got.Waiting[0].Cause != campaign.WaitAccounts || got.Waiting[0].Until != nil || !strings.Contains(got.Waiting[0].Reason, "+14155550100 is paused") || got.ETA != nil {
		t.Errorf("waiting for a paused account: %+v, ETA %v", got.Waiting, got.ETA)
	}
}

// decode checks an answer's status and decodes its data.
func decode(t *testing.T, res apiResponse, status int, out any) {
	t.Helper()
	if res.Code != status {
		t.Fatalf("answered %d, want %d: %s", res.Code, status, res.Raw)
	}
	if err := json.Unmarshal(res.Data, out); err != nil {
		t.Fatal(err)
	}
}
