package campaign

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
)

// onSendError records what a failed provider call means for the recipient,
// the account and the campaign: DESIGN.md's error table.
func (h *SendHandler) onSendError(ctx context.Context, run *attemptRun, msg sender.Message, sendErr error, res *quota.Reservation) error {
	if errors.Is(sendErr, errOptedOutAtClaim) {
		return h.skipOptedOut(ctx, run, res)
	}
	if notTaken, ok := errors.AsType[*claimNotTaken](sendErr); ok {
		h.settleCredits(res, false, run.log)
		h.releaseDay(ctx, run)
		h.releaseCap(ctx, run)
		return h.claimRefused(ctx, run, recipientPhone(msg), notTaken.res)
	}
	var pe *sender.Error
	if !errors.As(sendErr, &pe) {
		pe = &sender.Error{Kind: sender.Transient, Message: sendErr.Error(), Err: sendErr}
	}
	run.log = run.log.With(zap.String("kind", pe.Kind.String()), zap.Int("http_status", pe.HTTPStatus), zap.String("code", pe.Code))
	// Only a message that may have gone out keeps its credits spent, and
	// its place in the account's day.
	h.settleCredits(res, pe.Kind == sender.Unconfirmed, run.log)
	if pe.Kind != sender.Unconfirmed {
		h.releaseDay(ctx, run)
	}

	switch {
	case pe.Kind == sender.Unconfirmed:
		return h.markUnconfirmed(ctx, run, recipientPhone(msg), pe, run.dispatched)
	case pe.Kind == sender.Invalid && run.account != "" && onlyField(pe, "whatsapp_account_phone"):
		return h.restAccount(ctx, run, pe)
	case pe.Kind == sender.Invalid || pe.Kind == sender.NotFound:
		h.noteHealth(ctx, run, quota.OutcomeRefused)
		return h.finish(ctx, run, record{State: StateFailed, Reason: "provider rejected the message: " + pe.Reason(), Account: run.account}, 0)
	case pe.Kind == sender.AuthFailed || pe.Kind == sender.Forbidden:
		return h.pauseCampaign(ctx, run, pe)
	case pe.Kind == sender.QuotaExceeded:
		return h.waitForQuota(ctx, run, pe)
	case pe.Kind == sender.CallsExhausted:
		// Not a credit shortage: the ledger is left alone.
		if err := h.releaseClaim(ctx, run, pe.Reason()); err != nil {
			return err
		}
		h.store.setReason(ctx, run.Campaign, ReasonWaitingForAPICalls)
		return waitForAPICalls(h.apiCallsWait)
	case pe.Kind == sender.RateLimited:
		if err := h.releaseClaim(ctx, run, pe.Reason()); err != nil {
			return err
		}
		delay := pe.RetryAfter
		if delay <= 0 {
			delay = time.Second + rand.N(2*time.Second)
		}
		return &WaitError{Delay: delay, Reason: "provider rate limit", NotEarlier: true}
	default: // Transient: definitely not sent
		return h.retryLater(ctx, run, pe, sendErr)
	}
}

// markUnconfirmed records a send whose answer was lost after its request
// was written: it may have reached the provider, so it is not sent again
// here; reconciliation looks it up at the provider after RECONCILE_AFTER.
func (h *SendHandler) markUnconfirmed(ctx context.Context, run *attemptRun, phone string, pe *sender.Error, dispatched time.Time) error {
	if dispatched.IsZero() {
		dispatched = h.now() // a provider that never called the hook: count from now
	}
	reason := "the provider's answer was lost (" + pe.Reason() + "); checking with the provider before anything is sent again"
	run.log.Warn("send unconfirmed; reconciling, not resending", zap.Error(pe))
	rec := record{State: StateUnconfirmed, Reason: reason, Account: run.account, Owner: run.id, Dispatched: UnixMilli(dispatched)}
	if err := h.finish(ctx, run, rec, 0); err != nil {
		return err
	}
	h.indexUnconfirmed(ctx, run, phone)
	return h.reconcileLater(ctx, run, dispatched)
}

