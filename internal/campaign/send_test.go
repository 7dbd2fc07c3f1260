package campaign

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

func TestSameTaskManyTimesSendsOnce(t *testing.T) { eachRunKind(t, sameTaskManyTimesSendsOnce) }

func sameTaskManyTimesSendsOnce(t *testing.T, untroubled bool) {
	f := newFixture(t, sandbox.Config{})
	f.runsUntroubled(untroubled)
	c := f.importCSV("Hi {{.name}}", "phone,name\n+12025550101,Ann\n")
	// asynq is at-least-once: the same task may run again, even at once. A
	// run that meets another's live claim waits for its lease (it must not
	// drop the task: that other attempt may never record its outcome); a
	// wait is not a failure.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 0))
			var wait *WaitError
			if err != nil && (!errors.As(err, &wait) || IsFailure(err)) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	msgs := f.sandbox.Messages()
	if len(msgs) != 1 || msgs[0].Text != "Hi Ann" || msgs[0].Recipient != "+12025550101" {
		t.Fatalf("sandbox got %+v; want one message", msgs)
	}
	got := f.get(c.ID)
	if got.Status != StatusCompleted || got.Counts.Sent != 1 || got.Credits.Spent != 1 || !addsUp(got.Counts) {
		t.Errorf("campaign %s %+v credits %+v", got.Status, got.Counts, got.Credits)
	}
	if r := f.recipient(c.ID, 0); r.MessageUID != msgs[0].UID {
		t.Errorf("recorded uid %q, the sandbox gave %q", r.MessageUID, msgs[0].UID)
	}
	// The duplicates reserved credits before they found the claim taken,
	// and gave them back to this process's credit block, which is closed
	// when idle (or, here, at once).
	if err := f.ledger.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	bal, _ := f.ledger.Balance(context.Background())
	if bal.Available != 10_000-1 || bal.Reserved != 0 {
		t.Errorf("ledger %+v: want one credit spent, none reserved", bal)
	}
}

// deadAttempt leaves recipient seq as a worker that died would: claimed a
// minute ago (the claim has lapsed), which marks it handed to the
// provider; or, undispatched, as the version before claims and dispatch
// marks were one step left an attempt that died between the two (what an
// upgrade may find in Redis).
func (f *fixture) deadAttempt(id string, seq int64, dispatched bool) {
	f.t.Helper()
	ctx := context.Background()
	then := time.Now().Add(-time.Minute)
	if !dispatched {
		rec := record{State: StateSending, Account: "", At: UnixMilli(then), Owner: "dead-attempt", Lease: UnixMilli(then.Add(time.Second))}
		field := strconv.FormatInt(seq, 10)
		if _, err := f.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, stateKey(id, seq), field, rec.encode())
			p.HIncrBy(ctx, campaignKey(id), "queued", -1)
			p.HIncrBy(ctx, campaignKey(id), "sending", 1)
			return nil
		}); err != nil {
			f.t.Fatal(err)
		}
		return
	}
	res, err := f.store.claim(ctx, claimParams{Campaign: id, Seq: seq, Attempt: "dead-attempt", Lease: time.Second, Now: then})
	if err != nil || res.outcome != claimTaken {
		f.t.Fatalf("claim: %+v %v", res, err)
	}
}

// TestAttemptThatDiedBeforeDispatchIsSimplySentAgain: a worker that died
// between its claim and the dispatch mark never reached the provider; the
// next run sends the message, once, and nothing calls it unknown.
func TestAttemptThatDiedBeforeDispatchIsSimplySentAgain(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	c := f.importCSV("Hi", "phone\n+12025550101\n")
	f.deadAttempt(c.ID, 0, false)
	if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	if n := len(f.sandbox.Messages()); n != 1 {
		t.Fatalf("the retry sent %d messages; want 1", n)
	}
	r := f.recipient(c.ID, 0)
	if r.State != StateSent {
		t.Errorf("recipient %s %q; want sent", r.State, r.Reason)
	}
	for _, e := range r.History {
		if e.State == StateUnknown || e.State == StateUnconfirmed {
			t.Errorf("history %+v calls a send that never left %s", r.History, e.State)
		}
	}
	if got := f.get(c.ID); got.Status != StatusCompleted || got.Counts.Sent != 1 || !addsUp(got.Counts) {
		t.Errorf("campaign %s %+v", got.Status, got.Counts)
	}
}

// TestAttemptThatDiedAfterDispatchIsReconciled: a worker that died after
// its dispatch mark may have sent the message. The next run does not send:
// the recipient is unconfirmed until the provider's chat history says.
func TestAttemptThatDiedAfterDispatchIsReconciled(t *testing.T) {
	eachRunKind(t, attemptThatDiedAfterDispatchIsReconciled)
}

