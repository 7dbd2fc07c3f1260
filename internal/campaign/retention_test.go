package campaign

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// sendAll runs every queued send task until none is left.
func (f *fixture) sendAll() {
	f.t.Helper()
	for f.runQueued(QueueSend, TypeSend, "", f.handler) > 0 {
	}
}

func contactsCSV(n int) string {
	var b strings.Builder
	b.WriteString("phone,name\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "+1202555%04d,Name %d\n", i, i)
	}
	return b.String()
}

func TestFinishedCampaignExpiresAfterRetentionAndLeavesTheIndexes(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	f.syncLedger()
	ctx := context.Background()
	done := f.importCSV("Hi {{.name}}", contactsCSV(3))
	running := f.importCSV("Hi {{.name}}", contactsCSV(2), func(d *Draft) { at := time.Now().Add(time.Hour); d.SendAt = at })
	f.sendAll()
	if c := f.get(done.ID); c.Status != StatusCompleted {
		t.Fatalf("campaign %s is %s, want completed", done.ID, c.Status)
	}

	core, logs := observer.New(zapcore.InfoLevel)
	k := NewRetentionKeeper(f.store, 2*time.Second, time.Minute, -1, zap.New(core))
	if err := k.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if got := logs.FilterMessage("campaign completed").All(); len(got) != 1 || got[0].ContextMap()["campaign"] != done.ID {
		t.Errorf("completion log lines %v, want one for %s", got, done.ID)
	}
	for _, k := range campaignKeys(done.ID, 3) {
		if n, _ := f.rdb.Exists(ctx, k).Result(); n == 0 {
			continue // the retry list: never written
		}
		if ttl := f.rdb.PTTL(ctx, k).Val(); ttl <= 0 || ttl > 2*time.Second {
			t.Errorf("%s: TTL %s, want the retention (at most 2s)", k, ttl)
		}
	}
	if ttl := f.rdb.PTTL(ctx, campaignKey(running.ID)).Val(); ttl != -1 {
		t.Errorf("a scheduled campaign's hash has TTL %s; only ended campaigns expire", ttl)
	}
	if c := f.get(done.ID); c.Counts.Sent != 3 {
		t.Errorf("within its retention the campaign reads %+v, want its 3 sent", c.Counts)
	}

	deadline := time.Now().Add(20 * time.Second)
	for f.rdb.Exists(ctx, campaignKey(done.ID)).Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("the campaign's hash never expired")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := k.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := f.store.List(ctx, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != running.ID {
		t.Errorf("after its retention the list has %d campaigns %v; want only %s", len(list), list, running.ID)
	}
	if n := f.rdb.ZCard(ctx, retainedIndex).Val(); n != 0 {
		t.Errorf("%d campaigns still listed as retained", n)
	}
	if got := logs.FilterMessage("campaign deleted").All(); len(got) != 1 {
		t.Errorf("deletion log lines %v, want one", got)
	}
	if keys := f.rdb.Keys(ctx, "wac:c:{"+done.ID+"}*").Val(); len(keys) != 0 {
		t.Errorf("keys of the expired campaign remain: %v", keys)
	}
}

func TestRetryOfAFinishedCampaignKeepsItsData(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	f.syncLedger()
	f.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Times: 1, Status: 400,
		Body: `{"status":"error","message":"bad number","error_code":"validation_error"}`})
	ctx := context.Background()
	c := f.importCSV("Hi {{.name}}", contactsCSV(2))
	f.sendAll()
	if got := f.get(c.ID); got.Status != StatusCompleted || got.Counts.Failed != 1 {
		t.Fatalf("campaign %+v %s, want completed with one failed", got.Counts, got.Status)
	}
	k := NewRetentionKeeper(f.store, time.Hour, time.Minute, -1, zap.NewNop())
	if err := k.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if ttl := f.rdb.PTTL(ctx, campaignKey(c.ID)).Val(); ttl <= 0 {
		t.Fatalf("TTL %s after the pass, want the retention", ttl)
	}
	if _, err := f.service.RetryFailed(ctx, c.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{campaignKey(c.ID), stateKey(c.ID, 0), historyKey(c.ID, 0), rowsKey(c.ID, 0)} {
		if ttl := f.rdb.PTTL(ctx, key).Val(); ttl != -1 {
			t.Errorf("%s: TTL %s once it runs again, want none", key, ttl)
		}
	}
	if !f.rdb.SIsMember(ctx, activeIndex, c.ID).Val() {
		t.Error("a campaign running again is not on the active index")
	}
}

// TestMemoryPerFinishedRecipient measures what README states: Redis memory
// per finished recipient, its history included, after the send and three
// status updates.
func TestMemoryPerFinishedRecipient(t *testing.T) {
	const n = 2048
	f := newFixture(t, sandbox.Config{Credits: n})
	f.syncLedger()
	ctx := context.Background()
	c := f.importCSV("Hi {{.name}}, our sale is on!", contactsCSV(n))
	f.sendAll()
	base := time.Now()
	for seq := int64(0); seq < n; seq++ {
		events := []sender.StatusEvent{{Status: "Sent", At: base}, {Status: "Delivered", At: base.Add(time.Second)}, {Status: "Read", At: base.Add(time.Minute)}}
		if _, err := f.store.applyStatuses(ctx, c.ID, seq, events, base.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.get(c.ID); got.Counts.Read != n {
		t.Fatalf("counts %+v, want all %d read", got.Counts, n)
	}
	var total int64
	for _, k := range campaignKeys(c.ID, n) {
		used, err := f.rdb.MemoryUsage(ctx, k, 0).Result() // SAMPLES 0: every field
		if err == nil {
			total += used
		}
	}
	perRecipient := total / n
	t.Logf("Redis memory per finished recipient (row, state record, history of sent + 3 statuses): %d B (%d recipients, %d B)", perRecipient, n, total)
	if perRecipient < 100 || perRecipient > 2000 {
		t.Errorf("%d B per recipient: outside the plausible 100–2000 B", perRecipient)
	}
}
