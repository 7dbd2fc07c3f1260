package campaign

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// Defaults of the RetentionKeeper.
const (
	DefaultRetention      = 90 * 24 * time.Hour
	DefaultRetentionEvery = time.Minute
	// DefaultRetentionGrace is how long after a campaign ended its keys
	// start to expire and its message uids leave the webhook index: a
	// message:sent:new webhook for its last sends still finds them.
	DefaultRetentionGrace = time.Hour
)

// RetentionKeeper ends the life of finished campaigns: a completed or
// cancelled campaign's keys (the campaign, its rows, states, histories,
// rejected rows) expire CAMPAIGN_RETENTION after it ended, so its report
// can be downloaded until then, and the indexes forget it once it is gone.
// It also logs each campaign's completion (which happens inside a script)
// and its deletion.
//
// Every worker runs one; a lock in Redis lets one of them make each pass,
// and every step of a pass may be repeated without harm.
type RetentionKeeper struct {
	store     *Store
	retention time.Duration
	every     time.Duration
	grace     time.Duration
	log       *zap.Logger
	now       func() time.Time
}

// NewRetentionKeeper keeps ended campaigns for retention (0:
// DefaultRetention), looking every interval (0: DefaultRetentionEvery),
// and starts the expiry grace after a campaign ended (negative: 0; 0:
// DefaultRetentionGrace).
func NewRetentionKeeper(store *Store, retention, every, grace time.Duration, log *zap.Logger) *RetentionKeeper {
	if retention <= 0 {
		retention = DefaultRetention
	}
	if every <= 0 {
		every = DefaultRetentionEvery
	}
	if grace == 0 {
		grace = DefaultRetentionGrace
	}
	return &RetentionKeeper{store: store, retention: retention, every: every, grace: max(grace, 0), log: log, now: time.Now}
}

// Run makes a pass every interval until ctx ends.
func (k *RetentionKeeper) Run(ctx context.Context) {
	runTurns(ctx, k.store, retentionLock, k.every, func(ctx context.Context) {
		if err := k.Pass(ctx); err != nil && ctx.Err() == nil {
			k.log.Warn("retention pass", zap.Error(err))
		}
	})
}

// Pass moves ended campaigns off the active index (logging completions),
// sets the expiry of those that ended more than the grace ago, and
// forgets those whose keys have expired.
func (k *RetentionKeeper) Pass(ctx context.Context) error {
	if err := k.collectEnded(ctx); err != nil {
		return err
	}
	if err := k.expireEnded(ctx); err != nil {
		return err
	}
	return k.forgetExpired(ctx)
}

func (k *RetentionKeeper) collectEnded(ctx context.Context) error {
	active, err := k.store.campaignStates(ctx, activeIndex)
	if err != nil {
		return err
	}
	for _, c := range active {
		switch {
		case !c.exists:
			err = k.store.dropFromIndexes(ctx, c.id)
		case c.status == StatusCompleted || c.status == StatusCancelled:
			if c.status == StatusCompleted {
				LogLifecycle(k.log, "completed", c.campaign) // cancels are logged where they are asked for
			}
			err = k.store.moveToEnded(ctx, c.id)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (k *RetentionKeeper) expireEnded(ctx context.Context) error {
	ended, err := k.store.campaignStates(ctx, endedIndex)
	if err != nil {
		return err
	}
	now := k.now()
	for _, c := range ended {
		switch {
		case !c.exists:
			err = k.store.dropFromIndexes(ctx, c.id)
		case c.status != StatusCompleted && c.status != StatusCancelled:
			err = k.store.keepCampaign(ctx, c.id) // running again
		default:
			finished := c.finished
			if finished.IsZero() {
				finished = now
			}
			if now.Sub(finished) >= k.grace {
				_, err = k.store.expireCampaign(ctx, c.id, finished.Add(k.retention))
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (k *RetentionKeeper) forgetExpired(ctx context.Context) error {
	ids, err := k.store.expiredCampaigns(ctx, k.now())
	if err != nil {
		return err
	}
	for _, id := range ids {
		there, err := k.store.exists(ctx, id)
		if err != nil {
			return err
		}
		if there {
			continue // Redis has not expired it yet: the next pass looks again
		}
		if err := k.store.dropFromIndexes(ctx, id); err != nil {
			return err
		}
		LogLifecycle(k.log, "deleted", &Campaign{ID: id}, zap.String("reason", "its retention ended"))
	}
	return nil
}
