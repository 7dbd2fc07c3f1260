package campaign

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// TestPausedAccountsRecipientsGoThroughTheOthers: a campaign's recipients
// are spread over its accounts in turn; those of a paused account go
// through the usable ones, and with none usable the campaign waits and says
// why, without failing anyone.
func TestPausedAccountsRecipientsGoThroughTheOthers(t *testing.T) {
	const a, b = "+14155550100", "+14155550101"
	f := newFixture(t, sandbox.Config{Accounts: []string{a, b}})
	ctx := context.Background()
	accounts := quota.NewAccounts(f.rdb)
	c := f.importCSV("Hi", "phone\n+12025550101\n+12025550102\n+12025550103\n+12025550104\n",
		func(d *Draft) { d.Accounts = []string{a, b} })
	if err := accounts.Pause(ctx, a, "number flagged"); err != nil {
		t.Fatal(err)
	}
	for seq := int64(0); seq < 2; seq++ {
		if err := f.handler.ProcessTask(ctx, f.task(c.ID, seq)); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range f.sandbox.Messages() {
		if m.AccountPhone != b {
			t.Errorf("%s was sent from %s while it was paused", m.Recipient, m.AccountPhone)
		}
	}

	if err := accounts.Pause(ctx, b, "also flagged"); err != nil {
		t.Fatal(err)
	}
	// A worker reads an account's status again after a moment; a new one
	// reads it at once.
	f.handler = f.freshHandler()
	err := f.handler.ProcessTask(ctx, f.task(c.ID, 2))
	var wait *WaitError
	if !errors.As(err, &wait) || IsFailure(err) || wait.Reason != ReasonWaitingForAccount {
		t.Fatalf("with every account paused: %v; want a wait for a sender account", err)
	}
	got := f.get(c.ID)
	if !strings.HasPrefix(got.Reason, ReasonWaitingForAccount) || !strings.Contains(got.Reason, b+" is paused") || got.Counts.Queued != 2 || got.Counts.Failed != 0 {
		t.Errorf("campaign reason %q counts %+v", got.Reason, got.Counts)
	}

	if err := accounts.Resume(ctx, a); err != nil {
		t.Fatal(err)
	}
	f.handler = f.freshHandler()
	for seq := int64(2); seq < 4; seq++ {
		if err := f.handler.ProcessTask(ctx, f.task(c.ID, seq)); err != nil {
			t.Fatal(err)
		}
	}
	perAccount := map[string]int{}
	for _, m := range f.sandbox.Messages() {
		perAccount[m.AccountPhone]++
	}
	if perAccount[a] != 2 || perAccount[b] != 2 {
		t.Errorf("messages per account %v; want 2 from each", perAccount)
	}
	if got := f.get(c.ID); got.Status != StatusCompleted || got.Counts.Sent != 4 || got.Reason != "" {
		t.Errorf("campaign %s %+v reason %q", got.Status, got.Counts, got.Reason)
	}
}

// freshHandler is the fixture's send handler as a worker that has just
// started has it: nothing cached.
func (f *fixture) freshHandler() *SendHandler {
	deps := f.sendDeps
	deps.Accounts = quota.NewAccounts(f.rdb)
	return NewSendHandler(deps)
}
