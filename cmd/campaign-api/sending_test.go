package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// These tests run three workers (asynq servers, each on its own Redis
// connection, as separate processes would be) against one Redis and the
// sandbox, and check what DESIGN.md's "Quota and pacing" promises.

const workers = 3

// TestCreditsAreNeverOverspent: quota 100, 80 text and 20 text+file
// recipients (120 credits): exactly 100 are spent, the rest wait for quota,
// visibly and without failing; with more quota the campaign completes, and
// nobody gets two messages.
func TestCreditsAreNeverOverspent(t *testing.T) {
	h := newHarness(t, func(sb *sandbox.Config, cfg *app.Config) {
		sb.Credits = 100
		cfg.QuotaSyncInterval = time.Second
	})
	h.startWorkers(workers)

	phones := generatedPhones(100)
	lines := []string{"phone,name,file_uid"}
	withFile := map[string]bool{}
	for i, p := range phones {
		file := ""
		if i%5 == 2 { // 20 of them carry their own attachment
			file = fmt.Sprintf("invoice-%d", i)
			withFile[p] = true
		}
		lines = append(lines, fmt.Sprintf("%s,Person %d,%s", p, i, file))
	}
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hi {{.name}}, here is your invoice"}}, contacts: csvLines(lines...)})
	if c.Credits.Estimated != 120 {
		t.Fatalf("estimated %d credits, want 120", c.Credits.Estimated)
	}

	waiting := h.waitCampaign(c.ID, time.Minute, "out of credits", func(c campaign.Campaign) bool {
		return c.Credits.Spent == 100 && c.Reason == campaign.ReasonWaitingForQuota && c.Counts.Sending == 0
	})
	if used := h.sandbox.CreditsUsed(); used != 100 {
		t.Fatalf("the sandbox charged %d credits of a quota of 100", used)
	}
	if waiting.Status != campaign.StatusRunning || waiting.Counts.Failed != 0 || waiting.Counts.Unknown != 0 || waiting.Counts.Queued == 0 {
		t.Fatalf("while out of credits: %s %+v; want running, the rest queued, none failed", waiting.Status, waiting.Counts)
	}
	if n := h.sandbox.Answers()[http.StatusForbidden]; n != 0 {
		t.Errorf("the provider answered quota_exceeded %d times: the ledger let sends through without credits", n)
	}
	q := h.call(http.MethodGet, "/v1/quota", "")
	var qv struct {
		Credits struct {
			Available int64 `json:"available"`
		} `json:"credits"`
		Needed    int64 `json:"needed"`
		Shortfall int64 `json:"shortfall"`
		Campaigns []struct {
			ID            string     `json:"id"`
			CreditsNeeded int64      `json:"credits_needed"`
			Reason        string     `json:"reason"`
			ETA           *time.Time `json:"eta"`
			Waiting       []struct {
				Cause      string `json:"cause"`
				Recipients int64  `json:"recipients"`
			} `json:"waiting"`
		} `json:"campaigns"`
	}
	if err := json.Unmarshal(q.Data, &qv); err != nil {
		t.Fatal(err)
	}
	if qv.Credits.Available != 0 || len(qv.Campaigns) != 1 || qv.Campaigns[0].ID != c.ID || qv.Campaigns[0].CreditsNeeded == 0 ||
		qv.Shortfall != qv.Needed || qv.Campaigns[0].Reason != campaign.ReasonWaitingForQuota {
		t.Errorf("GET /v1/quota while waiting: %s", q.Raw)
	}
	// Waiting for credits nobody has bought: no ETA (it used to say "now",
	// and moved on every read), and the wait with how many it holds.
	if row := qv.Campaigns[0]; row.ETA != nil || len(row.Waiting) != 1 || row.Waiting[0].Cause != campaign.WaitQuota || row.Waiting[0].Recipients != waiting.Counts.Queued {
		t.Errorf("the waiting campaign's forecast in GET /v1/quota: %s; want no ETA and a quota wait for its %d queued recipients", q.Raw, waiting.Counts.Queued)
	}

	h.sandbox.SetCredits(1000)
	done := h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
	if done.Counts.Sent != 100 || done.Credits.Spent != 120 || h.sandbox.CreditsUsed() != 120 || done.Reason != "" {
		t.Errorf("after the quota was raised: %+v, %d credits spent (sandbox: %d), reason %q", done.Counts, done.Credits.Spent, h.sandbox.CreditsUsed(), done.Reason)
	}
	for phone, msgs := range h.sentTo() {
		if len(msgs) != 1 {
			t.Errorf("%s received %d messages", phone, len(msgs))
		}
		if want := map[bool]int{true: 2, false: 1}[withFile[phone]]; msgs[0].Credits != want {
			t.Errorf("%s cost %d credits, want %d", phone, msgs[0].Credits, want)
		}
	}
}

