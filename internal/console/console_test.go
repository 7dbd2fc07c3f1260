package console

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/redistest"
)

const goodKey = "key-of-the-marketing-team"

// fixture is the console on a throwaway Redis in front of a fakeAPI.
type fixture struct {
	t   *testing.T
	srv *httptest.Server
	api *fakeAPI
	rdb *redis.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	api := &fakeAPI{key: goodKey}
	c, err := New(Options{API: api, Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, api: api, rdb: rdb}
}

// browser is a client with a cookie jar that does not follow redirects, so
// a test sees each answer.
type browser struct {
	f      *fixture
	client *http.Client
}

func (f *fixture) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{f: f, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// answer is a response with its body read.
type answer struct {
	*http.Response
	Body string
}

func (b *browser) do(req *http.Request) answer {
	b.f.t.Helper()
	res, err := b.client.Do(req)
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return answer{Response: res, Body: string(body)}
}

func (b *browser) get(path string) answer {
	b.f.t.Helper()
	req, _ := http.NewRequest("GET", b.f.srv.URL+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) answer {
	b.f.t.Helper()
	req, _ := http.NewRequest("POST", b.f.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of the forms on p.
func csrf(t *testing.T, p answer) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("the page has no form with a CSRF token:\n%s", p.Body)
	}
	return m[1]
}

// signIn signs b in with key and answers the token of its forms.
func (b *browser) signIn(key string) (answer, string) {
	b.f.t.Helper()
	form := b.get("/signin")
	res := b.post("/signin", url.Values{"csrf": {csrf(b.f.t, form)}, "api_key": {key}, "next": {"/campaigns/c1"}})
	if res.StatusCode != http.StatusSeeOther {
		return res, ""
	}
	return res, csrf(b.f.t, b.get("/campaigns"))
}

func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.f.srv.URL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestSignInKeepsTheKeyOnTheServer(t *testing.T) {
	f := newFixture(t)
	b := f.browser()

	res, _ := b.signIn("wrong-key")
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(res.Body, `id="api_key-error">That API key is not valid`) {
		t.Fatalf("a wrong key: %d, want 401 with the error beside the field:\n%s", res.StatusCode, res.Body)
	}
	if b.cookie(sessionCookie) != nil {
		t.Fatal("a wrong key got a session cookie")
	}

	res, _ = b.signIn(goodKey)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/campaigns/c1" {
		t.Fatalf("the right key: %d to %q, want 303 back to /campaigns/c1", res.StatusCode, res.Header.Get("Location"))
	}
	if checks := f.api.calls("GET", "/v1/campaigns?limit=1"); len(checks) != 2 || checks[1].Auth != "Bearer "+goodKey {
		t.Errorf("the key was checked by %+v, want the API asked with it as the Bearer token", checks)
	}
	var setCookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == sessionCookie {
			setCookie = c
		}
	}
	if setCookie == nil || !setCookie.HttpOnly || setCookie.SameSite != http.SameSiteStrictMode || setCookie.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP", setCookie)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q: want only this origin's scripts and no framing", csp)
	}
	if strings.Contains(setCookie.Value, goodKey) {
		t.Error("the cookie carries the API key")
	}
	keys, err := f.rdb.Keys(context.Background(), sessionKeyPrefix+"*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("sessions in Redis: %v %v, want 1", keys, err)
	}
	stored, _ := f.rdb.HGetAll(context.Background(), keys[0]).Result()
	for field, v := range stored {
		if strings.Contains(v, goodKey) || strings.Contains(keys[0], setCookie.Value) {
			t.Errorf("Redis holds the key or the session id in the clear (%s: %q)", field, v)
		}
	}
	if ttl := f.rdb.TTL(context.Background(), keys[0]).Val(); ttl <= 0 || ttl > DefaultSessionTTL {
		t.Errorf("session TTL %v, want up to %v", ttl, DefaultSessionTTL)
	}
}

