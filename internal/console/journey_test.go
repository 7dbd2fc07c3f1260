package console_test

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// TestConsoleInBrowser is a marketer's afternoon with the console, in
// headless Chromium against the whole product: each step is what a person
// does and checks what they would notice (the page, the messages that
// arrived at the provider, the file they downloaded). The steps build on
// each other, in order.
func TestConsoleInBrowser(t *testing.T) {
	p := startProduct(t)
	b := openBrowser(t, p.URL)
	j := &journey{t: t, p: p, b: b}
	for _, step := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"sign in with a wrong key, then the right one", j.signIn},
		{"preview a draft of the example CSV: its rejected row, its duplicate, the gap of an empty city", j.createFromExample},
		{"send a test of the draft to a phone", j.sendTest},
		{"fix the template after the warning, then start", j.fixAndStart},
		{"watch it reach completed without reloading", j.watchLive},
		{"open a recipient's history", j.openHistory},
		{"download the report", j.downloadReport},
		{"schedule in the viewer's zone, move the start, cancel after confirming", j.scheduleAndCancel},
		{"a campaign outside its send window says why and until when", j.waitsForWindow},
		{"pause and resume a running campaign", j.pauseAndResume},
		{"create a sequence and enrol a contact", j.sequence},
		{"pause an account", j.pauseAccount},
		{"a form posted without its CSRF token is refused", j.csrfRefused},
		{"at phone width", j.phoneWidth},
		{"a signed-out browser cannot read a campaign", j.signedOut},
	} {
		if !t.Run(step.name, func(t *testing.T) { j.b.t, j.t = t, t; step.run(t) }) {
			return // later steps need this one
		}
	}
}

type journey struct {
	t *testing.T
	p *product
	b *tab

	firstID  string // the campaign made from examples/contacts.csv
	secondID string // the slow one that is paused and resumed
}

func (j *journey) signIn(t *testing.T) {
	b := j.b
	b.open("/campaigns")
	if !strings.Contains(b.location(), "/signin?next=%2Fcampaigns") {
		t.Fatalf("a signed-out browser at /campaigns is at %s, want the sign-in page (coming back to /campaigns)", b.location())
	}
	b.do(chromedp.SendKeys(chromedp.ID("api_key"), "not-a-key"))
	if status := b.follow(`button[type="submit"]`); status != http.StatusUnauthorized {
		t.Errorf("a wrong key answers %d, want 401", status)
	}
	b.mustSee("That API key is not valid")
	if got := b.text("#api_key-error"); !strings.Contains(got, "not valid") {
		t.Errorf("the error beside the key field says %q", got)
	}
	b.everyControlLabelled()
	b.screenshot("signin")
	b.do(chromedp.SendKeys(chromedp.ID("api_key"), j.p.Key))
	b.follow(`button[type="submit"]`)
	if !strings.HasSuffix(b.location(), "/campaigns") {
		t.Fatalf("after signing in the browser is at %s, want /campaigns", b.location())
	}
	b.mustSee("No campaigns yet", "New campaign")
	b.screenshot("campaigns-empty")
}

// testPhone is the marketer's own phone, where tests go.
const testPhone = "+14155550199"

// toRecipients are the messages the provider received whose text contains
// marker, but for tests to the marketer's own phone.
func (j *journey) toRecipients(marker string) []sandbox.Message {
	var out []sandbox.Message
	for _, m := range j.p.received(marker) {
		if m.Recipient != testPhone {
			out = append(out, m)
		}
	}
	return out
}

