package sender_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

const (
	accountA = "+14155550001"
	accountB = "+14155550002"
	ann      = "+14155550100"
	bob      = "+14155550200"
)

// send sends text to phone from account, and returns its UID.
func send(t *testing.T, f *fixture, account, phone, text string) string {
	t.Helper()
	r, err := f.client.Send(context.Background(), sender.Message{Phone: phone, AccountPhone: account, Text: text})
	if err != nil {
		t.Fatalf("Send %q: %v", text, err)
	}
	return r.MessageUID
}

func foundTexts(msgs []sender.SentMessage) []string {
	out := []string{}
	for _, m := range msgs {
		out = append(out, m.Text)
	}
	return out
}

func TestFindSent(t *testing.T) {
	clock := newClock()
	f := newFixture(t, sandbox.Config{Credits: 50, Accounts: []string{accountA, accountB}, Now: clock.Now})
	send(t, f, accountA, ann, "old news")
	clock.Advance(time.Hour)
	after := clock.Now()

	r, err := f.client.Send(context.Background(), sender.Message{Phone: ann, AccountPhone: accountA, Text: "the one", FileUID: "file-1"})
	if err != nil {
		t.Fatal(err)
	}
	send(t, f, accountB, ann, "from the other account")
	send(t, f, accountA, bob, "to someone else")
	if _, ok := f.box.Receive(accountA, ann, "STOP"); !ok {
		t.Fatal("sandbox refused a received message")
	}
	clock.Advance(time.Minute)
	second := send(t, f, accountA, ann, "second")

	calls := f.limiter.calls.Load()
	found, err := f.client.FindSent(context.Background(), sender.SentQuery{Phone: ann, AccountPhone: accountA, After: after})
	if err != nil {
		t.Fatal(err)
	}
	want := []sender.SentMessage{
		{UID: r.MessageUID, Text: "the one", AccountPhone: accountA, At: after, HasAttachment: true},
		{UID: second, Text: "second", AccountPhone: accountA, At: after.Add(time.Minute)},
	}
	if len(found) != len(want) {
		t.Fatalf("found %v, want %v", foundTexts(found), foundTexts(want))
	}
	for i := range want {
		if !found[i].At.Equal(want[i].At) {
			t.Errorf("message %d at %v, want %v", i, found[i].At, want[i].At)
		}
		found[i].At = want[i].At
		if found[i] != want[i] {
			t.Errorf("message %d\n%+v\nwant\n%+v", i, found[i], want[i])
		}
	}
	if n := f.limiter.calls.Load() - calls; n != 2 {
		t.Errorf("the lookup made %d API calls through the limiter, want 2 (the chat list, one history page)", n)
	}

	// Any account: the other account's message too, oldest first.
	found, err = f.client.FindSent(context.Background(), sender.SentQuery{Phone: ann, After: after})
	if err != nil {
		t.Fatal(err)
	}
	if got := foundTexts(found); !reflect.DeepEqual(got, []string{"the one", "from the other account", "second"}) {
		t.Errorf("any account: %v", got)
	}

	// Nobody was written to: nothing, and no error.
	found, err = f.client.FindSent(context.Background(), sender.SentQuery{Phone: "+14155550999", AccountPhone: accountA})
	if err != nil || len(found) != 0 {
		t.Errorf("a phone never written to: %v, %v", foundTexts(found), err)
	}
}

// TestFindSentInAChat: a chat id (a group's, which has no phone) is
// looked up in that chat alone, with one API call for its history.
func TestFindSentInAChat(t *testing.T) {
	f := newFixture(t, sandbox.Config{Credits: 50, Accounts: []string{accountA}})
	group := "120363025551234567@g.us"
	r, err := f.client.Send(context.Background(), sender.Message{JID: group, AccountPhone: accountA, Text: "to the group"})
	if err != nil {
		t.Fatal(err)
	}
	send(t, f, accountA, ann, "to Ann")
	sent, ok := f.box.Message(r.MessageUID)
	if !ok {
		t.Fatal("the sandbox has no record of the group message")
	}
	calls := f.limiter.calls.Load()
	found, err := f.client.FindSent(context.Background(), sender.SentQuery{ChatID: sent.Chat})
	if err != nil {
		t.Fatal(err)
	}
	if got := foundTexts(found); !reflect.DeepEqual(got, []string{"to the group"}) || found[0].UID != r.MessageUID {
		t.Errorf("in the group's chat: %v", got)
	}
	if n := f.limiter.calls.Load() - calls; n != 1 {
		t.Errorf("the lookup made %d API calls, want 1 (the chat's history; no chat list)", n)
	}
}

