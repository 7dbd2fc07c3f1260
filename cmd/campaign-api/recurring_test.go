package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/campaign/recurring"
	"github.com/wacampaign/wacampaign/internal/quota"
)

// startRecurringReplica runs what a worker replica adds for recurring
// campaigns, on a Redis connection of its own: a scheduler, and a server of
// the control queue that runs the run tasks (and start tasks, so that a
// worker without recurring campaigns does not make them wait).
func (h *harness) startRecurringReplica() {
	h.t.Helper()
	rdb := h.redis.Client(h.t)
	queue := asynq.NewClientFromRedisClient(rdb)
	h.t.Cleanup(func() { _ = queue.Close() })
	store := campaign.NewStore(rdb)
	enqueuer := campaign.NewEnqueuer(queue, rdb, quota.NewPacer(rdb, h.cfg.SendInterval, h.cfg.SendJitter))
	recurringStore := recurring.NewStore(rdb)
	importer := campaign.NewImporter(store, enqueuer, h.cfg.DefaultRegion, h.log)

	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:       4,
		Queues:            map[string]int{campaign.QueueControl: 1},
		IsFailure:         campaign.IsFailure,
		RetryDelayFunc:    campaign.RetryDelay,
		TaskCheckInterval: 50 * time.Millisecond,
		LogLevel:          asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(recurring.TypeRun, recurring.NewRunner(recurringStore, importer, store, h.log))
	mux.Handle(campaign.TypeStart, campaign.NewControlHandler(store, enqueuer, h.log))
	if err := srv.Start(mux); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(srv.Shutdown)

	scheduler := recurring.NewScheduler(recurringStore, queue, h.log)
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(done)
		scheduler.Run(ctx)
	}()
	h.t.Cleanup(func() {
		cancel()
		<-done
	})
}

func (h *harness) createRecurring(f form) apiResponse {
	h.t.Helper()
	body, ct := f.encode(h.t)
	return h.do(h.request(http.MethodPost, "/v1/recurring", body, ct))
}

// recurringView is a recurring campaign as the API answers it.
type recurringView struct {
	recurring.Definition
	Runs []recurring.Run `json:"runs"`
}

func (h *harness) recurring(id string) recurringView {
	h.t.Helper()
	res := h.call(http.MethodGet, "/v1/recurring/"+id, "")
	if res.Code != http.StatusOK {
		h.t.Fatalf("get recurring: %d %s", res.Code, res.Raw)
	}
	var v recurringView
	if err := json.Unmarshal(res.Data, &v); err != nil {
		h.t.Fatal(err)
	}
	return v
}

