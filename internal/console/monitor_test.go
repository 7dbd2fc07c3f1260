package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/redistest"
)

// The queue monitor: asynqmon on our asynq, behind the console's sign-in,
// read-only by default.
func TestQueueMonitorIsBehindSignInAndReadOnly(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	queue := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { queue.Close() })
	if _, err := queue.Enqueue(asynq.NewTask("campaign:send", []byte(`{"c":"x","s":1}`)), asynq.Queue("send")); err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{API: &fakeAPI{key: goodKey}, Redis: rdb, Monitor: app.QueueMonitor(app.Config{Monitor: app.MonitorReadOnly}, rdb)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	f := &fixture{t: t, srv: srv, api: &fakeAPI{key: goodKey}, rdb: rdb}

	out := f.browser()
	if res := out.get("/monitor/api/queues"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("signed out, the monitor's API answers %d, want 401", res.StatusCode)
	}
	if res := out.get("/monitor/"); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/signin") {
		t.Errorf("signed out, the monitor page answers %d to %q, want a redirect to sign in", res.StatusCode, res.Header.Get("Location"))
	}

	in := f.browser()
	in.signIn(goodKey)
	page := in.get("/monitor/")
	if page.StatusCode != http.StatusOK || !strings.Contains(page.Body, "Asynq") || !strings.Contains(page.Body, `FLAG_READ_ONLY="true"`) {
		t.Errorf("the monitor page: %d, asynqmon's read-only flag set: %v", page.StatusCode, strings.Contains(page.Body, `FLAG_READ_ONLY="true"`))
	}
	if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "'unsafe-inline'") {
		t.Errorf("the monitor's CSP %q does not let asynqmon's inline script run", csp)
	}
	if csp := in.get("/campaigns").Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") {
		t.Errorf("console pages got the monitor's looser CSP: %q", csp)
	}
	queues := in.get("/monitor/api/queues")
	if queues.StatusCode != http.StatusOK || !strings.Contains(queues.Body, `"queue":"send"`) || !strings.Contains(queues.Body, `"pending":1`) {
		t.Errorf("the monitor's queues: %d %s; want the send queue with its pending task", queues.StatusCode, queues.Body)
	}
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/monitor/api/queues/send/pending_tasks:delete_all", nil)
	if res := in.do(req); res.StatusCode < 400 {
		t.Errorf("read-only monitor: deleting every pending task answered %d", res.StatusCode)
	}
	if n, _ := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo("send"); n == nil || n.Pending != 1 {
		t.Errorf("the pending task is gone after a refused delete: %+v", n)
	}
}
