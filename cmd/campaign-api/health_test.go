package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// accountsByPhone reads GET /v1/accounts.
func (h *harness) accountsByPhone() map[string]accountView {
	h.t.Helper()
	res := h.call(http.MethodGet, "/v1/accounts", "")
	if res.Code != http.StatusOK {
		h.t.Fatalf("GET /v1/accounts: %s", res.Raw)
	}
	var body struct {
		Accounts []accountView `json:"accounts"`
	}
	if err := json.Unmarshal(res.Data, &body); err != nil {
		h.t.Fatal(err)
	}
	out := map[string]accountView{}
	for _, a := range body.Accounts {
		out[a.Phone] = a
	}
	return out
}

// sentBy counts the messages the sandbox accepted, per sending account.
func (h *harness) sentBy() map[string]int {
	out := map[string]int{}
	for _, m := range h.sandbox.Messages() {
		out[m.Sender]++
	}
	return out
}

// TestWarmupHoldsAnAccountToItsAllowance: an account on the first day of
// its warm-up sends its allowance and no more; the campaign's second
// account carries the rest, and the account list shows the day and ramp.
func TestWarmupHoldsAnAccountToItsAllowance(t *testing.T) {
	warming, seasoned := "+14155550100", "+14155550101"
	h := newHarness(t, func(sb *sandbox.Config, _ *app.Config) { sb.Accounts = []string{warming, seasoned} })
	res := h.call(http.MethodPut, "/v1/accounts/"+url.PathEscape(warming), `{"daily_cap":400,"warmup":{"start":5,"days":10}}`)
	if res.Code != http.StatusOK {
		t.Fatalf("PUT warm-up: %d %s", res.Code, res.Raw)
	}
	h.startWorkers(workers)
	lines := append([]string{"phone"}, generatedPhones(40)...)
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"accounts", warming + "," + seasoned}}, contacts: csvLines(lines...)})
	done := h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
	by := h.sentBy()
	if done.Counts.Sent != 40 || by[warming] != 5 || by[seasoned] != 35 {
		t.Errorf("sent %+v; at the sandbox: %d from the warming account (allowance 5), %d from the other; want 5 and 35", done.Counts, by[warming], by[seasoned])
	}
	for phone, msgs := range h.sentTo() {
		if len(msgs) != 1 {
			t.Errorf("%s received %d messages", phone, len(msgs))
		}
	}
	a := h.accountsByPhone()[warming]
	if a.Today.Allowance != 5 || a.Today.Sent != 5 || a.Today.WarmupDay == nil || *a.Today.WarmupDay != 1 || a.DailyCap != 400 {
		t.Errorf("the warming account's day: %+v (cap %d), want allowance 5, sent 5, warm-up day 1", a.Today, a.DailyCap)
	}
	// 5 rising by one factor a day to 400 after 10 days: 5, 8, 12 … 400.
	if len(a.Ramp) != 11 || a.Ramp[0] != 5 || a.Ramp[10] != 400 || a.Ramp[1] <= 5 || a.Ramp[9] >= 400 {
		t.Errorf("ramp %v, want 11 days from 5 to 400", a.Ramp)
	}
}

// TestDailyCapWaitsForTomorrow: a campaign whose only account has sent its
// daily cap keeps the rest queued, waiting, and says why.
func TestDailyCapWaitsForTomorrow(t *testing.T) {
	account := "+14155550100"
	h := newHarness(t, func(sb *sandbox.Config, _ *app.Config) { sb.Accounts = []string{account} })
	if res := h.call(http.MethodPut, "/v1/accounts/"+url.PathEscape(account), `{"daily_cap":3}`); res.Code != http.StatusOK {
		t.Fatalf("PUT daily cap: %d %s", res.Code, res.Raw)
	}
	h.startWorkers(workers)
	lines := append([]string{"phone"}, generatedPhones(10)...)
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"accounts", account}}, contacts: csvLines(lines...)})
	waiting := h.waitCampaign(c.ID, 30*time.Second, "waiting for tomorrow", func(c campaign.Campaign) bool {
		return c.Counts.Sent == 3 && strings.Contains(c.Reason, "today's allowance")
	})
	if waiting.Counts.Queued != 7 || waiting.Status != campaign.StatusRunning {
		t.Errorf("after the cap: %s %q %+v, want 7 queued and running", waiting.Status, waiting.Reason, waiting.Counts)
	}
	time.Sleep(500 * time.Millisecond) // nothing more may go out
	if n := len(h.sandbox.Messages()); n != 3 {
		t.Errorf("the sandbox got %d messages from an account capped at 3 a day", n)
	}
}

