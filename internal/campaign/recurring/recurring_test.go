package recurring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/redistest"
	"github.com/wacampaign/wacampaign/internal/templating"
)

const recurringCSV = "name,phone\nAna,+14155550101\nBo,+14155550102\nCy,+14155550103\n"

func mustSchedule(t *testing.T, spec, zone string) *Schedule {
	t.Helper()
	s, err := ParseSchedule(spec, zone)
	if err != nil {
		t.Fatalf("parse %q in %q: %v", spec, zone, err)
	}
	return s
}

func at(t *testing.T, zone, value string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04:05", value, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRecurringLatestTick: a scheduler starts the latest tick it missed,
// never a backlog, in the definition's zone, through DST changes.
func TestRecurringLatestTick(t *testing.T) {
	utc := func(v string) time.Time { return at(t, "UTC", v) }
	cases := []struct {
		name, spec, zone string
		after, now       time.Time
		want             time.Time // zero: nothing due
	}{
		{"nothing due yet", "*/2 * * * * *", "", utc("2026-05-04 12:00:00"), utc("2026-05-04 12:00:01").Add(500 * time.Millisecond), time.Time{}},
		{"the tick just passed", "*/2 * * * * *", "", utc("2026-05-04 12:00:00"), utc("2026-05-04 12:00:02").Add(300 * time.Millisecond), utc("2026-05-04 12:00:02")},
		{"a tick exactly now counts", "0 9 * * *", "", utc("2026-05-04 09:00:00"), utc("2026-05-05 09:00:00"), utc("2026-05-05 09:00:00")},
		{"the last tick is not due again", "0 9 * * *", "", utc("2026-05-05 09:00:00"), utc("2026-05-05 18:00:00"), time.Time{}},
		{"three missed days: only the latest", "0 9 * * *", "", utc("2026-05-04 09:00:00"), utc("2026-05-07 10:00:00"), utc("2026-05-07 09:00:00")},
		{"weekdays only", "0 9 * * mon-fri", "", utc("2026-05-08 09:00:00"), utc("2026-05-10 23:00:00"), time.Time{}}, // Fri → Sun
		{"a week's outage of a per-second spec", "* * * * * *", "", utc("2026-05-01 00:00:00"), utc("2026-05-08 07:30:15").Add(900 * time.Millisecond), utc("2026-05-08 07:30:15")},
		{"descriptor", "@daily", "", utc("2026-05-04 00:00:00"), utc("2026-05-06 13:00:00"), utc("2026-05-06 00:00:00")},
		{"zone: 09:00 in Madrid is 07:00 UTC in summer", "0 9 * * *", "Europe/Madrid", utc("2026-06-01 07:00:00"), utc("2026-06-02 08:00:00"), utc("2026-06-02 07:00:00")},
		{"zone via CRON_TZ", "CRON_TZ=America/New_York 0 9 * * *", "", utc("2026-06-01 13:00:00"), utc("2026-06-02 14:00:00"), utc("2026-06-02 13:00:00")},
		// Spring forward in Madrid: 2026-03-29 02:00 CET → 03:00 CEST.
		{"DST spring: 09:00 local stays 09:00 local", "0 9 * * *", "Europe/Madrid", at(t, "Europe/Madrid", "2026-03-28 09:00:00"), utc("2026-03-29 12:00:00"), at(t, "Europe/Madrid", "2026-03-29 09:00:00")},
		// Fall back in Madrid: 2026-10-25 03:00 CEST → 02:00 CET; 02:30 happens twice.
		{"DST fall: a fixed time runs once, at its first occurrence", "30 2 * * *", "Europe/Madrid", utc("2026-10-24 00:30:00"), utc("2026-10-25 02:00:00"), utc("2026-10-25 00:30:00")},
		{"DST fall: an hourly spec runs in the repeated hour", "0 * * * *", "Europe/Madrid", utc("2026-10-25 00:00:00"), utc("2026-10-25 01:10:00"), utc("2026-10-25 01:00:00")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mustSchedule(t, c.spec, c.zone).Latest(c.after, c.now)
			if !got.Equal(c.want) {
				t.Errorf("Latest(%s, %s) = %s; want %s", c.after.UTC(), c.now.UTC(), got.UTC(), c.want.UTC())
			}
		})
	}

	t.Run("DST fall: the next 02:30 after the first is the next day's", func(t *testing.T) {
		s := mustSchedule(t, "30 2 * * *", "Europe/Madrid")
		next := s.Next(utc("2026-10-25 00:30:00"))
		if want := at(t, "Europe/Madrid", "2026-10-26 02:30:00"); !next.Equal(want) {
			t.Errorf("next = %s; want %s (02:30 CET of 25 October repeats a wall time already run)", next.UTC(), want.UTC())
		}
	})
	t.Run("DST spring: a wall time that does not exist has no tick", func(t *testing.T) {
		s := mustSchedule(t, "30 2 * * *", "Europe/Madrid")
		next := s.Next(at(t, "Europe/Madrid", "2026-03-28 02:30:00"))
		if want := at(t, "Europe/Madrid", "2026-03-30 02:30:00"); !next.Equal(want) {
			t.Errorf("next = %s; want %s", next.UTC(), want.UTC())
		}
	})
	t.Run("DST US: weekdays 09:00 New York moves from 14:00 to 13:00 UTC", func(t *testing.T) {
		s := mustSchedule(t, "0 9 * * mon-fri", "America/New_York")
		// 2026-03-08 (Sunday) the US springs forward.
		got := s.Latest(utc("2026-03-06 14:00:00"), utc("2026-03-09 13:30:00"))
		if want := utc("2026-03-09 13:00:00"); !got.Equal(want) {
			t.Errorf("latest = %s; want %s", got, want)
		}
	})
}