// sendTimes are the sandbox's receive times per sending account, sorted.
func sendTimes(h *harness) map[string][]time.Time {
	out := map[string][]time.Time{}
	for _, m := range h.sandbox.Messages() {
		out[m.AccountPhone] = append(out[m.AccountPhone], m.ReceivedAt)
	}
	for _, ts := range out {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	}
	return out
}

// pacingOf measures one account's sends: the smallest gap between two, and
// utilisation: the sends made against what the interval allows between the
// first and the last.
func pacingOf(ts []time.Time, interval time.Duration) (minGap time.Duration, utilisation float64) {
	minGap = time.Hour
	for i := 1; i < len(ts); i++ {
		minGap = min(minGap, ts[i].Sub(ts[i-1]))
	}
	span := ts[len(ts)-1].Sub(ts[0])
	allowed := float64(span)/float64(interval) + 1
	return minGap, float64(len(ts)) / allowed
}

// pacingTolerance is what the receive times may lose against the interval:
// two sends are spaced in Redis, and the requests then travel through the
// HTTP client to the sandbox, each with its own few milliseconds.
const pacingTolerance = 25 * time.Millisecond

// TestPacingPerAccountAcrossWorkers: 200ms interval, 3 workers, 2 accounts,
// 60 recipients: no two sends of an account closer than the interval, and
// each account kept busy.
func TestPacingPerAccountAcrossWorkers(t *testing.T) {
	const interval = 200 * time.Millisecond
	h := newHarness(t, func(sb *sandbox.Config, cfg *app.Config) { cfg.SendInterval = interval })
	h.startWorkers(workers)
	accounts := []string{"+14155550100", "+14155550101"}
	lines := append([]string{"phone"}, generatedPhones(60)...)
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"accounts", strings.Join(accounts, ",")}}, contacts: csvLines(lines...)})
	h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })

	times := sendTimes(h)
	for _, a := range accounts {
		ts := times[a]
		if len(ts) != 30 {
			t.Errorf("%s sent %d messages, want 30 (recipients are spread evenly)", a, len(ts))
			continue
		}
		minGap, util := pacingOf(ts, interval)
		// Utilisation is logged, not judged: a stalled machine lowers it
		// without anything being wrong. make bench measures it.
		t.Logf("account %s: smallest gap %s, utilisation %.3f", a, minGap.Round(time.Millisecond), util)
		if minGap < interval-pacingTolerance {
			t.Errorf("%s: two sends %s apart; the interval is %s (tolerance %s)", a, minGap, interval, pacingTolerance)
		}
	}
}

