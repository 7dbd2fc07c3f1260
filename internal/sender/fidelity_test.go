package sender_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

func TestAPICallsExhaustedIsNotACreditShortage(t *testing.T) {
	ctx := context.Background()
	msg := sender.Message{Phone: "+14155550100", Text: "hi"}

	t.Run("the sandbox's API-call quota runs out", func(t *testing.T) {
		f := newFixture(t, sandbox.Config{Credits: 100, APICalls: 2})
		receipt, err := f.client.Send(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.client.Quota(ctx); err != nil { // the second and last call
			t.Fatal(err)
		}
		_, err = f.client.Send(ctx, msg)
		if pe := providerError(t, err); pe.Kind != sender.CallsExhausted || pe.Code != "quota_exceeded" || !strings.Contains(pe.Message, "API calls") {
			t.Errorf("send: %v, want calls_exhausted saying API calls", err)
		}
		_, err = f.client.Quota(ctx)
		if pe := providerError(t, err); pe.Kind != sender.CallsExhausted {
			t.Errorf("quota read: %v, want calls_exhausted", err)
		}
		_, err = f.client.StatusHistory(ctx, receipt.MessageUID)
		if pe := providerError(t, err); pe.Kind != sender.CallsExhausted {
			t.Errorf("status poll: %v, want calls_exhausted", err)
		}
		if f.box.CreditsRemaining() != 99 {
			t.Errorf("credits remaining %d, want 99: the workspace is not short of credits", f.box.CreditsRemaining())
		}
	})

	t.Run("the sandbox's credits run out", func(t *testing.T) {
		f := newFixture(t, sandbox.Config{Credits: 1, APICalls: 100})
		if _, err := f.client.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
		_, err := f.client.Send(ctx, msg)
		if pe := providerError(t, err); pe.Kind != sender.QuotaExceeded || !strings.Contains(pe.Message, "Messaging quota") {
			t.Errorf("send: %v, want quota_exceeded about messaging", err)
		}
	})

	quotaExceeded := func(message string) string {
		return `{"status":"error","message":"` + message + `","error_code":"quota_exceeded"}`
	}
	tests := []struct {
		name   string
		op     string // sandbox op faulted
		status int
		body   string
		want   sender.Kind
	}{
		{"a send's quota_exceeded naming nothing: credits", sandbox.OpSend, 403, quotaExceeded("Quota exceeded"), sender.QuotaExceeded},
		{"a send's quota_exceeded naming api_calls_quota", sandbox.OpSend, 403, quotaExceeded("api_calls_quota is used up"), sender.CallsExhausted},
		{"a send's 2xx error envelope naming API calls", sandbox.OpSend, 200, quotaExceeded("Monthly API call limit reached"), sender.CallsExhausted},
		{"a quota read's quota_exceeded: reads spend no credits", sandbox.OpQuota, 403, quotaExceeded("Quota exceeded"), sender.CallsExhausted},
		{"a status poll's quota_exceeded", sandbox.OpStatus, 403, quotaExceeded("Quota exceeded"), sender.CallsExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, sandbox.Config{Credits: 10})
			f.box.Inject(sandbox.Fault{Op: tt.op, Status: tt.status, Body: tt.body})
			var err error
			switch tt.op {
			case sandbox.OpSend:
				_, err = f.client.Send(ctx, msg)
			case sandbox.OpQuota:
				_, err = f.client.Quota(ctx)
			default:
				_, err = f.client.StatusHistory(ctx, "any")
			}
			if pe := providerError(t, err); pe.Kind != tt.want {
				t.Errorf("got %v (%v), want %v", pe.Kind, err, tt.want)
			}
		})
	}
	if sender.CallsExhausted.String() != "calls_exhausted" {
		t.Errorf("CallsExhausted is named %q", sender.CallsExhausted)
	}
}

func TestStatusHistoryKeepsStatusesWithUnreadableTimes(t *testing.T) {
	f := newFixture(t, sandbox.Config{})
	f.box.Inject(sandbox.Fault{Op: sandbox.OpStatus, Status: 200, Body: `{"status":"ok","data":[
		{"status":"Read","timestamp":"a moment ago"},
		{"status":"Sent","timestamp":"2025-03-10 09:00:00 +0000"},
		{"status":"Delivered","timestamp":""},
		{"status":"Delivered","timestamp":"2025-03-10 09:00:05 +0000"}]}`})
	events, err := f.client.StatusHistory(context.Background(), "any")
	if err != nil {
		t.Fatalf("an unreadable time failed the poll: %v", err)
	}
	type event struct {
		status string
		known  bool
	}
	var got []event
	for _, e := range events {
		got = append(got, event{e.Status, !e.At.IsZero()})
	}
	// The readable ones first, in time order; those without a time after
	// them, in the provider's order, with a zero time the caller stamps.
	want := []event{{"Sent", true}, {"Delivered", true}, {"Read", false}, {"Delivered", false}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events %+v, want %+v", got, want)
	}
	if !events[0].At.Equal(time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("Sent at %v", events[0].At)
	}
}