func TestRecurringParseRefusesWithTheField(t *testing.T) {
	cases := []struct{ spec, zone, field, says string }{
		{"", "", "cron", "required"},
		{"0 9 * *", "", "cron", "fields"},
		{"61 * * * *", "", "cron", "cron"},
		{"@every 1h", "", "cron", "@every"},
		{"0 0 30 2 *", "", "cron", "never fires"},
		{"0 9 * * *", "Mars/Olympus", "cron_zone", "IANA"},
		{"0 9 * * *", "Local", "cron_zone", "IANA"},
		{"CRON_TZ=Europe/Madrid 0 9 * * *", "Europe/Paris", "cron_zone", "once"},
	}
	for _, c := range cases {
		_, err := ParseSchedule(c.spec, c.zone)
		var in *campaign.InputError
		if !errors.As(err, &in) || in.Problems[0].Fields[0] != c.field || !strings.Contains(in.Msg, c.says) {
			t.Errorf("ParseSchedule(%q, %q) = %v; want an input error on %s saying %q", c.spec, c.zone, err, c.field, c.says)
		}
	}
}

// recurringFixture is recurring campaigns on a throwaway Redis, on top of
// the campaigns their runs create.
type recurringFixture struct {
	t         *testing.T
	rdb       *redis.Client
	store     *campaign.Store
	importer  *campaign.Importer
	starter   *campaign.ControlHandler
	inspector *asynq.Inspector
	rs        *Store
	runner    *Runner
	log       *zap.Logger
}

func newRecurringFixture(t *testing.T) *recurringFixture {
	rdb := redistest.Start(t).Client(t)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	queue := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { queue.Close() })
	store := campaign.NewStore(rdb)
	enqueuer := campaign.NewEnqueuer(queue, rdb, quota.NewPacer(rdb, time.Millisecond, 0))
	importer := campaign.NewImporter(store, enqueuer, "US", log)
	rs := NewStore(rdb)
	return &recurringFixture{t: t, rdb: rdb, store: store, importer: importer, starter: campaign.NewControlHandler(store, enqueuer, log),
		inspector: asynq.NewInspectorFromRedisClient(rdb), rs: rs, runner: NewRunner(rs, importer, store, log), log: log}
}

func (f *recurringFixture) create(spec string, mod ...func(*Draft)) *Definition {
	f.t.Helper()
	r, err := f.tryCreate(spec, mod...)
	if err != nil {
		f.t.Fatalf("create recurring: %v", err)
	}
	return r
}

func (f *recurringFixture) tryCreate(spec string, mod ...func(*Draft)) (*Definition, error) {
	f.t.Helper()
	tmpl, err := templating.Parse("t", "Hi {{.name}}")
	if err != nil {
		f.t.Fatal(err)
	}
	d := Draft{Draft: campaign.Draft{Name: "Weekly " + f.t.Name(), Template: tmpl}, Cron: spec, Contacts: []byte(recurringCSV)}
	for _, m := range mod {
		m(&d)
	}
	return f.rs.Create(context.Background(), f.importer, d)
}

