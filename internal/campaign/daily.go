package campaign

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/quota"
)

// Account health and daily limits in the send path. Health: every message
// the provider takes or refuses is noted in its account's health
// (quota.Health), and so is a sent message that the status polls find
// failed (Tracker); the verdict slows or pauses the account.
//
// Daily caps and warm-up ramps: after the credits and
// before the pacing slot, a send reserves one of its account's messages of
// the day (quota.DailyLimits). An account whose allowance is spent is given
// up for the day: the credits go back and the task runs again
// at once, when pickAccount passes the spent account over for another of
// the campaign's; with none left the recipient waits until tomorrow (UTC),
// a wait that spends no retry.

// reserveDay reserves one of the account's messages of today.
func (h *SendHandler) reserveDay(ctx context.Context, run *attemptRun, credits *quota.Reservation) error {
	if h.daily == nil || run.account == "" {
		return nil
	}
	day, err := h.daily.Reserve(ctx, run.account)
	if err == nil {
		run.day = day
		return nil
	}
	h.settleCredits(credits, false, run.log)
	if rerr := h.releaseClaim(ctx, run, "the sender account has sent today's allowance"); rerr != nil {
		return rerr
	}
	if errors.Is(err, quota.ErrAllowanceSpent) {
		return &WaitError{Delay: 10 * time.Millisecond, Reason: ReasonWaitingForAccount + ": " + run.account + " has sent today's allowance"}
	}
	return err
}

// releaseDay gives today's message back: the send provably did not go out.
func (h *SendHandler) releaseDay(ctx context.Context, run *attemptRun) {
	if run.day == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := run.day.Release(ctx); err != nil {
		run.log.Warn("give back one of the account's messages of today", zap.Error(err))
	}
	run.day = nil
}

// allSpentToday reports whether every account of the campaign has sent
// today's allowance, as far as this process knows.
func (h *SendHandler) allSpentToday(spec *sendSpec) bool {
	if h.daily == nil || len(spec.accounts) == 0 {
		return false
	}
	for _, a := range spec.accounts {
		if !h.daily.SpentToday(a) {
			return false
		}
	}
	return true
}

// noteHealth records an outcome of the attempt's message in its account's
// health. A failure costs the account one outcome in its window, not the
// message: it is logged.
func (h *SendHandler) noteHealth(ctx context.Context, run *attemptRun, o quota.Outcome) {
	if h.health == nil {
		return
	}
	if err := h.health.Note(context.WithoutCancel(ctx), run.account, o); err != nil {
		run.log.Warn("note the account's health", zap.String("outcome", string(o)), zap.Error(err))
	}
}
