package campaign

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// Defaults of the UploadJanitor: how often it looks, and how long an upload
// may make no progress before its campaign is ended.
const (
	DefaultJanitorEvery = 15 * time.Second
	DefaultUploadStall  = time.Minute
)

// UploadJanitor ends campaigns whose creating upload stopped arriving and
// that nobody could cancel: a request that failed while Redis was down, an
// API or worker process that died mid-import. Such a campaign is still held
// or importing, and its progress (the time its import last stored a batch)
// stopped; the janitor cancels it with the reason. Sequence steps, which
// keep importing on purpose, are left alone.
//
// Every worker runs one. A lock lets one of them make each pass, and a pass
// only cancels, which is idempotent, so two that overlap do no harm.
type UploadJanitor struct {
	store      *Store
	every      time.Duration
	stallAfter time.Duration
	log        *zap.Logger
	now        func() time.Time
}

// NewUploadJanitor returns a janitor that looks every interval (0:
// DefaultJanitorEvery) and ends uploads without progress for stallAfter (0:
// DefaultUploadStall).
func NewUploadJanitor(store *Store, every, stallAfter time.Duration, log *zap.Logger) *UploadJanitor {
	if every <= 0 {
		every = DefaultJanitorEvery
	}
	if stallAfter <= 0 {
		stallAfter = DefaultUploadStall
	}
	return &UploadJanitor{store: store, every: every, stallAfter: stallAfter, log: log, now: time.Now}
}

// Run makes a pass every interval until ctx ends.
func (j *UploadJanitor) Run(ctx context.Context) {
	runTurns(ctx, j.store, janitorLock, j.every, func(ctx context.Context) {
		if n, err := j.Sweep(ctx); err != nil {
			j.log.Warn("upload janitor pass failed", zap.Error(err))
		} else if n > 0 {
			j.log.Info("upload janitor ended stalled uploads", zap.Int("campaigns", n))
		}
	})
}

// Sweep makes one pass and answers how many campaigns it ended.
func (j *UploadJanitor) Sweep(ctx context.Context) (int, error) {
	ids, err := j.candidates(ctx)
	if err != nil {
		return 0, err
	}
	states, err := j.store.uploadStates(ctx, ids)
	if err != nil {
		return 0, err
	}
	ended := 0
	var firstErr error
	for i, id := range ids {
		done, err := j.check(ctx, id, states[i])
		if done {
			ended++
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return ended, firstErr
}

// candidates are the campaigns listed as uploading, and those not ended (an
// upload may have been cut off before it was listed, or by a version that
// did not list it).
func (j *UploadJanitor) candidates(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	var ids []string
	lists, err := j.store.uploadingAndActive(ctx)
	for _, members := range lists {
		for _, id := range members {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids, err
}

// check ends campaign id's upload when it has stalled, and drops it from
// the uploading list when its upload is over; v holds uploadStateFields.
func (j *UploadJanitor) check(ctx context.Context, id string, v []any) (bool, error) {
	field := func(i int) string { s, _ := v[i].(string); return s }
	status, sequence, held, importing := field(0), field(1), field(2) == "1", field(3) == "1"
	if status == "" || sequence != "" || (!held && !importing) {
		// Gone, a sequence step (importing for ever, on purpose), or done.
		return false, j.store.dropUploading(ctx, id)
	}
	progress, _ := strconv.ParseInt(field(4), 10, 64)
	if progress == 0 {
		progress, _ = strconv.ParseInt(field(5), 10, 64)
	}
	last := time.UnixMilli(progress).UTC()
	now := j.now()
	if now.Sub(last) < j.stallAfter {
		return false, nil // still arriving
	}
	reason := fmt.Sprintf("the upload stopped arriving at %s; nothing was sent", last.Format(time.RFC3339))
	if !held {
		reason = fmt.Sprintf("the import stopped at %s before every contact was read", last.Format(time.RFC3339))
	}
	// Cancel also finishes the sweep of a campaign that was cancelled but
	// whose upload could not be ended.
	_, err := j.store.Cancel(ctx, id, reason, now)
	var te *TransitionError
	if err != nil && !errors.Is(err, ErrNotFound) && !(errors.As(err, &te) && te.Status == StatusCompleted) {
		return false, err
	}
	if err := j.store.endUpload(ctx, id, now); err != nil {
		return false, err
	}
	j.log.Warn("ended a campaign whose upload stopped", zap.String("campaign", id), zap.String("reason", reason))
	return status != string(StatusCancelled), nil
}