func (j *journey) createFromExample(t *testing.T) {
	b := j.b
	b.follow(`.empty a.button.primary`)
	b.mustSee("1 Contacts", "2 Message", "3 Options", "4 Preview", "5 Start")
	example, err := filepath.Abs("../../examples/contacts.csv")
	if err != nil {
		t.Fatal(err)
	}
	// A message naming a column the file lacks: the API refuses it, and
	// the page says so beside the message, keeping what was typed.
	b.do(chromedp.SetUploadFiles(chromedp.ID("contacts"), []string{example}),
		chromedp.SendKeys(chromedp.ID("template"), "Hi {{.first_name}}"))
	b.waitUntil(5*time.Second, `document.querySelector('[data-check-list]').innerText.includes('first_name, which the file lacks')`)
	if status := b.follow(`button[type="submit"].big`); status != http.StatusBadRequest {
		t.Errorf("a template with a missing column answers %d, want 400", status)
	}
	if got := b.text("#template + .field-error"); !strings.Contains(got, "first_name") {
		t.Errorf("beside the message the page says %q, want the API's word on first_name", got)
	}
	b.mustSee("choose it again")
	if n := len(j.p.Sandbox.Messages()); n != 0 {
		t.Fatalf("a refused campaign sent %d messages", n)
	}
	b.do(chromedp.Clear(chromedp.ID("template")), chromedp.SetUploadFiles(chromedp.ID("contacts"), []string{example}))
	b.waitUntil(10*time.Second, `!document.querySelector('[data-detected]').hidden`)
	if got := b.text("[data-detected]"); !strings.Contains(got, "phone column: phone") || !strings.Contains(got, "fields: name, city") {
		t.Errorf("the page reads the file's header as %q", got)
	}
	// The README's sample message, typed around the field buttons the
	// header gave: Dana, who has no city, would get "our sale is on in !".
	b.do(chromedp.SendKeys(chromedp.ID("template"), `Hi {{default "there" (firstName .name)}}, our sale is on in `),
		chromedp.Click(chromedp.CSS(`[data-chips] button[aria-label="Insert the field city into the message"]`)),
		chromedp.SendKeys(chromedp.ID("template"), `! (spring-example)`),
		chromedp.SendKeys(chromedp.ID("name"), "Spring launch"))
	b.waitUntil(5*time.Second, `document.querySelector('[data-check-list]').innerText.includes('Every column the message uses is in the file')`)
	b.everyControlLabelled()
	b.screenshot("new-campaign")
	b.follow(`button[type="submit"].big`)
	u, err := url.Parse(b.location())
	if err != nil || !strings.HasPrefix(u.Path, "/campaigns/") || u.Query().Get("done") != "draft" {
		t.Fatalf("after the preview button, the browser is at %s, want the draft's page", b.location())
	}
	j.firstID = strings.TrimPrefix(u.Path, "/campaigns/")
	b.mustSee("Nothing is sent yet", "Spring launch", "4 Preview", "5 Start")
	if got := b.text("#live-head [data-status], .page-head [data-status]"); got != "draft" {
		t.Errorf("the new campaign's status reads %q, want draft", got)
	}
	rows := eval[string](b, `[...document.querySelectorAll('[data-rows]')].map(e => e.dataset.rows + '=' + e.innerText).join(' ')`)
	if rows != "read=7 valid=5 duplicates=1 suppressed=0 rejected=1" {
		t.Errorf("the preview reads the file as %q; want 7 rows read, 5 recipients, 1 duplicate, none suppressed, 1 rejected", rows)
	}
	if got := b.text("table.rejected-rows"); !strings.Contains(got, "7") || !strings.Contains(got, "12345") {
		t.Errorf("the rejected rows say %q, want row 7 with its phone 12345", got)
	}
	if n := eval[int](b, `document.querySelectorAll('ol.samples > li').length`); n != 5 {
		t.Errorf("the preview shows %d messages, want 5", n)
	}
	warned := b.text("li.sample.warned")
	if !strings.Contains(warned, "Row 5") || !strings.Contains(warned, "Hi Dana, our sale is on in ! (spring-example)") || !strings.Contains(warned, "row 5 has no city") {
		t.Errorf("the warned message reads %q; want Dana's, with the gap of her empty city named", warned)
	}
	if got := b.text("[data-credits]"); !strings.Contains(got, "5 credits needed") {
		t.Errorf("the credits read %q", got)
	}
	if got := b.text("[data-eta]"); !strings.Contains(got, "the last message goes out about") {
		t.Errorf("the ETA reads %q", got)
	}
	if n := len(j.p.Sandbox.Messages()); n != 0 {
		t.Fatalf("a draft sent %d messages", n)
	}
	b.everyControlLabelled()
	b.screenshot("draft")
}

