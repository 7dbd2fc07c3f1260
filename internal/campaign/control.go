package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// ControlHandler runs the tasks that put a campaign's recipients on the
// queue: TypeStart (a scheduled campaign at send_at, a resumed one at once)
// and TypeRetry (recipients requeued by retry-failed).
type ControlHandler struct {
	store   *Store
	queue   *Enqueuer
	service *Service
	log     *zap.Logger
}

// NewControlHandler returns the handler of TypeStart and TypeRetry tasks.
func NewControlHandler(store *Store, queue *Enqueuer, log *zap.Logger) *ControlHandler {
	return &ControlHandler{store: store, queue: queue, service: NewService(store, queue), log: log}
}

// ProcessTask implements asynq.Handler. Replaying either task is harmless:
// asynq's task ids make enqueueing a recipient twice in one round a no-op.
func (h *ControlHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p startPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Campaign == "" {
		return fmt.Errorf("malformed %s task %q: %w", t.Type(), t.Payload(), asynq.SkipRetry)
	}
	if t.Type() == TypeRetry {
		return h.retry(ctx, p.Campaign)
	}
	outcome, round, err := h.store.start(ctx, p.Campaign, p.Version, time.Now())
	if err != nil {
		return err
	}
	if !outcome.enqueues() {
		return nil // outdated, cancelled, paused, gone, or moved to a later send_at
	}
	c, err := h.store.Get(ctx, p.Campaign)
	if err != nil {
		return err
	}
	n, err := h.service.enqueueQueued(ctx, c.ID, c.Accounts, round)
	if err != nil {
		return err
	}
	LogLifecycle(h.log, "started", c, zap.Int64("round", round), zap.Int64("enqueued", n))
	return nil
}

// retry enqueues, in the campaign's current round, the recipients a
// retry-failed put back in the queue, a batch at a time; the list shrinks
// only after a batch is enqueued, so a crash repeats at most one batch.
func (h *ControlHandler) retry(ctx context.Context, id string) error {
	c, err := h.store.Get(ctx, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	gate, err := h.store.gate(ctx, id)
	if err != nil {
		return err
	}
	for {
		seqs, listed, err := h.store.retryBatch(ctx, id, batchRows)
		if err != nil || listed == 0 {
			return err
		}
		latest, err := h.queue.enqueueBatch(ctx, sendBatch{campaign: id, accounts: c.Accounts, round: gate.round, seqs: seqs, parallel: 16})
		if err != nil {
			return err
		}
		if err := h.store.notePlanEnd(ctx, id, latest); err != nil {
			return err
		}
		if err := h.store.trimRetry(ctx, id, listed); err != nil {
			return err
		}
	}
}