// reconcileLater enqueues the first lookup of a send that may have gone out
// at dispatched, RECONCILE_AFTER later; at once for a provider that cannot
// look messages up, whose reconciliation only records that (unknown) and
// need not hold the campaign open meanwhile.
func (h *SendHandler) reconcileLater(ctx context.Context, run *attemptRun, dispatched time.Time) error {
	p := reconcilePayload{Campaign: run.Campaign, Seq: run.Seq, Dispatched: dispatched.UnixMilli()}
	at := dispatched.Add(h.reconcile.After)
	if !h.canLookUp {
		at = h.now()
	}
	return h.queue.enqueueReconcile(context.WithoutCancel(ctx), p, at)
}

// restAccount handles a refusal of the sender account rather than of the
// recipient (disconnected, or not in the workspace): the account rests and
// the recipient goes through another.
func (h *SendHandler) restAccount(ctx context.Context, run *attemptRun, pe *sender.Error) error {
	if err := h.releaseClaim(ctx, run, pe.Reason()); err != nil {
		return err
	}
	if err := h.accounts.MarkDisconnected(context.WithoutCancel(ctx), run.account, pe.Reason()); err != nil {
		return err
	}
	run.log.Warn("sender account refused by the provider; resting it", zap.String("account", run.account), zap.String("reason", pe.Reason()))
	return &WaitError{Delay: 10 * time.Millisecond, Reason: "sender account refused"}
}

// pauseCampaign handles an auth failure or a refused plan: nothing will go
// through until someone fixes the token or the plan, so the campaign pauses
// once instead of failing every recipient or storming retries.
func (h *SendHandler) pauseCampaign(ctx context.Context, run *attemptRun, pe *sender.Error) error {
	if err := h.releaseClaim(ctx, run, pe.Reason()); err != nil {
		return err
	}
	reason := reasonAuthFailed + ": " + pe.Reason()
	if pe.Kind == sender.Forbidden {
		reason = "provider refused: " + pe.Reason()
	}
	err := h.store.Pause(context.WithoutCancel(ctx), run.Campaign, reason, h.now())
	var te *TransitionError
	switch {
	case err == nil:
		run.log.Error("campaign paused", zap.String("reason", reason))
	case errors.As(err, &te):
		// Paused (or ended) already, by another send that met the same answer.
	default:
		return err
	}
	return nil
}

// waitForQuota handles the provider's quota_exceeded: the ledger was wrong,
// so it is marked exhausted and resynced, and the recipient waits.
func (h *SendHandler) waitForQuota(ctx context.Context, run *attemptRun, pe *sender.Error) error {
	if err := h.releaseClaim(ctx, run, pe.Reason()); err != nil {
		return err
	}
	if err := h.ledger.Exhausted(context.WithoutCancel(ctx)); err != nil {
		run.log.Error("mark the ledger exhausted", zap.Error(err))
	}
	if h.syncer != nil {
		if err := h.syncer.SyncNow(context.WithoutCancel(ctx)); err != nil {
			run.log.Warn("quota resync after quota_exceeded", zap.Error(err))
		}
	}
	h.store.setReason(ctx, run.Campaign, ReasonWaitingForQuota)
	return &WaitError{Delay: h.quotaWait, Reason: ReasonWaitingForQuota}
}

// apiCallsWait is how long work waits when the workspace's API calls are
// spent: they come back with the plan's renewal or a top-up, which nothing
// announces, so it looks again every few minutes (each look costs a refused
// request, not a call).
const apiCallsWait = 5 * time.Minute

// waitForAPICalls is the wait of any task that met an exhausted API-call
// quota, about d, spread by up to a fifth so that the tasks do not all look
// again at once.
func waitForAPICalls(d time.Duration) *WaitError {
	return &WaitError{Delay: d + rand.N(d/5+1), Reason: ReasonWaitingForAPICalls}
}

