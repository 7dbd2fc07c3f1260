package quota

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/redistest"
)

func TestAccountsAcrossProcesses(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a1, a2 := NewAccounts(srv.Client(t)), NewAccounts(srv.Client(t))
	const phone = "+14155550100"

	if ok, _, err := a2.Usable(ctx, phone); err != nil || !ok {
		t.Fatalf("an account nobody touched: usable %v %v", ok, err)
	}
	if err := a1.Pause(ctx, phone, "phone lost"); err != nil {
		t.Fatal(err)
	}
	a2.states.forget() // the other process's snapshot has lapsed
	if ok, why, _ := a2.Usable(ctx, phone); ok || !strings.Contains(why, "paused") {
		t.Errorf("paused elsewhere: usable %v (%q)", ok, why)
	}
	// A provider refusal does not overwrite an operator's pause, and the
	// webhook saying "connected" does not lift it.
	if err := a2.MarkDisconnected(ctx, phone, "refused"); err != nil {
		t.Fatal(err)
	}
	if err := a2.MarkConnected(ctx, phone); err != nil {
		t.Fatal(err)
	}
	list, err := a1.List(ctx, nil)
	if err != nil || len(list) != 1 || list[0].Status != AccountPaused || list[0].Reason != "phone lost" {
		t.Fatalf("list %+v %v", list, err)
	}
	if err := a1.Resume(ctx, phone); err != nil {
		t.Fatal(err)
	}
	if err := a1.MarkDisconnected(ctx, phone, "WhatsApp account is disconnected"); err != nil {
		t.Fatal(err)
	}
	if ok, why, _ := a1.Usable(ctx, phone); ok || !strings.Contains(why, "disconnected") {
		t.Errorf("disconnected: usable %v (%q)", ok, why)
	}
	// After the recheck period a send is tried again.
	a1.recheck = 0
	if ok, _, _ := a1.Usable(ctx, phone); !ok {
		t.Errorf("a disconnected account is not retried after the recheck period")
	}
	a1.recheck = time.Hour
	if err := a1.MarkConnected(ctx, phone); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := a1.Usable(ctx, phone); !ok {
		t.Errorf("connected again but not usable")
	}
	if err := a1.Remember(ctx, "+14155550101", ""); err != nil {
		t.Fatal(err)
	}
	list, _ = a2.List(ctx, NewPacer(srv.Client(t), 2*time.Second, 0))
	if len(list) != 3 || list[0].Phone != "" || list[0].Interval != 2*time.Second {
		t.Errorf("list %+v; want the default account, and two phones with their intervals", list)
	}
}

// One snapshot of the registry answers for every account: a paused one, a
// disconnected one and one nobody touched, each as Redis has it.
func TestAccountsSnapshotAnswersEachAccount(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	writer, reader := NewAccounts(srv.Client(t)), NewAccounts(srv.Client(t))
	if ok, _, err := reader.Usable(ctx, "+14155550100"); err != nil || !ok {
		t.Fatalf("an empty registry: usable %v %v", ok, err)
	}
	if err := writer.Pause(ctx, "+14155550101", "lost"); err != nil {
		t.Fatal(err)
	}
	if err := writer.MarkDisconnected(ctx, "+14155550102", "refused"); err != nil {
		t.Fatal(err)
	}
	reader.states.forget()
	for phone, want := range map[string]string{"+14155550100": "", "+14155550101": "paused", "+14155550102": "disconnected: refused"} {
		ok, why, err := reader.Usable(ctx, phone)
		if err != nil || ok != (want == "") || !strings.Contains(why, want) {
			t.Errorf("%s: usable %v (%q) %v; want reason containing %q", phone, ok, why, err, want)
		}
	}
}
