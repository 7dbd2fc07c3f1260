package recurring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/templating"
	"go.uber.org/zap"
)

// Runner is the asynq handler of TypeRun: it imports the
// saved contacts as a new campaign, once per tick however often the task
// runs.
type Runner struct {
	rs        *Store
	im        *campaign.Importer
	campaigns *campaign.Store // where a run's campaign is looked up by its id
	log       *zap.Logger
}

// NewRunner returns the handler of run tasks; im imports the runs into
// campaigns.
func NewRunner(rs *Store, im *campaign.Importer, campaigns *campaign.Store, log *zap.Logger) *Runner {
	return &Runner{rs: rs, im: im, campaigns: campaigns, log: log}
}

// RunCampaignID is the id of the campaign the run of definition id at tick
// (unix s) creates: derived from both, so that an attempt that could not
// record its campaign, or the attempt taking over from one that died,
// finds it by id.
func RunCampaignID(id string, tick int64) string {
	return id + "-" + strconv.FormatInt(tick, 36)
}

// runCampaign answers the campaign of a run, if it was created ("" if not).
func (h *Runner) runCampaign(ctx context.Context, p runPayload) (string, error) {
	id := RunCampaignID(p.ID, p.Tick)
	_, err := h.campaigns.Get(ctx, id)
	switch {
	case errors.Is(err, campaign.ErrNotFound):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("look for the campaign of recurring run %d of %s: %w", p.Tick, p.ID, err)
	}
	return id, nil
}

// ProcessTask implements asynq.Handler.
func (h *Runner) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p runPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.ID == "" || p.Tick <= 0 {
		return fmt.Errorf("malformed recurring run task %q: %w", t.Payload(), asynq.SkipRetry)
	}
	log := h.log.With(zap.String("recurring", p.ID), zap.Int64("tick", p.Tick))
	now := h.rs.now()
	mine := runRecord{
		State:   RunImporting,
		At:      campaign.UnixMilli(now),
		Attempt: campaign.NewAttemptID(),
		Lease:   campaign.UnixMilli(now.Add(recurringRunLease)),
	}
	outcome, existing, err := h.rs.claimRun(ctx, p.ID, p.Tick, mine)
	if err != nil {
		return err
	}
	switch outcome {
	case runClaimed:
		return h.run(ctx, log, p, mine)
	case runLapsed:
		return h.takeOver(ctx, log, p, existing, mine)
	case runRecorded:
		if existing.State == RunImporting {
			// Another attempt is importing it right now (asynq handed a
			// task on whose worker looked dead). Look again when its lease
			// would have run out: if it died, this task takes over.
			lease, _ := strconv.ParseInt(existing.Lease, 10, 64)
			return &campaign.WaitError{Delay: max(time.Until(time.UnixMilli(lease)), 0) + time.Second, Reason: "another attempt is importing this run"}
		}
		log.Info("recurring run already recorded; nothing to do", zap.String("state", string(existing.State)), zap.String("campaign", existing.Campaign))
		return nil
	case runStopped:
		log.Info("recurring campaign stopped before this run began; nothing started")
		return nil
	case runGone:
		log.Warn("recurring run of a recurring campaign that does not exist")
		return nil
	case runExpired:
		log.Warn("recurring run older than every kept run record; not started, as it cannot be told whether it ran")
		return nil
	}
	return fmt.Errorf("recurring run: unexpected claim outcome %q", outcome)
}

// run imports the run attempt has claimed and records what came of it.
func (h *Runner) run(ctx context.Context, log *zap.Logger, p runPayload, attempt runRecord) error {
	def, source, err := h.rs.runDefinition(ctx, p.ID)
	if err != nil {
		return h.giveBack(ctx, p, attempt, err)
	}
	draft, err := runDraft(RunCampaignID(p.ID, p.Tick), def, p.Tick)
	if err != nil {
		return h.record(ctx, log, p, attempt, runRecord{State: RunFailed, Reason: err.Error()})
	}

	stopRenewing := h.keepLease(ctx, log, p, attempt.Attempt)
	c, err := h.im.Import(ctx, draft, strings.NewReader(source))
	stopRenewing()

	var input *campaign.InputError
	var aborted *campaign.AbortedImportError
	switch {
	case err == nil:
		log.Info("recurring run imported", zap.String("campaign", c.ID), zap.Int64("recipients", c.Counts.Total))
		return h.record(ctx, log, p, attempt, runRecord{State: RunCreated, Campaign: c.ID})
	case errors.As(err, &aborted):
		// Its campaign exists, cancelled: the run happened and must not be
		// imported again (those it reached got their message).
		return h.record(ctx, log, p, attempt, runRecord{State: RunCreated, Campaign: aborted.CampaignID, Reason: aborted.Error()})
	case errors.As(err, &input):
		// The same file gives the same answer on a retry: record why.
		return h.record(ctx, log, p, attempt, runRecord{State: RunFailed, Reason: input.Error()})
	}
	// Import failed without saying whether it created a campaign (Redis
	// failing before or after the rows were written): look for it before
	// letting a retry import again, as a second import would message the
	// whole list twice.
	lookup := context.WithoutCancel(ctx)
	id, ferr := h.runCampaign(lookup, p)
	if ferr != nil {
		// Unknown: leave the record importing; its lease lapses and the
		// retry's takeOver looks again.
		return fmt.Errorf("recurring run %d of %s: %w", p.Tick, p.ID, errors.Join(err, ferr))
	}
	if id != "" {
		return h.record(lookup, log, p, attempt, runRecord{State: RunCreated, Campaign: id, Reason: "imported; recording it failed first: " + err.Error()})
	}
	return h.giveBack(ctx, p, attempt, fmt.Errorf("recurring run %d of %s: %w", p.Tick, p.ID, err))
}