// TestAccountLimitsRefuseBadInput: each bad daily cap or warm-up is a 400
// naming its field, and changes nothing.
func TestAccountLimitsRefuseBadInput(t *testing.T) {
	h := newHarness(t)
	path := "/v1/accounts/%2B14155550100"
	for _, tc := range []struct{ body, field string }{
		{`{"daily_cap":-1}`, "daily_cap"},
		{`{"daily_cap":"lots"}`, "body"},
		{`{"warmup":{"start":0,"days":14}}`, "warmup.start"},
		{`{"warmup":{"start":20,"days":0}}`, "warmup.days"},
		{`{"warmup":{"start":20,"days":400}}`, "warmup.days"},
		{`{"daily_cap":10,"warmup":{"start":20,"days":14}}`, "warmup.start"},
		{`{"warmup":{"start":20,"days":14,"started_on":"tomorrow"}}`, "warmup.started_on"},
		{`{"warmup":{"start":20,"days":14,"ramp":"fast"}}`, "warmup"},
		{`{"warmup":[20,14]}`, "warmup"},
	} {
		res := h.call(http.MethodPut, path, tc.body)
		if res.Code != http.StatusBadRequest || len(res.Errors) == 0 || res.Errors[0].Fields[0] != tc.field {
			t.Errorf("PUT %s: %d %s; want 400 naming %s", tc.body, res.Code, res.Raw, tc.field)
		}
	}
	if res := h.call(http.MethodPut, path, `{"daily_cap":50,"warmup":{"start":10,"days":7,"started_on":"2026-01-01"}}`); res.Code != http.StatusOK ||
		!strings.Contains(res.Raw, `"daily_cap":50`) || !strings.Contains(res.Raw, `"started_on":"2026-01-01"`) {
		t.Fatalf("a good PUT: %d %s", res.Code, res.Raw)
	}
	if res := h.call(http.MethodPut, path, `{"warmup":null,"daily_cap":0}`); res.Code != http.StatusOK || strings.Contains(res.Raw, "warmup") || strings.Contains(res.Raw, "daily_cap") {
		t.Fatalf("removing the limits: %d %s", res.Code, res.Raw)
	}
}

// TestFailingAccountIsSlowedThenPaused: an account whose messages fail
// (statuses polled from the sandbox) past the warning rate has its interval
// doubled; past the stop rate it is paused with the rate in the reason.
func TestFailingAccountIsSlowedThenPaused(t *testing.T) {
	account := "+14155550100"
	phones := generatedPhones(60)
	failing := map[string]bool{}
	for i, p := range phones[:20] {
		failing[p] = i%5 == 0 // 4 of the first 20: 20 %
	}
	for _, p := range phones[20:] {
		failing[p] = true
	}
	h := newHarness(t, fastTracking, func(sb *sandbox.Config, cfg *app.Config) {
		sb.Accounts = []string{account}
		sb.Outcome = func(phone string) sandbox.Outcome {
			if failing[phone] {
				return sandbox.OutcomeFailed
			}
			return sandbox.OutcomeDelivered
		}
		cfg.SendInterval = 20 * time.Millisecond
		cfg.Health = quota.HealthThresholds{Window: 40, MinMessages: 20, FailureWarn: 0.10, FailureStop: 0.40, OptOutWarn: 0.02, OptOutStop: 0.04}
	})
	h.startWorkers(workers)
	first := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"accounts", account}},
		contacts: csvLines(append([]string{"phone"}, phones[:20]...)...)})
	h.waitCampaign(first.ID, time.Minute, "every status in", func(c campaign.Campaign) bool {
		return c.Status == campaign.StatusCompleted && c.Counts.Failed == 4
	})
	// Every process sees an interval within a second (each caches it).
	var a accountView
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if a = h.accountsByPhone()[account]; a.SendInterval != "20ms" {
			break
		}
	}
	if a.Health.State != quota.HealthSlowed || a.SendInterval != "40ms" || a.Status != quota.AccountActive || a.Health.FailureRate != 20 {
		t.Fatalf("after 4 of 20 failed (warn 10 %%, stop 40 %%): health %+v, interval %s, status %s; want slowed at 40ms, active", a.Health, a.SendInterval, a.Status)
	}
	second := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"accounts", account}},
		contacts: csvLines(append([]string{"phone"}, phones[20:]...)...)})
	paused := h.waitCampaign(second.ID, time.Minute, "waiting for the paused account", func(campaign.Campaign) bool {
		return h.accountsByPhone()[account].Status == quota.AccountPaused
	})
	a = h.accountsByPhone()[account]
	if a.Health.State != quota.HealthStopped || !strings.HasPrefix(a.Reason, "account health: failure rate ") || !strings.Contains(a.Reason, "% (refused or undelivered) over the last ") {
		t.Errorf("stopped account: %+v reason %q", a.Health, a.Reason)
	}
	t.Logf("paused: %q; campaign %+v", a.Reason, paused.Counts)
	// Resuming starts the account afresh: healthy, at its own interval.
	if res := h.call(http.MethodPost, "/v1/accounts/"+url.PathEscape(account)+"/resume", ""); res.Code != http.StatusOK ||
		!strings.Contains(res.Raw, `"send_interval":"20ms"`) || !strings.Contains(res.Raw, `"state":"ok"`) {
		t.Errorf("resume: %s", res.Raw)
	}
}
