//go:build linux

package main

import (
	"fmt"

	"github.com/wacampaign/wacampaign/internal/harness"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// audit is what happened to a campaign's recipients, judged from the
// provider's side (the sandbox's log of every message it accepted) against
// what the product recorded.
type audit struct {
	recipients int
	received   int // recipients the sandbox got a message for, once or more
	// twice: recipients the sandbox got two messages or more for (must be 0).
	twice int
	// lost: recipients the sandbox never got a message for and that are not
	// failed or skipped (must be 0): the product lost them, or says it sent
	// what never arrived.
	lost            int
	unknown         int // recipients left unknown
	unknownReceived int // of them, the sandbox did get a message for
	sentLike        int // recipients in sent, delivered or read
	byState         map[string]int
	// unsettled are recipients still queued, sending or unconfirmed, or
	// lost, or unknown, with their reasons, for the report (the first few).
	unsettled []string
	// problems are where the figures do not add up; none when they do.
	problems []string
}

// sentLike are the states that say the provider took the message.
func isSentLike(state string) bool {
	return state == "sent" || state == "delivered" || state == "read"
}

// auditCampaign compares the campaign (its counts), its recipients (the
// API's listing) and the sandbox's messages.
func auditCampaign(c *harness.Campaign, list []harness.Recipient, msgs []sandbox.Message) audit {
	a := audit{recipients: int(c.Counts.Total), byState: map[string]int{}}
	byPhone := map[string][]sandbox.Message{}
	for _, m := range msgs {
		byPhone[m.Recipient] = append(byPhone[m.Recipient], m)
	}
	var sentNotReceived, receivedNotSent, wrongUID int
	inCampaign := map[string]bool{}
	for _, r := range list {
		inCampaign[r.Phone] = true
		a.byState[r.State]++
		got := byPhone[r.Phone]
		if len(got) > 0 {
			a.received++
		}
		if len(got) > 1 {
			a.twice++
		}
		if len(got) == 0 && r.State != "failed" && r.State != "skipped" {
			a.lost++
		}
		switch {
		case isSentLike(r.State):
			a.sentLike++
			if len(got) == 0 {
				sentNotReceived++
			} else if !hasUID(got, r.MessageUID) {
				wrongUID++
			}
		case r.State == "unknown":
			a.unknown++
			if len(got) > 0 {
				a.unknownReceived++
			}
		case len(got) > 0:
			receivedNotSent++
		}
		a.noteUnsettled(r, len(got) == 0)
	}
	a.checkCounts(c.Counts, len(list))
	a.problem(sentNotReceived > 0, "%d recipient(s) recorded sent that the sandbox never got", sentNotReceived)
	a.problem(receivedNotSent > 0, "%d recipient(s) the sandbox got but recorded neither sent nor unknown", receivedNotSent)
	a.problem(wrongUID > 0, "%d sent recipient(s) whose message_uid is none the sandbox gave for their phone", wrongUID)
	a.problem(a.received != a.sentLike+a.unknownReceived, "the sandbox got %d recipients, not sent/delivered/read %d + unknown received %d",
		a.received, a.sentLike, a.unknownReceived)
	strangers := 0
	for phone := range byPhone {
		if !inCampaign[phone] {
			strangers++
		}
	}
	a.problem(strangers > 0, "the sandbox got messages for %d phone(s) not in the campaign", strangers)
	return a
}

// maxUnsettledListed bounds the unsettled recipients the report names.
const maxUnsettledListed = 10

func (a *audit) noteUnsettled(r harness.Recipient, neverReceived bool) {
	lost := neverReceived && r.State != "failed" && r.State != "skipped"
	if r.State != "queued" && r.State != "sending" && r.State != "unconfirmed" && r.State != "unknown" && !lost {
		return
	}
	if len(a.unsettled) == maxUnsettledListed {
		a.unsettled = append(a.unsettled, "…")
	}
	if len(a.unsettled) > maxUnsettledListed {
		return
	}
	since := ""
	if r.UpdatedAt != nil {
		since = " since " + r.UpdatedAt.Format("15:04:05.000")
	}
	reason := ""
	if r.Reason != "" {
		reason = " (" + r.Reason + ")"
	}
	a.unsettled = append(a.unsettled, fmt.Sprintf("seq %d %s%s%s", r.Seq, r.State, reason, since))
}

func hasUID(msgs []sandbox.Message, uid string) bool {
	for _, m := range msgs {
		if m.UID == uid {
			return true
		}
	}
	return false
}

// checkCounts compares the campaign's counts with their total and with the
// listing. Sent, delivered and read are compared together: status polls
// move recipients between them while the two are read.
func (a *audit) checkCounts(c harness.Counts, listed int) {
	a.problem(c.Sum() != c.Total, "the campaign's counts sum to %d, not its total %d", c.Sum(), c.Total)
	a.problem(int64(listed) != c.Total, "the recipients listing has %d recipients, the campaign %d", listed, c.Total)
	for _, k := range []struct {
		state string
		count int64
	}{
		{"queued", c.Queued}, {"sending", c.Sending}, {"unconfirmed", c.Unconfirmed},
		{"failed", c.Failed}, {"skipped", c.Skipped}, {"unknown", c.Unknown},
		{"sent, delivered or read", c.Sent + c.Delivered + c.Read},
	} {
		listedN := int64(a.byState[k.state])
		if k.state == "sent, delivered or read" {
			listedN = int64(a.sentLike)
		}
		a.problem(listedN != k.count, "%s: the campaign counts %d, the listing has %d", k.state, k.count, listedN)
	}
}

func (a *audit) problem(when bool, format string, args ...any) {
	if when {
		a.problems = append(a.problems, fmt.Sprintf(format, args...))
	}
}

// unknownShare is unknown recipients over all, in percent.
func (a audit) unknownShare() float64 {
	if a.recipients == 0 {
		return 0
	}
	return 100 * float64(a.unknown) / float64(a.recipients)
}

// maxUnknownShare is the most unknown recipients a run may leave, in
// percent of its recipients.
const maxUnknownShare = 0.5

// failures are the promises the audit shows broken.
func (a audit) failures() []string {
	var out []string
	if a.twice > 0 {
		out = append(out, fmt.Sprintf("%d recipient(s) got the message twice", a.twice))
	}
	if a.lost > 0 {
		out = append(out, fmt.Sprintf("%d recipient(s) lost", a.lost))
	}
	if a.unknownShare() > maxUnknownShare {
		out = append(out, fmt.Sprintf("%d recipient(s) unknown (%.1f%%, more than %.1f%%)", a.unknown, a.unknownShare(), maxUnknownShare))
	}
	if len(a.problems) > 0 {
		out = append(out, "the counts do not add up")
	}
	return out
}
