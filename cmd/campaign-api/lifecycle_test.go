package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

func (h *harness) action(id, action, body string) apiResponse {
	h.t.Helper()
	return h.call(http.MethodPost, "/v1/campaigns/"+id+"/"+action, body)
}

// TestPauseAndResumeUnderLoad: three workers, three accounts. After pause
// answers, at most one message per account can still arrive (the one
// already handed over); nothing after that. Resume finishes the campaign
// and nobody gets two messages.
func TestPauseAndResumeUnderLoad(t *testing.T) {
	accounts := "+14155550100,+14155550101,+14155550102"
	h := newHarness(t, func(_ *sandbox.Config, cfg *app.Config) { cfg.SendInterval = 200 * time.Millisecond })
	h.startWorkers(workers)
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"accounts", accounts}}, contacts: csvLines(append([]string{"phone"}, generatedPhones(90)...)...)})
	h.waitCampaign(c.ID, time.Minute, "under way", func(c campaign.Campaign) bool { return c.Counts.Sent >= 15 })

	res := h.action(c.ID, "pause", `{"reason":"checking the copy"}`)
	pausedAt := time.Now()
	if res.Code != 200 || !strings.Contains(res.Raw, `"status":"paused"`) || !strings.Contains(res.Raw, "checking the copy") {
		t.Fatalf("pause: %d %s", res.Code, res.Raw)
	}
	settled := h.waitCampaign(c.ID, 10*time.Second, "with nothing in flight", func(c campaign.Campaign) bool { return c.Counts.Sending == 0 })
	after := 0
	for _, m := range h.sandbox.Messages() {
		if m.ReceivedAt.After(pausedAt) {
			after++
		}
	}
	if after > 3 {
		t.Errorf("%d messages arrived after the pause answered; at most one in flight per account (3)", after)
	}
	// Watch for three send intervals: a paused campaign sends nothing.
	before := len(h.sandbox.Messages())
	time.Sleep(600 * time.Millisecond)
	if n := len(h.sandbox.Messages()); n != before {
		t.Errorf("%d messages went out while paused", n-before)
	}
	t.Logf("paused with %d sent; %d arrived after the pause answered", settled.Counts.Sent, after)

	if res := h.action(c.ID, "pause", ""); res.Code != http.StatusConflict || !strings.Contains(res.Message, "paused") {
		t.Errorf("pausing a paused campaign: %d %s; want 409 naming paused", res.Code, res.Raw)
	}
	if res := h.action(c.ID, "resume", ""); res.Code != 200 || !strings.Contains(res.Raw, `"status":"running"`) {
		t.Fatalf("resume: %d %s", res.Code, res.Raw)
	}
	done := h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
	if done.Counts.Sent != 90 || !countsAddUp(done.Counts) {
		t.Errorf("final %+v", done.Counts)
	}
	for phone, msgs := range h.sentTo() {
		if len(msgs) != 1 {
			t.Errorf("%s received %d messages", phone, len(msgs))
		}
	}
}

func TestCancelRetryAndIllegalTransitions(t *testing.T) {
	h := newHarness(t, func(_ *sandbox.Config, cfg *app.Config) { cfg.SendInterval = 100 * time.Millisecond })
	phones := generatedPhones(40)
	for _, p := range phones[:3] {
		h.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Phone: p, Times: 1, Status: 400,
			Body: `{"status":"error","message":"Invalid parameters","error_code":"validation_error","errors":[{"fields":["phone"],"msg":"temporarily unreachable"}]}`})
	}
	h.startWorkers(2)

	t.Run("retry-failed sends only the failed again", func(t *testing.T) {
		c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}}, contacts: csvLines(append([]string{"phone"}, phones[:10]...)...)})
		done := h.waitCampaign(c.ID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
		if done.Counts.Failed != 3 || done.Counts.Sent != 7 {
			t.Fatalf("before the retry: %+v", done.Counts)
		}
		res := h.action(c.ID, "retry-failed", "")
		if res.Code != 200 || !strings.Contains(res.Raw, `"requeued":3`) {
			t.Fatalf("retry-failed: %d %s", res.Code, res.Raw)
		}
		again := h.waitCampaign(c.ID, time.Minute, "completed again", func(c campaign.Campaign) bool {
			return c.Status == campaign.StatusCompleted && c.Counts.Sent == 10
		})
		if again.Counts.Failed != 0 || !countsAddUp(again.Counts) {
			t.Errorf("after the retry: %+v", again.Counts)
		}
		sent := h.sentTo()
		for _, p := range phones[:10] {
			if len(sent[p]) != 1 {
				t.Errorf("%s received %d messages", p, len(sent[p]))
			}
		}
		r := recipientByPhone(h, c.ID, phones[0])
		var states []string
		for _, e := range r.History {
			states = append(states, string(e.State))
		}
		if got := strings.Join(states, ","); got != "queued,sending,failed,queued,sending,sent" {
			t.Errorf("history of a retried recipient: %s", got)
		}
	})

	t.Run("cancel skips everyone not yet sent", func(t *testing.T) {
		c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}}, contacts: csvLines(append([]string{"phone"}, phones[10:]...)...)})
		h.waitCampaign(c.ID, time.Minute, "under way", func(c campaign.Campaign) bool { return c.Counts.Sent >= 3 })
		res := h.action(c.ID, "cancel", `{"reason":"wrong list"}`)
		if res.Code != 200 || !strings.Contains(res.Raw, `"status":"cancelled"`) {
			t.Fatalf("cancel: %d %s", res.Code, res.Raw)
		}
		got := h.waitCampaign(c.ID, 10*time.Second, "settled", func(c campaign.Campaign) bool { return c.Counts.Sending == 0 })
		if got.Counts.Queued != 0 || got.Counts.Skipped == 0 || got.Counts.Sent+got.Counts.Skipped != 30 {
			t.Errorf("after cancel: %+v", got.Counts)
		}
		for _, r := range h.recipients(c.ID, "skipped") {
			if r.Reason != "wrong list" {
				t.Errorf("skipped recipient says %q", r.Reason)
			}
			if len(h.sentTo()[r.Phone]) != 0 {
				t.Errorf("skipped recipient %s got a message", r.Phone)
			}
		}
		for _, tc := range []struct{ action, body string }{
			{"cancel", ""}, {"resume", ""}, {"pause", ""}, {"retry-failed", ""}, {"reschedule", `{"send_at":"2030-01-01T09:00:00Z"}`},
		} {
			res := h.action(c.ID, tc.action, tc.body)
			if res.Code != http.StatusConflict || res.ErrorCode != "conflict" || !strings.Contains(res.Message, "cancelled") {
				t.Errorf("%s on a cancelled campaign: %d %s; want 409 naming cancelled", tc.action, res.Code, res.Raw)
			}
		}
	})

	t.Run("unknown campaign", func(t *testing.T) {
		if res := h.action("nope", "pause", ""); res.Code != 404 {
			t.Errorf("%d %s", res.Code, res.Raw)
		}
	})
}