// waitRecurring polls the API until cond holds.
func (h *harness) waitRecurring(id string, timeout time.Duration, what string, cond func(recurringView) bool) recurringView {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := h.recurring(id)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("recurring %s: not %s after %s; last seen %+v", id, what, timeout, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// campaignsNamed lists the campaigns whose name starts with prefix.
func (h *harness) campaignsNamed(prefix string) []campaign.Campaign {
	h.t.Helper()
	res := h.call(http.MethodGet, "/v1/campaigns?limit=500", "")
	if res.Code != http.StatusOK {
		h.t.Fatalf("list campaigns: %d %s", res.Code, res.Raw)
	}
	var page struct {
		Campaigns []campaign.Campaign `json:"campaigns"`
	}
	if err := json.Unmarshal(res.Data, &page); err != nil {
		h.t.Fatal(err)
	}
	var out []campaign.Campaign
	for _, c := range page.Campaigns {
		if strings.HasPrefix(c.Name, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func recurringForm(extra ...[2]string) form {
	fields := [][2]string{{"name", "Daily digest"}, {"template", "Hi {{.name}}"}, {"cron", "0 9 * * mon-fri"}, {"cron_zone", "Europe/Madrid"}}
	return form{fields: append(fields, extra...), contacts: csvLines("name,phone", "Ana,+14155550101", "Bo,+14155550102", "Cy,+14155550103")}
}

func TestRecurringAPIRefusesWithTheField(t *testing.T) {
	h := newHarness(t)

	replace := func(f form, name, value string) form {
		out := form{contacts: f.contacts, noFile: f.noFile}
		for _, kv := range f.fields {
			if kv[0] == name {
				kv[1] = value
			}
			out.fields = append(out.fields, kv)
		}
		return out
	}
	cases := []struct {
		name  string
		form  form
		code  int
		field string
	}{
		{"no cron", replace(recurringForm(), "cron", ""), 400, "cron"},
		{"bad cron", replace(recurringForm(), "cron", "every weekday at nine"), 400, "cron"},
		{"bad zone", replace(recurringForm(), "cron_zone", "Europe/Gondor"), 400, "cron_zone"},
		{"template uses a missing column", replace(recurringForm(), "template", "Hi {{.city}}"), 400, "template"},
		{"send_at", recurringForm([2]string{"send_at", "2030-01-01T09:00:00Z"}), 400, "send_at"},
		{"unknown field", recurringForm([2]string{"colour", "red"}), 400, "colour"},
		{"no contacts", form{fields: recurringForm().fields, noFile: true}, 400, "contacts"},
		{"no phone column", form{fields: recurringForm().fields, contacts: csvLines("name,email", "Ana,a@example.com")}, 400, "contacts"},
		{"bad window", recurringForm([2]string{"window_hours", "9 to 5"}), 400, "window_hours"},
		{"contacts over 32 MiB", form{fields: recurringForm().fields, contacts: append(csvLines("name,phone"), bytes.Repeat([]byte("x"), recurring.MaxContactsBytes)...)}, 413, "contacts"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := h.createRecurring(c.form)
			named := false
			for _, e := range res.Errors {
				named = named || (len(e.Fields) > 0 && e.Fields[0] == c.field)
			}
			if res.Code != c.code || res.Status != "error" || !named {
				t.Errorf("%d %s; want %d naming %s", res.Code, clipRaw(res.Raw), c.code, c.field)
			}
		})
	}
	t.Run("a bad cron and a template that does not parse are named together", func(t *testing.T) {
		res := h.createRecurring(replace(replace(recurringForm(), "cron", "nope"), "template", "Hi {{.name"))
		fields := map[string]bool{}
		for _, e := range res.Errors {
			fields[e.Fields[0]] = true
		}
		if res.Code != 400 || !fields["cron"] || !fields["template"] {
			t.Errorf("%d %s", res.Code, res.Raw)
		}
	})
	for _, path := range []string{"/v1/recurring/nope"} {
		for _, method := range []string{http.MethodGet, http.MethodDelete} {
			if res := h.call(method, path, ""); res.Code != 404 || res.ErrorCode != "not_found" {
				t.Errorf("%s %s: %d %s", method, path, res.Code, res.Raw)
			}
		}
	}
	if res := h.call(http.MethodGet, "/v1/recurring", ""); res.Code != 200 || !strings.Contains(res.Raw, `"recurring":[]`) {
		t.Errorf("nothing was to be saved: %d %s", res.Code, res.Raw)
	}

	res := h.createRecurring(recurringForm([2]string{"accounts", "+14155550100"}))
	if res.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", res.Code, res.Raw)
	}
	var created recurringView
	if err := json.Unmarshal(res.Data, &created); err != nil {
		t.Fatal(err)
	}
	if created.Status != recurring.Active || created.Cron != "0 9 * * mon-fri" || created.CronZone != "Europe/Madrid" ||
		created.NextRunAt == nil || !created.NextRunAt.After(time.Now()) || created.Contacts.Rows != 3 {
		t.Errorf("created: %s", res.Raw)
	}
	if local := created.NextRunAt.In(mustZone(t, "Europe/Madrid")); local.Hour() != 9 || local.Minute() != 0 {
		t.Errorf("next run %s is not 09:00 in Madrid", local)
	}
	if got := h.recurring(created.ID); got.Runs == nil || len(got.Runs) != 0 {
		t.Errorf("a new definition has runs %v; want []", got.Runs)
	}
	if res := h.call(http.MethodGet, "/v1/recurring", ""); res.Code != 200 || !strings.Contains(res.Raw, created.ID) {
		t.Errorf("list: %d %s", res.Code, res.Raw)
	}
	res = h.call(http.MethodDelete, "/v1/recurring/"+created.ID, "")
	if res.Code != 200 || !strings.Contains(res.Raw, `"status":"stopped"`) || !strings.Contains(res.Raw, `"next_run_at":null`) {
		t.Errorf("stop: %d %s", res.Code, res.Raw)
	}
	if res := h.call(http.MethodDelete, "/v1/recurring/"+created.ID, ""); res.Code != 200 {
		t.Errorf("stop again: %d %s", res.Code, res.Raw)
	}
}

// TestRecurringEndToEnd: a definition with a per-second spec, a worker that
// sends, and a replica's scheduler and run worker. Every run is a campaign
// sending its three messages once; after the stop no run starts.
func TestRecurringEndToEnd(t *testing.T) {
	h := newHarness(t)
	h.startWorker()
	h.startRecurringReplica()

	res := h.createRecurring(form{
		fields:   [][2]string{{"name", "Pulse"}, {"template", "Hi {{.name}}"}, {"cron", "* * * * * *"}},
		contacts: csvLines("name,phone", "Ana,+14155550101", "Bo,+14155550102", "Cy,+14155550103"),
	})
	if res.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", res.Code, res.Raw)
	}
	id := idOf(t, res)
	h.waitRecurring(id, 30*time.Second, "two runs with campaigns", func(v recurringView) bool {
		created := 0
		for _, run := range v.Runs {
			if run.State == recurring.RunCreated {
				created++
			}
		}
		return created >= 2
	})

	if res := h.call(http.MethodDelete, "/v1/recurring/"+id, ""); res.Code != 200 || !strings.Contains(res.Raw, `"status":"stopped"`) {
		t.Fatalf("stop: %d %s", res.Code, res.Raw)
	}
	// A run that had begun importing when the stop answered finishes.
	settled := h.waitRecurring(id, 30*time.Second, "without a run importing", func(v recurringView) bool {
		for _, run := range v.Runs {
			if run.State == recurring.RunImporting {
				return false
			}
		}
		return true
	})
	campaigns := h.campaignsNamed("Pulse · ")
	time.Sleep(2500 * time.Millisecond) // two and a half ticks of the spec in which nothing may start
	if after := h.recurring(id); len(after.Runs) != len(settled.Runs) || after.RunsCount != settled.RunsCount {
		t.Errorf("runs went on after the stop: %d runs then, %d now", len(settled.Runs), len(after.Runs))
	}
	if now := h.campaignsNamed("Pulse · "); len(now) != len(campaigns) {
		t.Errorf("%d campaigns at the stop, %d after", len(campaigns), len(now))
	}

	if len(settled.Runs) < 2 || int64(len(campaigns)) != settled.RunsCount || len(campaigns) != len(settled.Runs) {
		t.Fatalf("%d runs, runs_count %d, %d campaigns", len(settled.Runs), settled.RunsCount, len(campaigns))
	}
	ticks := map[time.Time]bool{}
	for _, run := range settled.Runs {
		if ticks[run.Tick] {
			t.Errorf("tick %s has two runs", run.Tick)
		}
		ticks[run.Tick] = true
		c := h.waitCampaign(run.CampaignID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
		if c.Counts.Total != 3 || c.Counts.Sent != 3 {
			t.Errorf("campaign %s of tick %s: %+v", c.ID, run.Tick, c.Counts)
		}
		for _, rcp := range h.recipients(c.ID, "") {
			if rcp.MessageUID == "" {
				t.Errorf("campaign %s: recipient %s has no message", c.ID, rcp.Phone)
			}
		}
	}
	byUID := map[string]int{}
	for _, m := range h.sandbox.Messages() {
		byUID[m.UID]++
	}
	for _, run := range settled.Runs {
		for _, rcp := range h.recipients(run.CampaignID, "") {
			if n := byUID[rcp.MessageUID]; n != 1 {
				t.Errorf("message %s of campaign %s: %d at the provider", rcp.MessageUID, run.CampaignID, n)
			}
		}
	}
	if n := len(h.sandbox.Messages()); n != 3*len(settled.Runs) {
		t.Errorf("the provider got %d messages for %d runs of 3 contacts", n, len(settled.Runs))
	}
	for phone, msgs := range h.sentTo() {
		if len(msgs) != len(settled.Runs) {
			t.Errorf("%s got %d messages in %d runs; want one a run", phone, len(msgs), len(settled.Runs))
		}
	}
	t.Logf("%d runs, %d messages", len(settled.Runs), len(h.sandbox.Messages()))
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func clipRaw(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