func (j *journey) sendTest(t *testing.T) {
	b := j.b
	b.do(chromedp.SendKeys(chromedp.ID("test-phone"), "+1 415 555 0199"))
	b.follow(`.test-form button[type="submit"]`)
	b.mustSee("The test is on its way")
	deadline := time.Now().Add(30 * time.Second)
	for len(j.p.received("spring-example")) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	got := j.p.received("spring-example")
	if len(got) != 1 || got[0].Recipient != testPhone || got[0].Text != "Hi Ana, our sale is on in Washington! (spring-example)" {
		t.Fatalf("the provider got %+v; want the first recipient's message, once, to %s", got, testPhone)
	}
	// The sandbox moves a message on from sent to delivered and read within
	// moments, so any of the three shows the send went out.
	wentOut := func(row string) bool {
		return strings.Contains(row, "sent") || strings.Contains(row, "delivered") || strings.Contains(row, "read")
	}
	for i := 0; i < 50 && !wentOut(b.text("table.tests")); i++ {
		time.Sleep(200 * time.Millisecond)
		b.open("/campaigns/" + j.firstID)
	}
	if row := b.text("table.tests"); !strings.Contains(row, testPhone) || !wentOut(row) {
		t.Errorf("the test sends read %q; want %s, sent (or delivered, read)", row, testPhone)
	}
	var c struct {
		Status string
		Counts struct{ Queued, Sent int64 }
	}
	j.p.api(t, "GET", "/v1/campaigns/"+j.firstID, &c)
	if c.Status != "draft" || c.Counts.Queued != 5 || c.Counts.Sent != 0 {
		t.Errorf("after its test the campaign is %s %+v; want a draft with its 5 recipients queued", c.Status, c.Counts)
	}
}

func (j *journey) fixAndStart(t *testing.T) {
	b := j.b
	// The edit form is open: the preview has a warning.
	if !eval[bool](b, `document.querySelector('details.edit').open`) {
		t.Fatal("the message's edit form is closed though the preview warns")
	}
	b.do(chromedp.Clear(chromedp.ID("edit-template")),
		chromedp.SendKeys(chromedp.ID("edit-template"), `Hi {{default "there" (firstName .name)}}, our sale is on in {{default "your town" .city}}! (spring-example)`))
	b.follow(`form[data-edit-draft] button[type="submit"]`)
	b.mustSee("Saved. The preview below shows the messages as they are now.", "No warnings in these messages")
	if got := eval[string](b, `[...document.querySelectorAll('ol.samples > li')][3].innerText`); !strings.Contains(got, "Hi Dana, our sale is on in your town! (spring-example)") {
		t.Errorf("Dana's message after the fix reads %q", got)
	}
	b.follow(`button[data-start]`)
	if u, _ := url.Parse(b.location()); u.Query().Get("done") != "start" {
		t.Fatalf("after Start now the browser is at %s", b.location())
	}
	b.mustSee("Campaign started", "Spring launch")
}

func (j *journey) watchLive(t *testing.T) {
	b := j.b
	eval[bool](b, `window.notReloaded = true`)
	if b.text("#live-head [data-status]") == "completed" {
		t.Fatal("the campaign had completed before its page was shown: nothing is left to watch live (slow the pace)")
	}
	b.waitUntil(90*time.Second, `!!document.querySelector('#live-head [data-status="completed"]')`)
	if !eval[bool](b, `window.notReloaded === true`) {
		t.Fatal("the page was reloaded to show the campaign's end")
	}
	if n := eval[string](b, `document.documentElement.getAttribute('data-live-updates') || '0'`); n == "0" {
		t.Error("no live update reached the page, yet it shows the end")
	}
	// The example has 5 good rows, a bad phone (row 7) and a duplicate.
	b.mustSee("5 of 5 settled (100%)", "Rows rejected", "Duplicates dropped")
	if got := b.text(".rejected"); !strings.Contains(got, "7") || !strings.Contains(got, "12345") {
		t.Errorf("the rejected rows say %q, want row 7 with its phone 12345", got)
	}
	settled := eval[int](b, `['sent','delivered','read'].reduce((n, s) => n + Number(document.querySelector('[data-count="'+s+'"]').innerText.replace(/,/g, '')), 0)`)
	if got := len(j.toRecipients("spring-example")); settled != 5 || got != 5 {
		t.Errorf("the page counts %d sent, delivered or read; the provider received %d; want 5 and 5", settled, got)
	}
	// Times are shown in the viewer's zone, named.
	if got := b.text("#live-progress time, .details time"); !strings.Contains(got, "GMT+1") && !strings.Contains(got, "CET") {
		t.Errorf("a time reads %q, want it in %s with the zone named", got, viewerZone)
	}
	b.open("/campaigns/" + j.firstID) // a fresh look once statuses came in, for the picture
	b.everyControlLabelled()
	b.screenshot("campaign")
}

