package campaign

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// TestJanitorEndsStalledUploadsOnly: held or importing campaigns whose
// progress stopped are cancelled with a reason; live uploads, finished
// campaigns and sequence steps (importing for ever, on purpose) are not.
func TestJanitorEndsStalledUploadsOnly(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	importHeld := func(csv string) *Campaign {
		c, err := f.importer.Import(ctx, Draft{Template: mustTemplate(t, "Hi"), Hold: true}, strings.NewReader(csv))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	stalledHeld := importHeld("phone\n+12025550101\n+12025550102\n")
	// A recurring run's import whose worker died: not held, still importing.
	stalledImport := f.importCSV("Hi", "phone\n+12025550103\n")
	f.rdb.HSet(ctx, campaignKey(stalledImport.ID), fImporting, "1")
	f.rdb.SAdd(ctx, uploadingIndex, stalledImport.ID)
	done := f.importCSV("Hi", "phone\n+12025550104\n")
	// A sequence's step: a campaign that keeps importing on purpose.
	stepID := NewID(time.Now())
	if err := f.store.CreateOpen(ctx, &Campaign{ID: stepID, Name: "Onboarding · welcome", Status: StatusRunning, CreatedAt: time.Now(),
		Template: "Hi", Columns: []string{"phone"}, SequenceID: "seq", SequenceStep: 1}, "phone"); err != nil {
		t.Fatal(err)
	}

	j := NewUploadJanitor(f.store, 0, 0, zap.NewNop())
	if j.every != DefaultJanitorEvery || j.stallAfter != DefaultUploadStall {
		t.Errorf("defaults %s, %s; want %s, %s", j.every, j.stallAfter, DefaultJanitorEvery, DefaultUploadStall)
	}
	if n, err := j.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("a pass while every upload is fresh ended %d (%v)", n, err)
	}
	live := importHeld("phone\n+12025550105\n")
	j.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	// The live upload progresses again just before the pass.
	f.rdb.HSet(ctx, campaignKey(live.ID), fProgressAt, UnixMilli(j.now()))

	n, err := j.Sweep(ctx)
	if err != nil || n != 2 {
		t.Fatalf("the pass ended %d campaigns (%v); want the 2 stalled ones", n, err)
	}
	for _, id := range []string{stalledHeld.ID, stalledImport.ID} {
		c := f.get(id)
		if c.Status != StatusCancelled || c.Importing || c.Counts.Skipped != c.Counts.Total || !strings.Contains(c.Reason, "stopped") {
			t.Errorf("stalled %s: %s (%q) importing %v %+v; want cancelled, every recipient skipped", id, c.Status, c.Reason, c.Importing, c.Counts)
		}
		if held, _ := f.rdb.HExists(ctx, campaignKey(id), fHeld).Result(); held {
			t.Errorf("stalled %s is still held", id)
		}
	}
	if !strings.Contains(f.get(stalledHeld.ID).Reason, "nothing was sent") {
		t.Errorf("the held campaign's reason %q does not say nothing was sent", f.get(stalledHeld.ID).Reason)
	}
	if c := f.get(live.ID); c.Status != StatusRunning {
		t.Errorf("the live upload is %s", c.Status)
	}
	if c := f.get(done.ID); c.Status != StatusRunning {
		t.Errorf("the finished import is %s", c.Status)
	}
	step := f.get(stepID)
	if step.Status == StatusCancelled || !step.Importing {
		t.Errorf("the sequence step is %s, importing %v; want it left alone", step.Status, step.Importing)
	}
	if members, _ := f.rdb.SMembers(ctx, uploadingIndex).Result(); len(members) != 1 || members[0] != live.ID {
		t.Errorf("still listed as uploading: %v; want the live upload alone", members)
	}
	// Ending is idempotent: another pass (another worker's) changes nothing.
	if n, err := j.Sweep(ctx); err != nil || n != 0 {
		t.Errorf("a second pass ended %d (%v)", n, err)
	}
}
