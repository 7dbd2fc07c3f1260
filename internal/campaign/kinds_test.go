package campaign

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// newGatewayFixture is the fixture sending through one gateway instance
// (the sandbox in gateway mode) with the gateway's capabilities, on a Redis
// whose credit ledger has never read a quota: a gateway has none.
func newGatewayFixture(t testing.TB, sbCfg sandbox.Config) *fixture {
	t.Helper()
	f := newFixture(t, sandbox.Config{})
	if err := f.rdb.FlushDB(context.Background()).Err(); err != nil { // the ledger the fixture synced
		t.Fatal(err)
	}
	sbCfg.Mode, sbCfg.Token = sandbox.ModeGateway, fixtureToken
	f.sandbox = sandbox.New(sbCfg)
	prov := httptest.NewServer(f.sandbox)
	t.Cleanup(prov.Close)
	f.provURL = prov.URL
	gateway := sender.NewGateway(prov.URL, fixtureToken)
	f.sendDeps.Provider = gateway
	f.handler = NewSendHandler(f.sendDeps)
	f.reconciler = NewReconciler(ReconcilerDeps{Store: f.store, Provider: gateway, Queue: f.queue, Policy: f.sendDeps.Reconcile, Log: f.sendDeps.Log})
	f.importer = NewImporter(f.store, f.queue, "US", f.sendDeps.Log, ForProvider(gateway.Capabilities()))
	return f
}

// queued lists the tasks of type typ waiting in queue (scheduled or
// pending); none when the queue was never used.
func (f *fixture) queued(queue, typ string) []*asynq.TaskInfo {
	f.t.Helper()
	var out []*asynq.TaskInfo
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){f.inspector.ListScheduledTasks, f.inspector.ListPendingTasks} {
		infos, err := list(queue, asynq.PageSize(10_000)) // not only the first page of 30
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			f.t.Fatal(err)
		}
		for _, info := range infos {
			if info.Type == typ {
				out = append(out, info)
			}
		}
	}
	return out
}

// inputErrorOn is err as an InputError naming field, or the test fails.
func inputErrorOn(t *testing.T, err error, field string) *InputError {
	t.Helper()
	var input *InputError
	if !errors.As(err, &input) {
		t.Fatalf("answered %v; want an InputError on %s", err, field)
	}
	for _, p := range input.Problems {
		for _, f := range p.Fields {
			if f == field {
				return input
			}
		}
	}
	t.Fatalf("the InputError %q names %+v, not %s", input.Msg, input.Problems, field)
	return nil
}

// TestImportAddressesRecipientsByTheirKeyColumn: phones, JIDs (a contact's
// and a group's) and chat ids in one file; a row's key is its first filled
// key column; duplicates are dropped by key (a contact's JID is its phone);
// bad keys are rejected with the column and the reason; the recipients
// show their key and kind.
func TestImportAddressesRecipientsByTheirKeyColumn(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	csv := strings.Join([]string{
		"Phone,JID,chat_id,name",
		"(202) 555-0101,,,Ann",
		",120363025551234567@G.US,,Team",
		",,42,Chat",
		", 1 202 555 0102@s.whatsapp.net ,,Bob",
		"+12025550102,,,Bob again",           // Bob's JID came first: the same person
		",14155550100@s.whatsapp.net,7,Both", // the JID is the key; the chat id a field
		",120363025551234567@g.us,,Team again",
		",,42,Chat again",
		",not-a-jid,,Bad",
		",,-3,Bad",
		",,,Nobody",
	}, "\n") + "\n"
	c := f.importCSV("Hi {{.name}}", csv)
	if c.Counts.Total != 5 || c.Duplicates != 3 || c.RejectedCount != 3 {
		t.Fatalf("total %d, duplicates %d, rejected %d %+v; want 5, 3, 3", c.Counts.Total, c.Duplicates, c.RejectedCount, c.Rejected)
	}
	if got := strings.Join(c.KeyColumns, ","); got != "phone,jid,chat_id" || c.PhoneColumn != "phone" {
		t.Errorf("key columns %q, phone column %q", got, c.PhoneColumn)
	}
	for i, want := range []string{`column "JID": jid "not-a-jid" is not a WhatsApp ID`, `column "chat_id": chat_id "-3" is not a chat id`, "the row has no recipient: Phone, JID, chat_id are all empty"} {
		if !strings.HasPrefix(c.Rejected[i].Msg, want) {
			t.Errorf("rejected row %d: %q, want it to start with %q", c.Rejected[i].Row, c.Rejected[i].Msg, want)
		}
	}
	want := []struct {
		phone, key string
		kind       Kind
	}{
		{"+12025550101", "+12025550101", KindPhone},
		{"", "120363025551234567@g.us", KindJID},
		{"", "42", KindChatID},
		{"", "12025550102@s.whatsapp.net", KindJID},
		{"", "14155550100@s.whatsapp.net", KindJID},
	}
	for i, w := range want {
		r := f.recipient(c.ID, int64(i))
		if r.Phone != w.phone || r.Key != w.key || r.Kind != w.kind {
			t.Errorf("recipient %d: phone %q key %q kind %q; want %q %q %q", i, r.Phone, r.Key, r.Kind, w.phone, w.key, w.kind)
		}
	}
}