// TestOneAccountDoesNotHoldBackTheOthers: of three accounts, one is paced
// out (a long interval), disconnected (the provider refuses it) or paused by
// an operator; the other two keep their full rate.
func TestOneAccountDoesNotHoldBackTheOthers(t *testing.T) {
	const interval = 200 * time.Millisecond
	slow, fast1, fast2 := "+14155550100", "+14155550101", "+14155550102"
	cases := []struct {
		name      string
		hobble    func(h *harness)
		slowSends bool // the hobbled account still sends (slowly)
	}{
		{"paced out", func(h *harness) {
			if res := h.call(http.MethodPut, "/v1/accounts/"+url.PathEscape(slow), `{"send_interval":"3s"}`); res.Code != 200 {
				t.Fatalf("set interval: %s", res.Raw)
			}
		}, true},
		{"disconnected", func(h *harness) { h.sandbox.DisconnectAccount(slow) }, false},
		{"paused", func(h *harness) {
			if res := h.call(http.MethodPost, "/v1/accounts/"+url.PathEscape(slow)+"/pause", `{"reason":"phone lost"}`); res.Code != 200 || !strings.Contains(res.Raw, `"status":"paused"`) {
				t.Fatalf("pause: %s", res.Raw)
			}
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(sb *sandbox.Config, cfg *app.Config) {
				cfg.SendInterval = interval
				sb.Accounts = []string{slow, fast1, fast2}
			})
			tc.hobble(h)
			h.startWorkers(workers)
			lines := append([]string{"phone"}, generatedPhones(60)...)
			c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"accounts", strings.Join([]string{slow, fast1, fast2}, ",")}}, contacts: csvLines(lines...)})

			// The fast accounts carry their own 20 each and, when the slow
			// one cannot send, its 20 too.
			want := 40
			if !tc.slowSends {
				want = 60
			}
			h.waitCampaign(c.ID, time.Minute, "sent by the fast accounts", func(campaign.Campaign) bool {
				ts := sendTimes(h)
				return len(ts[fast1])+len(ts[fast2]) >= want
			})
			times := sendTimes(h)
			// Not held back: by the time the fast accounts have sent their
			// share, the slow one (3 s apart) has sent a few of its 20. Had
			// it held them back, they would have kept its pace and sent
			// theirs beside all of its own. A ratio, so a stalled machine,
			// which slows every account alike, cannot break it.
			if tc.slowSends && len(times[slow]) > 10 {
				t.Errorf("the slow account sent %d of its 20 while the fast ones sent their %d: they kept its pace", len(times[slow]), want)
			}
			for _, a := range []string{fast1, fast2} {
				minGap, util := pacingOf(times[a], interval)
				t.Logf("%s: %d sends, smallest gap %s, utilisation %.3f; slow account: %d sends", a, len(times[a]), minGap.Round(time.Millisecond), util, len(times[slow]))
				// Utilisation is logged, not judged: a stalled machine lowers it.
				if minGap < interval-pacingTolerance {
					t.Errorf("%s: two sends %s apart; the interval is %s (tolerance %s)", a, minGap, interval, pacingTolerance)
				}
			}
			if !tc.slowSends {
				done := h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
				if done.Counts.Sent != 60 || len(times[slow]) != 0 {
					t.Errorf("final %+v, %d sent through the unusable account", done.Counts, len(times[slow]))
				}
			}
			for phone, msgs := range h.sentTo() {
				if len(msgs) != 1 {
					t.Errorf("%s received %d messages", phone, len(msgs))
				}
			}
		})
	}
}