func (j *journey) openHistory(t *testing.T) {
	b := j.b
	first := j.toRecipients("spring-example")[0]
	b.open("/campaigns/" + j.firstID + "?q=" + url.QueryEscape(first.Recipient) + "#recipients")
	b.do(chromedp.Click(chromedp.CSS("details.recipient > summary")))
	b.waitUntil(5*time.Second, `document.querySelector('details.recipient').open`)
	history := b.text("details.recipient .history")
	for _, want := range []string{"queued", "sending", "sent", first.UID} {
		if !strings.Contains(history, want) {
			t.Errorf("the history of %s does not show %q:\n%s", first.Recipient, want, history)
		}
	}
}

func (j *journey) downloadReport(t *testing.T) {
	b := j.b
	b.open("/campaigns/" + j.firstID)
	data := b.download(`a[href$="/report.csv"]`)
	rows, err := csv.NewReader(strings.NewReader(string(data))).ReadAll()
	if err != nil {
		t.Fatalf("the report is not CSV: %v\n%s", err, data)
	}
	if len(rows) != 6 || strings.Join(rows[0][:4], ",") != "phone,name,city,state" {
		t.Fatalf("the report has %d rows, header %v; want the header and 5 recipients", len(rows), rows[0])
	}
	sent := map[string]bool{}
	for _, m := range j.toRecipients("spring-example") {
		sent[m.Recipient] = true
	}
	for _, r := range rows[1:] {
		if !sent[r[0]] {
			t.Errorf("the report lists %s, whom the provider never got a message for", r[0])
		}
	}
}

func (j *journey) scheduleAndCancel(t *testing.T) {
	b := j.b
	example, err := filepath.Abs("../../examples/contacts.csv")
	if err != nil {
		t.Fatal(err)
	}
	b.open("/campaigns/new")
	b.do(chromedp.SetUploadFiles(chromedp.ID("contacts"), []string{example}),
		chromedp.SetValue(chromedp.ID("template_name"), "welcome"),
		chromedp.SendKeys(chromedp.ID("name"), "January welcome"),
		chromedp.SetValue(chromedp.ID("send_at"), "2030-01-15T09:30"))
	if got := b.text("#send_at-hint"); !strings.Contains(got, viewerZone) {
		t.Errorf("the start time's hint reads %q, want it to name %s", got, viewerZone)
	}
	b.follow(`button[type="submit"].big`)
	b.mustSee("Nothing is sent yet")
	if got := b.text("button[data-start]"); !strings.Contains(got, "Schedule for") {
		t.Errorf("the draft with a start time offers %q, want to schedule it for that time", got)
	}
	b.follow(`button[data-start]`)
	b.mustSee("Campaign scheduled")
	id := strings.TrimPrefix(strings.Split(b.location(), "?")[0], j.p.URL+"/campaigns/")
	var c struct {
		Status string    `json:"status"`
		SendAt time.Time `json:"send_at"`
	}
	j.p.api(t, "GET", "/v1/campaigns/"+id, &c)
	if want := time.Date(2030, 1, 15, 8, 30, 0, 0, time.UTC); c.Status != "scheduled" || !c.SendAt.Equal(want) {
		t.Fatalf("the campaign is %s from %v, want scheduled from %v (09:30 in %s)", c.Status, c.SendAt, want, viewerZone)
	}
	b.mustSee("Starts")

	b.do(chromedp.Click(chromedp.CSS(`#live-head details.confirm > summary.button:not(.danger)`)),
		chromedp.SetValue(chromedp.CSS(`#live-head input[name="send_at"]`), "2030-02-01T10:00"))
	b.follow(`form[action$="/reschedule"] button`)
	b.mustSee("The start time is changed")
	j.p.api(t, "GET", "/v1/campaigns/"+id, &c)
	if want := time.Date(2030, 2, 1, 9, 0, 0, 0, time.UTC); !c.SendAt.Equal(want) {
		t.Errorf("after the change the campaign starts %v, want %v", c.SendAt, want)
	}

	// Cancelling asks first: the button that does it shows only then.
	confirm := `form[action$="/cancel"] button`
	if eval[bool](b, `document.querySelector('`+confirm+`').checkVisibility()`) {
		t.Fatal("the cancel button is showing before the user asked to cancel")
	}
	b.do(chromedp.Click(chromedp.CSS(`#live-head summary.button.danger`)))
	b.follow(confirm)
	b.mustSee("Campaign cancelled")
	if got := b.text("#live-head [data-status]"); got != "cancelled" {
		t.Errorf("after cancelling the status reads %q", got)
	}
	if n := len(j.p.received("welcome aboard")); n != 0 {
		t.Errorf("the cancelled campaign sent %d messages", n)
	}

	// Deleting asks first too; afterwards nothing of it is left.
	b.do(chromedp.Click(chromedp.CSS(`#live-head summary.button.danger`)))
	b.follow(`form[action$="/delete"] button`)
	b.mustSee("The campaign and everything of it are deleted")
	res, err := http.DefaultClient.Do(j.p.request(t, "GET", "/v1/campaigns/"+id))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET of the deleted campaign answers %d, want 404", res.StatusCode)
	}
}

