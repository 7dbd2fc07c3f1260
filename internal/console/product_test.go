package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/redistest"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// product is the whole product for the browser suite, as `make run` has it:
// campaign-api -worker built from this checkout (so the console is mounted
// exactly as main.go mounts it), on a throwaway redis-server, sending to a
// sandbox provider served by this test, whose received messages the tests
// read.
//
// The API is a child process rather than a handler in this process because
// its handlers live in package main (cmd/campaign-api), which no other
// package can import; the console's own handler tests (console_test.go) run
// it in-process against a recording API.
type product struct {
	URL     string // the API process: the console at /, the API at /v1/
	Key     string // an API key it accepts
	Sandbox *sandbox.Server
}

var (
	buildOnce sync.Once
	apiBin    string
	buildErr  error
)

// buildAPI compiles cmd/campaign-api once per test binary.
func buildAPI(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "console-test-bin")
		if err != nil {
			buildErr = err
			return
		}
		apiBin = filepath.Join(dir, "campaign-api")
		out, err := exec.Command("go", "build", "-o", apiBin, "../../cmd/campaign-api").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/campaign-api: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return apiBin
}

// startProduct runs the product until the test ends.
func startProduct(t *testing.T) *product {
	t.Helper()
	bin := buildAPI(t)
	redis := redistest.Start(t)
	p := &product{Key: "console-test-key"}
	const token = "console-test-provider-token"
	p.Sandbox = sandbox.New(sandbox.Config{
		Token: token, Credits: 100_000, SendInterval: time.Millisecond,
		DeliverAfter: 300 * time.Millisecond, ReadAfter: 900 * time.Millisecond, ReadRate: 0.6, Seed: 7,
	})
	prov := httptest.NewServer(p.Sandbox)
	t.Cleanup(prov.Close)
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	templates, err := filepath.Abs("../../templates")
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p.URL = "http://" + addr
	env := append(withoutConfigVars(os.Environ()),
		"ADDR="+addr, "API_KEYS="+p.Key, "REDIS_URL="+redis.URL(),
		"PROVIDER=timelines", "TIMELINES_API_TOKEN="+token, "TIMELINES_BASE_URL="+prov.URL,
		"SEND_INTERVAL=250ms", "API_CALLS_PER_SECOND=1000", "QUOTA_SYNC_INTERVAL=2s",
		"STATUS_POLL_SCHEDULE=1s,2s,4s", "TEMPLATES_DIR="+templates, "LOG_LEVEL=warn")
	runChild(t, bin, env)
	waitHealthy(t, p.URL)
	return p
}

// withoutConfigVars drops the product's configuration variables from env,
// so that the developer's shell cannot change a run.
func withoutConfigVars(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		config := false
		for _, v := range app.Vars {
			config = config || v.Name == name
		}
		if !config {
			out = append(out, kv)
		}
	}
	return out
}

func runChild(t *testing.T, bin string, env []string) {
	t.Helper()
	logs, err := os.CreateTemp(t.TempDir(), "campaign-api-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-worker")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("campaign-api output:\n%s", b)
		}
	})
}

func waitHealthy(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("campaign-api at %s never answered /healthz", base)
}

// request is a v1 API request with the product's key.
func (p *product) request(t *testing.T, method, path string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, p.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.Key)
	return req
}

// api calls the v1 API with the product's key and decodes data into out.
func (p *product) api(t *testing.T, method, path string, out any) {
	t.Helper()
	res, err := http.DefaultClient.Do(p.request(t, method, path))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil || env.Status != "ok" {
		t.Fatalf("%s %s: %d %v", method, path, res.StatusCode, err)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		t.Fatal(err)
	}
}

// received are the messages the sandbox accepted whose text contains marker.
func (p *product) received(marker string) []sandbox.Message {
	var out []sandbox.Message
	for _, m := range p.Sandbox.Messages() {
		if strings.Contains(m.Text, marker) {
			out = append(out, m)
		}
	}
	return out
}
