package recurring

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/wacampaign/wacampaign/internal/audience"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/quota"
)

// A run whose every contact opted out is a run, not a failure: its
// campaign completes at once with the suppressed count, and nothing is
// queued. An upload of the same list still answers why nothing is sent.
func TestRecurringRunOfAnAllSuppressedListCompletes(t *testing.T) {
	f := newRecurringFixture(t)
	ctx := context.Background()
	queue := asynq.NewClientFromRedisClient(f.rdb)
	t.Cleanup(func() { _ = queue.Close() })
	aud := audience.NewStore(f.rdb)
	im := campaign.NewImporter(f.store, campaign.NewEnqueuer(queue, f.rdb, quota.NewPacer(f.rdb, time.Millisecond, 0)), "US", f.log, campaign.WithSuppressions(aud))
	runner := NewRunner(f.rs, im, f.store, f.log)
	r := f.create("0 9 * * *")
	for _, phone := range []string{"+14155550101", "+14155550102", "+14155550103"} {
		if _, err := aud.Suppress(ctx, audience.Entry{Address: phone, Reason: "STOP", Source: audience.SourceKeyword, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}

	tick := time.Now().Unix()
	if err := runner.ProcessTask(ctx, runTask(r.ID, tick)); err != nil {
		t.Fatalf("the run failed: %v", err)
	}
	runs := f.runs(r.ID)
	if len(runs) != 1 || runs[0].State != RunCreated || runs[0].CampaignID == "" {
		t.Fatalf("runs %+v; want one created", runs)
	}
	c, err := f.store.Get(ctx, runs[0].CampaignID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != campaign.StatusCompleted || c.Suppressed != 3 || c.Counts.Total != 0 {
		t.Errorf("the run's campaign: %s, suppressed %d, total %d; want completed, 3, 0", c.Status, c.Suppressed, c.Counts.Total)
	}
	if n, err := f.inspector.ListPendingTasks(campaign.QueueSend); err == nil && len(n) != 0 {
		t.Errorf("%d send tasks queued", len(n))
	}

	def, _, err := f.rs.runDefinition(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	upload, err := runDraft("", def, tick)
	if err != nil {
		t.Fatal(err)
	}
	upload.EmptyWhenSuppressed = false
	_, err = im.Import(ctx, upload, strings.NewReader(recurringCSV))
	var input *campaign.InputError
	if !errors.As(err, &input) || !strings.Contains(input.Error(), "3 are on the suppression list") {
		t.Errorf("an upload of an all-suppressed list: %v; want an input error saying 3 are suppressed", err)
	}
}