func TestFindSentPages(t *testing.T) {
	clock := newClock()
	f := newFixture(t, sandbox.Config{Credits: 50, PageSize: 2, Now: clock.Now})
	var want []string
	for _, account := range []string{"+14155550011", "+14155550012", "+14155550013"} {
		for i := range 3 {
			text := fmt.Sprintf("%s #%d", account, i)
			send(t, f, account, ann, text)
			want = append(want, text)
			clock.Advance(time.Second)
		}
	}
	calls := f.limiter.calls.Load()
	found, err := f.client.FindSent(context.Background(), sender.SentQuery{Phone: ann})
	if err != nil {
		t.Fatal(err)
	}
	if got := foundTexts(found); !reflect.DeepEqual(got, want) {
		t.Errorf("found %v, want %v", got, want)
	}
	// Three chats on two pages, three messages each on two pages.
	if n := f.limiter.calls.Load() - calls; n != 2+3*2 {
		t.Errorf("%d requests, want 8", n)
	}
}

func TestFindSentStopsAfterTwentyPages(t *testing.T) {
	clock := newClock()
	f := newFixture(t, sandbox.Config{Credits: 50, PageSize: 1, Now: clock.Now})
	for i := range 25 {
		send(t, f, accountA, ann, fmt.Sprintf("#%02d", i))
		clock.Advance(time.Second)
	}
	calls := f.limiter.calls.Load()
	found, err := f.client.FindSent(context.Background(), sender.SentQuery{Phone: ann, AccountPhone: accountA})
	pe := providerError(t, err)
	if pe.Kind != sender.Transient || pe.Op != sender.OpFindSent || !strings.Contains(pe.Message, "20 pages") {
		t.Errorf("got %v %q, want Transient saying the lookup stopped after 20 pages", pe.Kind, pe.Message)
	}
	if n := f.limiter.calls.Load() - calls; n != 20 {
		t.Errorf("%d requests, want 20", n)
	}
	// The chat list took one page; the history's first 19 came back.
	if len(found) != 19 || found[0].Text != "#00" || found[18].Text != "#18" {
		t.Errorf("found %v, want #00 to #18", foundTexts(found))
	}
}