func attemptThatDiedAfterDispatchIsReconciled(t *testing.T, untroubled bool) {
	for _, reachedProvider := range []bool{true, false} {
		name := map[bool]string{true: "the message had gone out", false: "the message never left"}[reachedProvider]
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, sandbox.Config{})
			f.runsUntroubled(untroubled)
			c := f.importCSV("Hi {{.name}}", "phone,name\n+12025550101,Ann\n")
			f.deadAttempt(c.ID, 0, true)
			if reachedProvider {
				if _, err := f.client.Send(context.Background(), sender.Message{Phone: "+12025550101", Text: "Hi Ann"}); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 0)); err != nil {
				t.Fatal(err)
			}
			if r := f.recipient(c.ID, 0); r.State != StateUnconfirmed || !strings.Contains(r.Reason, "checking with the provider") {
				t.Fatalf("after the retry: %s %q; want unconfirmed", r.State, r.Reason)
			}
			if got := f.get(c.ID); got.Status != StatusRunning || got.Counts.Unconfirmed != 1 {
				t.Errorf("campaign %s %+v: an unconfirmed send keeps it running", got.Status, got.Counts)
			}
			f.reconcileAll()
			msgs := f.sandbox.Messages()
			if len(msgs) != 1 {
				t.Fatalf("the sandbox has %d messages; want exactly 1", len(msgs))
			}
			if r := f.recipient(c.ID, 0); r.State != StateSent || r.MessageUID != msgs[0].UID {
				t.Errorf("recipient %s uid %q; want sent with the sandbox's %q", r.State, r.MessageUID, msgs[0].UID)
			}
			if got := f.get(c.ID); got.Status != StatusCompleted || got.Counts.Sent != 1 || !addsUp(got.Counts) {
				t.Errorf("campaign %s %+v", got.Status, got.Counts)
			}
		})
	}
}

// TestAmbiguousAnswersAreReconciledNotResent: every answer that may follow
// an accepted message (a proxy's 502 or 503, the provider's own 500, a
// reset, a timeout) leaves the recipient unconfirmed; reconciliation finds
// the message at the provider. Exactly one message, ending sent.
func TestAmbiguousAnswersAreReconciledNotResent(t *testing.T) {
	html := "<html><body><h1>502 Bad Gateway</h1></body></html>"
	cases := []struct {
		name  string
		fault sandbox.Fault
	}{
		{"502 with HTML after processing", sandbox.Fault{Process: true, Status: 502, Body: html, ContentType: "text/html"}},
		{"503 with HTML after processing", sandbox.Fault{Process: true, Status: 503, Body: "<html>Service Unavailable</html>", ContentType: "text/html"}},
		{"500 internal_error after processing", sandbox.Fault{Process: true, Status: 500, Body: `{"status":"error","message":"Something went wrong","error_code":"internal_error"}`}},
		{"reset after forwarding", sandbox.Fault{Process: true, Drop: true}},
		{"timeout after the write", sandbox.Fault{Process: true, Delay: time.Hour}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, sandbox.Config{}, sender.WithTimeout(300*time.Millisecond))
			c := f.importCSV("Hi {{.name}}", "phone,name\n+12025550101,Ann\n+12025550102,Ben\n")
			tc.fault.Op, tc.fault.Times = sandbox.OpSend, 1
			f.sandbox.Inject(tc.fault)
			for seq := int64(0); seq < 2; seq++ {
				if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, seq)); err != nil {
					t.Fatal(err)
				}
			}
			if r := f.recipient(c.ID, 0); r.State != StateUnconfirmed {
				t.Fatalf("recipient after an ambiguous answer: %s %q; want unconfirmed", r.State, r.Reason)
			}
			// asynq may run the task again: it must not send.
			if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 0)); err != nil {
				t.Fatal(err)
			}
			f.reconcileAll()
			got := map[string]int{}
			for _, m := range f.sandbox.Messages() {
				got[m.Recipient]++
			}
			if got["+12025550101"] != 1 || got["+12025550102"] != 1 {
				t.Fatalf("messages per recipient at the sandbox: %v; want exactly one each", got)
			}
			r := f.recipient(c.ID, 0)
			if r.State != StateSent || r.MessageUID == "" {
				t.Errorf("recipient %s %q uid %q; want sent through reconciliation", r.State, r.Reason, r.MessageUID)
			}
			if final := f.get(c.ID); final.Status != StatusCompleted || final.Counts.Sent != 2 || final.Counts.Unknown != 0 || !addsUp(final.Counts) {
				t.Errorf("campaign %s %+v", final.Status, final.Counts)
			}
		})
	}
}

// TestResendsOfAnUnconfirmedSendAreBounded: a provider that answers every
// send with a 500 and never shows it: each unconfirmed send is looked up,
// not found, and sent once more, up to maxResends times; then the recipient
// is held as unknown, with the reason.
func TestResendsOfAnUnconfirmedSendAreBounded(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	c := f.importCSV("Hi", "phone\n+12025550101\n")
	f.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Status: 500, Body: `{"status":"error","message":"boom","error_code":"internal_error"}`})
	if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	f.reconcileAll()
	r := f.recipient(c.ID, 0)
	if r.State != StateUnknown || !strings.Contains(r.Reason, "resend 3") {
		t.Errorf("recipient %s %q; want unknown after 3 resends", r.State, r.Reason)
	}
	if got := f.sandbox.Answers()[500]; got != 1+maxResends {
		t.Errorf("the provider was asked %d times; want the first send and %d resends", got, maxResends)
	}
	if got := f.get(c.ID); got.Status != StatusCompleted || got.Counts.Unknown != 1 || !addsUp(got.Counts) {
		t.Errorf("campaign %s %+v", got.Status, got.Counts)
	}
}

