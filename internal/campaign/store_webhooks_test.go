package campaign

import (
	"context"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// indexingHandler is the fixture's send handler as it runs with
// WEBHOOK_SECRET set: sends and unconfirmed sends are indexed for the
// provider's message:sent:new events.
func (f *fixture) indexingHandler() *SendHandler {
	deps := f.sendDeps
	deps.IndexForWebhooks = true
	return NewSendHandler(deps)
}

func historyHasProviderStatus(r Recipient, word string) bool {
	for _, e := range r.History {
		if e.ProviderStatus == word {
			return true
		}
	}
	return false
}

// TestSentEventResolvesAnUnconfirmedSend: a message:sent:new event from the
// API, to the phone of a recipient whose send is unconfirmed, makes that
// recipient sent with the event's message uid; events sent from the phone
// and events of another account resolve nothing.
func TestSentEventResolvesAnUnconfirmedSend(t *testing.T) {
	const account = "+14155550100"
	f := newFixture(t, sandbox.Config{Accounts: []string{account}})
	ctx := context.Background()
	handler := f.indexingHandler()
	c := f.importCSV("Hi", "phone\n+12025550101\n", func(d *Draft) { d.Accounts = []string{account} })
	// The provider answers 500 after the request was written: the send
	// may have gone out.
	f.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Status: 500, Body: `{"status":"error","message":"oops","error_code":"internal_error"}`, Times: 1})
	if err := handler.ProcessTask(ctx, f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	if r := f.recipient(c.ID, 0); r.State != StateUnconfirmed {
		t.Fatalf("recipient %s, want unconfirmed", r.State)
	}

	now := time.Now()
	for _, ev := range []SentEvent{
		{MessageUID: "from-phone", Recipient: "+12025550101", Account: account, Origin: "WhatsApp", At: now},
		{MessageUID: "other-account", Recipient: "+12025550101", Account: "+14155550199", Origin: "Public API", At: now},
		{MessageUID: "other-phone", Recipient: "+12025550102", Account: account, Origin: "Public API", At: now},
	} {
		id, _, resolved, err := f.store.ConfirmSent(ctx, ev)
		if err != nil || resolved || id != "" {
			t.Errorf("event %s: found %q, resolved %v, %v; want nothing", ev.MessageUID, id, resolved, err)
		}
	}
	if r := f.recipient(c.ID, 0); r.State != StateUnconfirmed {
		t.Fatalf("after events that do not fit, the recipient is %s", r.State)
	}

	id, seq, resolved, err := f.store.ConfirmSent(ctx, SentEvent{MessageUID: "uid-1", Recipient: "+12025550101", Account: account, Origin: "Public API", At: now})
	if err != nil || !resolved || id != c.ID || seq != 0 {
		t.Fatalf("the fitting event: %q %d resolved %v, %v", id, seq, resolved, err)
	}
	r := f.recipient(c.ID, 0)
	if r.State != StateSent || r.MessageUID != "uid-1" || !historyHasProviderStatus(r, "Sent") {
		t.Errorf("recipient %s uid %q history %+v", r.State, r.MessageUID, r.History)
	}
	got := f.get(c.ID)
	if got.Status != StatusCompleted || got.Counts.Sent != 1 || got.Counts.Unconfirmed != 0 || !addsUp(got.Counts) {
		t.Errorf("campaign %s %+v", got.Status, got.Counts)
	}
	// The same event again finds the recipient by its uid now, and
	// resolves nothing twice.
	id, _, resolved, err = f.store.ConfirmSent(ctx, SentEvent{MessageUID: "uid-1", Recipient: "+12025550101", Account: account, Origin: "Public API", At: now})
	if err != nil || resolved || id != c.ID {
		t.Errorf("the event again: %q resolved %v, %v", id, resolved, err)
	}
	if msgs := f.sandbox.Messages(); len(msgs) != 0 {
		t.Errorf("the sandbox got %d messages; an unconfirmed send is never resent while it may be resolved", len(msgs))
	}
}