func TestSessionCookieIsSecureBehindTLS(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	form := b.get("/signin")
	req, _ := http.NewRequest("POST", f.srv.URL+"/signin", strings.NewReader(url.Values{"csrf": {csrf(t, form)}, "api_key": {goodKey}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	res := b.do(req)
	for _, c := range res.Cookies() {
		if c.Name == sessionCookie && !c.Secure {
			t.Error("behind a TLS proxy the session cookie is not Secure")
		}
	}
}

func TestSignInFormNeedsItsOwnToken(t *testing.T) {
	f := newFixture(t)
	b := f.browser() // never opened the sign-in page: no sign-in cookie
	res := b.post("/signin", url.Values{"csrf": {"guess"}, "api_key": {goodKey}})
	if res.StatusCode != http.StatusForbidden || b.cookie(sessionCookie) != nil {
		t.Errorf("a sign-in form from elsewhere: %d, session %v; want 403 and none", res.StatusCode, b.cookie(sessionCookie))
	}
}

func TestFormsWithoutTheirTokenAreRefused(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	_, token := b.signIn(goodKey)

	for _, form := range []url.Values{{}, {"csrf": {"forged"}}} {
		if res := b.post("/campaigns/c1/pause", form); res.StatusCode != http.StatusForbidden {
			t.Errorf("pause with csrf %q: %d, want 403", form.Get("csrf"), res.StatusCode)
		}
	}
	for _, path := range []string{"/campaigns/new", "/sequences/s1/enrollments", "/campaigns/c1/pause"} {
		body, ctype := multipartBody([][2]string{{"template", "Hi"}}, "c.csv", "phone\n+12025550143\n", 0)
		req, _ := http.NewRequest("POST", f.srv.URL+path, body)
		req.Header.Set("Content-Type", ctype)
		if res := b.do(req); res.StatusCode != http.StatusForbidden {
			t.Errorf("a multipart form to %s without its token: %d, want 403", path, res.StatusCode)
		}
	}
	if n := len(f.api.calls("POST", "/v1/campaigns/c1/pause")) + len(f.api.calls("POST", "/v1/campaigns")) + len(f.api.calls("POST", "/v1/sequences/s1/enrollments")); n != 0 {
		t.Fatalf("refused forms reached the API %d times", n)
	}

	// With its token the action reaches the API, and the API's refusal is
	// shown with its status.
	res := b.post("/campaigns/c1/pause", url.Values{"csrf": {token}})
	calls := f.api.calls("POST", "/v1/campaigns/c1/pause")
	if len(calls) != 1 || calls[0].Auth != "Bearer "+goodKey {
		t.Fatalf("pause reached the API as %+v", calls)
	}
	if res.StatusCode != http.StatusConflict || !strings.Contains(res.Body, "cannot pause a campaign that is completed") {
		t.Errorf("the API's 409: the page answers %d:\n%s", res.StatusCode, res.Body)
	}
}

func TestSignedOutBrowsersAreSentToSignIn(t *testing.T) {
	f := newFixture(t)
	anonymous := f.browser()
	if res := anonymous.get("/campaigns/c1"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/signin?next=%2Fcampaigns%2Fc1" {
		t.Errorf("no session: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	req, _ := http.NewRequest("GET", f.srv.URL+"/campaigns/c1/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	if res := anonymous.do(req); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("an event stream with no session: %d, want 401", res.StatusCode)
	}

	b := f.browser()
	_, token := b.signIn(goodKey)
	if res := b.get("/campaigns/c1"); res.StatusCode != http.StatusOK || !strings.Contains(res.Body, "Spring launch") {
		t.Fatalf("signed in, the campaign page answers %d", res.StatusCode)
	}
	kept := b.cookie(sessionCookie)
	if res := b.post("/signout", url.Values{"csrf": {token}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", res.StatusCode)
	}
	replay := f.browser()
	u, _ := url.Parse(f.srv.URL)
	replay.client.Jar.SetCookies(u, []*http.Cookie{kept})
	if res := replay.get("/campaigns/c1"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the cookie of a signed-out session still opens the campaign: %d", res.StatusCode)
	}
	if n, _ := f.rdb.Keys(context.Background(), sessionKeyPrefix+"*").Result(); len(n) != 0 {
		t.Errorf("signing out left %d sessions in Redis", len(n))
	}
}

func TestNewCampaignRelaysTheUploadAndShowsErrorsBesideFields(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	_, token := b.signIn(goodKey)
	fields := [][2]string{{"csrf", token}, {"idempotency_key", "form-1"}, {"tz", "Europe/Madrid"}, {"draft", "true"},
		{"template_name", ""}, {"template", "Hi {{.nope}}"}, {"name", "Spring"}, {"accounts", ""}, {"send_at", "2026-12-01T09:00"}}
	body, ctype := multipartBody(fields, "spring.csv", "name,phone\nAna,+12025550143\n", 4)
	req, _ := http.NewRequest("POST", f.srv.URL+"/campaigns/new", body)
	req.Header.Set("Content-Type", ctype)
	res := b.do(req)

	calls := f.api.calls("POST", "/v1/campaigns")
	if len(calls) != 1 {
		t.Fatalf("the API got %d uploads", len(calls))
	}
	got := calls[0]
	if got.Auth != "Bearer "+goodKey || got.IdempotencyKey != "form-1" || got.FileName != "spring.csv" {
		t.Errorf("the upload reached the API as %+v", got)
	}
	if strings.Join(got.PartOrder, ",") != "draft,contacts,template,name,send_at" {
		t.Errorf("the API got the parts %v: want draft first (a draft queues nothing), the file and the filled fields, in the form's order, without csrf, tz or empty fields", got.PartOrder)
	}
	if got.Parts["contacts"] != "name,phone\nAna,+12025550143\n" || got.Parts["send_at"] != "2026-12-01T09:00:00+01:00" {
		t.Errorf("contacts %q, send_at %q: want the file as sent and the local time in the browser's zone", got.Parts["contacts"], got.Parts["send_at"])
	}
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("the API's 400: the page answers %d", res.StatusCode)
	}
	field := regexp.MustCompile(`(?s)name="template"[^>]*>Hi \{\{\.nope\}\}</textarea>\s*<p class="field-error" role="alert">the template uses the column &#34;nope&#34;`)
	if !field.MatchString(res.Body) {
		t.Errorf("the template's error is not beside the template, which keeps its text:\n%s", res.Body)
	}
	if !strings.Contains(res.Body, "You sent <strong>spring.csv</strong> last time") {
		t.Error("the form does not say which file to choose again")
	}

	// A shipped template wins over the text box, which is then not sent.
	fields[4], fields[5], fields[1] = [2]string{"template_name", "welcome"}, [2]string{"template", "left over"}, [2]string{"idempotency_key", "form-2"}
	body, ctype = multipartBody(fields, "spring.csv", "name,phone\nAna,+12025550143\n", 4)
	req, _ = http.NewRequest("POST", f.srv.URL+"/campaigns/new", body)
	req.Header.Set("Content-Type", ctype)
	res = b.do(req)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/campaigns/c2?done=draft" {
		t.Fatalf("a good upload: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if last := f.api.calls("POST", "/v1/campaigns")[1]; last.Parts["template_name"] != "welcome" || last.Parts["template"] != "" {
		t.Errorf("with a shipped template chosen the API got %v", last.Parts)
	}
}

func TestCampaignEventsStreamAsTheyCome(t *testing.T) {
	f := newFixture(t)
	f.api.eventsGate = make(chan struct{})
	b := f.browser()
	b.signIn(goodKey)
	req, _ := http.NewRequest("GET", f.srv.URL+"/campaigns/c1/events", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := b.client.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	events := bufio.NewReader(res.Body)
	// The API is still holding its stream open: what arrives now was
	// relayed as it came, not buffered until the end.
	first := fragments(t, readEvent(t, events))
	close(f.api.eventsGate)
	if !strings.Contains(first["live-progress"], "<span data-settled>1,234</span> of 2,500 settled") || !strings.Contains(first["live-head"], `data-status="running"`) {
		t.Fatalf("the first live update: %v", first)
	}
	if second := fragments(t, readEvent(t, events)); !strings.Contains(second["live-head"], `data-status="completed"`) {
		t.Errorf("the second live update: %v", second)
	}
	if end := readEvent(t, events); !strings.HasPrefix(end, "event: end") {
		t.Errorf("the stream ends with %q", end)
	}
	if calls := f.api.calls("GET", "/v1/campaigns/c1/events"); len(calls) != 1 || calls[0].Auth != "Bearer "+goodKey {
		t.Errorf("the API's stream was asked for as %+v", calls)
	}
}

// fragments decodes a "fragments" event: element id → HTML.
func fragments(t *testing.T, event string) map[string]string {
	t.Helper()
	data, ok := strings.CutPrefix(event, "event: fragments\ndata: ")
	var parts map[string]string
	if !ok || json.Unmarshal([]byte(data), &parts) != nil {
		t.Fatalf("not a fragments event: %q", event)
	}
	return parts
}

// readEvent reads one server-sent event (up to its blank line).
func readEvent(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended after %q: %v", b.String(), err)
		}
		if line == "\n" {
			return b.String()
		}
		b.WriteString(line)
	}
}

func TestSafeNextStaysOnTheConsole(t *testing.T) {
	for next, want := range map[string]string{
		"/campaigns/c1?x=1": "/campaigns/c1?x=1", "": "/campaigns", "//evil.example/": "/campaigns",
		"/\\evil.example": "/campaigns", "https://evil.example/": "/campaigns", "campaigns": "/campaigns", "/signin": "/campaigns",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

// TestDraftPageShowsThePreviewAndRelaysItsActions: a draft's page shows the
// API's preview (the rows as read, the rejected row, the message with its
// gap, credits short) and its test sends; its forms become PATCH, start
// (now, or at a local time in the browser's zone), test and DELETE calls,
// and a refused edit comes back beside the message, keeping what was typed.
func TestDraftPageShowsThePreviewAndRelaysItsActions(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	_, token := b.signIn(goodKey)
	res := b.get("/campaigns/d1")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("the draft's page: %d", res.StatusCode)
	}
	for _, want := range []string{"4</span> Preview", `data-rows="read">7<`, `data-rows="rejected">1<`, "12345",
		"Hi Dana, our sale is on in !", "row 5 has no city", "1 of them has a warning", "5 credits needed, 3 available", "2 short",
		"2 recipients wait until credits are added", "5</span> Start", "Start now", "Send a test", "+14155550199", "Delete the draft",
		`<details class="edit" open>`} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("the draft's page does not show %q", want)
		}
	}

	res = b.post("/campaigns/d1/edit", url.Values{"csrf": {token}, "template": {"Hi {{.first_name}}"}, "name": {"Spring launch"}})
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(res.Body, `>Hi {{.first_name}}</textarea>`) || !strings.Contains(res.Body, `first_name&#34;, which the contacts lack`) {
		t.Errorf("a refused edit: %d; the page should keep the typed message and say why beside it", res.StatusCode)
	}
	res = b.post("/campaigns/d1/edit", url.Values{"csrf": {token}, "template": {"Hi {{.name}}, our sale is on in {{.city}}!"},
		"name": {"Spring"}, "accounts": {"+14155550100, +14155550101"}, "window_hours": {"09:00-18:00"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/campaigns/d1?done=edit" {
		t.Fatalf("an edit: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	patch := f.api.calls("PATCH", "/v1/campaigns/d1")
	var body map[string]any
	if err := json.Unmarshal([]byte(patch[len(patch)-1].Body), &body); err != nil {
		t.Fatal(err)
	}
	if _, sent := body["template"]; sent || body["name"] != "Spring" || len(body["accounts"].([]any)) != 2 || body["window"].(map[string]any)["hours"] != "09:00-18:00" {
		t.Errorf("the PATCH sent %v; want the unchanged template left out, the accounts as a list, the window as an object", body)
	}

	res = b.post("/campaigns/d1/start", url.Values{"csrf": {token}, "when": {"later"}, "send_at": {"2030-01-15T09:30"}, "tz": {"Europe/Madrid"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/campaigns/d1?done=schedule" {
		t.Errorf("scheduling: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if starts := f.api.calls("POST", "/v1/campaigns/d1/start"); len(starts) != 1 || !strings.Contains(starts[0].Body, `"send_at":"2030-01-15T09:30:00+01:00"`) {
		t.Errorf("the start the API got: %+v", starts)
	}
	res = b.post("/campaigns/d1/start", url.Values{"csrf": {token}, "when": {"now"}})
	if res.Header.Get("Location") != "/campaigns/d1?done=start" || !strings.Contains(f.api.calls("PATCH", "/v1/campaigns/d1")[2].Body, `"send_at":null`) {
		t.Errorf("starting now: to %q; want the draft's start time dropped first", res.Header.Get("Location"))
	}
	res = b.post("/campaigns/d1/test", url.Values{"csrf": {token}, "phone": {"+1 415 555 0199"}})
	if tests := f.api.calls("POST", "/v1/campaigns/d1/test"); res.Header.Get("Location") != "/campaigns/d1?done=test#tests" || len(tests) != 1 || !strings.Contains(tests[0].Body, "+1 415 555 0199") {
		t.Errorf("a test: to %q, the API got %+v", res.Header.Get("Location"), tests)
	}
	res = b.post("/campaigns/d1/delete", url.Values{"csrf": {token}})
	if res.Header.Get("Location") != "/campaigns?done=deleted" || len(f.api.calls("DELETE", "/v1/campaigns/d1")) != 1 {
		t.Errorf("delete: to %q", res.Header.Get("Location"))
	}
	if res := b.post("/campaigns/d1/delete", url.Values{}); res.StatusCode != http.StatusForbidden {
		t.Errorf("a delete without its CSRF token: %d, want 403", res.StatusCode)
	}
}

// A provider that meters no credits (the gateway) shows "not metered" on
// the accounts page, not a balance of zero to worry about.
func TestAccountsPageSaysWhenCreditsAreNotMetered(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.signIn(goodKey)
	res := b.get("/accounts")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Body, `data-quota="available">1,234<`) || strings.Contains(res.Body, "not metered") {
		t.Errorf("metered credits: %d; want 1,234 left to spend and no \"not metered\"", res.StatusCode)
	}
	f.api.unmetered.Store(true)
	res = b.get("/accounts")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Body, "Credits: not metered.") || strings.Contains(res.Body, "Left to spend") {
		t.Errorf("unmetered credits: %d; want \"Credits: not metered.\" and no balance", res.StatusCode)
	}
	if !strings.Contains(res.Body, "+14155550100") {
		t.Errorf("the accounts page lost its accounts")
	}
}

// The new-campaign form offers what the provider can do: TimelinesAI's
// attachment and label, the gateway's typing and presence simulation
// (relayed to the API as chosen), never an option the API would refuse.
func TestNewCampaignFormFollowsTheProvider(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	_, token := b.signIn(goodKey)
	res := b.get("/campaigns/new")
	if !strings.Contains(res.Body, `name="file_uid"`) || !strings.Contains(res.Body, `name="label"`) || strings.Contains(res.Body, `name="typing_simulation"`) {
		t.Errorf("TimelinesAI's form: want attachment and label, no typing simulation")
	}
	f.api.unmetered.Store(true) // the fake API plays the gateway
	res = b.get("/campaigns/new")
	if strings.Contains(res.Body, `name="file_uid"`) || strings.Contains(res.Body, `name="label"`) ||
		!strings.Contains(res.Body, `name="typing_simulation"`) || !strings.Contains(res.Body, `name="presence_simulation"`) {
		t.Errorf("the gateway's form: want typing and presence simulation, no attachment nor label")
	}
	fields := [][2]string{{"csrf", token}, {"idempotency_key", "form-g"}, {"draft", "true"}, {"template", "Hi {{.name}}"},
		{"typing_simulation", "false"}, {"presence_simulation", "true"}}
	body, ctype := multipartBody(fields, "team.csv", "name,jid\nTeam,120363025246125486@g.us\n", 4)
	req, _ := http.NewRequest("POST", f.srv.URL+"/campaigns/new", body)
	req.Header.Set("Content-Type", ctype)
	b.do(req)
	calls := f.api.calls("POST", "/v1/campaigns")
	if len(calls) != 1 || calls[0].Parts["typing_simulation"] != "false" || calls[0].Parts["presence_simulation"] != "true" {
		t.Fatalf("the API got %+v; want typing_simulation=false and presence_simulation=true relayed", calls)
	}
}

func TestSuppressionsPageListsAddsAndRemoves(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	_, token := b.signIn(goodKey)
	res := b.get("/suppressions")
	for _, want := range []string{"14155550123", "replied &#34;Stop&#34; on 2026-11-30 04:31 UTC to campaign c1", "keyword", "1 in all"} {
		if res.StatusCode != http.StatusOK || !strings.Contains(res.Body, want) {
			t.Errorf("the suppressions page (%d) does not show %q", res.StatusCode, want)
		}
	}
	res = b.post("/suppressions", url.Values{"csrf": {token}, "phone": {"nope"}, "reason": {"asked"}})
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(res.Body, "is not a phone number") || !strings.Contains(res.Body, `value="nope"`) {
		t.Errorf("a refused number: %d; the page should keep it and say why", res.StatusCode)
	}
	res = b.post("/suppressions", url.Values{"csrf": {token}, "phone": {"+1 415 555 0124"}, "reason": {"asked by phone"}})
	adds := f.api.calls("POST", "/v1/suppressions")
	if res.Header.Get("Location") != "/suppressions?done=add" || !strings.Contains(adds[len(adds)-1].Body, `"reason":"asked by phone"`) {
		t.Errorf("an add: to %q, the API got %+v", res.Header.Get("Location"), adds)
	}
	res = b.post("/suppressions/+14155550123/remove", url.Values{"csrf": {token}})
	if res.Header.Get("Location") != "/suppressions?done=remove" || len(f.api.calls("DELETE", "/v1/suppressions/%2B14155550123")) != 1 {
		t.Errorf("a removal: to %q; the API got %+v", res.Header.Get("Location"), f.api.seen())
	}
}

func TestCampaignPageSplitsTheFunnelByVariant(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.signIn(goodKey)
	page := b.get("/campaigns/ab")
	if page.StatusCode != http.StatusOK {
		t.Fatalf("GET /campaigns/ab: %d %s", page.StatusCode, page.Body)
	}
	for _, want := range []string{"By A/B variant: B won. B by read_rate: A 25.0 % of 40 sent", `<td data-label="Variant">B</td>`, "30 · 50 %", "1 · 1.7 %"} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("the campaign page lacks %q", want)
		}
	}
}