// TestOutcomeLostToARedisOutageIsNotStranded: the provider accepts the
// message while Redis is down, so the attempt cannot record it. The task
// must run again (an error, not "done"), and its next run, once the claim's
// lease is over, finds the dispatch mark and reconciles: one message, sent,
// never stuck in "sending".
func TestOutcomeLostToARedisOutageIsNotStranded(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	f.handler.claimLease = 2 * time.Second
	c := f.importCSV("Hi", "phone\n+12025550101\n")
	// The provider takes its time to answer; Redis goes down meanwhile.
	f.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Process: true, Delay: 300 * time.Millisecond, Times: 1})
	go func() {
		time.Sleep(100 * time.Millisecond)
		f.redis.Stop(t)
	}()
	err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 0))
	if err == nil || !IsFailure(err) {
		t.Fatalf("the task answered %v; it must fail so that asynq runs it again", err)
	}
	f.redis.Restart(t)
	// A rerun within the claim's lease waits for it; after it, the send is
	// reconciled.
	for try := 0; ; try++ {
		err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 0))
		if err == nil {
			break
		}
		var wait *WaitError
		if !errors.As(err, &wait) || try == 3 {
			t.Fatalf("rerun %d answered %v; want a wait for the claim's lease, then done", try, err)
		}
		time.Sleep(wait.Delay)
	}
	if r := f.recipient(c.ID, 0); r.State != StateUnconfirmed {
		t.Fatalf("after the rerun: %s %q; want unconfirmed", r.State, r.Reason)
	}
	f.reconcileAll()
	msgs := f.sandbox.Messages()
	if r := f.recipient(c.ID, 0); len(msgs) != 1 || r.State != StateSent || r.MessageUID != msgs[0].UID {
		t.Errorf("recipient %s %q uid %q, %d messages; want sent once, with the sandbox's uid", r.State, r.Reason, r.MessageUID, len(msgs))
	}
}

// TestSettledRecipientIsNotSentAgainWhileTheCampaignRuns: a task run again
// for a recipient already settled, in a campaign still running (others
// queued), sends nothing.
func TestSettledRecipientIsNotSentAgainWhileTheCampaignRuns(t *testing.T) {
	eachRunKind(t, settledRecipientIsNotSentAgainWhileTheCampaignRuns)
}

