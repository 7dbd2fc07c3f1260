package main

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// An upload either becomes a campaign, with every field it carried in
// whatever order, or leaves nothing that can send.

// waitQueuesIdle waits until every send and control task has run to its
// end: after it, a message that was going to reach the sandbox has.
func (h *harness) waitQueuesIdle(timeout time.Duration) {
	h.t.Helper()
	insp := asynq.NewInspectorFromRedisClient(h.rdb.Client)
	deadline := time.Now().Add(timeout)
	for {
		busy := 0
		for _, q := range []string{campaign.QueueSend, campaign.QueueControl} {
			info, err := insp.GetQueueInfo(q)
			if err != nil {
				continue // a queue nothing was ever put in
			}
			busy += info.Pending + info.Active + info.Scheduled + info.Retry
		}
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d tasks still to run after %s", busy, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// contactsCSV is a contacts file of phones, named Person 0, Person 1, ...
func contactsCSV(phones []string) string {
	var b strings.Builder
	b.WriteString("phone,name\n")
	for i, p := range phones {
		fmt.Fprintf(&b, "%s,Person %d\n", p, i)
	}
	return b.String()
}

// contactsJSON is the same as a JSON array.
func contactsJSON(phones []string) string {
	items := make([]string, len(phones))
	for i, p := range phones {
		items[i] = fmt.Sprintf(`{"phone":%q,"name":"Person %d"}`, p, i)
	}
	return "[" + strings.Join(items, ",") + "]"
}

func TestFieldsAfterContactsAreHonoured(t *testing.T) {
	h := newHarness(t)
	h.startWorker()
	phones := generatedPhones(15)
	lateAccounts := []string{"+14155550100", "+14155550101"}
	// The parts (or the JSON) of each case, given its contacts and a send_at
	// a few seconds ahead.
	cases := []struct {
		name      string
		parts     func(contacts part, sendAt string) []part
		json      func(contacts, sendAt string) string
		accounts  []string // the messages come from these (nil: the default account)
		text      string   // of the message to Person 0
		label     string
		fileUID   string
		scheduled bool // by the late send_at
	}{
		{name: "accounts, label, file_uid and name after contacts",
			parts: func(c part, _ string) []part {
				return []part{{name: "template", data: "Hi {{.name}}"}, c, {name: "accounts", data: strings.Join(lateAccounts, ",")},
					{name: "label", data: "spring"}, {name: "file_uid", data: "file-1"}, {name: "name", data: "late multipart"}}
			},
			accounts: lateAccounts, text: "Hi Person 0", label: "spring", fileUID: "file-1"},
		{name: "send_at after contacts",
			parts: func(c part, sendAt string) []part {
				return []part{{name: "name", data: "late send_at"}, {name: "template", data: "Hi {{.name}}"}, c, {name: "send_at", data: sendAt}}
			},
			text: "Hi Person 0", scheduled: true},
		{name: "template and accounts after contacts",
			parts: func(c part, _ string) []part {
				return []part{{name: "name", data: "late template"}, c, {name: "template", data: "Late hello {{.name}}"}, {name: "accounts", data: lateAccounts[0]}}
			},
			accounts: lateAccounts[:1], text: "Late hello Person 0"},
		{name: "JSON accounts and name after contacts",
			json: func(c, _ string) string {
				return `{"template":"Hi {{.name}}","contacts":` + c + `,"accounts":["` + lateAccounts[1] + `"],"name":"late JSON"}`
			},
			accounts: lateAccounts[1:], text: "Hi Person 0"},
		{name: "JSON send_at after contacts",
			json: func(c, sendAt string) string {
				return `{"name":"late JSON send_at","template":"Hi {{.name}}","contacts":` + c + `,"send_at":"` + sendAt + `"}`
			},
			text: "Hi Person 0", scheduled: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mine := phones[3*i : 3*i+3]
			sendAt := time.Now().Add(3 * time.Second).Truncate(time.Second).UTC()
			var res apiResponse
			if tc.json != nil {
				res = h.call(http.MethodPost, "/v1/campaigns", tc.json(contactsJSON(mine), sendAt.Format(time.RFC3339)))
			} else {
				body, ct := multipartInOrder(t, tc.parts(part{name: "contacts", file: true, data: contactsCSV(mine)}, sendAt.Format(time.RFC3339)))
				res = h.do(h.request(http.MethodPost, "/v1/campaigns", body, ct))
			}
			if res.Code != http.StatusCreated {
				t.Fatalf("%d %s", res.Code, res.Raw)
			}
			id := idOf(t, res)
			created := h.campaign(id)
			var scheduled *time.Time
			if tc.scheduled {
				scheduled = &sendAt
				if created.Status != campaign.StatusScheduled || created.SendAt == nil || !created.SendAt.Equal(sendAt) {
					t.Fatalf("a late send_at %s: the campaign is %s, send_at %v; want scheduled then", sendAt, created.Status, created.SendAt)
				}
			}
			if !slices.Equal(created.Accounts, tc.accounts) {
				t.Errorf("accounts %v, want %v", created.Accounts, tc.accounts)
			}
			if tc.fileUID != "" && created.Credits.Estimated != 2*int64(len(mine)) {
				t.Errorf("estimated %d credits; with a file every message costs 2", created.Credits.Estimated)
			}
			done := h.waitCampaign(id, 30*time.Second, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
			if done.Counts.Sent != int64(len(mine)) {
				t.Errorf("counts %+v; want all %d sent", done.Counts, len(mine))
			}
			sent := h.sentTo()
			for _, phone := range mine {
				if len(sent[phone]) != 1 {
					t.Fatalf("%s got %d messages", phone, len(sent[phone]))
				}
				checkLateMessage(t, sent[phone][0], tc.accounts, tc.label, tc.fileUID, scheduled)
			}
			if got := sent[mine[0]][0].Text; got != tc.text {
				t.Errorf("Person 0 got %q, want %q", got, tc.text)
			}
			if list := h.campaignsNamed(done.Name); len(list) != 1 {
				t.Errorf("%d campaigns named %q; want this one alone (no cancelled one beside it)", len(list), done.Name)
			}
		})
	}
}

func checkLateMessage(t *testing.T, m sandbox.Message, accounts []string, label, fileUID string, sendAt *time.Time) {
	t.Helper()
	if len(accounts) > 0 && !slices.Contains(accounts, m.Sender) {
		t.Errorf("%s got its message from %q; want one of the late accounts %v", m.Recipient, m.Sender, accounts)
	}
	if m.Label != label || m.FileUID != fileUID {
		t.Errorf("%s got label %q and file %q; want %q and %q", m.Recipient, m.Label, m.FileUID, label, fileUID)
	}
	if sendAt != nil && m.ReceivedAt.Before(*sendAt) {
		t.Errorf("%s got its message at %s, before the late send_at %s", m.Recipient, m.ReceivedAt, sendAt)
	}
}

// TestMistakesAfterStreamedContactsLeaveNothing: a field after contacts
// that is a mistake is a 400 naming it, and the campaign its contacts were
// streamed into — held, so it sent nothing — is gone.
func TestMistakesAfterStreamedContactsLeaveNothing(t *testing.T) {
	h := newHarness(t)
	h.startWorker()
	contacts := part{name: "contacts", file: true, data: contactsCSV(generatedPhones(3))}
	first := func(name string) []part {
		return []part{{name: "name", data: name}, {name: "template", data: "Hi {{.name}}"}, contacts}
	}
	cases := []struct {
		name     string
		late     []part
		json     string
		field    string
		mentions string
	}{
		{name: "unknown field", late: []part{{name: "nonsense", data: "x"}}, field: "nonsense", mentions: "unknown field"},
		{name: "send_at not a time", late: []part{{name: "send_at", data: "tomorrow 9am"}}, field: "send_at", mentions: "RFC 3339"},
		{name: "send_at in the past", late: []part{{name: "send_at", data: "2020-01-01T09:00:00Z"}}, field: "send_at", mentions: "in the past"},
		{name: "bad account", late: []part{{name: "accounts", data: "nonsense"}}, field: "accounts", mentions: "nonsense"},
		{name: "template_name besides template", late: []part{{name: "template_name", data: "welcome"}}, field: "template", mentions: "not both"},
		{name: "a field sent twice", late: []part{{name: "name", data: "again"}}, field: "name", mentions: "twice"},
		{name: "second contacts", late: []part{contacts}, field: "contacts", mentions: "twice"},
		{name: "JSON wrong type", json: `,"label":7}`, field: "label", mentions: "string"},
		{name: "JSON key sent twice", json: `,"template":"Bye"}`, field: "template", mentions: "twice"},
		{name: "JSON bad window", json: `,"window":{"hours":"late"}}`, field: "window_hours", mentions: "late"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "mistake: " + tc.name
			var res apiResponse
			if tc.json != "" {
				res = h.call(http.MethodPost, "/v1/campaigns", `{"name":"`+name+`","template":"Hi {{.name}}","contacts":`+contactsJSON(generatedPhones(3))+tc.json)
			} else {
				body, ct := multipartInOrder(t, append(first(name), tc.late...))
				res = h.do(h.request(http.MethodPost, "/v1/campaigns", body, ct))
			}
			if res.Code != http.StatusBadRequest || len(res.Errors) == 0 || res.Errors[0].Fields[0] != tc.field || !strings.Contains(res.Message, tc.mentions) {
				t.Fatalf("%d %s; want 400 naming %s and saying %q", res.Code, res.Raw, tc.field, tc.mentions)
			}
			if list := h.campaignsNamed(name); len(list) != 0 {
				t.Errorf("the mistake left campaign %s (%s)", list[0].ID, list[0].Status)
			}
		})
	}
	h.waitQueuesIdle(30 * time.Second)
	if msgs := h.sandbox.Messages(); len(msgs) != 0 {
		t.Errorf("%d messages reached the sandbox from requests that were refused", len(msgs))
	}
}

// TestCutOffUploadLeavesNothingThatSends: a body that ends early is a 400;
// the campaign created from what had arrived is cancelled, and none of its
// recipients gets a message.
func TestCutOffUploadLeavesNothingThatSends(t *testing.T) {
	h := newHarness(t)
	h.startWorker()
	phones := generatedPhones(700)
	cut := phones[650] // the body ends inside this contact's row
	form, ct := multipartInOrder(t, []part{{name: "name", data: "cut multipart"}, {name: "template", data: "Hi {{.name}}"},
		{name: "contacts", file: true, data: contactsCSV(phones)}})
	multipartBody, _ := io.ReadAll(form)
	jsonBody := []byte(`{"name":"cut JSON","template":"Hi {{.name}}","contacts":` + contactsJSON(phones) + `}`)
	early, earlyType := multipartInOrder(t, []part{{name: "name", data: "cut early"}, {name: "template", data: "Hi {{.name}}"}})
	earlyBody, _ := io.ReadAll(early)

	cases := []struct {
		name, campaign string
		body           []byte
		contentType    string
		created        bool
	}{
		{"multipart cut in the contacts", "cut multipart", cutAfter(t, multipartBody, cut), ct, true},
		{"JSON cut in the contacts", "cut JSON", cutAfter(t, jsonBody, cut), "application/json", true},
		{"multipart cut in a field", "cut early", cutAfter(t, earlyBody, "Hi {{"), earlyType, false},
		{"JSON malformed after the contacts", "JSON oops", []byte(`{"name":"JSON oops","template":"Hi","contacts":` + contactsJSON(phones[:2]) + ` "oops"}`), "application/json", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.do(h.request(http.MethodPost, "/v1/campaigns", bytes.NewReader(tc.body), tc.contentType))
			if res.Code != http.StatusBadRequest || res.ErrorCode != "validation_error" || !strings.Contains(res.Message, "broke off") {
				t.Fatalf("%d %s; want 400 saying the request broke off", res.Code, res.Raw)
			}
			list := h.campaignsNamed(tc.campaign)
			if !tc.created {
				if len(list) != 0 {
					t.Fatalf("a body cut before its contacts made campaign %s", list[0].ID)
				}
				return
			}
			if len(list) != 1 {
				t.Fatalf("%d campaigns named %q; want the one made from what arrived", len(list), tc.campaign)
			}
			c := list[0]
			if c.Status != campaign.StatusCancelled || c.Counts.Total == 0 || c.Counts.Skipped != c.Counts.Total || !countsAddUp(c.Counts) {
				t.Errorf("campaign %s: %s %+v; want cancelled with every recipient skipped", c.ID, c.Status, c.Counts)
			}
			if !strings.Contains(res.Message, c.ID) || !strings.Contains(res.Message, "cancelled") {
				t.Errorf("message %q does not say campaign %s was cancelled", res.Message, c.ID)
			}
		})
	}
	h.waitQueuesIdle(30 * time.Second)
	if msgs := h.sandbox.Messages(); len(msgs) != 0 {
		t.Errorf("%d messages reached the sandbox from uploads that broke off", len(msgs))
	}
}