// TestProviderErrorsEndToEnd runs DESIGN.md's error table through the whole
// product with three workers.
func TestProviderErrorsEndToEnd(t *testing.T) {
	t.Run("401 pauses the campaign without a retry storm", func(t *testing.T) {
		h := newHarness(t)
		h.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Status: http.StatusUnauthorized, Body: "Unauthorized", ContentType: "text/plain"})
		h.startWorkers(workers)
		lines := append([]string{"phone"}, generatedPhones(200)...)
		c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}}, contacts: csvLines(lines...)})
		paused := h.waitCampaign(c.ID, 30*time.Second, "paused", func(c campaign.Campaign) bool { return c.Status == campaign.StatusPaused && c.Counts.Sending == 0 })
		if !strings.HasPrefix(paused.Reason, "provider auth failed") {
			t.Errorf("reason %q; want provider auth failed", paused.Reason)
		}
		if paused.Counts.Queued != 200 || paused.Counts.Failed != 0 {
			t.Errorf("after the 401s: %+v; want everybody still queued for a resume", paused.Counts)
		}
		answers401 := h.sandbox.Answers()[http.StatusUnauthorized]
		if limit := workers * h.cfg.WorkerConcurrency; answers401 == 0 || answers401 > limit {
			t.Errorf("%d answers 401; want a handful (at most one per worker slot, %d), not one per recipient", answers401, limit)
		}
		t.Logf("401 answers: %d for 200 recipients", answers401)
	})

	t.Run("429, 5xx, 400 and a timeout, one recipient each", func(t *testing.T) {
		// The 500 comes before the sandbox processed the send, the timeout
		// after: both are unconfirmed, and reconciliation tells them apart
		// (the first is resent, the second found).
		h := newHarness(t, func(_ *sandbox.Config, cfg *app.Config) { cfg.ProviderTimeout = time.Second })
		phones := generatedPhones(40)
		limited, broken, invalid, slow := phones[3], phones[7], phones[11], phones[15]
		h.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Phone: limited, Times: 1, Status: 429,
			Body:   `{"status":"error","message":"Too many requests","error_code":"rate_limit_exceeded"}`,
			Header: http.Header{"Retry-After": {"2"}}})
		h.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Phone: broken, Times: 1, Status: 500,
			Body: `{"status":"error","message":"Something went wrong","error_code":"internal_error"}`})
		h.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Phone: invalid, Status: 400,
			Body: `{"status":"error","message":"Invalid parameters","error_code":"validation_error","errors":[{"fields":["phone"],"msg":"is not on WhatsApp"}]}`})
		h.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Phone: slow, Delay: time.Hour, Process: true})
		h.startWorkers(workers)
		started := time.Now()
		c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}}, contacts: csvLines(append([]string{"phone"}, phones...)...)})
		done := h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })

		if done.Counts.Sent != 39 || done.Counts.Failed != 1 || done.Counts.Unknown != 0 {
			t.Errorf("final %+v; want 39 sent, 1 failed, none unknown", done.Counts)
		}
		sent := h.sentTo()
		for _, p := range phones {
			want := 1
			if p == invalid {
				want = 0
			}
			if len(sent[p]) != want {
				t.Errorf("%s received %d messages, want %d", p, len(sent[p]), want)
			}
		}
		if got := sent[limited][0].ReceivedAt.Sub(started); got < 2*time.Second {
			t.Errorf("the rate-limited recipient was retried %s after the start; Retry-After said 2s", got)
		}
		if got := sent[broken][0].ReceivedAt.Sub(started); got < time.Second {
			t.Errorf("the recipient that met a 500 went out %s after the start: resent before reconciliation gave up", got)
		}
		byPhone := map[string]campaign.Recipient{}
		for _, r := range h.recipients(c.ID, "") {
			byPhone[r.Phone] = r
		}
		if r := byPhone[invalid]; r.State != campaign.StateFailed || !strings.Contains(r.Reason, "is not on WhatsApp") {
			t.Errorf("invalid recipient: %s %q; want failed with the provider's message", r.State, r.Reason)
		}
		if r := byPhone[slow]; r.State != campaign.StateSent || r.MessageUID != sent[slow][0].UID {
			t.Errorf("recipient whose answer never came: %s %q; want sent with the sandbox's uid, found by reconciliation", r.State, r.MessageUID)
		}
	})
}