func settledRecipientIsNotSentAgainWhileTheCampaignRuns(t *testing.T, untroubled bool) {
	f := newFixture(t, sandbox.Config{})
	f.runsUntroubled(untroubled)
	c := f.importCSV("Hi", "phone\n+12025550101\n+12025550102\n+12025550103\n")
	ctx := context.Background()
	if err := f.handler.ProcessTask(ctx, f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	if got := f.get(c.ID); got.Status != StatusRunning || got.Counts.Sent != 1 || got.Counts.Queued != 2 {
		t.Fatalf("campaign %s %+v; want running with one sent", got.Status, got.Counts)
	}
	for i := 0; i < 3; i++ {
		if err := f.handler.ProcessTask(ctx, f.task(c.ID, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.sandbox.Messages()); n != 1 {
		t.Fatalf("re-running a settled recipient's task sent %d messages in all; want 1", n)
	}
	if got := f.get(c.ID); got.Counts.Sent != 1 || got.Counts.Queued != 2 || !addsUp(got.Counts) {
		t.Errorf("campaign %+v; the reruns changed the counts", got.Counts)
	}
}

// TestProviderErrorTable runs DESIGN.md's error table through the send path:
// what the provider answers, what the recipient and the campaign become, and
// whether the task waits, fails for a retry, or is done.
func TestProviderErrorTable(t *testing.T) {
	jsonErr := func(code, msg string) string {
		return `{"status":"error","message":"` + msg + `","error_code":"` + code + `"}`
	}
	cases := []struct {
		name          string
		fault         sandbox.Fault
		clientTimeout time.Duration
		state         State  // the recipient afterwards
		reason        string // in the recipient's (or campaign's) reason
		status        Status // the campaign afterwards
		result        string // "done", "wait", "retry"
		sent          int    // messages the sandbox accepted
		ledgerSpent   int64  // credits the ledger counts as spent
		refused       bool   // nothing listens at the provider's address
	}{
		{name: "200 ok", state: StateSent, status: StatusCompleted, result: "done", sent: 1, ledgerSpent: 1},
		{name: "400 validation_error",
			fault: sandbox.Fault{Status: 400, Body: `{"status":"error","message":"Invalid parameters","error_code":"validation_error","errors":[{"fields":["phone"],"msg":"not on WhatsApp"}]}`},
			state: StateFailed, reason: "phone: not on WhatsApp", status: StatusCompleted, result: "done"},
		{name: "401 plain text", fault: sandbox.Fault{Status: 401, Body: "Unauthorized", ContentType: "text/plain"},
			state: StateQueued, reason: "provider auth failed", status: StatusPaused, result: "done"},
		{name: "401 invalid_token", fault: sandbox.Fault{Status: 401, Body: jsonErr("invalid_token", "Invalid or expired token")},
			state: StateQueued, reason: "provider auth failed", status: StatusPaused, result: "done"},
		{name: "403 quota_exceeded", fault: sandbox.Fault{Status: 403, Body: jsonErr("quota_exceeded", "Message quota exceeded")},
			state: StateQueued, reason: ReasonWaitingForQuota, status: StatusRunning, result: "wait"},
		{name: "403 permission_denied", fault: sandbox.Fault{Status: 403, Body: jsonErr("permission_denied", "Access denied")},
			state: StateQueued, reason: "provider refused: Access denied", status: StatusPaused, result: "done"},
		{name: "429 with Retry-After", fault: sandbox.Fault{Status: 429, Body: jsonErr("rate_limit_exceeded", "Too many requests"), Header: http.Header{"Retry-After": {"7"}}},
			state: StateQueued, status: StatusRunning, result: "wait"},
		{name: "403 HTML burst", fault: sandbox.Fault{Status: 403, Body: "<html>Attention required</html>", ContentType: "text/html"},
			state: StateQueued, status: StatusRunning, result: "wait"},
		{name: "500 with the provider's error body: may have been processed", fault: sandbox.Fault{Status: 500, Body: jsonErr("internal_error", "Something went wrong")},
			state: StateUnconfirmed, reason: "checking with the provider", status: StatusRunning, result: "done", ledgerSpent: 1},
		{name: "503 from a gateway", fault: sandbox.Fault{Status: 503, Body: "Service Unavailable", ContentType: "text/plain"},
			state: StateUnconfirmed, status: StatusRunning, result: "done", ledgerSpent: 1},
		{name: "500 plain: may have been processed", fault: sandbox.Fault{Status: 500, Body: "Internal Server Error", ContentType: "text/plain"},
			state: StateUnconfirmed, reason: "checking with the provider", status: StatusRunning, result: "done", ledgerSpent: 1},
		{name: "timeout after the message was accepted", fault: sandbox.Fault{Delay: time.Hour, Process: true}, clientTimeout: 300 * time.Millisecond,
			state: StateUnconfirmed, reason: "no answer", status: StatusRunning, result: "done", sent: 1, ledgerSpent: 1},
		{name: "connection dropped after acceptance", fault: sandbox.Fault{Drop: true, Process: true},
			state: StateUnconfirmed, status: StatusRunning, result: "done", sent: 1, ledgerSpent: 1},
		{name: "connection refused", fault: sandbox.Fault{}, refused: true,
			state: StateQueued, status: StatusRunning, result: "retry"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []sender.TimelinesOption
			if tc.clientTimeout > 0 {
				opts = append(opts, sender.WithTimeout(tc.clientTimeout))
			}
			if tc.refused {
				opts = append(opts, sender.WithBaseURL(closedAddress(t)))
			}
			f := newFixture(t, sandbox.Config{}, opts...)
			c := f.importCSV("Hi", "phone\n+12025550101\n")
			if tc.name != "200 ok" && !tc.refused {
				tc.fault.Op = sandbox.OpSend
				f.sandbox.Inject(tc.fault)
			}
			err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 0))
			var wait *WaitError
			switch tc.result {
			case "done":
				if err != nil {
					t.Errorf("task answered %v; want done", err)
				}
			case "wait":
				if !errors.As(err, &wait) || IsFailure(err) {
					t.Errorf("task answered %v; want a wait that is not a failure", err)
				}
			case "retry":
				if err == nil || !IsFailure(err) {
					t.Errorf("task answered %v; want a failure asynq retries", err)
				}
			}
			if tc.name == "429 with Retry-After" && (wait == nil || wait.Delay != 7*time.Second) {
				t.Errorf("wait %v; want the provider's Retry-After of 7s", wait)
			}
			r := f.recipient(c.ID, 0)
			got := f.get(c.ID)
			if r.State != tc.state {
				t.Errorf("recipient %s (%q); want %s", r.State, r.Reason, tc.state)
			}
			if tc.reason != "" && !strings.Contains(r.Reason+"|"+got.Reason, tc.reason) {
				t.Errorf("reasons %q / %q; want %q", r.Reason, got.Reason, tc.reason)
			}
			if got.Status != tc.status || !addsUp(got.Counts) {
				t.Errorf("campaign %s %+v; want %s", got.Status, got.Counts, tc.status)
			}
			if n := len(f.sandbox.Messages()); n != tc.sent {
				t.Errorf("the sandbox accepted %d messages, want %d", n, tc.sent)
			}
			bal, _ := f.ledger.Balance(context.Background())
			if tc.name != "403 quota_exceeded" && (bal.Reserved != 0 || bal.Available != 10_000-tc.ledgerSpent) {
				t.Errorf("ledger %+v; want %d spent and nothing reserved", bal, tc.ledgerSpent)
			}

			// Whatever happened, running the task again never sends twice.
			f.sandbox.ClearFaults()
			f.syncLedger()
			_ = f.handler.ProcessTask(context.Background(), f.task(c.ID, 0))
			if n := len(f.sandbox.Messages()); n > 1 {
				t.Errorf("after a rerun the sandbox has %d messages", n)
			}
			if tc.state == StateUnconfirmed && len(f.sandbox.Messages()) != tc.sent {
				t.Errorf("an unconfirmed recipient was sent again by a rerun")
			}
			// Reconciliation ends every unconfirmed send with exactly one message.
			if tc.state == StateUnconfirmed {
				f.reconcileAll()
				if r := f.recipient(c.ID, 0); r.State != StateSent || len(f.sandbox.Messages()) != 1 {
					t.Errorf("after reconciliation: %s, %d messages; want sent, 1", r.State, len(f.sandbox.Messages()))
				}
			}
		})
	}
}