// TestTimelinesSendsEachKindToItsEndpoint: a phone goes to POST /messages,
// a JID to /messages/to_jid, a chat id to /chats/{id}/messages; each
// becomes sent.
func TestTimelinesSendsEachKindToItsEndpoint(t *testing.T) {
	const account = "+14155550001"
	f := newFixture(t, sandbox.Config{Accounts: []string{account}})
	if _, ok := f.sandbox.Receive(account, "+12025550109", "hello"); !ok { // a chat to send to by id: chat 1
		t.Fatal("the sandbox refused a received message")
	}
	c := f.importCSV("Hi {{.name}}", "phone,jid,chat_id,name\n+12025550101,,,Ann\n,120363025551234567@g.us,,Team\n,,1,Chat\n",
		func(d *Draft) { d.Accounts = []string{account} })
	for seq := range int64(3) {
		if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, seq)); err != nil {
			t.Fatal(err)
		}
	}
	msgs := f.sandbox.Messages()
	if len(msgs) != 3 {
		t.Fatalf("the sandbox got %d messages, want 3", len(msgs))
	}
	if m := msgs[0]; m.Phone != "+12025550101" || m.Text != "Hi Ann" {
		t.Errorf("the phone's message %+v; want POST /messages to the phone", m)
	}
	if m := msgs[1]; m.JID != "120363025551234567@g.us" || m.Recipient != "120363025551234567@g.us" || m.Text != "Hi Team" {
		t.Errorf("the group's message %+v; want POST /messages/to_jid", m)
	}
	if m := msgs[2]; m.ChatID != 1 || m.Recipient != "+12025550109" || m.Text != "Hi Chat" {
		t.Errorf("the chat's message %+v; want POST /chats/1/messages", m)
	}
	if got := f.get(c.ID); got.Status != StatusCompleted || got.Counts.Sent != 3 {
		t.Errorf("campaign %s %+v", got.Status, got.Counts)
	}
}

