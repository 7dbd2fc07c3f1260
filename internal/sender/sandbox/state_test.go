package sandbox

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestStateSurvivesARestart(t *testing.T) {
	const account, ann, bob = "+14155550001", "+12025550143", "+12025550144"
	dir := t.TempDir()
	path := filepath.Join(dir, "sandbox.json")
	clock := newClock()
	cfg := Config{
		Token: testToken, Credits: 10, Accounts: []string{account}, StateFile: path, Now: clock.Now,
		SendInterval: -1, DeliverAfter: time.Minute, ReadAfter: 2 * time.Minute, RefundAfter: time.Hour,
		Outcome: func(phone string) Outcome {
			if phone == bob {
				return OutcomeFailed
			}
			return OutcomeRead
		},
	}

	// Before the restart: two messages (one will fail and be refunded), a
	// reply, a top-up, a webhook URL.
	before, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(before)
	toAnn := call(t, ts, "POST", "/messages", text(ann, "Hi Ann")).uid(t)
	toBob := call(t, ts, "POST", "/messages", text(bob, "Hi Bob")).uid(t)
	if _, ok := before.Receive(account, ann, "thanks"); !ok {
		t.Fatal("Receive refused")
	}
	before.SetCredits(12)
	before.SetWebhookURL("http://127.0.0.1:1/hook")
	ts.Close()
	if err := before.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("folder holds %v, want only the state file (no temporary files left)", entries)
	}

	// After it, later: the statuses of the messages sent before arrive.
	clock.Advance(3 * time.Hour)
	after, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = after.Close() })
	ts = httptest.NewServer(after)
	t.Cleanup(ts.Close)

	if got := statuses(readHistory(t, ts, toAnn)); !reflect.DeepEqual(got, []string{"Sent", "Delivered", "Read"}) {
		t.Errorf("Ann's message after the restart: %v", got)
	}
	if got := statuses(readHistory(t, ts, toBob)); !reflect.DeepEqual(got, []string{"Sent", "Failed"}) {
		t.Errorf("Bob's message after the restart: %v", got)
	}
	q := readQuota(t, ts)
	if q.Data.Messaging.Total != 12 || q.Data.Messaging.Used != 1 { // Bob's credit came back
		t.Errorf("messaging quota %+v, want total 12 used 1", q.Data.Messaging)
	}
	r := call(t, ts, "GET", "/chats/1/messages?sorting_order=asc", nil)
	if r.status != 200 || !strings.Contains(string(r.body), "Hi Ann") || !strings.Contains(string(r.body), "thanks") {
		t.Errorf("Ann's chat after the restart: %d %s", r.status, r.body)
	}
	if after.WebhookURL() != "http://127.0.0.1:1/hook" {
		t.Errorf("webhook URL %q after the restart", after.WebhookURL())
	}
	// New messages go on where the old ones stopped.
	uid := call(t, ts, "POST", "/messages", text(ann, "again")).uid(t)
	if msgs := after.Messages(); len(msgs) != 3 || msgs[2].UID != uid || msgs[2].Chat != 1 {
		t.Errorf("messages after the restart: %+v", msgs)
	}
}

func TestStateIsWrittenSoonAfterAChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sandbox.json")
	s, ts := start(t, Config{Credits: 10, StateFile: path})
	t.Cleanup(func() { _ = s.Close() })
	uid := call(t, ts, "POST", "/messages", text("+12025550143", "hi")).uid(t)

	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(path); err == nil && strings.Contains(string(data), uid) {
			return // written without a Close
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("the state file never held message %s", uid)
}

func TestUnreadableStateIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sandbox.json")
	for _, content := range []string{"{not json", `{"version": 99}`} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(Config{Token: testToken, StateFile: path}); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("state %q: error %v, want one naming the file", content, err)
		}
	}
	// A missing file is a fresh start.
	s, err := Open(Config{Token: testToken, StateFile: filepath.Join(t.TempDir(), "new.json")})
	if err != nil || len(s.Messages()) != 0 {
		t.Errorf("a missing state file: %v", err)
	}
	if _, err := Open(Config{}); err == nil {
		t.Error("Open without a token succeeded")
	}
}