// closedAddress is a loopback URL nothing listens at: a connection there is
// refused, so a request is never written.
func closedAddress(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestQuotaExhaustedWaitsInsteadOfFailing(t *testing.T) {
	f := newFixture(t, sandbox.Config{Credits: 2})
	c := f.importCSV("Hi", "phone\n+12025550101\n+12025550102\n+12025550103\n+12025550104\n")
	var waits int
	for seq := int64(0); seq < 4; seq++ {
		err := f.handler.ProcessTask(context.Background(), f.task(c.ID, seq))
		var wait *WaitError
		if errors.As(err, &wait) {
			waits++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	got := f.get(c.ID)
	if waits != 2 || got.Counts.Sent != 2 || got.Counts.Queued != 2 || got.Reason != ReasonWaitingForQuota || got.Status != StatusRunning {
		t.Fatalf("waits %d, campaign %s %q %+v; want 2 sent, 2 waiting for quota", waits, got.Status, got.Reason, got.Counts)
	}
	if f.sandbox.CreditsUsed() != 2 {
		t.Errorf("spent %d credits of 2", f.sandbox.CreditsUsed())
	}
	// More quota at the provider, a sync, and the wait is over.
	f.sandbox.SetCredits(10)
	f.syncLedger()
	if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 2)); err != nil {
		t.Fatal(err)
	}
	// The campaign is moving again: its reason goes with the first send.
	if got = f.get(c.ID); got.Status != StatusRunning || got.Reason != "" || got.Counts.Sent != 3 {
		t.Errorf("after the quota came back and one more was sent: %s %q %+v; want running, no reason", got.Status, got.Reason, got.Counts)
	}
	if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 3)); err != nil {
		t.Fatal(err)
	}
	got = f.get(c.ID)
	if got.Status != StatusCompleted || got.Reason != "" || got.Counts.Sent != 4 {
		t.Errorf("after the quota came back: %s %q %+v", got.Status, got.Reason, got.Counts)
	}
}

// TestExhaustedAPICallsWaitWithTheirOwnReason: the workspace's API calls
// are spent. That is not a credit shortage: the recipient waits with its
// own reason, the credit ledger is left alone, and sending resumes when the
// calls renew.
func TestExhaustedAPICallsWaitWithTheirOwnReason(t *testing.T) {
	f := newFixture(t, sandbox.Config{APICalls: 1})
	c := f.importCSV("Hi", "phone\n+12025550101\n+12025550102\n")
	ctx := context.Background()
	if err := f.handler.ProcessTask(ctx, f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	err := f.handler.ProcessTask(ctx, f.task(c.ID, 1))
	var wait *WaitError
	if !errors.As(err, &wait) || IsFailure(err) || wait.Reason != ReasonWaitingForAPICalls {
		t.Fatalf("the send after the last API call answered %v; want a wait for API calls", err)
	}
	got := f.get(c.ID)
	if got.Status != StatusRunning || got.Reason != ReasonWaitingForAPICalls || got.Counts.Queued != 1 {
		t.Errorf("campaign %s %q %+v; want running, waiting for API calls, one queued", got.Status, got.Reason, got.Counts)
	}
	// The worker's credit block, which the refused send gave its credit
	// back to, is given back too.
	if err := f.ledger.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if bal, _ := f.ledger.Balance(ctx); bal.Available != 10_000-1 || bal.Reserved != 0 {
		t.Errorf("ledger %+v: an API-call shortage must leave the credits alone", bal)
	}
	f.sandbox.RenewAPICalls(0)
	if err := f.handler.ProcessTask(ctx, f.task(c.ID, 1)); err != nil {
		t.Fatal(err)
	}
	if got := f.get(c.ID); got.Status != StatusCompleted || got.Reason != "" || got.Counts.Sent != 2 {
		t.Errorf("after the calls renewed: %s %q %+v", got.Status, got.Reason, got.Counts)
	}
}

func TestRenderFailureFailsOnlyThatRecipient(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	long := strings.Repeat("x", 1998) // "Hi " makes it 2001 characters
	c := f.importCSV("Hi {{.note}}", "phone,note\n+12025550101,short\n+12025550102,"+long+"\n")
	for seq := int64(0); seq < 2; seq++ {
		if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, seq)); err != nil {
			t.Fatal(err)
		}
	}
	if r := f.recipient(c.ID, 1); r.State != StateFailed || !strings.Contains(r.Reason, "2000") {
		t.Errorf("recipient with a too long message: %s %q", r.State, r.Reason)
	}
	if msgs := f.sandbox.Messages(); len(msgs) != 1 || msgs[0].Text != "Hi short" {
		t.Errorf("sandbox got %+v", msgs)
	}
	bal, _ := f.ledger.Balance(context.Background())
	if bal.Available != 10_000-1 {
		t.Errorf("ledger %+v: the failed render must not spend a credit", bal)
	}
}

func TestPacingWaitIsNotAFailure(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	f.handler.pacer = quota.NewPacer(f.rdb, time.Hour, 0)
	c := f.importCSV("Hi", "phone\n+12025550101\n+12025550102\n")
	if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 1))
	var wait *WaitError
	if !errors.As(err, &wait) || IsFailure(err) || wait.Delay < 59*time.Minute {
		t.Fatalf("second send of the account answered %v; want a wait of about an hour", err)
	}
	if RetryDelay(0, err, nil) != wait.Delay {
		t.Errorf("RetryDelay %v; want the pacer's %v", RetryDelay(0, err, nil), wait.Delay)
	}
	if r := f.recipient(c.ID, 1); r.State != StateQueued {
		t.Errorf("the waiting recipient is %s; a wait must leave no claim", r.State)
	}
}

// slowCallLimiter holds every API call back before it is made: a wait for
// the API-call ceiling, or a stalled process, between the pacing slot and
// the wire.
type slowCallLimiter struct{ d time.Duration }