// TestGatewayRefusesWhatItCannotDo: at creation, a chat id file, a
// label, an attachment (the campaign's or a column's) are refused naming
// the field; a chat id beside phones only rejects its rows.
func TestGatewayRefusesWhatItCannotDo(t *testing.T) {
	f := newGatewayFixture(t, sandbox.Config{})
	_, err := f.tryImport("Hi", "chat_id\n42\n")
	if in := inputErrorOn(t, err, "contacts"); !strings.Contains(in.Msg, "the gateway cannot address recipients by chat_id") {
		t.Errorf("a chat id file: %q", in.Msg)
	}
	_, err = f.tryImport("Hi", "phone,file_uid\n+12025550101,inv-1\n")
	inputErrorOn(t, err, "contacts")
	for field, mod := range map[string]func(*Draft){
		"label":    func(d *Draft) { d.Label = "vip" },
		"file_uid": func(d *Draft) { d.FileUID = "f-1" },
	} {
		_, err := f.tryImport("Hi", "phone\n+12025550101\n", mod)
		if in := inputErrorOn(t, err, field); !strings.Contains(in.Msg, "the gateway cannot send "+field) {
			t.Errorf("%s: %q", field, in.Msg)
		}
	}
	c := f.importCSV("Hi", "phone,chat_id\n+12025550101,\n,42\n")
	if c.Counts.Total != 1 || c.RejectedCount != 1 || !strings.Contains(c.Rejected[0].Msg, "the gateway cannot address recipients by chat_id") {
		t.Errorf("total %d, rejected %+v", c.Counts.Total, c.Rejected)
	}
	if strings.Join(c.KeyColumns, ",") != "phone" {
		t.Errorf("key columns %v: chat_id is a plain field for the gateway", c.KeyColumns)
	}

	// TimelinesAI has no typing simulation.
	tl := newFixture(t, sandbox.Config{})
	off := false
	_, err = tl.tryImport("Hi", "phone\n+12025550101\n", func(d *Draft) { d.TypingSimulation = &off })
	inputErrorOn(t, err, "typing_simulation")
}

// TestGatewayCampaignIsUnmeteredUnpolledAndSimulated: through the gateway,
// a campaign estimates no credits and shows them not metered, sends with
// no quota ever read (its ledger was never synced), schedules no status
// polls, and passes the simulation flags (on by default, off when asked).
func TestGatewayCampaignIsUnmeteredUnpolledAndSimulated(t *testing.T) {
	f := newGatewayFixture(t, sandbox.Config{TypingDelay: -1})
	f.sendDeps.Polls = PollSchedule{Delays: []time.Duration{time.Minute}}
	f.handler = NewSendHandler(f.sendDeps)
	off := false
	c := f.importCSV("Hi {{.name}}", "phone,jid,name\n+12025550101,,Ann\n,120363025551234567@g.us,Team\n",
		func(d *Draft) { d.PresenceSimulation = &off })
	if c.Credits.Metered || c.Credits.Status != CreditsNotMetered || c.Credits.Estimated != 0 {
		t.Errorf("credits %+v; want not metered, none estimated", c.Credits)
	}
	if c.TypingSimulation == nil || !*c.TypingSimulation || c.PresenceSimulation == nil || *c.PresenceSimulation {
		t.Errorf("simulation %v %v; want typing on (the default), presence off", c.TypingSimulation, c.PresenceSimulation)
	}
	for seq := range int64(2) {
		if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, seq)); err != nil {
			t.Fatalf("send %d: %v", seq, err)
		}
	}
	msgs := f.sandbox.Messages()
	if len(msgs) != 2 || msgs[0].JID != "12025550101@s.whatsapp.net" || msgs[1].JID != "120363025551234567@g.us" {
		t.Fatalf("the gateway got %+v", msgs)
	}
	for _, m := range msgs {
		if m.TypingSimulation == nil || !*m.TypingSimulation || m.PresenceSimulation == nil || *m.PresenceSimulation {
			t.Errorf("message to %s: typing %v presence %v; want true, false", m.Recipient, m.TypingSimulation, m.PresenceSimulation)
		}
	}
	got := f.get(c.ID)
	if got.Status != StatusCompleted || got.Counts.Sent != 2 || got.Credits.Spent != 0 {
		t.Errorf("campaign %s %+v credits %+v", got.Status, got.Counts, got.Credits)
	}
	if n := len(f.queued(QueueStatus, TypePoll)); n != 0 {
		t.Errorf("%d status polls were scheduled for a provider without status history", n)
	}
}