// cutAfter is body up to the first mark, and a few bytes into it.
func cutAfter(t *testing.T, body []byte, mark string) []byte {
	t.Helper()
	i := bytes.Index(body, []byte(mark))
	if i < 0 {
		t.Fatalf("%q is not in the body", mark)
	}
	return body[:i+len(mark)/2]
}

// TestClientGoneMidUploadCancels: a client that closes its connection in
// the middle of the contacts leaves a cancelled campaign that sent nothing.
func TestClientGoneMidUploadCancels(t *testing.T) {
	h := newHarness(t)
	h.startWorker()
	phones := generatedPhones(700)
	form, ct := multipartInOrder(t, []part{{name: "name", data: "client gone"}, {name: "template", data: "Hi {{.name}}"},
		{name: "contacts", file: true, data: contactsCSV(phones)}})
	body, _ := io.ReadAll(form)
	conn, err := net.Dial("tcp", h.api.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/campaigns HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", h.apiKey, ct, len(body))
	if _, err := conn.Write(cutAfter(t, body, phones[600])); err != nil {
		t.Fatal(err)
	}
	var id string
	deadline := time.Now().Add(30 * time.Second)
	for id == "" {
		if list := h.campaignsNamed("client gone"); len(list) == 1 && list[0].Counts.Total >= 512 {
			id = list[0].ID
		} else if time.Now().After(deadline) {
			t.Fatal("no campaign made from the part that arrived")
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn.Close()
	c := h.waitCampaign(id, 30*time.Second, "cancelled", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCancelled })
	h.waitQueuesIdle(30 * time.Second)
	if msgs := h.sandbox.Messages(); len(msgs) != 0 {
		t.Errorf("%d messages reached the sandbox from an upload whose client left", len(msgs))
	}
	if final := h.campaign(id); final.Counts.Sent != 0 || final.Counts.Skipped != final.Counts.Total || final.Importing {
		t.Errorf("campaign %s: %+v, importing %v; want every recipient skipped, the import over (reason %q)", id, final.Counts, final.Importing, c.Reason)
	}
}

// TestRedisOutageMidUpload: Redis goes away in the middle of an upload. The
// answer is 503 with Retry-After (the user did nothing wrong); the campaign
// that could not be cancelled then is cancelled by a worker's janitor once
// Redis is back, and nothing was sent.
func TestRedisOutageMidUpload(t *testing.T) {
	h := newHarness(t)
	h.startWorker(app.WithUploadJanitor(200*time.Millisecond, 2*time.Second))
	phones := generatedPhones(800)

	pr, pw := io.Pipe()
	defer pr.Close()
	mw := multipart.NewWriter(pw)
	req := h.request(http.MethodPost, "/v1/campaigns", pr, mw.FormDataContentType())
	type answer struct {
		res        apiResponse
		retryAfter string
	}
	answered := make(chan answer, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- answer{res: apiResponse{Raw: err.Error()}}
			return
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		answered <- answer{res: apiResponse{Code: res.StatusCode, Raw: string(raw)}, retryAfter: res.Header.Get("Retry-After")}
	}()
	mw.WriteField("name", "outage")
	mw.WriteField("template", "Hi {{.name}}")
	contacts, _ := mw.CreateFormFile("contacts", "contacts.csv")
	lines := strings.SplitAfter(contactsCSV(phones), "\n")
	io.WriteString(contacts, strings.Join(lines[:601], "")) // the header and 600 rows

	var id string
	deadline := time.Now().Add(30 * time.Second)
	for id == "" {
		if list := h.campaignsNamed("outage"); len(list) == 1 && list[0].Counts.Total == 600 {
			id = list[0].ID
		} else if time.Now().After(deadline) {
			t.Fatal("the first 600 rows were not stored")
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.redis.Stop(t)
	go func() { // the server may stop reading: ignore what cannot be written
		io.WriteString(contacts, strings.Join(lines[601:], ""))
		mw.Close()
		pw.Close()
	}()
	var got answer
	select {
	case got = <-answered:
	case <-time.After(time.Minute):
		t.Fatal("no answer within a minute of Redis going away")
	}
	if got.res.Code != http.StatusServiceUnavailable || got.retryAfter == "" || !strings.Contains(got.res.Raw, "Redis") {
		t.Fatalf("answered %d (Retry-After %q) %s; want 503 with Retry-After naming Redis", got.res.Code, got.retryAfter, got.res.Raw)
	}

	h.redis.Restart(t)
	c := h.waitCampaign(id, 30*time.Second, "cancelled by the janitor", func(c campaign.Campaign) bool {
		return c.Status == campaign.StatusCancelled && !c.Importing
	})
	if !strings.Contains(c.Reason, "stopped arriving") {
		t.Errorf("cancelled with reason %q; want the janitor's", c.Reason)
	}
	// Not waiting for the queue to drain: tasks a worker was running when
	// Redis went away come back only when asynq recovers them, a lease and a
	// recovery pass later, and they find the campaign cancelled.
	c = h.campaign(id)
	if c.Counts.Sent != 0 || c.Counts.Queued != 0 || c.Counts.Skipped != c.Counts.Total || !countsAddUp(c.Counts) {
		t.Errorf("counts %+v; want nothing sent and nobody left queued", c.Counts)
	}
	if msgs := h.sandbox.Messages(); len(msgs) != 0 {
		t.Errorf("%d messages reached the sandbox from an upload Redis broke", len(msgs))
	}
}