func TestFindSentChecksWhatTheAPIAnswers(t *testing.T) {
	// An API that reads its filters loosely: the client keeps only chats
	// with the phone and the account, and only the account's own messages at
	// or after After.
	after := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	f := newFixture(t, sandbox.Config{})
	f.box.Inject(sandbox.Fault{Op: sandbox.OpChats, Times: 1, Status: 200, Body: `{"status":"ok","data":{"chats":[
		{"id":"7","phone":"+1 415 555 0100","whatsapp_account_id":"14155550001@s.whatsapp.net","is_group":false},
		{"id":8,"phone":"+14155550999","whatsapp_account_id":"14155550001@s.whatsapp.net"},
		{"id":9,"phone":"+14155550100","whatsapp_account_id":"14155550002@s.whatsapp.net"}],"has_more_pages":false}}`})
	f.box.Inject(sandbox.Fault{Op: sandbox.OpChats, Times: 1, Status: 200, Body: `{"status":"ok","data":{"messages":[
		{"uid":"too-early","chat_id":7,"timestamp":"2025-03-10 10:59:59 +0200","sender_phone":"+14155550001","from_me":true,"text":"x"},
		{"uid":"received","chat_id":"7","timestamp":"2025-03-10 09:00:00 +0000","sender_phone":"+14155550100","from_me":false,"text":"STOP"},
		{"uid":"received-anonymous","chat_id":"7","timestamp":"2025-03-10 09:00:00 +0000","from_me":false,"text":"STOP"},
		{"uid":"other-account","chat_id":"7","timestamp":"2025-03-10 09:00:00 +0000","sender_phone":"+14155550002","from_me":true,"text":"x"},
		{"chat_id":"7","timestamp":"2025-03-10 09:00:00 +0000","sender_phone":"+14155550001","from_me":true,"text":"no uid"},
		{"uid":"at-after","chat_id":"7","timestamp":"2025-03-10 11:00:00 +0200","sender_phone":"+14155550001","from_me":"true","text":"hi","has_attachment":1,"origin":"Public API","reactions":{"total":0}},
		{"uid":"rfc3339","chat_id":"7","timestamp":"2025-03-10T09:05:00Z","from_me":true,"text":"later"}],"has_more_pages":false}}`})

	found, err := f.client.FindSent(context.Background(), sender.SentQuery{Phone: ann, AccountPhone: accountA, After: after})
	if err != nil {
		t.Fatal(err)
	}
	want := []sender.SentMessage{
		{UID: "at-after", Text: "hi", AccountPhone: accountA, At: after, HasAttachment: true},
		{UID: "rfc3339", Text: "later", At: after.Add(5 * time.Minute)},
	}
	if len(found) != len(want) {
		t.Fatalf("found %+v, want %+v", found, want)
	}
	for i := range want {
		if !found[i].At.Equal(want[i].At) {
			t.Errorf("message %d at %v, want %v", i, found[i].At, want[i].At)
		}
		found[i].At = want[i].At
		if found[i] != want[i] {
			t.Errorf("message %d\n%+v\nwant\n%+v", i, found[i], want[i])
		}
	}
	if n := f.limiter.calls.Load(); n != 2 {
		t.Errorf("%d requests, want 2: the chats of other phones or accounts are not read", n)
	}

	f.box.Inject(sandbox.Fault{Op: sandbox.OpChats, Status: 200, Body: `{"status":"ok","data":{"chats":[{"id":1,"phone":"+14155550100"}],"has_more_pages":false}}`, Times: 1})
	f.box.Inject(sandbox.Fault{Op: sandbox.OpChats, Status: 200, Body: `{"status":"ok","data":{"messages":[{"uid":"u","timestamp":"yesterday","from_me":true}],"has_more_pages":false}}`, Times: 1})
	_, err = f.client.FindSent(context.Background(), sender.SentQuery{Phone: ann})
	if pe := providerError(t, err); pe.Kind != sender.Transient || pe.Op != sender.OpFindSent {
		t.Errorf("unreadable timestamp: %v, want Transient find_sent", err)
	}
}

func TestFindSentOnTheWire(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+r.URL.Query().Encode()+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		if r.URL.Path == "/api/chats" {
			_, _ = io.WriteString(w, `{"status":"ok","data":{"chats":[{"id":42,"phone":"+14155550100"}],"has_more_pages":false}}`)
			return
		}
		_, _ = io.WriteString(w, `{"status":"ok","data":{"messages":[],"has_more_pages":false}}`)
	}))
	defer srv.Close()
	client := sender.NewTimelines(token, sender.WithBaseURL(srv.URL+"/api"))

	after := time.Date(2025, 3, 10, 9, 30, 15, 500, time.FixedZone("", 2*3600))
	if _, err := client.FindSent(context.Background(), sender.SentQuery{Phone: ann, AccountPhone: accountA, After: after}); err != nil {
		t.Fatal(err)
	}
	wantAfter := "2025-03-09T17:30:15Z" // After in UTC, 14 hours early
	want := []string{
		"GET /api/chats " + url.Values{"phone": {ann}, "whatsapp_account_id": {"14155550001@s.whatsapp.net"}, "page": {"1"}}.Encode() + " Bearer " + token,
		"GET /api/chats/42/messages " + url.Values{"from_me": {"true"}, "after": {wantAfter}, "sorting_order": {"asc"}, "page": {"1"}}.Encode() + " Bearer " + token,
	}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("requests\n%q\nwant\n%q", seen, want)
	}
}