func (j *journey) waitsForWindow(t *testing.T) {
	b := j.b
	// Two recipients in Chicago and a window that opens two hours from now
	// there: both wait, and the page says until when.
	chicago, _ := time.LoadLocation("America/Chicago")
	now := time.Now().In(chicago)
	start := (now.Hour() + 2) % 24
	hours := fmt.Sprintf("%02d:00-%02d:00", start, start+1)
	if start == 23 {
		hours = "23:00-23:59"
	}
	opens := time.Date(now.Year(), now.Month(), now.Day(), start, 0, 0, 0, chicago)
	if !opens.After(now) {
		opens = opens.AddDate(0, 0, 1)
	}
	b.open("/campaigns/new")
	csvText, _ := json.Marshal("name,phone\nAna,+13125550101\nBo,+13125550102\n")
	eval[bool](b, `(() => {
		const files = new DataTransfer();
		files.items.add(new File([`+string(csvText)+`], "chicago.csv", {type: "text/csv"}));
		document.getElementById('contacts').files = files.files;
		return true;
	})()`)
	b.do(chromedp.SendKeys(chromedp.ID("template"), "Good morning {{.name}} (window-example)"),
		chromedp.SendKeys(chromedp.ID("name"), "Morning in Chicago"),
		chromedp.SendKeys(chromedp.ID("window_hours"), hours))
	b.follow(`button[type="submit"].big`)
	b.follow(`button[data-start]`)
	id := strings.TrimPrefix(strings.Split(b.location(), "?")[0], j.p.URL+"/campaigns/")
	b.waitUntil(10*time.Second, `!!document.querySelector('[data-wait="window"]')`)
	wait := b.text(`[data-wait="window"]`)
	if !strings.Contains(wait, "outside the send window until "+opens.Format("Mon 15:04")+" in the recipients' local time") || !strings.Contains(wait, "until") {
		t.Errorf("the campaign's wait reads %q; want the window and its opening, %s in Chicago", wait, opens.Format("Mon 15:04"))
	}
	if got := b.text("[data-queue]"); !strings.Contains(got, "0 may go out now and 2 wait for their send window") {
		t.Errorf("the queued recipients read %q", got)
	}
	var c struct {
		ETA     *time.Time `json:"eta"`
		Waiting []struct {
			Cause string     `json:"cause"`
			Until *time.Time `json:"until"`
		} `json:"waiting"`
	}
	j.p.api(t, "GET", "/v1/campaigns/"+id, &c)
	if c.ETA == nil || !c.ETA.After(opens) || len(c.Waiting) != 1 || c.Waiting[0].Until == nil || !c.Waiting[0].Until.Equal(opens) {
		t.Errorf("the API's ETA %v and waits %+v; want the wait until %v and the ETA after it, not now", c.ETA, c.Waiting, opens)
	}
	b.screenshot("campaign-waiting")
	if n := len(j.p.received("window-example")); n != 0 {
		t.Errorf("%d messages went out of their window", n)
	}
	res, err := http.DefaultClient.Do(j.p.request(t, "POST", "/v1/campaigns/"+id+"/cancel"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
}

// slowAccount is paced at 400 ms, so its campaign of slowRecipients runs
// for seconds: long enough to be paused and resumed by hand.
const (
	slowAccount    = "+14155550123"
	slowRecipients = 30
)

func (j *journey) pauseAndResume(t *testing.T) {
	b := j.b
	b.open("/accounts")
	b.mustSee("No sender account is known yet")
	b.do(chromedp.SendKeys(chromedp.ID("new-phone"), slowAccount), chromedp.SendKeys(chromedp.ID("new-interval"), "400ms"))
	b.follow(`form.inline-form button[type="submit"]`)
	b.mustSee("Send interval saved", slowAccount)
	if got := eval[string](b, `document.getElementById('interval-`+slowAccount+`').value`); got != "400ms" {
		t.Errorf("the account's send interval reads %q, want 400ms", got)
	}

	var lines []string
	for i := 0; i < slowRecipients; i++ {
		lines = append(lines, fmt.Sprintf("Guest %d,+1312555%04d", i, 100+i))
	}
	b.open("/campaigns/new")
	// A list of groups and chats has no phone column, and needs none.
	dropFile(b, "groups.csv", "name,jid,chat_id\nTeam,120363025246125486@g.us,\nDana,,4242\n")
	b.waitUntil(10*time.Second, `document.querySelector('[data-check-list]').innerText.includes('Recipients are addressed by jid and chat_id')`)
	if got := b.text("[data-detected]"); !strings.Contains(got, "also addressed by: jid, chat_id") || !strings.Contains(got, "fields: name") {
		t.Errorf("a file of groups and chats reads %q", got)
	}
	// This time the file is dropped on the drop zone, as from a desktop.
	dropFile(b, "slow.csv", "name,mobile\n"+strings.Join(lines, "\n")+"\n")
	b.waitUntil(10*time.Second, `document.getElementById('contacts').files.length === 1 && document.querySelector('[data-detected]').innerText.includes('slow.csv')`)
	if got := b.text("[data-detected]"); !strings.Contains(got, "slow.csv") || !strings.Contains(got, "phone column: mobile") {
		t.Errorf("after the drop the page reads %q", got)
	}
	b.do(chromedp.SendKeys(chromedp.ID("template"), "Hello {{.name}} (slow-campaign)"),
		chromedp.SendKeys(chromedp.ID("name"), "Slow and steady"),
		chromedp.SendKeys(chromedp.ID("accounts"), slowAccount))
	b.follow(`button[type="submit"].big`)
	b.follow(`button[data-start]`)
	j.secondID = strings.TrimPrefix(strings.Split(b.location(), "?")[0], j.p.URL+"/campaigns/")

	// The list follows it too, without a reload.
	b.open("/campaigns")
	row := "document.getElementById('row-" + j.secondID + "').innerText"
	before := eval[string](b, row)
	b.waitUntil(30*time.Second, row+` !== `+strconv.Quote(before))
	b.everyControlLabelled()
	b.screenshot("campaigns")
	b.open("/campaigns/" + j.secondID)
	b.waitUntil(30*time.Second, `Number(document.querySelector('[data-count="sent"]').innerText) + Number(document.querySelector('[data-count="delivered"]').innerText) >= 2`)
	b.screenshot("campaign-running")
	b.follow(`form[action$="/pause"] button`)
	b.mustSee("Campaign paused")
	if got := b.text(`#live-head [data-status]`); got != "paused" {
		t.Fatalf("after Pause the status reads %q", got)
	}
	j.waitNothingInFlight(t, j.secondID) // a send already under way when the pause came may land
	atPause := len(j.p.received("slow-campaign"))
	time.Sleep(2 * time.Second)
	if now := len(j.p.received("slow-campaign")); now != atPause || now >= slowRecipients {
		t.Fatalf("while paused the provider went from %d to %d messages (of %d)", atPause, now, slowRecipients)
	}
	b.follow(`form[action$="/resume"] button`)
	b.mustSee("Campaign resumed")
	b.waitUntil(60*time.Second, `!!document.querySelector('#live-head [data-status="completed"]')`)
	perPhone := map[string]int{}
	for _, m := range j.p.received("slow-campaign") {
		perPhone[m.Recipient]++
	}
	for phone, n := range perPhone {
		if n != 1 {
			t.Errorf("%s got %d messages", phone, n)
		}
	}
	if len(perPhone) != slowRecipients {
		t.Errorf("%d recipients got the message, want %d", len(perPhone), slowRecipients)
	}
}

func (j *journey) sequence(t *testing.T) {
	b := j.b
	b.open("/sequences")
	b.mustSee("No sequences yet")
	b.follow(`.empty a.button.primary`)
	b.do(chromedp.SendKeys(chromedp.ID("name"), "Onboarding"),
		chromedp.SendKeys(chromedp.ID("steps-0-name"), "welcome"),
		chromedp.SetValue(chromedp.ID("steps-0-template_name"), "welcome"),
		chromedp.SendKeys(chromedp.ID("steps-1-name"), "tips"),
		chromedp.SendKeys(chromedp.ID("steps-1-delay_n"), "1"),
		chromedp.SetValue(chromedp.ID("steps-1-delay_unit"), "days"),
		chromedp.SendKeys(chromedp.ID("steps-1-template"), "Tips for you, {{.name}} (seq-tips)"))
	b.everyControlLabelled()
	b.screenshot("sequence-new")
	b.follow(`form[data-sequence-form] button[type="submit"].primary`)
	b.mustSee("Sequence created", "Onboarding", "welcome", "tips", "1 day", "Nobody is enrolled yet")

	b.do(chromedp.SendKeys(chromedp.ID("enrol-phone"), "+1 202 555 0143"), chromedp.SendKeys(chromedp.ID("enrol-name"), "Ana"))
	b.follow(`form[action$="/enrollments"]:not([enctype]) button`)
	b.mustSee("Enrolled", "+12025550143", "welcome", "tips")
	deadline := time.Now().Add(30 * time.Second)
	for len(j.p.received("welcome aboard")) == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	got := j.p.received("welcome aboard")
	if len(got) != 1 || got[0].Recipient != "+12025550143" || !strings.Contains(got[0].Text, "Hi Ana") {
		t.Fatalf("the provider got %+v for the welcome step, want one message to +12025550143 greeting Ana", got)
	}
	b.follow(`.crumbs a[href^="/sequences/"]`)
	b.mustSee("+12025550143")
	b.everyControlLabelled()
	b.screenshot("sequence")
}

func (j *journey) pauseAccount(t *testing.T) {
	b := j.b
	b.open("/accounts")
	b.follow(`form[action="/accounts/` + slowAccount + `/pause"] button`)
	b.mustSee("Account paused")
	if got := b.text(`[data-account-status]`); got != "paused" {
		t.Errorf("the account's status reads %q, want paused", got)
	}
	if today, health := b.text(`[data-account-today]`), b.text(`[data-account-health]`); !strings.Contains(today, "sent, no daily limit") ||
		!strings.HasPrefix(health, "ok") || !strings.Contains(health, "recent messages:") {
		t.Errorf("the account's day reads %q and its health %q; want what it sent today and its health", today, health)
	}
	var list struct {
		Accounts []struct{ Phone, Status string } `json:"accounts"`
	}
	j.p.api(t, "GET", "/v1/accounts", &list)
	if len(list.Accounts) != 1 || list.Accounts[0].Status != "paused" {
		t.Errorf("GET /v1/accounts: %+v, want %s paused", list.Accounts, slowAccount)
	}
	b.everyControlLabelled()
	b.screenshot("accounts")
}

func (j *journey) csrfRefused(t *testing.T) {
	b := j.b
	// In the browser: the Resume form without its token.
	b.open("/accounts")
	eval[bool](b, `document.querySelector('form[action$="/resume"] input[name="csrf"]').remove(), true`)
	if status := b.follow(`form[action$="/resume"] button`); status != http.StatusForbidden {
		t.Errorf("a form without its token answers %d, want 403", status)
	}
	b.mustSee("This form was not sent from a page of this console")
	// Another site's form, with the browser's cookie (which SameSite=Strict
	// would not even send), and a wrong token.
	cookie := b.sessionCookie()
	for _, form := range []url.Values{{}, {"csrf": {"forged"}}} {
		req, _ := http.NewRequest("POST", j.p.URL+"/campaigns/"+j.secondID+"/retry-failed", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(cookie)
		res, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("POST with csrf %q: %d, want 403", form.Get("csrf"), res.StatusCode)
		}
	}
	var list struct {
		Accounts []struct{ Status string } `json:"accounts"`
	}
	j.p.api(t, "GET", "/v1/accounts", &list)
	if list.Accounts[0].Status != "paused" {
		t.Errorf("the refused Resume resumed the account: %+v", list.Accounts)
	}
}

func (j *journey) phoneWidth(t *testing.T) {
	b := j.b
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	defer b.do(chromedp.ResetViewport())
	b.open("/campaigns/" + j.firstID)
	if wide := eval[bool](b, `document.documentElement.scrollWidth > window.innerWidth + 1`); wide {
		t.Errorf("at 390 px the campaign page is %v px wide: it scrolls sideways", eval[int](b, `document.documentElement.scrollWidth`))
	}
	b.screenshot("campaign-phone")

	// A draft's page, with its preview and a long message, too.
	req := j.p.request(t, "POST", "/v1/campaigns")
	req.Header.Set("Content-Type", "application/json")
	req.Body = io.NopCloser(strings.NewReader(`{"name":"Phone-width draft","draft":true,"template":"Hello {{.name}}, ` + strings.Repeat("this is a long message that must wrap ", 8) +
		`","contacts":[{"phone":"+12025550143","name":"Ana"},{"phone":"12345","name":"Bad"}]}`))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		Data struct{ ID string } `json:"data"`
	}
	_ = json.NewDecoder(res.Body).Decode(&created)
	res.Body.Close()
	b.open("/campaigns/" + created.Data.ID)
	b.mustSee("Phone-width draft", "4 Preview")
	if wide := eval[bool](b, `document.documentElement.scrollWidth > window.innerWidth + 1`); wide {
		t.Errorf("at 390 px the draft's page is %v px wide: it scrolls sideways", eval[int](b, `document.documentElement.scrollWidth`))
	}
}

func (j *journey) signedOut(t *testing.T) {
	b := j.b
	cookie := b.sessionCookie()
	b.open("/campaigns")
	b.follow(`form.signout button`)
	if !strings.HasSuffix(b.location(), "/signin") {
		t.Fatalf("after signing out the browser is at %s", b.location())
	}
	b.open("/campaigns/" + j.firstID)
	if !strings.Contains(b.location(), "/signin") {
		t.Fatalf("a signed-out browser opened the campaign page: %s", b.location())
	}
	// The old cookie, kept by someone, opens nothing either.
	req, _ := http.NewRequest("GET", j.p.URL+"/campaigns/"+j.firstID, nil)
	req.AddCookie(cookie)
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/signin") {
		t.Errorf("the signed-out cookie gets %d to %q, want 303 to the sign-in page", res.StatusCode, res.Header.Get("Location"))
	}
}

// waitNothingInFlight waits until no recipient of the campaign is being
// sent or checked with the provider.
func (j *journey) waitNothingInFlight(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var c struct {
			Counts struct{ Sending, Unconfirmed int64 } `json:"counts"`
		}
		j.p.api(t, "GET", "/v1/campaigns/"+id, &c)
		if c.Counts.Sending+c.Counts.Unconfirmed == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign %s still has %+v in flight", id, c.Counts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dropFile drops a file of that name and text on the new-campaign page's
// drop zone, as a desktop's file manager would.
func dropFile(b *tab, name, text string) {
	b.t.Helper()
	content, _ := json.Marshal(text)
	eval[bool](b, `(() => {
		const files = new DataTransfer();
		files.items.add(new File([`+string(content)+`], "`+name+`", {type: "text/csv"}));
		document.querySelector('[data-dropzone]').dispatchEvent(new DragEvent('drop', {dataTransfer: files, bubbles: true, cancelable: true}));
		return true;
	})()`)
}
