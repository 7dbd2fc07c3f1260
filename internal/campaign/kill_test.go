package campaign

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// TestWorkerKilledBeforeDispatchSendsOnceAndNeverUnknown kills a real
// worker process (SIGKILL, no goodbye) while its send task naps for the
// account's pacing slot, before the claim and its dispatch mark. The
// recipient is then sent once, by the task asynq hands on, and nothing ever
// calls it unknown or unconfirmed.
//
// It takes about a minute: asynq hands a dead worker's task on only after
// its lease (30 s) has been expired for 30 s.
func TestWorkerKilledBeforeDispatchSendsOnceAndNeverUnknown(t *testing.T) {
	f := newFixture(t, sandbox.Config{Accounts: []string{"+14155550100"}})
	bin := buildWorker(t)
	ctx := context.Background()
	const account, interval = "+14155550100", 900 * time.Millisecond

	c := f.importCSV("Hi", "phone\n+12025550101\n", func(d *Draft) {
		d.Accounts = []string{account}
		d.SendAt = time.Now().Add(time.Hour) // nothing enqueued: the test enqueues by hand
	})
	outcome, round, err := f.store.start(ctx, c.ID, 0, time.Now().Add(time.Hour))
	if err != nil || outcome != "started" {
		t.Fatalf("start: %s %v", outcome, err)
	}

	worker := startWorkerProcess(t, bin, f, interval)
	waitFor(t, 20*time.Second, "the worker to read the quota", func() bool { return f.sandbox.APICallsUsed() > 0 })
	// The account's slot was just taken: the task will nap for most of the
	// interval before its claim.
	if _, err := quota.NewPacer(f.rdb, interval, 0).Take(ctx, account); err != nil {
		t.Fatal(err)
	}
	if err := f.queue.enqueueSend(ctx, c.ID, 0, round, time.Time{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the task to be running", func() bool {
		active, err := f.inspector.ListActiveTasks(QueueSend)
		return err == nil && len(active) == 1
	})
	if r := f.recipient(c.ID, 0); r.State != StateQueued {
		t.Fatalf("the napping task's recipient is %s; want queued: it is claimed only as its request is written", r.State)
	}
	if err := worker.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = worker.Wait()
	if n := len(f.sandbox.Messages()); n != 0 {
		t.Fatalf("the sandbox got %d messages before the kill; the test must kill before the dispatch", n)
	}

	// asynq recovers a task whose lease expired 30 s ago; a worker runs the
	// recovery when it starts.
	time.Sleep(61 * time.Second)
	startWorkerProcess(t, bin, f, interval)
	waitFor(t, 60*time.Second, "the recovered send", func() bool { return f.recipient(c.ID, 0).State == StateSent })

	if n := len(f.sandbox.Messages()); n != 1 {
		t.Errorf("the sandbox got %d messages; want exactly 1", n)
	}
	r := f.recipient(c.ID, 0)
	for _, e := range r.History {
		if e.State == StateUnknown || e.State == StateUnconfirmed {
			t.Errorf("history %+v: a send that never left was called %s", r.History, e.State)
		}
	}
	if got := f.get(c.ID); got.Status != StatusCompleted || got.Counts.Sent != 1 || !addsUp(got.Counts) {
		t.Errorf("campaign %s %+v", got.Status, got.Counts)
	}
}

// buildWorker builds the campaign-worker binary into the test's temp dir.
func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "campaign-worker")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/campaign-worker")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build the worker: %v", err)
	}
	return bin
}

// startWorkerProcess starts a worker on the fixture's Redis, sending to its
// sandbox; it is killed when the test ends, if it still runs.
func startWorkerProcess(t *testing.T, bin string, f *fixture, interval time.Duration) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"REDIS_URL=redis://"+f.rdb.Options().Addr,
		"TIMELINES_API_TOKEN="+fixtureToken,
		"TIMELINES_BASE_URL="+f.provURL,
		"SEND_INTERVAL="+interval.String(),
		"PROVIDER_TIMEOUT=2s",
		"QUOTA_SYNC_INTERVAL=1s",
		"LOG_LEVEL=warn",
	)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "worker.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("worker log:\n%s", b)
		}
	})
	return cmd
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting %s for %s", limit, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