// TestScheduledCampaignSurvivesRestarts: a campaign scheduled a few seconds
// ahead starts on time although the API and the workers were restarted in
// between; one rescheduled starts at its new time; one cancelled before its
// time never sends.
func TestScheduledCampaignSurvivesRestarts(t *testing.T) {
	// The stated tick: asynq keeps due times in whole seconds and looks for
	// due tasks every 100ms, so a start is at most about a second late.
	const tick = 2 * time.Second
	h := newHarness(t)
	sendAt := time.Now().Add(4 * time.Second).Truncate(time.Second)
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"send_at", sendAt.Format(time.RFC3339)}}, contacts: csvLines("phone", "+12025550101", "+12025550102")})
	if c.Status != campaign.StatusScheduled {
		t.Fatalf("status %s", c.Status)
	}
	later := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"send_at", time.Now().Add(time.Hour).Format(time.RFC3339)}}, contacts: csvLines("phone", "+12025550103")})
	dropped := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"send_at", sendAt.Format(time.RFC3339)}}, contacts: csvLines("phone", "+12025550104")})

	// The API restarts: a new server on the same Redis.
	h.api.Close()
	srv := newServer(h.cfg, h.rdb.Client, h.log)
	t.Cleanup(srv.Close)
	h.api = httptestServer(t, srv)

	newAt := sendAt.Add(time.Second)
	if res := h.action(later.ID, "reschedule", `{"send_at":"`+newAt.Format(time.RFC3339)+`"}`); res.Code != 200 {
		t.Fatalf("reschedule: %d %s", res.Code, res.Raw)
	}
	if res := h.action(dropped.ID, "cancel", ""); res.Code != 200 {
		t.Fatalf("cancel: %d %s", res.Code, res.Raw)
	}
	// A worker runs for a moment and stops before send_at; another takes over.
	first := h.startWorker()
	first.Shutdown()
	h.startWorker()

	h.waitCampaign(c.ID, 20*time.Second, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
	h.waitCampaign(later.ID, 20*time.Second, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
	sent := h.sentTo()
	for phone, at := range map[string]time.Time{"+12025550101": sendAt, "+12025550102": sendAt, "+12025550103": newAt} {
		if len(sent[phone]) != 1 {
			t.Errorf("%s received %d messages", phone, len(sent[phone]))
			continue
		}
		got := sent[phone][0].ReceivedAt
		if got.Before(at) || got.After(at.Add(tick)) {
			t.Errorf("%s: sent at %s, due at %s (tick %s)", phone, got.Format("15:04:05.000"), at.Format("15:04:05.000"), tick)
		}
	}
	if len(sent["+12025550104"]) != 0 {
		t.Errorf("a campaign cancelled before its start sent a message")
	}
	if got := h.campaign(dropped.ID); got.Status != campaign.StatusCancelled || got.Counts.Skipped != 1 {
		t.Errorf("cancelled before start: %s %+v", got.Status, got.Counts)
	}
}

func TestSendWindowFields(t *testing.T) {
	h := newHarness(t)
	good := h.createCampaign(form{fields: [][2]string{{"template", "Hello"}, {"window_days", "mon-fri"}, {"window_hours", "09:00-18:00"}, {"window_zone", "America/Chicago"}}, contacts: csvLines("phone", "+12025550101")})
	b, _ := json.Marshal(good.Window)
	if string(b) != `{"days":"mon,tue,wed,thu,fri","hours":"09:00-18:00","zone":"America/Chicago"}` {
		t.Errorf("window %s", b)
	}
	for _, tc := range []struct{ days, hours, zone, field string }{
		{"weekdays", "09:00-18:00", "", "window_days"},
		{"mon-fri", "18:00-09:00", "", "window_hours"},
		{"mon-fri", "9am-5pm", "", "window_hours"},
		{"mon-fri", "09:00-18:00", "Mars/Olympus", "window_zone"},
		{"mon-fri", "", "", "window_hours"},
	} {
		res := h.upload(form{fields: [][2]string{{"template", "Hello"}, {"window_days", tc.days}, {"window_hours", tc.hours}, {"window_zone", tc.zone}}, contacts: csvLines("phone", "+12025550101")})
		if res.Code != 400 || len(res.Errors) == 0 || res.Errors[0].Fields[0] != tc.field {
			t.Errorf("%+v: %d %s; want 400 naming %s", tc, res.Code, res.Raw, tc.field)
		}
	}
}
