package main

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// contactRow is one generated CSV row and what the test expects of it.
type contactRow struct {
	name, phone, city, plan string
	e164                    string // "" for a row that must be rejected
	duplicate               bool
}

// generatedPhones are valid, distinct US numbers (the fictional 555-01xx
// range of several area codes), as E.164.
func generatedPhones(n int) []string {
	areas := []string{"202", "212", "312", "415", "617", "713", "206", "305"}
	out := make([]string, 0, n)
	for _, a := range areas {
		for i := 0; i < 100 && len(out) < n; i++ {
			out = append(out, fmt.Sprintf("+1%s55501%02d", a, i))
		}
	}
	return out
}

// writtenAs writes an E.164 US number the way people do in spreadsheets.
func writtenAs(e164 string, style int) string {
	d := strings.TrimPrefix(e164, "+1")
	switch style % 4 {
	case 0:
		return e164
	case 1:
		return fmt.Sprintf("(%s) %s-%s", d[:3], d[3:6], d[6:])
	case 2:
		return d // no country code: DEFAULT_REGION (US) applies
	default:
		return fmt.Sprintf("+1 %s-%s-%s", d[:3], d[3:6], d[6:])
	}
}

const e2eTemplate = `Hi {{firstName .name}} from {{default "somewhere" .city}}: your plan is {{upper .plan}}. — {{.campaign.name}}`

func expectedText(r contactRow) string {
	city := r.city
	if city == "" {
		city = "somewhere"
	}
	first := strings.Fields(r.name)[0]
	return fmt.Sprintf("Hi %s from %s: your plan is %s. — Spring launch", first, city, strings.ToUpper(r.plan))
}

// buildContacts makes the list: 500 rows, of which 20 repeat an
// earlier phone (written differently) and 15 are invalid.
func buildContacts() (csv []byte, rows []contactRow, invalidRowNumbers []int) {
	phones := generatedPhones(465)
	badPhones := []string{"12345", "not a phone", "", "+1 555", "1.2025550143E+10", "++", "0", "+999 1234", "555-01", "+1 202 555 01", "abc-def-ghij", "+44", "-", "(202)", "+1 (000) 000-0000"}
	lines := []string{"Name,Phone,City,Plan"}
	next := 0
	for i := 0; i < 500; i++ {
		var r contactRow
		switch {
		case i%33 == 7 && len(invalidRowNumbers) < 15:
			r = contactRow{name: fmt.Sprintf("Broken Row%d", i), phone: badPhones[len(invalidRowNumbers)], city: "Nowhere", plan: "basic"}
			invalidRowNumbers = append(invalidRowNumbers, i+2) // the header is row 1
		case i%24 == 23 && countDup(rows) < 20:
			orig := rows[i/3] // an earlier accepted row
			for orig.e164 == "" || orig.duplicate {
				orig = rows[i/3-1]
			}
			r = contactRow{name: "Someone Else", phone: writtenAs(orig.e164, i+1), city: "Elsewhere", plan: "other", e164: orig.e164, duplicate: true}
		default:
			e := phones[next]
			next++
			city := []string{"Washington", "New York", "", "Chicago"}[i%4]
			r = contactRow{name: fmt.Sprintf("Person%d Surname", i), phone: writtenAs(e, i), city: city, plan: []string{"basic", "pro"}[i%2], e164: e}
		}
		rows = append(rows, r)
		lines = append(lines, fmt.Sprintf("%s,%q,%s,%s", r.name, r.phone, r.city, r.plan))
	}
	return csvLines(lines...), rows, invalidRowNumbers
}

func countDup(rows []contactRow) int {
	n := 0
	for _, r := range rows {
		if r.duplicate {
			n++
		}
	}
	return n
}

