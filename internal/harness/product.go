//go:build linux

package harness

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/wacampaign/wacampaign/internal/redistest"

	"github.com/wacampaign/wacampaign/internal/app"
)

// Binaries are the product's two commands, built for a run.
type Binaries struct {
	API    string // campaign-api
	Worker string // campaign-worker
}

// Build compiles campaign-api and campaign-worker once into outDir, so that
// nothing measures `go run`'s compile. src is the module to build ("": the
// one the working directory is in), so a run can measure another checkout
// (before and after a change). goBin "" is "go".
func Build(goBin, src, outDir string) (Binaries, error) {
	if goBin == "" {
		goBin = "go"
	}
	gomod := exec.Command(goBin, "env", "GOMOD")
	gomod.Dir = src
	out, err := gomod.Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		return Binaries{}, fmt.Errorf("run from inside the module, or name one (go env GOMOD in %q: %q, %v)", src, mod, err)
	}
	if !Enter() {
		return Binaries{}, ErrStopping
	}
	defer Leave()
	cmd := exec.CommandContext(life.ctx, goBin, "build", "-o", outDir+"/", "./cmd/campaign-api", "./cmd/campaign-worker")
	cmd.Dir = filepath.Dir(mod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build in %s: %v\n%s", cmd.Dir, err, out)
	}
	return Binaries{API: filepath.Join(outDir, "campaign-api"), Worker: filepath.Join(outDir, "campaign-worker")}, nil
}

// StartProduct starts a product binary with env on top of this process's
// environment minus every variable of the configuration table: a
// WEBHOOK_SECRET or SEND_JITTER in the user's shell must not change a run.
func StartProduct(name, bin string, args, env []string, logDir string) (*Child, error) {
	clean := os.Environ()[:0:0]
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !isConfigVar(k) {
			clean = append(clean, kv)
		}
	}
	return StartChild(name, bin, args, append(clean, env...), logDir)
}

func isConfigVar(name string) bool {
	for _, v := range app.Vars {
		if v.Name == name {
			return true
		}
	}
	return false
}

// StartAPI starts campaign-api (bin, no worker) with env on a free port,
// waits for its /healthz, and answers a client that uses apiKey (which env
// must list in API_KEYS).
func StartAPI(name, bin string, env []string, apiKey, logDir string) (*Child, *APIClient, error) {
	port, err := redistest.FreePort()
	if err != nil {
		return nil, nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// The harness polls the API as fast as it likes: no per-key limit, unless
	// env sets one.
	env = append([]string{"API_RATE_LIMIT=off"}, env...)
	c, err := StartProduct(name, bin, nil, append(env, "ADDR="+addr), logDir)
	if err != nil {
		return nil, nil, err
	}
	if err := WaitHTTP(c, "http://"+addr+"/healthz"); err != nil {
		c.Stop(time.Second)
		return nil, nil, err
	}
	return c, NewAPIClient("http://"+addr, apiKey), nil
}

// WaitHTTP waits until url answers 200 or the child exits.
func WaitHTTP(c *Child, url string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !c.Alive() {
			return c.ExitError()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer %s: %v", c.Name, url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LastLines is the last n lines of s, joined by " | ", for an error message.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// LoadAverage is /proc/loadavg's 1, 5 and 15 minute figures: a busy
// machine explains odd numbers.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
