package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/campaign/recurring"
	"github.com/wacampaign/wacampaign/internal/redistest"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// TestProductOnRedisCluster runs the product on a Redis Cluster of three
// masters (REDIS_MODE=cluster): the API (its commands pipelined, as in
// production) and two workers, each on a cluster client of its own. A
// campaign of several hundred recipients over three accounts is paced,
// paid for, paused and resumed; a sequence and a recurring campaign run
// beside it. Every key a script or transaction touches together must share
// a slot: the nodes' error counters must show no CROSSSLOT, and nobody may
// get a message twice.
func TestProductOnRedisCluster(t *testing.T) {
	cluster := redistest.StartCluster(t)
	const interval = 100 * time.Millisecond
	h := newHarness(t, func(sb *sandbox.Config, c *app.Config) {
		c.RedisURL, c.RedisMode = cluster.URL(), app.RedisCluster
		c.SendInterval = interval
		sb.Credits = 10_000
	})
	h.startWorkers(2)

	accounts := "+14155550100,+14155550101,+14155550102"
	phones := generatedPhones(360)
	c := h.createCampaign(form{fields: [][2]string{{"template", "Hello {{.phone}}"}, {"accounts", accounts}},
		contacts: csvLines(append([]string{"phone"}, phones...)...)})
	h.waitCampaign(c.ID, time.Minute, "under way", func(c campaign.Campaign) bool { return c.Counts.Sent >= 60 })
	if res := h.action(c.ID, "pause", ""); res.Code != http.StatusOK {
		t.Fatalf("pause: %d %s", res.Code, res.Raw)
	}
	paused := h.waitCampaign(c.ID, 10*time.Second, "with nothing in flight", func(c campaign.Campaign) bool { return c.Counts.Sending == 0 })
	if res := h.action(c.ID, "resume", ""); res.Code != http.StatusOK {
		t.Fatalf("resume: %d %s", res.Code, res.Raw)
	}

	seqID := h.clusterSequence()
	recID := h.clusterRecurring()

	done := h.waitCampaign(c.ID, 2*time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
	if done.Counts.Sent != 360 || !countsAddUp(done.Counts) || done.Credits.Spent != 360 {
		t.Errorf("final counts %+v, credits spent %d; want 360 sent and paid for", done.Counts, done.Credits.Spent)
	}
	if paused.Counts.Sent >= 360 {
		t.Errorf("the pause came too late to test anything: %d sent", paused.Counts.Sent)
	}
	for phone, msgs := range h.sentTo() {
		if len(msgs) != 1 && strings.HasPrefix(phone, "+1202") {
			t.Errorf("%s received %d messages", phone, len(msgs))
		}
	}
	// Pacing per account across both workers: the least gap at the
	// sandbox stays within pacingTolerance of the interval (what the
	// requests' trips from Redis's slot to the sandbox may take).
	for account, times := range sendTimes(h) {
		if minGap, _ := pacingOf(times, interval); minGap < interval-pacingTolerance {
			t.Errorf("account %s: two sends %s apart, under the %s interval less %s", account, minGap, interval, pacingTolerance)
		}
	}
	h.waitSequenceStepSent(seqID)
	h.waitRecurringRun(recID)
	assertNoCrossSlot(t, cluster)
}

// clusterSequence creates a one-step sequence (with an Idempotency-Key,
// replayed once) and enrols one contact in it.
func (h *harness) clusterSequence() string {
	h.t.Helper()
	create := func() apiResponse {
		req := h.request(http.MethodPost, "/v1/sequences", strings.NewReader(`{"name":"Welcome","accounts":["+14155550103"],"steps":[{"name":"hi","template":"Welcome {{.name}}","delay":"0s"}]}`), "application/json")
		req.Header.Set("Idempotency-Key", "welcome-sequence")
		return h.do(req)
	}
	res := create()
	if res.Code != http.StatusCreated {
		h.t.Fatalf("create a sequence: %d %s", res.Code, res.Raw)
	}
	id := idOf(h.t, res)
	if again := create(); again.Code != http.StatusCreated || idOf(h.t, again) != id {
		h.t.Fatalf("the same Idempotency-Key again: %d %s; want the first answer replayed", again.Code, again.Raw)
	}
	if res := h.call(http.MethodPost, "/v1/sequences/"+id+"/enrollments", `{"phone":"+13125550199","fields":{"name":"Ann"}}`); res.Code != http.StatusCreated {
		h.t.Fatalf("enrol: %d %s", res.Code, res.Raw)
	}
	return id
}

func (h *harness) waitSequenceStepSent(id string) {
	h.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var seq struct {
			Steps []struct {
				Counts campaign.Counts `json:"counts"`
			} `json:"steps"`
		}
		res := h.call(http.MethodGet, "/v1/sequences/"+id, "")
		if err := json.Unmarshal(res.Data, &seq); err != nil {
			h.t.Fatal(err)
		}
		if len(seq.Steps) == 1 && seq.Steps[0].Counts.Sent == 1 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the sequence's step never reached its contact: %s", res.Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clusterRecurring saves a recurring campaign that runs every second.
func (h *harness) clusterRecurring() string {
	h.t.Helper()
	res := h.createRecurring(form{fields: [][2]string{{"name", "Pulse"}, {"template", "Hi {{.name}}"}, {"cron", "* * * * * *"}},
		contacts: csvLines("name,phone", "Ana,+16175550101", "Bo,+16175550102")})
	if res.Code != http.StatusCreated {
		h.t.Fatalf("create a recurring campaign: %d %s", res.Code, res.Raw)
	}
	return idOf(h.t, res)
}

// waitRecurringRun waits for a run whose campaign completed, then stops
// the recurring campaign.
func (h *harness) waitRecurringRun(id string) {
	h.t.Helper()
	v := h.waitRecurring(id, time.Minute, "a run with a campaign", func(v recurringView) bool {
		for _, run := range v.Runs {
			if run.State == recurring.RunCreated && run.CampaignID != "" {
				return true
			}
		}
		return false
	})
	if res := h.call(http.MethodDelete, "/v1/recurring/"+id, ""); res.Code != http.StatusOK {
		h.t.Fatalf("stop: %d %s", res.Code, res.Raw)
	}
	for _, run := range v.Runs {
		if run.State == recurring.RunCreated && run.CampaignID != "" {
			h.waitCampaign(run.CampaignID, time.Minute, "completed", func(c campaign.Campaign) bool { return c.Status == campaign.StatusCompleted })
			return
		}
	}
}

// assertNoCrossSlot fails when any node answered a command with CROSSSLOT
// (a script, transaction or multi-key command over keys of several slots).
func assertNoCrossSlot(t *testing.T, cluster *redistest.Cluster) {
	t.Helper()
	for _, n := range cluster.Nodes {
		client := redis.NewClient(&redis.Options{Addr: n.Addr})
		stats, err := client.Info(context.Background(), "errorstats").Result()
		_ = client.Close()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stats, "CROSSSLOT") {
			t.Errorf("node %s answered CROSSSLOT errors:\n%s", n.Addr, stats)
		}
		t.Logf("node %s errorstats: %s", n.Addr, strings.TrimSpace(strings.ReplaceAll(stats, "\r\n", " ")))
	}
}
