package campaign

import (
	"context"
	"net/http/httptrace"
	"time"

	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/metrics"
	"github.com/wacampaign/wacampaign/internal/sender"
)

// The send path's pacing: the account's slot taken right before the call,
// short waits slept off and long ones booked on the account's timeline, and
// a send that reached the wire late moving the account's next slot.

// waitForSlot takes the account's pacing slot, sleeping through short waits
// (first until the slot the task was booked, then until the account's) and
// saying whether it slept. A longer wait sends the task back to the queue
// (waitLonger).
func (h *SendHandler) waitForSlot(ctx context.Context, run *attemptRun) (bool, error) {
	slept, err := h.untilBookedSlot(ctx, run)
	if err != nil {
		return slept, err
	}
	for {
		wait, err := h.takeOnce(ctx, run)
		if err != nil {
			return slept, err
		}
		if wait <= 0 {
			run.slotTaken = time.Now()
			return slept, nil
		}
		if wait > h.maxInlineWait {
			return slept, h.waitLonger(ctx, run, wait)
		}
		slept = true
		if err := sleepCtx(ctx, wait); err != nil {
			return slept, err
		}
	}
}

// waitLonger sends a task whose account's slot is further than a nap back
// to the queue. The account's sends running behind its plan (each one a
// few ms late, which the next slot keeps) is not a backlog: the task comes
// back for that very slot, which comes before the next task's booked one,
// so the account sends on rather than idle a slot. A task that the slot
// would put after the next one's booked slot is the backlog: it books a
// slot of its own on the timeline, as retrying "at the next free slot"
// would have every task of a backlog collide again at the next, and
// again, for as long as the backlog lasts.
func (h *SendHandler) waitLonger(ctx context.Context, run *attemptRun, wait time.Duration) error {
	if run.Slot != 0 {
		interval, err := h.pacer.Interval(ctx, run.account)
		if err != nil {
			return err
		}
		if time.Now().Add(wait).Before(time.UnixMilli(run.Slot).Add(interval)) {
			return &WaitError{Delay: wait, Reason: "pacing"}
		}
	}
	slot, _, err := h.pacer.Plan(ctx, run.account, 1)
	if err != nil {
		return err
	}
	return &WaitError{Delay: max(time.Until(slot), wait), Reason: "pacing"}
}

// untilBookedSlot sleeps until the slot the task was booked, when it came
// ahead of it (sendLead): the account's sends then keep to their plan
// whatever order the queue handed the second's tasks out in. A task that
// came far ahead of it (a clock change) goes back to the queue.
func (h *SendHandler) untilBookedSlot(ctx context.Context, run *attemptRun) (bool, error) {
	if run.Slot == 0 {
		return false, nil
	}
	wait := time.Until(time.UnixMilli(run.Slot))
	if wait <= 0 {
		return false, nil
	}
	if wait > h.maxInlineWait {
		return false, &WaitError{Delay: wait - sendLead, Reason: "pacing"}
	}
	return true, sleepCtx(ctx, wait)
}

// sleepCtx sleeps for d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// takeOnce tries to take the account's slot once: for a provider that
// answers only after the message went out (the gateway, typing), a slot
// held until the answer (run.hold), so that the account's next send starts
// an interval after this one went out, however long it took.
func (h *SendHandler) takeOnce(ctx context.Context, run *attemptRun) (time.Duration, error) {
	if !h.caps.AnswersAfterSending {
		return h.pacer.Take(ctx, run.account)
	}
	wait, hold, err := h.pacer.TakeHeld(ctx, run.account, h.claimLease)
	run.hold = hold
	return wait, err
}

// endHold frees an account held by this attempt's send, an interval after
// it went out, ago before now (0: now, or it never went out). A failure
// costs the account its next slot until the hold lapses, not a message.
func (h *SendHandler) endHold(ctx context.Context, run *attemptRun, ago time.Duration) {
	if run.hold == nil {
		return
	}
	if err := run.hold.Answered(context.WithoutCancel(ctx), ago); err != nil {
		run.log.Warn("free the account's pacing slot after the answer", zap.Error(err))
	}
	run.hold = nil
}

// lateSendSlack is how long a send may take from its pacing slot to the
// wire before the account's next slot is moved after it. A few ms is the
// normal cost of the claim's round trip and the HTTP client; more means
// the process was held back, and without the move the provider would see
// this send and the account's next one closer than the interval.
const lateSendSlack = 5 * time.Millisecond

// sendOnTime calls the provider right after the account's pacing slot was
// taken, and reports a send that reached the wire late to the pacer; or,
// for a slot held until the answer, frees it an interval after the answer.
func (h *SendHandler) sendOnTime(ctx context.Context, run *attemptRun, msg sender.Message) (sender.Receipt, error) {
	if run.hold != nil {
		receipt, err := h.provider.Send(ctx, msg)
		ago := time.Duration(0) // no answer: it may have gone out up to now
		if err == nil && !receipt.AnsweredAt.IsZero() {
			ago = time.Since(receipt.AnsweredAt)
		}
		h.endHold(ctx, run, ago)
		return receipt, err
	}
	slotAt := run.slotTaken
	if slotAt.IsZero() {
		slotAt = time.Now()
	}
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				h.wentOut(ctx, run, time.Since(slotAt))
			}
		},
	})
	return h.provider.Send(ctx, msg)
}

// wentOut notes a request written late after its account's slot. It moves
// the account's next slot from the write itself, before the answer: the
// account's next slot may come while this answer is still on its way (a
// slow provider, a stalled machine), and a move made only then would let
// that send go out closer than the interval to this one.
func (h *SendHandler) wentOut(ctx context.Context, run *attemptRun, late time.Duration) {
	metrics.PacingLateness(late)
	if late <= lateSendSlack {
		return
	}
	if err := h.pacer.WentOutLate(context.WithoutCancel(ctx), run.account, 0); err != nil {
		run.log.Warn("move the account's next send slot after a late send", zap.Duration("late", late), zap.Error(err))
	}
}

// sendLead is how far ahead of its pacing slot a planned task is queued
// (untilBookedSlot sleeps the rest). asynq keeps due times in whole
// seconds and dequeues a second's tasks one round trip at a time: queued
// for its slot, a task whose slot is early in its second often started
// after it, later in some intervals than in others, and the gaps between
// an account's sends showed it.
const sendLead = 200 * time.Millisecond