// TestGatewayUnconfirmedSendIsUnknownAtOnce: the gateway cannot look sent
// messages up, so a send whose answer was lost is settled unknown with the
// reason at the first reconciliation, which is due at once rather than
// RECONCILE_AFTER later; nothing is sent again.
func TestGatewayUnconfirmedSendIsUnknownAtOnce(t *testing.T) {
	f := newGatewayFixture(t, sandbox.Config{TypingDelay: -1})
	f.sendDeps.Reconcile = ReconcilePolicy{After: time.Hour, MaxAge: 2 * time.Hour, Resend: true}
	f.handler = NewSendHandler(f.sendDeps)
	c := f.importCSV("Hi", "phone\n+12025550101\n")
	f.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Process: true, Status: 502, Body: "<html>bad gateway</html>", Times: 1})
	if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, 0)); err != nil {
		t.Fatal(err)
	}
	reconciles := f.queued(QueueStatus, TypeReconcile)
	if len(reconciles) != 1 {
		t.Fatalf("%d reconciliations queued, want 1", len(reconciles))
	}
	for _, info := range reconciles {
		if info.NextProcessAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("reconciliation due at %s; want now (RECONCILE_AFTER is for providers that can look up)", info.NextProcessAt)
		}
	}
	f.reconcileAll()
	r := f.recipient(c.ID, 0)
	if r.State != StateUnknown || r.Reason != reasonNoLookup {
		t.Errorf("recipient %s (%s); want unknown: the provider cannot look sent messages up", r.State, r.Reason)
	}
	if n := len(f.sandbox.Messages()); n != 1 {
		t.Errorf("the gateway got %d messages, want 1: an unconfirmed send is never resent blindly", n)
	}
}

// TestReconcileLooksUpEachKindAsTheProviderCan: TimelinesAI finds a chat
// id's lost send in that chat, and a contact's JID by its phone; a group
// cannot be looked up and ends unknown with the reason.
func TestReconcileLooksUpEachKindAsTheProviderCan(t *testing.T) {
	const account = "+14155550001"
	f := newFixture(t, sandbox.Config{Accounts: []string{account}})
	if _, ok := f.sandbox.Receive(account, "+12025550109", "hello"); !ok {
		t.Fatal("the sandbox refused a received message")
	}
	c := f.importCSV("Hi {{.name}}", "jid,chat_id,name\n,1,Chat\n12025550108@s.whatsapp.net,,Contact\n120363025551234567@g.us,,Team\n",
		func(d *Draft) { d.Accounts = []string{account} })
	for seq := range int64(3) {
		// Accepted, and the answer lost: unconfirmed.
		f.sandbox.Inject(sandbox.Fault{Op: sandbox.OpSend, Process: true, Status: 504, Body: "<html>timeout</html>", Times: 1})
		if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, seq)); err != nil {
			t.Fatal(err)
		}
	}
	f.reconcileAll()
	for seq, want := range []State{StateSent, StateSent, StateUnknown} {
		if r := f.recipient(c.ID, int64(seq)); r.State != want {
			t.Errorf("recipient %d (%s): %s (%s), want %s", seq, r.Key, r.State, r.Reason, want)
		}
	}
	if r := f.recipient(c.ID, 2); r.Reason != reasonNoGroup {
		t.Errorf("the group's reason %q", r.Reason)
	}
	if n := len(f.sandbox.Messages()); n != 3 {
		t.Errorf("the sandbox got %d messages, want 3: nobody sent twice", n)
	}
}

// TestGroupWindowFallsBackToTheWindowsZone: a group has no phone to tell
// its zone; its send window is read in the window's zone.
func TestGroupWindowFallsBackToTheWindowsZone(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	win, err := ParseWindow("mon-fri", "09:00-18:00", "Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	c := f.importCSV("Hi", "jid\n120363025551234567@g.us\n", func(d *Draft) { d.Window = win })
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	now := time.Date(2026, 11, 30, 20, 0, 0, 0, tokyo) // Monday evening in Tokyo, Monday morning in Europe
	f.handler.now = func() time.Time { return now }
	err = f.handler.ProcessTask(context.Background(), f.task(c.ID, 0))
	var w *WaitError
	if !errors.As(err, &w) {
		t.Fatalf("answered %v; want a wait for the window in Tokyo", err)
	}
	opens := time.Date(2026, 12, 1, 9, 0, 0, 0, tokyo)
	if at := now.Add(w.Delay); at.Before(opens) || at.After(opens.Add(time.Minute)) {
		t.Errorf("waits until %s, want %s", at, opens)
	}
}