// schedulerOnOwnClient is a scheduler as another replica would run it: its
// own Redis and asynq clients.
func (f *recurringFixture) schedulerOnOwnClient() *Scheduler {
	rdb := redis.NewClient(&redis.Options{Addr: f.rdb.Options().Addr})
	f.t.Cleanup(func() { _ = rdb.Close() })
	queue := asynq.NewClientFromRedisClient(rdb)
	f.t.Cleanup(func() { _ = queue.Close() })
	s := NewScheduler(NewStore(rdb), queue, f.log)
	s.every = 20 * time.Millisecond // several passes a tick: the schedulers race for every one
	return s
}

// startRunWorker runs recurring run tasks (and nothing else) until the test
// ends.
func (f *recurringFixture) startRunWorker() {
	f.t.Helper()
	srv := asynq.NewServerFromRedisClient(f.rdb, asynq.Config{
		Concurrency:       4,
		Queues:            map[string]int{campaign.QueueControl: 1},
		IsFailure:         campaign.IsFailure,
		RetryDelayFunc:    campaign.RetryDelay,
		TaskCheckInterval: 50 * time.Millisecond,
		LogLevel:          asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(TypeRun, f.runner)
	mux.Handle(campaign.TypeStart, f.starter)
	if err := srv.Start(mux); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(srv.Shutdown)
}

func runTask(id string, tick int64) *asynq.Task {
	payload, _ := json.Marshal(runPayload{ID: id, Tick: tick})
	return asynq.NewTask(TypeRun, payload)
}

// campaignsNamed counts the campaigns per name among those of definition r.
func (f *recurringFixture) campaignsOf(r *Definition) map[string][]*campaign.Campaign {
	f.t.Helper()
	list, err := f.store.List(context.Background(), 1000, "")
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string][]*campaign.Campaign{}
	for _, c := range list {
		if strings.HasPrefix(c.Name, r.Name+" · ") {
			out[c.Name] = append(out[c.Name], c)
		}
	}
	return out
}

func (f *recurringFixture) runs(id string) []Run {
	f.t.Helper()
	runs, err := f.rs.Runs(context.Background(), id, recurringRunsKept)
	if err != nil {
		f.t.Fatal(err)
	}
	return runs
}

func TestRecurringCreateValidates(t *testing.T) {
	f := newRecurringFixture(t)
	cases := []struct {
		name, field string
		mod         func(*Draft)
	}{
		{"bad spec", "cron", func(d *Draft) { d.Cron = "every monday" }},
		{"bad zone", "cron_zone", func(d *Draft) { d.CronZone = "Europe/Atlantis" }},
		{"no template", "template", func(d *Draft) { d.Template = nil }},
		{"template uses a column the CSV lacks", "template", func(d *Draft) {
			d.Template, _ = templating.Parse("t", "Hi {{.city}}")
		}},
		{"no phone column", "contacts", func(d *Draft) { d.Contacts = []byte("name,email\nAna,a@example.com\n") }},
		{"no valid row", "contacts", func(d *Draft) { d.Contacts = []byte("name,phone\nAna,12\n") }},
		{"empty file", "contacts", func(d *Draft) { d.Contacts = nil }},
		{"bad account", "accounts", func(d *Draft) { d.Accounts = []string{"not a phone"} }},
		{"send_at", "send_at", func(d *Draft) { d.SendAt = time.Now().Add(time.Hour) }},
		{"long name", "name", func(d *Draft) { d.Name = strings.Repeat("n", recurringNameMax+1) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.tryCreate("0 9 * * *", c.mod)
			var in *campaign.InputError
			if !errors.As(err, &in) {
				t.Fatalf("err = %v; want an campaign.InputError", err)
			}
			found := false
			for _, p := range in.Problems {
				found = found || p.Fields[0] == c.field
			}
			if !found {
				t.Errorf("problems %+v do not name %s", in.Problems, c.field)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		big := make([]byte, MaxContactsBytes+1)
		_, err := f.tryCreate("0 9 * * *", func(d *Draft) { d.Contacts = big })
		var in *campaign.InputError
		if !errors.As(err, &in) || !in.TooLarge || in.Problems[0].Fields[0] != "contacts" {
			t.Errorf("err = %v; want a TooLarge campaign.InputError on contacts", err)
		}
	})
	if list, _ := f.rs.List(context.Background(), 100, ""); len(list) != 0 {
		t.Errorf("refused definitions were saved: %+v", list)
	}

	r := f.create("0 9 * * *", func(d *Draft) { d.CronZone = "Europe/Madrid"; d.Accounts = []string{"(415) 555-0100"} })
	if r.Status != Active || r.CronZone != "Europe/Madrid" || r.Contacts.Rows != 3 || r.NextRunAt == nil || len(r.Accounts) != 1 || r.Accounts[0] != "+14155550100" {
		t.Errorf("created %+v", r)
	}
	if next := r.NextRunAt.In(r.NextRunAt.Location()); !next.After(r.CreatedAt) {
		t.Errorf("next run %s is not after creation %s", next, r.CreatedAt)
	}
}

// TestRecurringSchedulersStartEachTickOnce: three schedulers on their own
// Redis clients race for every tick of a per-second spec for a few seconds.
// Each tick gets exactly one run and one campaign; no tick gets two.
func TestRecurringSchedulersStartEachTickOnce(t *testing.T) {
	f := newRecurringFixture(t)
	f.startRunWorker()
	r := f.create("*/1 * * * * *")

	schedulers := []*Scheduler{f.schedulerOnOwnClient(), f.schedulerOnOwnClient(), f.schedulerOnOwnClient()}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range schedulers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Run(ctx)
		}()
	}
	time.Sleep(4500 * time.Millisecond) // the length of the race, not a synchronisation
	cancel()
	wg.Wait()

	var started int64
	for _, s := range schedulers {
		started += s.started.Load()
	}
	// Every started run ends up with its campaign.
	deadline := time.Now().Add(30 * time.Second)
	var runs []Run
	for {
		runs = f.runs(r.ID)
		done := int64(len(runs)) == started
		for _, run := range runs {
			done = done && run.State == RunCreated
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs not all created after 30s: started %d, runs %+v", started, runs)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if started < 3 {
		t.Fatalf("only %d runs started in 4.5 s of a per-second spec", started)
	}
	ticks := make([]time.Time, 0, len(runs))
	seenCampaign := map[string]bool{}
	for _, run := range runs {
		ticks = append(ticks, run.Tick)
		if seenCampaign[run.CampaignID] {
			t.Errorf("campaign %s recorded for two ticks", run.CampaignID)
		}
		seenCampaign[run.CampaignID] = true
	}
	sort.Slice(ticks, func(i, j int) bool { return ticks[i].Before(ticks[j]) })
	for i := 1; i < len(ticks); i++ {
		if gap := ticks[i].Sub(ticks[i-1]); gap != time.Second {
			t.Errorf("ticks %s and %s: gap %s; every second should have had its run", ticks[i-1], ticks[i], gap)
		}
	}
	perTick := f.campaignsOf(r)
	if len(perTick) != len(runs) {
		t.Errorf("%d ticks with campaigns, %d runs", len(perTick), len(runs))
	}
	for name, cs := range perTick {
		if len(cs) != 1 {
			t.Errorf("tick %q has %d campaigns", name, len(cs))
		}
		if cs[0].Counts.Total != 3 {
			t.Errorf("campaign %s has %d recipients; want 3", cs[0].ID, cs[0].Counts.Total)
		}
	}
	got, err := f.rs.Get(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.RunsCount != int64(len(runs)) || got.LastRunAt == nil || !got.LastRunAt.Equal(ticks[len(ticks)-1]) {
		t.Errorf("definition after the runs: runs_count %d, last_run_at %v; want %d, %s", got.RunsCount, got.LastRunAt, len(runs), ticks[len(ticks)-1])
	}
	t.Logf("%d ticks, each with one campaign; claims per scheduler: %d %d %d", len(runs), schedulers[0].started.Load(), schedulers[1].started.Load(), schedulers[2].started.Load())
}

func TestRecurringStoppedStartsNothing(t *testing.T) {
	f := newRecurringFixture(t)
	ctx := context.Background()

	t.Run("no scheduler claims a tick of a stopped definition", func(t *testing.T) {
		r := f.create("* * * * * *")
		stopped, err := f.rs.Stop(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stopped.Status != Stopped || stopped.StoppedAt == nil || stopped.NextRunAt != nil {
			t.Errorf("stopped: %+v", stopped)
		}
		s := f.schedulerOnOwnClient()
		runCtx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond) // absence over two and a half ticks is the point
		defer cancel()
		s.Run(runCtx)
		// A scheduler that read the definition before the stop still
		// cannot claim: the claim itself checks the status.
		if claimed, _, err := f.rs.claimTick(ctx, r.ID, time.Now().Unix()); err != nil || claimed {
			t.Errorf("claim of a stopped definition: %v %v", claimed, err)
		}
		if n := s.started.Load(); n != 0 {
			t.Errorf("%d runs started", n)
		}
		if runs := f.runs(r.ID); len(runs) != 0 {
			t.Errorf("runs: %+v", runs)
		}
		if again, err := f.rs.Stop(ctx, r.ID); err != nil || !again.StoppedAt.Equal(*stopped.StoppedAt) {
			t.Errorf("stopping again: %v %v", again, err)
		}
	})

	t.Run("a run enqueued before the stop imports nothing", func(t *testing.T) {
		r := f.create("* * * * * *")
		s := f.schedulerOnOwnClient()
		now := time.Now().Add(2 * time.Second)
		s.now = func() time.Time { return now }
		if n, err := s.Pass(ctx); err != nil || n != 1 {
			t.Fatalf("the scheduler started %d runs, %v; want 1", n, err)
		}
		if _, err := f.rs.Stop(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		pending, err := f.inspector.ListPendingTasks(campaign.QueueControl)
		if err != nil {
			t.Fatal(err)
		}
		ran := 0
		for _, task := range pending {
			if task.Type == TypeRun && strings.Contains(task.ID, r.ID) {
				if err := f.runner.ProcessTask(ctx, asynq.NewTask(task.Type, task.Payload)); err != nil {
					t.Fatal(err)
				}
				ran++
			}
		}
		if ran != 1 {
			t.Fatalf("ran %d run tasks of the definition, want the one enqueued", ran)
		}
		if n := len(f.campaignsOf(r)); n != 0 {
			t.Errorf("%d campaigns", n)
		}
	})

	t.Run("unknown id", func(t *testing.T) {
		if _, err := f.rs.Stop(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v", err)
		}
	})
}

// TestRecurringReplayedRunCreatesNothing: asynq runs a task at least once;
// the run record makes every run of it after the first do nothing.
func TestRecurringReplayedRunCreatesNothing(t *testing.T) {
	f := newRecurringFixture(t)
	ctx := context.Background()
	r := f.create("0 9 * * *")
	def, _, err := f.rs.runDefinition(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the same task twice", func(t *testing.T) {
		tick := time.Now().Unix()
		for i := 0; i < 3; i++ {
			if err := f.runner.ProcessTask(ctx, runTask(r.ID, tick)); err != nil {
				t.Fatalf("run %d: %v", i, err)
			}
		}
		cs := f.campaignsOf(r)[runName(def, tick)]
		if len(cs) != 1 {
			t.Fatalf("%d campaigns for the tick", len(cs))
		}
		runs := f.runs(r.ID)
		if len(runs) != 1 || runs[0].State != RunCreated || runs[0].CampaignID != cs[0].ID {
			t.Errorf("runs %+v", runs)
		}
		if got, _ := f.rs.Get(ctx, r.ID); got.RunsCount != 1 {
			t.Errorf("runs_count %d", got.RunsCount)
		}
	})

	t.Run("while another attempt imports, it waits", func(t *testing.T) {
		tick := time.Now().Unix() + 100
		other := runRecord{State: RunImporting, At: campaign.UnixMilli(time.Now()), Attempt: "other", Lease: campaign.UnixMilli(time.Now().Add(time.Minute))}
		if outcome, _, err := f.rs.claimRun(ctx, r.ID, tick, other); err != nil || outcome != runClaimed {
			t.Fatalf("claim: %s %v", outcome, err)
		}
		err := f.runner.ProcessTask(ctx, runTask(r.ID, tick))
		var wait *campaign.WaitError
		if !errors.As(err, &wait) || wait.Delay < 30*time.Second {
			t.Errorf("err = %v; want a wait until the other attempt's lease ends", err)
		}
		if n := len(f.campaignsOf(r)[runName(def, tick)]); n != 0 {
			t.Errorf("%d campaigns", n)
		}
	})

	t.Run("an attempt that died before creating: the retry imports", func(t *testing.T) {
		tick := time.Now().Unix() + 200
		dead := runRecord{State: RunImporting, At: campaign.UnixMilli(time.Now().Add(-time.Minute)), Attempt: "dead", Lease: campaign.UnixMilli(time.Now().Add(-time.Second))}
		if outcome, _, err := f.rs.claimRun(ctx, r.ID, tick, dead); err != nil || outcome != runClaimed {
			t.Fatalf("claim: %s %v", outcome, err)
		}
		if err := f.runner.ProcessTask(ctx, runTask(r.ID, tick)); err != nil {
			t.Fatal(err)
		}
		if err := f.runner.ProcessTask(ctx, runTask(r.ID, tick)); err != nil {
			t.Fatal(err)
		}
		if n := len(f.campaignsOf(r)[runName(def, tick)]); n != 1 {
			t.Errorf("%d campaigns; want 1", n)
		}
	})

	t.Run("an attempt that died after creating: its campaign is recorded, not imported again", func(t *testing.T) {
		tick := time.Now().Unix() + 300
		since := time.Now().Add(-time.Second)
		dead := runRecord{State: RunImporting, At: campaign.UnixMilli(since), Attempt: "dead2", Lease: campaign.UnixMilli(time.Now().Add(-time.Millisecond))}
		if outcome, _, err := f.rs.claimRun(ctx, r.ID, tick, dead); err != nil || outcome != runClaimed {
			t.Fatalf("claim: %s %v", outcome, err)
		}
		draft, err := runDraft(RunCampaignID(r.ID, tick), def, tick)
		if err != nil {
			t.Fatal(err)
		}
		c, err := f.importer.Import(ctx, draft, strings.NewReader(recurringCSV)) // what the dead attempt did
		if err != nil {
			t.Fatal(err)
		}
		if err := f.runner.ProcessTask(ctx, runTask(r.ID, tick)); err != nil {
			t.Fatal(err)
		}
		if n := len(f.campaignsOf(r)[runName(def, tick)]); n != 1 {
			t.Errorf("%d campaigns; want the dead attempt's alone", n)
		}
		var found bool
		for _, run := range f.runs(r.ID) {
			if run.Tick.Unix() == tick {
				found = run.State == RunCreated && run.CampaignID == c.ID
			}
		}
		if !found {
			t.Errorf("run of tick %d not recorded with campaign %s: %+v", tick, c.ID, f.runs(r.ID))
		}
	})

	t.Run("a malformed task is not retried", func(t *testing.T) {
		err := f.runner.ProcessTask(ctx, asynq.NewTask(TypeRun, []byte("{")))
		if !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("err = %v", err)
		}
	})
}

// TestRecurringSchedulerEnqueuesOneTaskPerTick: the scheduler's claim is
// what keeps a tick from being enqueued twice (the run record is a second
// guard, not the only one).
func TestRecurringSchedulerEnqueuesOneTaskPerTick(t *testing.T) {
	f := newRecurringFixture(t)
	ctx := context.Background()
	r := f.create("* * * * * *")
	schedulers := []*Scheduler{f.schedulerOnOwnClient(), f.schedulerOnOwnClient(), f.schedulerOnOwnClient()}
	now := time.Now().Add(2 * time.Second)
	for _, s := range schedulers {
		s.now = func() time.Time { return now }
	}
	var wg sync.WaitGroup
	counts := make([]int, len(schedulers))
	for i, s := range schedulers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 20; k++ {
				n, err := s.Pass(ctx)
				if err != nil {
					t.Error(err)
				}
				counts[i] += n
			}
		}()
	}
	wg.Wait()
	if total := counts[0] + counts[1] + counts[2]; total != 1 {
		t.Errorf("the schedulers started %v runs for one due tick; want 1 in all", counts)
	}
	pending, err := f.inspector.ListPendingTasks(campaign.QueueControl)
	if err != nil {
		t.Fatal(err)
	}
	want := runTaskID(r.ID, now.Unix())
	if len(pending) != 1 || pending[0].ID != want {
		ids := []string{}
		for _, p := range pending {
			ids = append(ids, p.ID)
		}
		t.Errorf("pending tasks %v; want [%s]", ids, want)
	}
	if got, _ := f.rs.Get(ctx, r.ID); got.LastRunAt == nil || got.LastRunAt.Unix() != now.Unix() {
		t.Errorf("last_run_at %v; want %s", got.LastRunAt, fmt.Sprint(now.Unix()))
	}
}