// TestSentEventBeforeTheLostAnswerResolvesIt: the provider reports a
// message (message:sent:new) while our request to send it is still waiting
// for its answer, which is then lost. The event matched nobody when it came;
// kept, it settles the send the moment it becomes unconfirmed, without a
// lookup. An event of another account is not taken.
func TestSentEventBeforeTheLostAnswerResolvesIt(t *testing.T) {
	const account = "+14155550100"
	f := newFixture(t, sandbox.Config{Accounts: []string{account}})
	ctx := context.Background()
	handler := f.indexingHandler()
	c := f.importCSV("Hi", "phone\n+12025550101\n", func(d *Draft) { d.Accounts = []string{account} })
	now := time.Now()
	for _, ev := range []SentEvent{
		{MessageUID: "other-account", Recipient: "+12025550101", Account: "+14155550199", Origin: "Public API", At: now},
		{MessageUID: "early", Recipient: "+12025550101", Account: account, Origin: "Public API", At: now},
	} {
		if id, _, resolved, err := f.store.ConfirmSent(ctx, ev); err != nil || resolved || id != "" {
			t.Fatalf("event %s before the send: %q resolved %v, %v", ev.MessageUID, id, resolved, err)
		}
	}
	f.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Status: 500, Body: `{"status":"error","message":"oops","error_code":"internal_error"}`, Times: 1})
	if err := handler.ProcessTask(ctx, f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	r := f.recipient(c.ID, 0)
	if r.State != StateSent || r.MessageUID != "early" {
		t.Fatalf("recipient %s uid %q (%s); want sent with the early event's uid", r.State, r.MessageUID, r.Reason)
	}
	if got := f.get(c.ID); got.Status != StatusCompleted || got.Counts.Sent != 1 || !addsUp(got.Counts) {
		t.Errorf("campaign %s %+v", got.Status, got.Counts)
	}
	// The event is used up: it settles nobody else.
	if _, ok, err := f.store.ResolveFromRecentEvents(ctx, "+12025550101", c.ID, 0); ok || err != nil {
		t.Errorf("the event resolved again: %v %v", ok, err)
	}
}

// TestSentEventBeforeTheAnswerIsKeptForItsSend: the provider reports a
// message while its answer is still on the way (the sandbox reports at
// once, TimelinesAI when the message leaves its queue). The event finds
// nobody yet; it is kept, and the send, once its answer is recorded, gets
// the provider's Sent in its history.
func TestSentEventBeforeTheAnswerIsKeptForItsSend(t *testing.T) {
	const account = "+14155550100"
	f := newFixture(t, sandbox.Config{Accounts: []string{account}})
	ctx := context.Background()
	handler := f.indexingHandler()
	c := f.importCSV("Hi", "phone\n+12025550101\n", func(d *Draft) { d.Accounts = []string{account} })
	f.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Process: true, Delay: 500 * time.Millisecond, Times: 1})
	sent := make(chan error, 1)
	go func() { sent <- handler.ProcessTask(ctx, f.task(c.ID, 0)) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(f.sandbox.Messages()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the sandbox never got the message")
		}
		time.Sleep(5 * time.Millisecond)
	}
	uid := f.sandbox.Messages()[0].UID
	id, _, resolved, err := f.store.ConfirmSent(ctx, SentEvent{MessageUID: uid, Recipient: "+12025550101", Account: account, Origin: "Public API", At: time.Now()})
	if err != nil || resolved || id != "" {
		t.Fatalf("the event during the send: %q resolved %v, %v; want nobody yet", id, resolved, err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	r := f.recipient(c.ID, 0)
	if r.State != StateSent || r.MessageUID != uid || !historyHasProviderStatus(r, "Sent") {
		t.Errorf("recipient %s uid %q history %+v; want sent, with the provider's Sent from the early event", r.State, r.MessageUID, r.History)
	}
}

// TestSentEventConfirmsASentMessage: the event of a message the send path
// recorded adds the provider's "Sent" to its recipient's history, once
// however often it comes.
func TestSentEventConfirmsASentMessage(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	ctx := context.Background()
	c := f.importCSV("Hi", "phone\n+12025550101\n")
	if err := f.indexingHandler().ProcessTask(ctx, f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	uid := f.recipient(c.ID, 0).MessageUID
	at := time.Now()
	for i := 0; i < 2; i++ { // the provider may deliver a webhook twice
		id, seq, resolved, err := f.store.ConfirmSent(ctx, SentEvent{MessageUID: uid, Origin: "Public API", At: at})
		if err != nil || id != c.ID || seq != 0 || resolved {
			t.Fatalf("event %d: %q %d resolved %v, %v", i, id, seq, resolved, err)
		}
	}
	r := f.recipient(c.ID, 0)
	sents := 0
	for _, e := range r.History {
		if e.ProviderStatus == "Sent" {
			sents++
		}
	}
	if r.State != StateSent || sents != 1 {
		t.Errorf("recipient %s with %d provider Sent entries; want sent, 1", r.State, sents)
	}
}
