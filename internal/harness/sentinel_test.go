//go:build linux

package harness

import (
	"bytes"
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/redistest"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// TestCampaignCompletesThroughASentinelFailover runs the shipped binaries
// (campaign-api and two campaign-worker processes) on a Redis Sentinel
// topology, REDIS_URL in go-redis's failover form, and kills the Redis
// master with SIGKILL while a campaign sends. The sentinels promote the
// replica; the campaign must still complete, every recipient messaged
// exactly once, as the sandbox provider (in this process) counts them.
func TestCampaignCompletesThroughASentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and sends a campaign through a failover: not in -short")
	}
	const (
		recipients = 240
		token      = "sentinel-test-sandbox-token"
		apiKey     = "sentinel-test-key"
	)
	accounts := []string{"+14155550100", "+14155550101", "+14155550102"}
	dir := t.TempDir()
	bins, err := Build("", "", dir)
	if err != nil {
		t.Fatal(err)
	}
	topology := redistest.StartSentinel(t)
	provider := sandbox.New(sandbox.Config{
		Token: token, Accounts: accounts, Credits: 1 << 30,
		SendInterval: time.Millisecond, DeliverAfter: time.Second, ReadAfter: 3 * time.Second, ReadRate: 0.5, Seed: 1,
	})
	providerSrv := httptest.NewServer(provider)
	defer providerSrv.Close()
	defer func() {
		StopAll() // before the topology's cleanup: the product talks to it while it stops
		if t.Failed() {
			PrintChildLogs("what the product logged (LOG_LEVEL=warn):", dir)
		}
	}()

	env := []string{
		"REDIS_URL=" + topology.URL(), "API_KEYS=" + apiKey, "PROVIDER=timelines",
		"TIMELINES_API_TOKEN=" + token, "TIMELINES_BASE_URL=" + providerSrv.URL,
		"SEND_INTERVAL=100ms", "PROVIDER_TIMEOUT=3s", "QUOTA_SYNC_INTERVAL=5s", "STATUS_POLL_SCHEDULE=2s,5s",
		"STATUS_POLL_MAX_AGE=1m", "API_CALLS_PER_SECOND=1000", "RECONCILE_AFTER=2s", "RECONCILE_MAX_AGE=20s",
		"SHUTDOWN_TIMEOUT=5s", "LOG_LEVEL=warn",
	}
	_, api, err := StartAPI("api", bins.API, env, apiKey, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"worker-1", "worker-2"} {
		if _, err := StartProduct(name, bins.Worker, nil, env, dir); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	awaitCredits(t, ctx, api)

	id := createSentinelCampaign(t, ctx, api, recipients, accounts)
	awaitReceived(t, provider, recipients/3, time.Minute)
	old := topology.KillMaster(t)
	at := len(provider.Messages())
	newMaster := topology.AwaitFailover(t, old, 30*time.Second)
	t.Logf("master %s killed with %d of %d messages at the sandbox; %s took over", old, at, recipients, newMaster)

	final := awaitSettled(t, ctx, api, id)
	list, err := api.Recipients(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	perPhone := map[string]int{}
	for _, m := range provider.Messages() {
		perPhone[m.Recipient]++
	}
	if len(list) != recipients || final.Counts.Total != recipients {
		t.Fatalf("the campaign lists %d recipients (total %d), want %d", len(list), final.Counts.Total, recipients)
	}
	for _, r := range list {
		switch got := perPhone[r.Phone]; {
		case got > 1:
			t.Errorf("%s was messaged %d times (state %s)", r.Phone, got, r.State)
		case got == 0:
			t.Errorf("%s never reached the provider (state %s, %s)", r.Phone, r.State, r.Reason)
		case r.State != "sent" && r.State != "delivered" && r.State != "read":
			t.Errorf("%s reached the provider but is %s (%s)", r.Phone, r.State, r.Reason)
		}
	}
	if len(perPhone) != recipients {
		t.Errorf("the sandbox got messages for %d phones, want %d", len(perPhone), recipients)
	}
}

// awaitCredits waits until the workers' credit ledger has read the
// sandbox's quota: before that a campaign would wait for quota.
func awaitCredits(t *testing.T, ctx context.Context, api *APIClient) {
	t.Helper()
	for !api.CreditsSynced(ctx) {
		if ctx.Err() != nil {
			t.Fatal("the credit ledger never synced from the sandbox")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func createSentinelCampaign(t *testing.T, ctx context.Context, api *APIClient, n int, accounts []string) string {
	t.Helper()
	plan, err := NewPhonePlan(n)
	if err != nil {
		t.Fatal(err)
	}
	var csv bytes.Buffer
	if _, err := WriteContacts(&csv, n, plan); err != nil {
		t.Fatal(err)
	}
	accountList := accounts[0]
	for _, a := range accounts[1:] {
		accountList += "," + a
	}
	c, err := api.CreateCampaign(ctx, []Field{
		{Name: "name", Value: "through a failover"},
		{Name: "template", Value: "Hi {{.first_name}}, your {{.plan}} plan is ready."},
		{Name: "accounts", Value: accountList},
	}, &csv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Counts.Total != int64(n) {
		t.Fatalf("the campaign has %d recipients of the %d uploaded (rejected %d)", c.Counts.Total, n, c.RejectedCount)
	}
	return c.ID
}

// awaitReceived waits until the sandbox holds at least n messages.
func awaitReceived(t *testing.T, provider *sandbox.Server, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(provider.Messages()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the sandbox has %d messages after %s, want %d", len(provider.Messages()), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// awaitSettled waits until the campaign is completed with nobody sending
// or unconfirmed; reads that fail during the failover are retried.
func awaitSettled(t *testing.T, ctx context.Context, api *APIClient, id string) *Campaign {
	t.Helper()
	var last *Campaign
	var lastErr error
	for {
		c, err := api.GetCampaign(ctx, id)
		if err == nil {
			last = c
			if c.Status == "completed" && c.Counts.Sending == 0 && c.Counts.Unconfirmed == 0 {
				return c
			}
		} else {
			lastErr = err
		}
		if ctx.Err() != nil {
			t.Fatalf("the campaign did not complete: last seen %+v (last error %v)", last, lastErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
