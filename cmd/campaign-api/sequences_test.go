package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/campaign/sequence"
)

const onboarding = `{"name":"Onboarding","accounts":["+14155550100"],"label":"onboarding",
 "steps":[
  {"name":"welcome","template":"Welcome {{.name}}!","delay":"0s"},
  {"name":"tips","template":"Tips for your {{.plan}} plan","delay":"2s"},
  {"name":"check-in","template":"How is it going, {{.name}}?","delay":"4s"}]}`

func TestOnboardingSequence(t *testing.T) {
	h := newHarness(t)
	h.startWorkers(2)
	res := h.call(http.MethodPost, "/v1/sequences", onboarding)
	if res.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", res.Code, res.Raw)
	}
	var seq sequence.Sequence
	if err := json.Unmarshal(res.Data, &seq); err != nil {
		t.Fatal(err)
	}
	if strings.Join(seq.Fields, ",") != "name,plan" || len(seq.Steps) != 3 {
		t.Fatalf("sequence %+v", seq)
	}
	enroll := func(body string) apiResponse {
		return h.call(http.MethodPost, "/v1/sequences/"+seq.ID+"/enrollments", body)
	}

	ann := `{"phone":"+12025550101","fields":{"name":"Ann","plan":"pro"}}`
	first := enroll(ann)
	if first.Code != http.StatusCreated {
		t.Fatalf("enrol: %d %s", first.Code, first.Raw)
	}
	var e sequence.Enrollment
	_ = json.Unmarshal(first.Data, &e)
	// Enrolling again is idempotent per phone: the same enrolment, no new steps.
	again := enroll(strings.Replace(ann, "Ann", "Annie", 1))
	var e2 sequence.Enrollment
	_ = json.Unmarshal(again.Data, &e2)
	if again.Code != http.StatusOK || !e2.EnrolledAt.Equal(e.EnrolledAt) {
		t.Errorf("second enrolment: %d %s", again.Code, again.Raw)
	}
	if res := enroll(`{"phone":"+12025550102","fields":{"name":"Bob"}}`); res.Code != 400 || !strings.Contains(res.Message, "plan") {
		t.Errorf("missing field: %d %s; want 400 naming plan", res.Code, res.Raw)
	}
	if res := enroll(`{"phone":"12","fields":{"name":"Bob","plan":"x"}}`); res.Code != 400 || res.Errors[0].Fields[0] != "phone" {
		t.Errorf("bad phone: %d %s", res.Code, res.Raw)
	}

	// Bob and Cy by CSV, with Ann again and one bad row.
	body, ct := multipartInOrder(t, []part{{name: "contacts", file: true,
		data: "phone,name,plan\n+12025550102,Bob,basic\n+12025550101,Ann,pro\nnope,Nobody,basic\n+12025550103,Cy,pro\n"}})
	csvRes := h.do(h.request(http.MethodPost, "/v1/sequences/"+seq.ID+"/enrollments", body, ct))
	if csvRes.Code != 200 || !strings.Contains(csvRes.Raw, `"enrolled":2,"already_enrolled":1,"rejected_count":1`) || !strings.Contains(csvRes.Raw, `"row":4`) {
		t.Fatalf("CSV enrolment: %d %s", csvRes.Code, csvRes.Raw)
	}

	// Cy leaves after the welcome.
	h.waitCampaign(seq.Steps[0].CampaignID, 30*time.Second, "three welcomes", func(c campaign.Campaign) bool { return c.Counts.Sent >= 3 })
	un := h.call(http.MethodDelete, "/v1/sequences/"+seq.ID+"/enrollments/"+url.PathEscape("+12025550103"), "")
	if un.Code != 200 || !strings.Contains(un.Raw, `"cancelled_steps":2`) {
		t.Fatalf("unenrol: %d %s", un.Code, un.Raw)
	}

	h.waitCampaign(seq.Steps[2].CampaignID, 30*time.Second, "check-ins out", func(c campaign.Campaign) bool { return c.Counts.Sent == 2 && c.Counts.Skipped == 1 })
	sent := h.sentTo()
	want := map[string][]string{
		"+12025550101": {"Welcome Ann!", "Tips for your pro plan", "How is it going, Ann?"},
		"+12025550102": {"Welcome Bob!", "Tips for your basic plan", "How is it going, Bob?"},
		"+12025550103": {"Welcome Cy!"},
	}
	for phone, texts := range want {
		msgs := sent[phone]
		if len(msgs) != len(texts) {
			t.Errorf("%s got %d messages, want %d", phone, len(msgs), len(texts))
			continue
		}
		for i, m := range msgs {
			if m.Text != texts[i] || m.AccountPhone != "+14155550100" {
				t.Errorf("%s message %d: %q from %s", phone, i, m.Text, m.AccountPhone)
			}
		}
		// Each step waits its delay after the enrolment.
		for i, delay := range []time.Duration{0, 2 * time.Second, 4 * time.Second} {
			if i < len(msgs) && msgs[i].ReceivedAt.Sub(msgs[0].ReceivedAt) < delay-time.Second {
				t.Errorf("%s step %d came %s after the first; its delay is %s", phone, i, msgs[i].ReceivedAt.Sub(msgs[0].ReceivedAt), delay)
			}
		}
	}

	got := h.call(http.MethodGet, "/v1/sequences/"+seq.ID+"/enrollments/"+url.PathEscape("+12025550103"), "")
	if !strings.Contains(got.Raw, `"status":"cancelled"`) || !strings.Contains(got.Raw, `"state":"skipped","reason":"unenrolled"`) {
		t.Errorf("Cy's enrolment: %s", got.Raw)
	}
	view := h.call(http.MethodGet, "/v1/sequences/"+seq.ID, "")
	if !strings.Contains(view.Raw, `"enrolled":3`) {
		t.Errorf("sequence view: %s", view.Raw)
	}
	// The steps are not campaigns of their own in the list.
	if list := h.call(http.MethodGet, "/v1/campaigns", ""); !strings.Contains(list.Raw, `"campaigns":[]`) {
		t.Errorf("steps listed as campaigns: %s", list.Raw)
	}
}

func TestSequenceBadInput(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ body, field string }{
		{`{"name":"x","steps":[]}`, "steps"},
		{`{"name":"","steps":[{"template":"hi"}]}`, "name"},
		{`{"name":"x","steps":[{"template":"hi {{.x"}]}`, "steps"},
		{`{"name":"x","steps":[{"template":"a","delay":"2h"},{"template":"b","delay":"1h"}]}`, "steps"},
		{`{"name":"x","steps":[{"template":"a","delay":"soon"}]}`, "steps"},
		{`{"name":"x","stepz":[]}`, "body"},
		{`{"name":"x","accounts":["nope"],"steps":[{"template":"a"}]}`, "accounts"},
	} {
		res := h.call(http.MethodPost, "/v1/sequences", tc.body)
		if res.Code != 400 || len(res.Errors) == 0 || res.Errors[0].Fields[0] != tc.field {
			t.Errorf("%s: %d %s; want 400 naming %s", tc.body, res.Code, res.Raw, tc.field)
		}
	}
	if res := h.call(http.MethodPost, "/v1/sequences/nope/enrollments", `{"phone":"+12025550101"}`); res.Code != 404 {
		t.Errorf("unknown sequence: %d %s", res.Code, res.Raw)
	}
}
