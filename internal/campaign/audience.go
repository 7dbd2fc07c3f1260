package campaign

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/audience"
	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
)

// Reasons a recipient is skipped for its audience.
const (
	ReasonOptedOut     = "opted out"
	ReasonFrequencyCap = "frequency cap"
)

// Cap policies: what a campaign does with a recipient the frequency cap
// holds back.
const (
	CapSkip  = "skip"  // skipped, reason "frequency cap" (the default)
	CapDefer = "defer" // sent when the cap frees
)

// ValidCapPolicy reports whether p names a cap policy ("" is the default).
func ValidCapPolicy(p string) bool { return p == "" || p == CapSkip || p == CapDefer }

// AudienceConfig is what the send path and the importer need of the
// audience: the suppression list and caps (nil: none), FREQUENCY_CAP and
// REPLY_WINDOW.
type AudienceConfig struct {
	Store       *audience.Store
	Cap         audience.FrequencyCap
	ReplyWindow time.Duration
}

// audienceAddress is the address a recipient is suppressed and capped
// under: its phone (a person's JID is its phone), or a group's JID; "" for
// a chat id, which names no one the audience knows.
func (k recipientKey) audienceAddress() string {
	if p := k.phone(); p != "" {
		return p
	}
	if k.kind == KindJID {
		return k.value
	}
	return ""
}

// messageAddress is audienceAddress of a message about to go out.
func messageAddress(msg sender.Message) string {
	if p := recipientPhone(msg); p != "" {
		return p
	}
	return msg.JID
}

// admitAudience is the send path's early look at the audience, before the
// render and the credits. The suppression list is read with the claim,
// right before the request is written (claimForDispatch), in the claim's
// round trip: an opt-out is honoured up to that moment, and a message no
// cap holds makes no round trip here. (The importer already left out who
// was suppressed at upload: what the claim finds is an opt-out since, whose
// render, credits and pacing slot are given back unused.)
// With a frequency cap, one round trip (audience.Store.Admit) reserves the
// cap's slot: a recipient the cap holds back is skipped, "frequency cap",
// or, under cap_policy defer, given back to wait until the cap frees; a
// suppressed one is skipped, "opted out".
// done says the task has nothing more to do (err is what it answers).
func (h *SendHandler) admitAudience(ctx context.Context, spec *sendSpec, run *attemptRun, row []string) (done bool, err error) {
	if h.audience.Store == nil || spec.confirms == ConfirmOptOut {
		// The confirmation of an opt-out goes to the phone just suppressed,
		// and is transactional: neither the list nor the cap holds it back.
		return false, nil
	}
	key, err := spec.key(row)
	address := key.audienceAddress()
	if err != nil || address == "" {
		return false, nil // a row without a key fails at the render
	}
	run.audienceAddress = address
	if spec.transactional || !h.audience.Cap.On() {
		return false, nil
	}
	adm, err := h.audience.Store.Admit(ctx, audience.AdmitParams{Address: address, Campaign: run.Campaign, Seq: run.Seq,
		Cap: h.audience.Cap, Now: h.now()})
	if err != nil {
		return true, err // nothing taken yet: the task runs again
	}
	switch {
	case adm.Suppressed != nil:
		return true, h.finish(ctx, run, record{State: StateSkipped, Reason: ReasonOptedOut, Account: run.account}, 0)
	case !adm.CappedUntil.IsZero() && spec.capPolicy == CapDefer:
		h.releaseCap(ctx, run)
		return true, &WaitError{Delay: max(adm.CappedUntil.Sub(h.now()), time.Second), Reason: ReasonFrequencyCap, NotEarlier: true}
	case !adm.CappedUntil.IsZero():
		return true, h.finish(ctx, run, record{State: StateSkipped, Reason: ReasonFrequencyCap, Account: run.account}, 0)
	}
	if adm.Reserved {
		run.capAddress = address
	}
	return false, nil
}

// skipOptedOut settles a recipient the suppression list held back as its
// claim was taken: nothing was written, so its credits, its place in the
// account's day and its cap slot are given back, and its history shows no
// "sending".
func (h *SendHandler) skipOptedOut(ctx context.Context, run *attemptRun, res *quota.Reservation) error {
	h.settleCredits(res, false, run.log)
	h.releaseDay(ctx, run)
	run.unwritten = true
	return h.finish(ctx, run, record{State: StateSkipped, Reason: ReasonOptedOut, Account: run.account}, 0)
}

// releaseCap gives back the cap slot reserved for a message that did not
// go out (a released claim, a failure, a skip). A failure costs the
// recipient one slot of its cap until the period ends, never a message.
func (h *SendHandler) releaseCap(ctx context.Context, run *attemptRun) {
	if run.capAddress == "" {
		return
	}
	if err := h.audience.Store.ReleaseCap(context.WithoutCancel(ctx), run.capAddress, run.Campaign, run.Seq); err != nil {
		run.log.Warn("release a frequency-cap slot", zap.Error(err))
	}
	run.capAddress = ""
}

// noteMessaged records a message that went out to address at sentAt as the
// latest sent to its recipient, so that a reply within REPLY_WINDOW is
// attributed to it (inbound.go): at its answer, or when an unconfirmed
// send is found to have gone out. Replies come only through the
// provider's webhook: without one (no WEBHOOK_SECRET) nothing is
// recorded, and a send costs no extra Redis command. A keyword's
// confirmation records nothing: a reply after it answers the campaign
// before it.
func (h *SendHandler) noteMessaged(ctx context.Context, run *attemptRun, address string, sentAt time.Time) {
	if !h.indexed || run.confirms != "" {
		return
	}
	m := audience.LastMessage{Campaign: run.Campaign, Seq: run.Seq, Account: run.account, At: sentAt}
	if err := h.audience.noteLastMessaged(ctx, address, m); err != nil {
		run.log.Warn("note the last message to the recipient, for replies", zap.Error(err))
	}
}

// noteLastMessaged records m as the latest message to address, kept
// REPLY_WINDOW; nothing without an audience store or an address.
func (a AudienceConfig) noteLastMessaged(ctx context.Context, address string, m audience.LastMessage) error {
	if a.Store == nil || address == "" || a.ReplyWindow <= 0 {
		return nil
	}
	return a.Store.NoteMessaged(context.WithoutCancel(ctx), address, m, a.ReplyWindow)
}
