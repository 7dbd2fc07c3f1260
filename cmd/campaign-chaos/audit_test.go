//go:build linux

package main

import (
	"strings"
	"testing"

	"github.com/wacampaign/wacampaign/internal/harness"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

func msg(phone, uid string) sandbox.Message { return sandbox.Message{Recipient: phone, UID: uid} }

// A campaign where every promise holds: each recipient sent once, a failed
// one never sent.
func TestAuditOfAKeptPromise(t *testing.T) {
	c := &harness.Campaign{Counts: harness.Counts{Total: 3, Sent: 1, Delivered: 1, Failed: 1}}
	list := []harness.Recipient{
		{Phone: "+1", State: "sent", MessageUID: "u1"},
		{Phone: "+2", State: "delivered", MessageUID: "u2"},
		{Phone: "+3", State: "failed"},
	}
	a := auditCampaign(c, list, []sandbox.Message{msg("+1", "u1"), msg("+2", "u2")})
	if a.twice != 0 || a.lost != 0 || a.unknown != 0 || a.received != 2 || a.sentLike != 2 {
		t.Errorf("twice %d lost %d unknown %d, received %d, sent %d; want 0 0 0, 2, 2", a.twice, a.lost, a.unknown, a.received, a.sentLike)
	}
	if len(a.problems) > 0 || len(a.failures()) > 0 {
		t.Errorf("problems %q, failures %q; want none", a.problems, a.failures())
	}
}

// The broken promises each show, in the figure a user would read.
func TestAuditFindsDuplicatesLossesAndCountsThatDoNotAddUp(t *testing.T) {
	c := &harness.Campaign{Counts: harness.Counts{Total: 6, Sent: 3, Unknown: 2, Queued: 0, Skipped: 1}}
	list := []harness.Recipient{
		{Phone: "+1", State: "sent", MessageUID: "u1"},    // received twice
		{Phone: "+2", State: "sent", MessageUID: "u2"},    // never received: recorded sent, lost
		{Phone: "+3", State: "unknown"},                   // never received: lost
		{Phone: "+4", State: "unknown"},                   // received
		{Phone: "+5", State: "skipped"},                   // received although skipped
		{Phone: "+6", State: "sent", MessageUID: "other"}, // received under another uid
	}
	msgs := []sandbox.Message{msg("+1", "u1"), msg("+1", "u1b"), msg("+4", "u4"), msg("+5", "u5"), msg("+6", "u6"), msg("+9", "u9")}
	a := auditCampaign(c, list, msgs)
	if a.twice != 1 || a.lost != 2 || a.unknown != 2 || a.unknownReceived != 1 {
		t.Errorf("twice %d lost %d unknown %d (received %d); want 1 2 2 (1)", a.twice, a.lost, a.unknown, a.unknownReceived)
	}
	problems := strings.Join(a.problems, "\n")
	for _, want := range []string{
		"1 recipient(s) recorded sent that the sandbox never got",
		"1 recipient(s) the sandbox got but recorded neither sent nor unknown",
		"1 sent recipient(s) whose message_uid is none the sandbox gave",
		"messages for 1 phone(s) not in the campaign",
	} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems lack %q:\n%s", want, problems)
		}
	}
	failures := strings.Join(a.failures(), "; ")
	for _, want := range []string{"1 recipient(s) got the message twice", "2 recipient(s) lost", "2 recipient(s) unknown (33.3%", "the counts do not add up"} {
		if !strings.Contains(failures, want) {
			t.Errorf("failures %q lack %q", failures, want)
		}
	}
}

func TestAuditComparesTheCampaignsCountsWithTheListing(t *testing.T) {
	c := &harness.Campaign{Counts: harness.Counts{Total: 3, Sent: 1, Read: 1, Sending: 2}}
	list := []harness.Recipient{{Phone: "+1", State: "read", MessageUID: "u1"}, {Phone: "+2", State: "sent", MessageUID: "u2"}}
	a := auditCampaign(c, list, []sandbox.Message{msg("+1", "u1"), msg("+2", "u2")})
	problems := strings.Join(a.problems, "\n")
	for _, want := range []string{
		"the campaign's counts sum to 4, not its total 3",
		"the recipients listing has 2 recipients, the campaign 3",
		"sending: the campaign counts 2, the listing has 0",
	} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems lack %q:\n%s", want, problems)
		}
	}
	if strings.Contains(problems, "sent, delivered or read") {
		t.Errorf("sent and read moved between the reads are one group, yet: %s", problems)
	}
}

// Recipients left queued or sending are named, so a stuck one can be
// looked up.
func TestAuditNamesUnsettledRecipients(t *testing.T) {
	c := &harness.Campaign{Counts: harness.Counts{Total: 2, Sending: 1, Sent: 1}}
	list := []harness.Recipient{{Seq: 1, Phone: "+1", State: "sent", MessageUID: "u1"}, {Seq: 2, Phone: "+2", State: "sending"}}
	a := auditCampaign(c, list, []sandbox.Message{msg("+1", "u1")})
	if len(a.unsettled) != 1 || a.unsettled[0] != "seq 2 sending" || a.lost != 1 {
		t.Errorf("unsettled %q, lost %d; want seq 2 sending, lost 1", a.unsettled, a.lost)
	}
}

// What the sandbox received must match what the product says went out.
func TestAuditComparesTheSandboxsCountWithTheSentStates(t *testing.T) {
	c := &harness.Campaign{Counts: harness.Counts{Total: 2, Sent: 1, Failed: 1}}
	list := []harness.Recipient{{Phone: "+1", State: "sent", MessageUID: "u1"}, {Phone: "+2", State: "failed"}}
	a := auditCampaign(c, list, []sandbox.Message{msg("+1", "u1"), msg("+2", "u2")})
	problems := strings.Join(a.problems, "\n")
	for _, want := range []string{
		"1 recipient(s) the sandbox got but recorded neither sent nor unknown",
		"the sandbox got 2 recipients, not sent/delivered/read 1 + unknown received 0",
	} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems lack %q:\n%s", want, problems)
		}
	}
	if a.lost != 0 {
		t.Errorf("lost %d: a recipient that arrived is not lost", a.lost)
	}
}