// TestAPICallCeilingAcrossWorkers: every process together stays under
// API_CALLS_PER_SECOND.
func TestAPICallCeilingAcrossWorkers(t *testing.T) {
	const ceiling = 10
	h := newHarness(t, func(_ *sandbox.Config, cfg *app.Config) { cfg.APICallsPerSecond = ceiling })
	h.startWorkers(workers)
	accounts := []string{}
	for i := 0; i < 8; i++ {
		accounts = append(accounts, fmt.Sprintf("+1415555010%d", i))
	}
	lines := append([]string{"phone"}, generatedPhones(40)...)
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"accounts", strings.Join(accounts, ",")}}, contacts: csvLines(lines...)})
	h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })

	var ts []time.Time
	for _, m := range h.sandbox.Messages() {
		ts = append(ts, m.ReceivedAt)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	worst := 0
	for i := range ts {
		j := i
		for j < len(ts) && ts[j].Sub(ts[i]) < time.Second {
			j++
		}
		worst = max(worst, j-i)
	}
	// The most in any one second is logged: a process stalled after taking
	// its calls sends them in a bunch. What a stall cannot raise is the
	// rate over the whole run, which the ceiling bounds (plus one second's
	// calls of the limiter's burst).
	span := ts[len(ts)-1].Sub(ts[0])
	allowed := int(float64(ceiling)*span.Seconds()) + ceiling
	t.Logf("most sends in any one second: %d (ceiling %d/s; the quota syncs count too); %d sends in %s, %d allowed",
		worst, ceiling, len(ts), span.Round(time.Millisecond), allowed)
	if len(ts) > allowed {
		t.Errorf("%d sends in %s; the ceiling of %d/s allows %d", len(ts), span, ceiling, allowed)
	}
}

// TestNoUsableAccountWaitsVisibly: when every sender account of a campaign is
// paused, it waits and says why; resuming the account lets it finish.
func TestNoUsableAccountWaitsVisibly(t *testing.T) {
	const account = "+14155550100"
	h := newHarness(t)
	if res := h.call(http.MethodPost, "/v1/accounts/"+url.PathEscape(account)+"/pause", ""); res.Code != 200 {
		t.Fatalf("pause: %s", res.Raw)
	}
	h.startWorkers(workers)
	lines := append([]string{"phone"}, generatedPhones(5)...)
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"accounts", account}}, contacts: csvLines(lines...)})
	waiting := h.waitCampaign(c.ID, 30*time.Second, "waiting for an account", func(c campaign.Campaign) bool {
		return strings.HasPrefix(c.Reason, campaign.ReasonWaitingForAccount)
	})
	if !strings.Contains(waiting.Reason, account+" is paused") || waiting.Counts.Queued != 5 || len(h.sandbox.Messages()) != 0 {
		t.Fatalf("while the only account is paused: %q %+v, %d sent", waiting.Reason, waiting.Counts, len(h.sandbox.Messages()))
	}
	list := h.call(http.MethodGet, "/v1/accounts", "")
	if !strings.Contains(list.Raw, `"phone":"`+account+`","status":"paused"`) {
		t.Errorf("GET /v1/accounts: %s", list.Raw)
	}
	if res := h.call(http.MethodPost, "/v1/accounts/"+url.PathEscape(account)+"/resume", ""); res.Code != 200 {
		t.Fatalf("resume: %s", res.Raw)
	}
	// The waiting tasks look again 30s after they were turned away.
	done := h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
	if done.Counts.Sent != 5 || done.Reason != "" {
		t.Errorf("after the resume: %+v %q", done.Counts, done.Reason)
	}
}

func TestAccountEndpointsRefuseBadInput(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ method, path, body, field string }{
		{http.MethodPost, "/v1/accounts/not-a-phone/pause", "", "phone"},
		{http.MethodPut, "/v1/accounts/%2B14155550100", `{"send_interval":"fast"}`, "send_interval"},
		{http.MethodPut, "/v1/accounts/%2B14155550100", `{}`, "body"},
		{http.MethodPut, "/v1/accounts/%2B14155550100", `{"send_intervall":"2s"}`, "body"},
		{http.MethodPost, "/v1/accounts/%2B14155550100/pause", `not json`, "body"},
	} {
		res := h.call(tc.method, tc.path, tc.body)
		if res.Code != http.StatusBadRequest || len(res.Errors) == 0 || res.Errors[0].Fields[0] != tc.field {
			t.Errorf("%s %s %s: %d %s; want 400 naming %s", tc.method, tc.path, tc.body, res.Code, res.Raw, tc.field)
		}
	}
}
