package sender_test

import (
	"context"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// instance is one gateway instance serving one account.
type instance struct {
	box *sandbox.Server
	url string
}

func startInstance(t *testing.T, account string) instance {
	t.Helper()
	box := sandbox.New(sandbox.Config{Mode: sandbox.ModeGateway, Token: gatewayKey, Accounts: []string{account}, TypingDelay: -1})
	srv := httptest.NewServer(box)
	t.Cleanup(srv.Close)
	return instance{box: box, url: srv.URL}
}

const (
	gwAccountA = "+14155550001"
	gwAccountB = "+14155550002"
	gwAccountC = "+14155550003" // served by no instance
)

func TestGatewayRouterSendsThroughEachAccountsInstance(t *testing.T) {
	gw1, gw2 := startInstance(t, gwAccountA), startInstance(t, gwAccountB)
	router, err := sender.NewGatewayRouter(sender.GatewayRoutes{Accounts: map[string]string{gwAccountA: gw1.url, gwAccountB: gw2.url + "/"}}, gatewayKey)
	if err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	msgs := []sender.Message{
		{Phone: "+12025550101", AccountPhone: gwAccountA, Text: "from A, typing off", TypingSimulation: &no, PresenceSimulation: &yes},
		{Phone: "+12025550102", AccountPhone: gwAccountB, Text: "from B, defaults"},
		{JID: "120363012345678901@g.us", AccountPhone: "1 (415) 555-0001", Text: "from A again, to a group", PresenceSimulation: &no},
	}
	for _, m := range msgs {
		if _, err := router.Send(context.Background(), m); err != nil {
			t.Fatalf("%q: %v", m.Text, err)
		}
	}

	type seen struct {
		sender, text, auth string
		typing, presence   *bool
	}
	received := func(box *sandbox.Server) []seen {
		var out []seen
		for _, m := range box.Messages() {
			out = append(out, seen{m.Sender, m.Text, m.Authorization, m.TypingSimulation, m.PresenceSimulation})
		}
		return out
	}
	if got, want := received(gw1.box), []seen{
		{gwAccountA, "from A, typing off", gatewayKey, &no, &yes},
		{gwAccountA, "from A again, to a group", gatewayKey, nil, &no},
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("instance of A received %+v, want %+v", got, want)
	}
	if got, want := received(gw2.box), []seen{{gwAccountB, "from B, defaults", gatewayKey, nil, nil}}; !reflect.DeepEqual(got, want) {
		t.Errorf("instance of B received %+v, want %+v", got, want)
	}
	if !reflect.DeepEqual(router.Capabilities(), sender.GatewayCapabilities()) {
		t.Error("the router's capabilities are not the gateway's")
	}
}

func TestGatewayRouterUnknownAccounts(t *testing.T) {
	gw1, fallback := startInstance(t, gwAccountA), startInstance(t, gwAccountB)

	strict, err := sender.NewGatewayRouter(sender.GatewayRoutes{Accounts: map[string]string{gwAccountA: gw1.url}}, gatewayKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, account := range []string{gwAccountC, ""} {
		_, err := strict.Send(context.Background(), sender.Message{Phone: "+12025550101", AccountPhone: account, Text: "hi"})
		pe := gatewayError(t, err)
		if pe.Kind != sender.Invalid || len(pe.Fields) != 1 || !reflect.DeepEqual(pe.Fields[0].Fields, []string{"whatsapp_account_phone"}) {
			t.Errorf("account %q: %v, want Invalid naming whatsapp_account_phone", account, err)
		}
		if account != "" && !strings.Contains(pe.Reason(), account) {
			t.Errorf("reason %q does not name the account %s", pe.Reason(), account)
		}
	}
	if n := len(gw1.box.Answers()); n != 0 {
		t.Errorf("refused messages reached an instance: %v", gw1.box.Answers())
	}

	// With a default instance, they go there.
	lenient, err := sender.NewGatewayRouter(sender.GatewayRoutes{Accounts: map[string]string{gwAccountA: gw1.url}, Default: fallback.url}, gatewayKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, account := range []string{gwAccountC, ""} {
		if _, err := lenient.Send(context.Background(), sender.Message{Phone: "+12025550101", AccountPhone: account, Text: "to the default"}); err != nil {
			t.Errorf("account %q: %v", account, err)
		}
	}
	if len(fallback.box.Messages()) != 2 || len(gw1.box.Messages()) != 0 {
		t.Errorf("default instance got %d, A's got %d; want 2 and 0", len(fallback.box.Messages()), len(gw1.box.Messages()))
	}
}

func TestNewGatewayRouterRefusesBadRoutes(t *testing.T) {
	tests := []struct {
		name   string
		routes sender.GatewayRoutes
		want   string
	}{
		{"nothing", sender.GatewayRoutes{}, "no gateway instance"},
		{"an account without +", sender.GatewayRoutes{Accounts: map[string]string{"14155550001": "http://gw:7001"}}, "14155550001"},
		{"a URL without scheme", sender.GatewayRoutes{Default: "gw:7001"}, "http://"},
		{"an ftp URL", sender.GatewayRoutes{Accounts: map[string]string{gwAccountA: "ftp://gw"}}, "http://"},
		{"a URL without host, credentials not repeated", sender.GatewayRoutes{Default: "http://user:hunter2@/x"}, "no host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sender.NewGatewayRouter(tt.routes, gatewayKey)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %v, want one mentioning %q (and no password)", err, tt.want)
			}
		})
	}
}