// takeOver continues a run whose importing attempt stopped renewing its
// lease (its worker died): if that attempt created the campaign, the run is
// recorded with it; if not, this attempt imports.
func (h *Runner) takeOver(ctx context.Context, log *zap.Logger, p runPayload, lapsed, mine runRecord) error {
	id, err := h.runCampaign(ctx, p)
	if err != nil {
		return err
	}
	if id != "" {
		log.Warn("the attempt importing a recurring run stopped; its campaign is recorded, not imported again (it may hold only part of the contacts)", zap.String("campaign", id))
		return h.record(ctx, log, p, lapsed, runRecord{State: RunCreated, Campaign: id, Reason: "the worker importing it stopped before it finished; the campaign may hold only part of the contacts"})
	}
	ok, err := h.rs.updateRun(ctx, p.ID, p.Tick, lapsed.Attempt, &mine)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("recurring run %d of %s changed while taking it over; retrying", p.Tick, p.ID)
	}
	log.Warn("the attempt importing a recurring run stopped before it created a campaign; importing it now")
	return h.run(ctx, log, p, mine)
}

// record finishes attempt's run with rec.
func (h *Runner) record(ctx context.Context, log *zap.Logger, p runPayload, attempt, rec runRecord) error {
	rec.At = campaign.UnixMilli(h.rs.now())
	ok, err := h.rs.updateRun(context.WithoutCancel(ctx), p.ID, p.Tick, attempt.Attempt, &rec)
	if err != nil {
		return err
	}
	if !ok {
		log.Error("recurring run record was taken over while this attempt imported", zap.String("state", string(rec.State)), zap.String("campaign", rec.Campaign))
	}
	if rec.State == RunFailed {
		log.Error("recurring run failed", zap.String("reason", rec.Reason))
	}
	return nil
}

// giveBack drops attempt's record, so that asynq's retry of cause claims the
// run afresh.
func (h *Runner) giveBack(ctx context.Context, p runPayload, attempt runRecord, cause error) error {
	if _, err := h.rs.updateRun(context.WithoutCancel(ctx), p.ID, p.Tick, attempt.Attempt, nil); err != nil {
		return errors.Join(cause, err)
	}
	if errors.Is(cause, ErrNotFound) {
		return fmt.Errorf("recurring run %d of %s: %w", p.Tick, p.ID, errors.Join(cause, asynq.SkipRetry))
	}
	return cause
}

// keepLease renews attempt's lease while an import runs, so that a live
// import is never taken over; the returned func stops it.
func (h *Runner) keepLease(ctx context.Context, log *zap.Logger, p runPayload, attempt string) func() {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ticker := time.NewTicker(recurringRunLease / 3)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				if err := h.rs.renewRun(ctx, p.ID, p.Tick, attempt); err != nil && ctx.Err() == nil {
					log.Warn("renew the lease of a recurring run", zap.Error(err))
				}
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// runDraft is the campaign draft of one run, whose campaign gets id.
func runDraft(id string, def map[string]string, tick int64) (campaign.Draft, error) {
	tmpl, err := templating.Parse("template", def[rfTemplate])
	if err != nil {
		return campaign.Draft{}, fmt.Errorf("the saved template no longer parses: %w", err)
	}
	d := campaign.Draft{
		ID:           id,
		Name:         runName(def, tick),
		Template:     tmpl,
		TemplateName: def[rfTemplateName],
		Label:        def[rfLabel],
		FileUID:      def[rfFileUID],
		Window:       campaign.DecodeWindow(def[rfWindow]),
		// A list whose every contact opted out is a run that sends to
		// nobody, not a failure at every tick.
		EmptyWhenSuppressed: true,
	}
	_ = json.Unmarshal([]byte(def[rfAccounts]), &d.Accounts)
	d.TypingSimulation, d.PresenceSimulation = savedFlag(def[rfTyping]), savedFlag(def[rfPresence])
	return d, nil
}

// savedFlag reads a simulation flag the definition saved: off, or nil for
// on (the default) and absent, so that a definition made for a gateway
// still runs after a move to a provider without simulation, unless it
// turned simulation off.
func savedFlag(s string) *bool {
	if v, err := strconv.ParseBool(s); err == nil && !v {
		return &v
	}
	return nil
}

// runName names a run's campaign: the definition's name and the
// tick in the definition's zone.
func runName(def map[string]string, tick int64) string {
	loc, err := time.LoadLocation(def[rfCronZone])
	if err != nil {
		loc = time.UTC
	}
	return def[rfName] + " · " + time.Unix(tick, 0).In(loc).Format(recurringRunNameLayout)
}