func (l slowCallLimiter) Wait(ctx context.Context) error {
	select {
	case <-time.After(l.d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestLateSendHoldsTheAccountAnIntervalAfterIt: a send that reaches the wire
// 150 ms after its slot keeps the account's next slot a whole interval after
// the send, not after the slot, so the provider never sees the two closer
// than the interval. The slot moves as the request is written, not when the
// answer comes: here the answer takes a second, longer than the interval.
func TestLateSendHoldsTheAccountAnIntervalAfterIt(t *testing.T) {
	const interval, held = 300 * time.Millisecond, 150 * time.Millisecond
	f := newFixture(t, sandbox.Config{}, sender.WithCallLimiter(slowCallLimiter{held}))
	f.handler.pacer = quota.NewPacer(f.rdb, interval, 0)
	f.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Process: true, Delay: time.Second})
	c := f.importCSV("Hi", "phone\n+12025550101\n")
	sent := make(chan error, 1)
	go func() { sent <- f.handler.ProcessTask(context.Background(), f.task(c.ID, 0)) }()
	for len(f.sandbox.Messages()) == 0 {
		select {
		case err := <-sent:
			t.Fatalf("the send ended (%v) before the sandbox had its message", err)
		case <-time.After(2 * time.Millisecond):
		}
	}
	wait, err := quota.NewPacer(f.rdb, interval, 0).Take(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	// Unmoved, the slot would free up an interval after it was taken: about
	// interval-held from now.
	if wait < interval-held/2 {
		t.Errorf("the account's next slot is %s away right after a send %s late, its answer still to come; want about the interval %s", wait, held, interval)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

func TestRetryDelaysAreNeverCutShort(t *testing.T) {
	// asynq rounds a retry time down to the second: a delay that must be
	// honoured is stretched to a whole second, never shortened.
	for _, d := range []time.Duration{10 * time.Millisecond, 900 * time.Millisecond, 2 * time.Second, 2500 * time.Millisecond} {
		before := time.Now()
		got := RetryDelay(0, &WaitError{Delay: d, NotEarlier: true}, nil)
		// What asynq makes of it: now (after the call) plus the delay, in
		// whole seconds rounded down.
		due := time.Unix(time.Now().Add(got).Unix(), 0)
		if due.Before(before.Add(d)) || got > d+time.Second {
			t.Errorf("delay %s became %s: due %s after now, want at least %s and at most a second more", d, got, due.Sub(before), d)
		}
	}
	// A failure backs off half a second to a second, growing with the
	// retries (half the doubling plus jitter).
	if first, later := RetryDelay(0, errors.New("x"), nil), RetryDelay(5, errors.New("x"), nil); first < 500*time.Millisecond || later < 16*time.Second {
		t.Errorf("backoff %s then %s", first, later)
	}
	// Pacing waits may be short: the send path sleeps off the rest.
	if got := RetryDelay(0, &WaitError{Delay: 300 * time.Millisecond}, nil); got != 300*time.Millisecond {
		t.Errorf("pacing wait became %s", got)
	}
}

// TestResumedRoundIsNotDroppedByAStaleGate: right after a resume, a worker
// that cached the campaign as paused (old round) must still send the new
// round's tasks.
func TestResumedRoundIsNotDroppedByAStaleGate(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	c := f.importCSV("Hi", "phone\n+12025550101\n")
	ctx := context.Background()
	if err := f.store.Pause(ctx, c.ID, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	// The worker sees the paused campaign (and caches it) ...
	if err := f.handler.ProcessTask(ctx, f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	// ... the campaign resumes in round 1 ...
	if _, err := f.service.Resume(ctx, c.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	// ... and the new round's task comes within the cache's quarter second.
	if err := f.handler.ProcessTask(ctx, f.taskOfRound(c.ID, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if n := len(f.sandbox.Messages()); n != 1 {
		t.Fatalf("the resumed recipient got %d messages; a stale gate dropped it", n)
	}
}

// TestNeverSyncedLedgerLooksAgainSoon: on a fresh Redis the ledger has not
// read the quota; a send waits seconds for it, not a sync interval.
func TestNeverSyncedLedgerLooksAgainSoon(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	c := f.importCSV("Hi", "phone\n+12025550101\n")
	f.handler.ledger = quota.NewCreditLedger(redis.NewClient(&redis.Options{Addr: f.rdb.Options().Addr, DB: 1}))
	err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 0))
	var wait *WaitError
	if !errors.As(err, &wait) || wait.Delay > 5*time.Second {
		t.Fatalf("answered %v; want a wait of seconds", err)
	}
	if r := f.recipient(c.ID, 0); r.State != StateQueued {
		t.Errorf("recipient %s; the wait must leave it queued", r.State)
	}
}

// refusedWhileClaimed runs the send task of recipient seq, whose provider
// call holds its claim for a second and then answers 429 (nothing sent: the
// claim goes back), and calls during once the claim is taken. It answers
// what the task answered.
func refusedWhileClaimed(t *testing.T, f *fixture, task *asynq.Task, id string, seq int64, during func()) error {
	t.Helper()
	f.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Times: 1, Delay: time.Second, Status: 429,
		Header: http.Header{"Retry-After": {"1"}}, Body: `{"status":"error","message":"Too many requests"}`})
	done := make(chan error, 1)
	go func() { done <- f.handler.ProcessTask(context.Background(), task) }()
	deadline := time.Now().Add(5 * time.Second)
	for f.recipient(id, seq).State != StateSending {
		if time.Now().After(deadline) {
			t.Fatal("the task never claimed the recipient")
		}
		time.Sleep(5 * time.Millisecond)
	}
	during()
	return <-done
}

// TestClaimReleasedAfterCancelEndsSkipped: a recipient claimed when the
// campaign is cancelled, whose send is then refused (nothing sent), ends
// skipped like the rest, not queued with no task to send it.
func TestClaimReleasedAfterCancelEndsSkipped(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	c := f.importCSV("Hi", "phone\n+12025550101\n+12025550102\n+12025550103\n")
	if err := f.handler.ProcessTask(ctx, f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	err := refusedWhileClaimed(t, f, f.task(c.ID, 1), c.ID, 1, func() {
		if _, err := f.store.Cancel(ctx, c.ID, "wrong list", time.Now()); err != nil {
			t.Error(err)
		}
	})
	var wait *WaitError
	if err != nil && !errors.As(err, &wait) {
		t.Fatal(err)
	}
	got := f.get(c.ID)
	if got.Counts.Queued != 0 || got.Counts.Sending != 0 || got.Counts.Sent != 1 || got.Counts.Skipped != 2 || !addsUp(got.Counts) {
		t.Errorf("after the cancel: %+v; want 1 sent, 2 skipped", got.Counts)
	}
	if r := f.recipient(c.ID, 1); r.State != StateSkipped || r.Reason != "wrong list" {
		t.Errorf("the recipient claimed during the cancel is %s %q", r.State, r.Reason)
	}
	if n := len(f.sandbox.Messages()); n != 1 {
		t.Errorf("the sandbox got %d messages; want 1", n)
	}
}

// TestClaimReleasedAcrossPauseAndResumeIsSentInTheNewRound: a pause and
// resume while a recipient is claimed; the resume's start task passes it
// over (it is sending) and its old round's task stops. The release puts it
// on the queue of the new round, so it is sent once, not stranded.
func TestClaimReleasedAcrossPauseAndResumeIsSentInTheNewRound(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	c := f.importCSV("Hi", "phone\n+12025550101\n+12025550102\n")
	if err := f.handler.ProcessTask(ctx, f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	err := refusedWhileClaimed(t, f, f.task(c.ID, 1), c.ID, 1, func() {
		if err := f.store.Pause(ctx, c.ID, "", time.Now()); err != nil {
			t.Error(err)
		}
		if _, err := f.service.Resume(ctx, c.ID, time.Now()); err != nil {
			t.Error(err)
		}
	})
	var wait *WaitError
	if err != nil && !errors.As(err, &wait) {
		t.Fatal(err)
	}
	if r := f.recipient(c.ID, 1); r.State != StateQueued {
		t.Fatalf("the released recipient is %s; want queued", r.State)
	}
	info, err := f.inspector.GetTaskInfo(QueueSend, sendTaskID(c.ID, 1, 1))
	if err != nil {
		t.Fatalf("no send task of the new round for the released recipient: %v", err)
	}
	time.Sleep(time.Until(info.NextProcessAt)) // its pacing slot
	if err := f.handler.ProcessTask(ctx, asynq.NewTask(info.Type, info.Payload)); err != nil {
		t.Fatal(err)
	}
	got := f.get(c.ID)
	if got.Status != StatusCompleted || got.Counts.Sent != 2 {
		t.Errorf("campaign %s %+v; want completed with 2 sent", got.Status, got.Counts)
	}
	if n := len(f.sandbox.Messages()); n != 2 {
		t.Errorf("the sandbox got %d messages; want 2", n)
	}
}

// TestClaimsSendingEntryIsWrittenWithTheOutcome: the claim leaves its
// "sending" history entry for the outcome to write in the same step; the
// history then reads as always: queued, sending (with the account, at the
// claim), then sent (with the message uid), in order. A claim whose worker
// died gets its entry written when it is found unconfirmed.
func TestClaimsSendingEntryIsWrittenWithTheOutcome(t *testing.T) {
	f := newFixture(t, sandbox.Config{Accounts: []string{"+14155550100"}})
	c := f.importCSV("Hi", "phone\n+12025550101\n+12025550102\n", func(d *Draft) { d.Accounts = []string{"+14155550100"} })
	if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	r := f.recipient(c.ID, 0)
	if len(r.History) != 3 || !hasStates(r.History, StateQueued, StateSending, StateSent) {
		t.Fatalf("history %+v; want queued, sending, sent", r.History)
	}
	sending, sent := r.History[1], r.History[2]
	if sending.Detail != "+14155550100" || sent.Detail != r.MessageUID || sending.At.After(sent.At) {
		t.Errorf("sending %+v then sent %+v; want the account, then the uid, in order", sending, sent)
	}

	f.deadAttempt(c.ID, 1, true)
	if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 1)); err != nil {
		t.Fatal(err)
	}
	r = f.recipient(c.ID, 1)
	if !hasStates(r.History, StateQueued, StateSending, StateUnconfirmed) {
		t.Errorf("history %+v of a dead claim; want queued, sending, unconfirmed", r.History)
	}
}

// TestUntroubledRunOfAStepsSkippedRecipientTakesNoPacingSlot: a sequence
// step's queued recipients may be skipped behind their tasks (an
// unenrolled contact), so even an untroubled run of such a task reads the
// state first and takes nothing. A fixed list's untroubled run leaves the
// state to the claim, which turns a settled recipient away after its
// account's slot was taken: the price of the read it saves.
func TestUntroubledRunOfAStepsSkippedRecipientTakesNoPacingSlot(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	deps := f.sendDeps
	deps.Pacer = quota.NewPacer(f.rdb, time.Hour, 0)
	h := NewSendHandler(deps)
	h.untroubled = func(context.Context) bool { return true }
	slotTaken := func(account string) bool {
		t.Helper()
		wait, err := deps.Pacer.Take(ctx, account)
		if err != nil {
			t.Fatal(err)
		}
		return wait > 0
	}

	const stepAccount, listAccount = "+14155550001", "+14155550002"
	step := &Campaign{ID: "step1", Name: "Welcome", Status: StatusRunning, CreatedAt: time.Now(), Template: "Hi",
		Columns: []string{"phone"}, Accounts: []string{stepAccount}}
	if err := f.store.CreateOpen(ctx, step, "phone"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.addRecipientOnce(ctx, step.ID, 0, []string{"+12025550101"}, 1); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.store.SkipQueued(ctx, step.ID, 0, "unenrolled", time.Now()); err != nil || !ok {
		t.Fatalf("skip: %v %v", ok, err)
	}
	if err := h.ProcessTask(ctx, f.task(step.ID, 0)); err != nil {
		t.Fatal(err)
	}
	if slotTaken(stepAccount) {
		t.Error("the skipped step recipient's task took its account's pacing slot")
	}

	c := f.importCSV("Hi", "phone\n+12025550102\n+12025550103\n", func(d *Draft) { d.Accounts = []string{listAccount} })
	if err := f.handler.ProcessTask(ctx, f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	if err := h.ProcessTask(ctx, f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	if !slotTaken(listAccount) {
		t.Error("the fixed list's rerun took no pacing slot: did it read the state first?")
	}
	if n := len(f.sandbox.Messages()); n != 1 {
		t.Errorf("the sandbox got %d messages; want the list's one", n)
	}
	if got := f.get(c.ID); got.Counts.Sent != 1 || got.Counts.Queued != 1 || !addsUp(got.Counts) {
		t.Errorf("campaign %+v; the rerun changed the counts", got.Counts)
	}
}

// TestCampaignCompletesWhenItsLastSendInFlightSettles: sends settle in any
// order; the campaign completes with the last of them, not before, and
// not while a recipient is still queued.
func TestCampaignCompletesWhenItsLastSendInFlightSettles(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	c := f.importCSV("Hi", "phone\n+12025550101\n+12025550102\n+12025550103\n")
	claim := func(seq int64) string {
		t.Helper()
		attempt := NewAttemptID()
		res, err := f.store.claim(ctx, claimParams{Campaign: c.ID, Seq: seq, Account: "", Attempt: attempt, Lease: time.Minute, Now: time.Now()})
		if err != nil || res.outcome != claimTaken {
			t.Fatalf("claim %d: %+v %v", seq, res, err)
		}
		return attempt
	}
	settle := func(seq int64, attempt string) {
		t.Helper()
		ok, err := f.store.settle(ctx, settleParams{Campaign: c.ID, Seq: seq, From: StateSending, Attempt: attempt,
			Record: record{State: StateSent, UID: "uid-" + strconv.FormatInt(seq, 10)}, Credits: 1, Now: time.Now()})
		if err != nil || !ok {
			t.Fatalf("settle %d: %v %v", seq, ok, err)
		}
	}
	status := func() Status { return f.get(c.ID).Status }

	first, second := claim(0), claim(1)
	settle(1, second)
	if s := status(); s != StatusRunning {
		t.Fatalf("with one send in flight and one queued: %s", s)
	}
	settle(0, first)
	if s := status(); s != StatusRunning {
		t.Fatalf("with nothing in flight but one queued: %s", s)
	}
	settle(2, claim(2))
	if got := f.get(c.ID); got.Status != StatusCompleted || got.Counts.Sent != 3 || got.Credits.Spent != 3 || !addsUp(got.Counts) {
		t.Errorf("after the last settled: %s %+v credits %+v; want completed", got.Status, got.Counts, got.Credits)
	}
}

// TestClaimOfAQueuedRecipient: the claim of a queued recipient takes it
// (counted sending), a second claim meanwhile finds it in flight, and an
// inspection claims nothing: it answers free for a queued recipient and
// leaves it queued.
func TestClaimOfAQueuedRecipient(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	c := f.importCSV("Hi", "phone\n+12025550101\n+12025550102\n")
	claim := func(seq int64, inspect bool) claimResult {
		t.Helper()
		res, err := f.store.claim(ctx, claimParams{Campaign: c.ID, Seq: seq, Attempt: NewAttemptID(), Lease: time.Minute, Now: time.Now(), InspectOnly: inspect})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := claim(1, true); res.outcome != claimFree {
		t.Errorf("inspecting a queued recipient: %+v; want free", res)
	}
	if r := f.recipient(c.ID, 1); r.State != StateQueued {
		t.Errorf("after the inspection the recipient is %s; want queued", r.State)
	}
	if res := claim(0, false); res.outcome != claimTaken {
		t.Fatalf("claiming a queued recipient: %+v", res)
	}
	if res := claim(0, false); res.outcome != claimInflight {
		t.Errorf("claiming it again: %+v; want in flight", res)
	}
	if got := f.get(c.ID); got.Counts.Sending != 1 || got.Counts.Queued != 1 || !addsUp(got.Counts) {
		t.Errorf("counts %+v; want one sending, one queued", got.Counts)
	}
}