func TestCampaignEndToEnd(t *testing.T) {
	h := newHarness(t)
	h.startWorker()
	contacts, rows, invalid := buildContacts()
	if len(invalid) != 15 || countDup(rows) != 20 {
		t.Fatalf("generator: %d invalid, %d duplicates", len(invalid), countDup(rows))
	}

	created := h.createCampaign(form{fields: [][2]string{{"name", "Spring launch"}, {"template", e2eTemplate}}, contacts: contacts})
	if created.Counts.Total != 465 || created.Duplicates != 20 || created.RejectedCount != 15 {
		t.Fatalf("created: total %d, duplicates %d, rejected %d; want 465, 20, 15", created.Counts.Total, created.Duplicates, created.RejectedCount)
	}
	var gotRows []int
	for _, rj := range created.Rejected {
		gotRows = append(gotRows, rj.Row)
		if !strings.Contains(rj.Msg, `"Phone"`) {
			t.Errorf("row %d: reason %q does not name the Phone column", rj.Row, rj.Msg)
		}
	}
	if fmt.Sprint(gotRows) != fmt.Sprint(invalid) {
		t.Errorf("rejected rows %v, want %v", gotRows, invalid)
	}

	done := h.waitCampaign(created.ID, 2*time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
	if !countsAddUp(done.Counts) || done.Counts.Sent != 465 {
		t.Errorf("final counts %+v: want 465 sent and states adding up to the total", done.Counts)
	}
	if done.Credits.Spent != 465 {
		t.Errorf("credits spent %d, want 465", done.Credits.Spent)
	}

	sent := h.sentTo()
	if n := len(h.sandbox.Messages()); n != 465 {
		t.Errorf("the sandbox received %d messages, want 465", n)
	}
	for _, r := range rows {
		if r.e164 == "" || r.duplicate {
			continue
		}
		msgs := sent[r.e164]
		if len(msgs) != 1 {
			t.Errorf("%s received %d messages, want 1", r.e164, len(msgs))
			continue
		}
		if want := expectedText(r); msgs[0].Text != want {
			t.Errorf("%s got %q, want %q", r.e164, msgs[0].Text, want)
		}
	}

	uidByPhone := map[string]string{}
	for phone, msgs := range sent {
		uidByPhone[phone] = msgs[0].UID
	}
	list := h.recipients(created.ID, "sent")
	if len(list) != 465 {
		t.Fatalf("recipients?state=sent lists %d, want 465", len(list))
	}
	for _, r := range list {
		if r.MessageUID == "" || r.MessageUID != uidByPhone[r.Phone] {
			t.Errorf("recipient %s has message_uid %q, the sandbox gave %q", r.Phone, r.MessageUID, uidByPhone[r.Phone])
		}
	}
}

// TestWorkerKilledMidCampaign kills a worker process with SIGKILL while it is
// sending and starts another: every recipient must end in a terminal state
// and no phone may get two messages. asynq hands the dead worker's tasks on
// only after their lease expires, so this test takes about a minute.
func TestWorkerKilledMidCampaign(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a minute: asynq recovers a dead worker's tasks after their lease")
	}
	h := newHarness(t, func(sb *sandbox.Config, cfg *app.Config) { cfg.WorkerConcurrency = 6 })
	// Slow provider answers keep sends in flight when the kill comes.
	h.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Delay: 40 * time.Millisecond})

	phones := generatedPhones(300)
	lines := []string{"phone,name"}
	for i, p := range phones {
		lines = append(lines, fmt.Sprintf("%s,Person %d", p, i))
	}
	first := h.startWorkerProcess()
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hello {{.name}}"}}, contacts: csvLines(lines...)})

	h.waitCampaign(c.ID, time.Minute, "a third sent", func(c campaign.Campaign) bool { return c.Counts.Sent >= 100 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	atKill := h.campaign(c.ID)
	if atKill.Counts.Queued == 0 {
		t.Fatalf("the worker finished before it was killed (%+v): nothing tested", atKill.Counts)
	}

	h.startWorkerProcess()
	done := h.waitCampaign(c.ID, 3*time.Minute, "settled", func(c campaign.Campaign) bool {
		return c.Status == campaign.StatusCompleted
	})
	if !countsAddUp(done.Counts) || done.Counts.Queued != 0 || done.Counts.Sending != 0 {
		t.Errorf("final counts %+v: every recipient must be settled", done.Counts)
	}
	for phone, msgs := range h.sentTo() {
		if len(msgs) > 1 {
			t.Errorf("%s received %d messages", phone, len(msgs))
		}
	}
	// A recipient killed mid-call is unconfirmed, never resent blindly;
	// reconciliation reads the sandbox's chat history, so none stays unknown.
	if done.Counts.Unknown != 0 {
		t.Errorf("%d unknown recipients; reconciliation can read the provider's history, so want none", done.Counts.Unknown)
	}
	if got := int64(len(h.sandbox.Messages())); got != done.Counts.Sent+countUnknownDelivered(h, c.ID) {
		t.Errorf("the sandbox has %d messages; the campaign says %d sent", got, done.Counts.Sent)
	}
	t.Logf("at kill: %+v; final: %+v", atKill.Counts, done.Counts)
}

// countUnknownDelivered counts unknown recipients whose message did reach the
// sandbox (the worker died after the provider accepted it).
func countUnknownDelivered(h *harness, id string) int64 {
	sent := h.sentTo()
	var n int64
	for _, r := range h.recipients(id, "unknown") {
		if len(sent[r.Phone]) > 0 {
			n++
		}
	}
	return n
}

func TestTemplateAfterContactsIsSpooled(t *testing.T) {
	h := newHarness(t)
	h.startWorker()
	body, ct := multipartInOrder(t, []part{
		{name: "contacts", file: true, data: "phone,name\n+12025550101,Ann\n"},
		{name: "template", data: "Hi {{.name}}"},
		{name: "name", data: "Late fields"},
	})
	res := h.do(h.request(http.MethodPost, "/v1/campaigns", body, ct))
	if res.Code != http.StatusCreated {
		t.Fatalf("%d %s", res.Code, res.Raw)
	}
	c := h.waitCampaign(idOf(t, res), 30*time.Second, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
	if c.Name != "Late fields" {
		t.Errorf("name %q: the field after contacts was lost", c.Name)
	}
	if msgs := h.sandbox.Messages(); len(msgs) != 1 || msgs[0].Text != "Hi Ann" {
		t.Errorf("sandbox got %+v", msgs)
	}
}