// retryLater handles an error that provably sent nothing: the claim is
// given back and asynq retries with backoff, until the retries run out.
func (h *SendHandler) retryLater(ctx context.Context, run *attemptRun, pe *sender.Error, sendErr error) error {
	if err := h.releaseClaim(ctx, run, pe.Reason()); err != nil {
		return err
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if ok && retried >= maxRetry {
		// The release above put it back to queued; it fails from there.
		return h.finishFrom(ctx, run, StateQueued, record{State: StateFailed, Reason: fmt.Sprintf("provider unavailable after %d attempts: %s", retried+1, pe.Reason()), Account: run.account}, 0, time.Time{})
	}
	return fmt.Errorf("send recipient %d of campaign %s: %w", run.Seq, run.Campaign, sendErr)
}

func onlyField(pe *sender.Error, field string) bool {
	if len(pe.Fields) == 0 {
		return false
	}
	for _, f := range pe.Fields {
		if !slices.Contains(f.Fields, field) {
			return false
		}
	}
	return true
}

// finish records the outcome of an attempt: of its claim once it took one,
// else of the queued recipient (skipped for its audience, a message that
// cannot be rendered).
func (h *SendHandler) finish(ctx context.Context, run *attemptRun, rec record, credits int) error {
	return h.finishSent(ctx, run, rec, credits, time.Time{})
}

// finishSent is finish with, for a message recorded sent, when its first
// status poll is due (zero: none).
func (h *SendHandler) finishSent(ctx context.Context, run *attemptRun, rec record, credits int, pollAt time.Time) error {
	if !run.claimed {
		return h.finishFrom(ctx, run, StateQueued, rec, credits, pollAt)
	}
	return h.finishFrom(ctx, run, StateSending, rec, credits, pollAt)
}

// finishFrom records an outcome of a recipient seen in state from; pollAt
// (non-zero on a send recorded sent) is when its first status poll is due,
// entered in the campaign's poll set by the same script.
func (h *SendHandler) finishFrom(ctx context.Context, run *attemptRun, from State, rec record, credits int, pollAt time.Time) error {
	// The outcome must be written even when the task's context is ending
	// (shutdown): a message that went out and is not recorded would be
	// reconciled by the next attempt rather than known.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if rec.State != StateSent && rec.State != StateUnconfirmed {
		h.releaseCap(ctx, run) // nothing went out
	}
	p := settleParams{Campaign: run.Campaign, Seq: run.Seq, From: from, Record: rec, Credits: credits, Detail: rec.Reason, PollAt: pollAt,
		Created: run.created, Unwritten: run.unwritten}
	if from == StateSending {
		p.Attempt = run.id
	}
	if rec.State == StateSent {
		p.Detail = rec.UID
	}
	var err error
	for try := 1; try <= 3; try++ {
		p.Now = h.now()
		var ok bool
		if ok, err = h.store.settle(ctx, p); err == nil {
			if !ok {
				run.log.Warn("recipient was settled by someone else meanwhile", zap.String("state", string(rec.State)))
			}
			return nil
		}
		time.Sleep(time.Duration(try) * 200 * time.Millisecond) // a Redis failover takes a moment
	}
	run.log.Error("could not record the outcome; the task runs again", zap.String("state", string(rec.State)), zap.String("message_uid", rec.UID), zap.Error(err))
	// The task must run again, or nothing would ever settle the claim: the
	// next run waits for the claim's lease, then reconciles (the claim is
	// the dispatch mark: the message may have gone out).
	return err
}

// releaseClaim gives the claim back: the provider call provably did not
// happen. why goes into the recipient's history.
func (h *SendHandler) releaseClaim(ctx context.Context, run *attemptRun, why string) error {
	h.releaseCap(ctx, run)
	if !run.claimed {
		return nil // still queued: the claim is taken only as the request is written
	}
	run.claimed = false
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	released, err := h.store.settle(ctx, settleParams{Campaign: run.Campaign, Seq: run.Seq, From: StateSending, Created: run.created,
		Attempt: run.id, Record: record{State: StateQueued}, Detail: why, Now: h.now()})
	if err != nil {
		run.log.Error("could not release the claim; the next attempt takes it over once it lapses", zap.Error(err))
		return err
	}
	if !released {
		return nil
	}
	// A pause and resume while this attempt held the claim: the resume's
	// start task saw the recipient "sending" and left it out of the new
	// round, and this task, of the old round, will find itself outdated.
	// Without a task in the current round the recipient would stay queued.
	if err := h.service.requeueInCurrentRound(ctx, run.Campaign, run.Seq, run.Round, ""); err != nil {
		run.log.Error("re-enqueue a released recipient in the current round", zap.Error(err))
		return err
	}
	return nil
}

// settleCredits commits a reservation (the provider took, or may have
// taken, the credits) or releases it.
func (h *SendHandler) settleCredits(r *quota.Reservation, spent bool, log *zap.Logger) {
	if r == nil {
		return // an unmetered provider's send reserved nothing
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	if spent {
		err = r.Commit(ctx)
	} else {
		err = r.Release(ctx)
	}
	if err != nil {
		log.Error("settle credits", zap.Bool("spent", spent), zap.Error(err))
	}
}