func TestFindSentErrors(t *testing.T) {
	tests := []struct {
		name     string
		cfg      sandbox.Config
		fault    *sandbox.Fault
		wantKind sender.Kind
	}{
		{"401 JSON", sandbox.Config{}, &sandbox.Fault{Status: 401, Body: `{"status":"error","message":"Invalid or expired token","error_code":"invalid_token"}`}, sender.AuthFailed},
		{"401 plain text", sandbox.Config{}, &sandbox.Fault{Status: 401, Body: "Unauthorized"}, sender.AuthFailed},
		{"429", sandbox.Config{}, &sandbox.Fault{Status: 429, Body: `{"status":"error","message":"slow down","error_code":"rate_limit_exceeded"}`}, sender.RateLimited},
		{"403 from the CDN", sandbox.Config{}, &sandbox.Fault{Status: 403, Body: "<html>blocked</html>", ContentType: "text/html"}, sender.RateLimited},
		{"500 internal_error: a GET is safe to repeat", sandbox.Config{}, &sandbox.Fault{Status: 500, Body: `{"status":"error","message":"oops","error_code":"internal_error"}`}, sender.Transient},
		{"503 HTML", sandbox.Config{}, &sandbox.Fault{Status: 503, Body: "<html>maintenance</html>", ContentType: "text/html"}, sender.Transient},
		{"connection dropped", sandbox.Config{}, &sandbox.Fault{Drop: true}, sender.Transient},
		// A lookup spends no credits: its quota_exceeded is the API calls'.
		{"API-call quota spent", sandbox.Config{APICalls: 1}, nil, sender.CallsExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.cfg)
			if tt.fault != nil {
				tt.fault.Op = sandbox.OpChats
				f.box.Inject(*tt.fault)
			} else if _, err := f.client.Quota(context.Background()); err != nil {
				t.Fatal(err) // spends the one API call
			}
			_, err := f.client.FindSent(context.Background(), sender.SentQuery{Phone: ann, AccountPhone: accountA})
			if pe := providerError(t, err); pe.Kind != tt.wantKind || pe.Op != sender.OpFindSent {
				t.Errorf("got %v Op %q (%v), want %v find_sent", pe.Kind, pe.Op, err, tt.wantKind)
			}
		})
	}

	t.Run("the lookup's second request fails", func(t *testing.T) {
		f := newFixture(t, sandbox.Config{Credits: 5})
		send(t, f, accountA, ann, "hi")
		f.box.Inject(sandbox.Fault{Op: sandbox.OpChats, Times: 1}) // the chat list answers normally
		f.box.Inject(sandbox.Fault{Op: sandbox.OpChats, Status: 502, Body: "<html>bad gateway</html>", ContentType: "text/html"})
		_, err := f.client.FindSent(context.Background(), sender.SentQuery{Phone: ann})
		if pe := providerError(t, err); pe.Kind != sender.Transient || pe.HTTPStatus != 502 {
			t.Errorf("got %v HTTP %d, want Transient 502", pe.Kind, pe.HTTPStatus)
		}
	})

	t.Run("not a phone number: no request", func(t *testing.T) {
		f := newFixture(t, sandbox.Config{})
		for _, q := range []sender.SentQuery{{}, {Phone: "ann"}, {Phone: ann, AccountPhone: "me"}, {Phone: "+12"}} {
			_, err := f.client.FindSent(context.Background(), q)
			if pe := providerError(t, err); pe.Kind != sender.Invalid {
				t.Errorf("%+v: %v, want Invalid", q, err)
			}
		}
		if n := f.limiter.calls.Load(); n != 0 {
			t.Errorf("%d requests for invalid queries", n)
		}
	})
}
