package campaign

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// commandCalls answers how often Redis ran each of names since the last
// CONFIG RESETSTAT.
func (f *fixture) commandCalls(names ...string) map[string]int {
	f.t.Helper()
	info, err := f.rdb.InfoMap(context.Background(), "commandstats").Result()
	if err != nil {
		f.t.Fatal(err)
	}
	calls := make(map[string]int, len(names))
	for _, name := range names {
		stat := info["Commandstats"]["cmdstat_"+name]
		for _, kv := range strings.Split(stat, ",") {
			if k, v, _ := strings.Cut(kv, "="); k == "calls" {
				calls[name], _ = strconv.Atoi(v)
			}
		}
	}
	return calls
}

// TestRowCacheReadsAChunkOnceForItsRecipients: the rows of 64 recipients
// asked for by 32 tasks at once come from two reads, one a chunk, and are
// each recipient's own.
func TestRowCacheReadsAChunkOnceForItsRecipients(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	var csv strings.Builder
	csv.WriteString("phone,name\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&csv, "+1202555%04d,Name %d\n", 1000+i, i)
	}
	c := f.importCSV("Hi {{.name}}", csv.String())
	ctx := context.Background()
	f.rdb.ConfigResetStat(ctx)

	var cache rowCache
	rows := make([][]string, 64)
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := w; seq < 64; seq += 32 {
				row, err := cache.row(ctx, f.store, c.ID, int64(seq))
				if err != nil {
					t.Error(err)
				}
				rows[seq] = row
			}
		}()
	}
	wg.Wait()
	for seq, row := range rows {
		want, err := f.store.row(ctx, c.ID, int64(seq))
		if err != nil || !slices.Equal(row, want) {
			t.Fatalf("recipient %d: cached row %q, stored %q (%v)", seq, row, want, err)
		}
	}
	// The check above read each row once more, one by one (HGET).
	if calls := f.commandCalls("hmget", "hget"); calls["hmget"] != 2 || calls["hget"] != 64 {
		t.Errorf("Redis ran %v; want 2 chunk reads (hmget) for 64 recipients, and only the check's 64 hget", calls)
	}
}

// TestRowCacheFindsRecipientsAddedAfterTheirChunkWasRead: a campaign that
// keeps taking recipients gets one after the chunk it falls in was read;
// the cache still answers its row, and none for a recipient never added.
func TestRowCacheFindsRecipientsAddedAfterTheirChunkWasRead(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	step := &Campaign{ID: "step1", Name: "Welcome", Status: StatusRunning, CreatedAt: time.Now(), Template: "Hi", Columns: []string{"phone"}}
	if err := f.store.CreateOpen(ctx, step, "phone"); err != nil {
		t.Fatal(err)
	}
	add := func(seq int64, phone string) {
		if _, err := f.store.addRecipientOnce(ctx, step.ID, seq, []string{phone}, 1); err != nil {
			t.Fatal(err)
		}
	}
	var cache rowCache
	add(0, "+12025550101")
	if row, err := cache.row(ctx, f.store, step.ID, 0); err != nil || !slices.Equal(row, []string{"+12025550101"}) {
		t.Fatalf("recipient 0: %q (%v)", row, err)
	}
	add(1, "+12025550102")
	if row, err := cache.row(ctx, f.store, step.ID, 1); err != nil || !slices.Equal(row, []string{"+12025550102"}) {
		t.Errorf("recipient 1, added after its chunk was read: %q (%v)", row, err)
	}
	if row, err := cache.row(ctx, f.store, step.ID, 2); err != nil || row != nil {
		t.Errorf("recipient 2, never added: %q (%v); want no row", row, err)
	}
	if row, err := cache.row(ctx, f.store, "gone", 0); err != nil || row != nil {
		t.Errorf("a campaign that is gone: %q (%v); want no row", row, err)
	}
}
