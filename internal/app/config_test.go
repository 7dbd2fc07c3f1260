package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/audience"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaultsAreTheDesignTable(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name      string
		got, want any
	}{
		{"ADDR", c.Addr, "127.0.0.1:8080"},
		{"REDIS_URL", c.RedisURL, ""},
		{"TIMELINES_BASE_URL", c.TimelinesBaseURL, "https://app.timelines.ai/integrations/api"},
		{"SEND_INTERVAL", c.SendInterval, 2 * time.Second},
		{"DEFAULT_REGION", c.DefaultRegion, "US"},
		{"QUOTA_SYNC_INTERVAL", c.QuotaSyncInterval, time.Minute},
		{"STATUS_POLL_SCHEDULE", c.StatusPollSchedule, []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 12 * time.Hour}},
		{"API_CALLS_PER_SECOND", c.APICallsPerSecond, 30},
		{"PROVIDER", c.Provider, ""},
		{"GATEWAY_TYPING_MAX", c.GatewayTypingMax, 30 * time.Second},
		{"SANDBOX_AS", c.SandboxAs, "timelines"},
		{"SCALE_COOLDOWN", c.ScaleCooldown, 5 * time.Minute},
		{"CAMPAIGN_RETENTION", c.CampaignRetention, 90 * 24 * time.Hour},
		{"API_RATE_LIMIT", c.APIRateLimit, RateLimit{PerSecond: 20, Burst: 40}},
		{"MONITOR", c.Monitor, MonitorReadOnly},
		{"REDIS_MODE", c.RedisMode, ""},
	}
	for _, w := range want {
		if !equal(w.got, w.want) {
			t.Errorf("%s defaults to %v, want %v", w.name, w.got, w.want)
		}
	}
}

func equal(a, b any) bool {
	if da, ok := a.([]time.Duration); ok {
		db := b.([]time.Duration)
		if len(da) != len(db) {
			return false
		}
		for i := range da {
			if da[i] != db[i] {
				return false
			}
		}
		return true
	}
	return a == b
}

func TestEveryVariableIsRead(t *testing.T) {
	c, err := Load(env(map[string]string{
		"ADDR":                 "0.0.0.0:9000",
		"REDIS_URL":            "redis://redis:6379/2",
		"API_KEYS":             " k1 , k2,,",
		"TIMELINES_API_TOKEN":  "tok",
		"TIMELINES_BASE_URL":   "http://sandbox:1234/",
		"SEND_INTERVAL":        "500ms",
		"SEND_JITTER":          "250ms",
		"DEFAULT_REGION":       "gb",
		"QUOTA_SYNC_INTERVAL":  "30s",
		"STATUS_POLL_SCHEDULE": "10s, 1m",
		"API_CALLS_PER_SECOND": "12",
		"WORKER_CONCURRENCY":   "3",
		"MAX_UPLOAD_BYTES":     "2048",
		"TEMPLATES_DIR":        "/etc/templates",
		"LOG_LEVEL":            "debug",
		"LOG_FORMAT":           "console",
		"SHUTDOWN_TIMEOUT":     "9s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := []any{c.Addr, c.RedisURL, strings.Join(c.APIKeys, "|"), c.TimelinesToken, c.TimelinesBaseURL, c.SendInterval, c.SendJitter,
		c.DefaultRegion, c.QuotaSyncInterval, len(c.StatusPollSchedule), c.APICallsPerSecond, c.WorkerConcurrency, c.MaxUploadBytes,
		c.TemplatesDir, c.LogLevel, c.LogFormat, c.ShutdownTimeout}
	want := []any{"0.0.0.0:9000", "redis://redis:6379/2", "k1|k2", "tok", "http://sandbox:1234", 500 * time.Millisecond, 250 * time.Millisecond,
		"GB", 30 * time.Second, 2, 12, 3, int64(2048), "/etc/templates", "debug", "console", 9 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s: got %v, want %v", Vars[min(i, len(Vars)-1)].Name, got[i], want[i])
		}
	}
}

func TestInvalidValuesNameTheVariable(t *testing.T) {
	for name, value := range map[string]string{
		"SEND_INTERVAL":        "fast",
		"DEFAULT_REGION":       "XX",
		"QUOTA_SYNC_INTERVAL":  "10ms",
		"STATUS_POLL_SCHEDULE": "5m,1m",
		"API_CALLS_PER_SECOND": "0",
		"MAX_UPLOAD_BYTES":     "lots",
		"LOG_LEVEL":            "loud",
		"CAMPAIGN_RETENTION":   "10m",
		"API_RATE_LIMIT":       "fast",
		"REDIS_MODE":           "ring",
		"MONITOR":              "on",
		"SCALE_COOLDOWN":       "soon",
		"FREQUENCY_CAP":        "often",
		"REPLY_WINDOW":         "30s",
	} {
		_, err := Load(env(map[string]string{name: value}))
		if err == nil || !strings.HasPrefix(err.Error(), name+": ") {
			t.Errorf("%s=%q: error %v; want one naming %s", name, value, err, name)
		}
	}
}

// A bad FREQUENCY_CAP stops the process with a message saying what a good
// one looks like; keywords that contradict each other too.
func TestAudienceSettings(t *testing.T) {
	c, err := Load(env(map[string]string{"FREQUENCY_CAP": "3/7d", "OPTOUT_KEYWORDS": "Basta, No more"}))
	if err != nil || c.FrequencyCap.Messages != 3 || c.FrequencyCap.Period != 7*24*time.Hour || c.ReplyWindow != 7*24*time.Hour {
		t.Fatalf("%+v, %v", c.FrequencyCap, err)
	}
	if c.Keywords().Match("no more!") == audience.NoKeyword || c.Keywords().Match("stop") != audience.NoKeyword {
		t.Error("OPTOUT_KEYWORDS does not replace the defaults")
	}
	if _, err := Load(env(map[string]string{"FREQUENCY_CAP": "1/day"})); err == nil || !strings.Contains(err.Error(), "like 1/24h or 3/7d") && !strings.Contains(err.Error(), "24h") {
		t.Errorf("FREQUENCY_CAP=1/day: %v", err)
	}
	if _, err := Load(env(map[string]string{"OPTIN_KEYWORDS": "stop"})); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("a keyword in both lists: %v", err)
	}
}

// TestREADMEListsEveryVariable keeps the README's configuration table true.
func TestREADMEListsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars {
		row := "| `" + v.Name + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md has no row %q", row)
		}
	}
}

// TestHelmValuesSetEveryVariable keeps the chart able to set each variable.
func TestHelmValuesSetEveryVariable(t *testing.T) {
	values, err := os.ReadFile("../../deploy/helm/wacampaign/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars {
		if !strings.Contains(string(values), v.Name) {
			t.Errorf("deploy/helm/wacampaign/values.yaml does not mention %s", v.Name)
		}
	}
}

func TestRateLimitForms(t *testing.T) {
	for in, want := range map[string]RateLimit{
		"20/s burst 40": {PerSecond: 20, Burst: 40},
		"20/s":          {PerSecond: 20, Burst: 40},
		"120/m":         {PerSecond: 2, Burst: 4},
		"off":           {},
	} {
		got, err := ParseRateLimit(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"20", "20/d", "-1/s", "20/s burst", "20/s burst 0", "20/s flood 3"} {
		if _, err := ParseRateLimit(in); err == nil {
			t.Errorf("%q: accepted", in)
		}
	}
}

func TestRedisModeMustMatchTheURL(t *testing.T) {
	for _, tc := range []struct {
		mode, url string
		ok        bool
	}{
		{"", "redis://h:6379?addr=h2:6379", true},
		{RedisCluster, "redis://h:6379?addr=h2:6379&addr=h3:6379", true},
		{RedisCluster, "redis://h:6379/0", false},
		{RedisSentinel, "redis://s:26379?master_name=m&addr=s2:26379", true},
		{RedisSentinel, "redis-sentinel://s1:26379,s2:26379?master=m", true},
		{RedisStandalone, "redis://h:6379?addr=h2:6379", false},
	} {
		err := checkRedisMode(tc.mode, tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("REDIS_MODE=%q REDIS_URL=%q: %v, want ok=%v", tc.mode, tc.url, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "REDIS_MODE") {
			t.Errorf("error %q does not name REDIS_MODE", err)
		}
	}
}

// A confirmation template must exist in TEMPLATES_DIR and use no column
// but phone; an error names the variable, so the API refuses to start
// saying what to fix.
func TestConfirmTemplatesAreChecked(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{"bye": "No more messages to {{.phone}}.", "named": "Bye {{.name}}"} {
		if err := os.WriteFile(filepath.Join(dir, name+".tmpl"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ optOut, optIn, wantErr string }{
		{"", "", ""},
		{"bye", "bye.tmpl", ""},
		{"byee", "", `OPTOUT_CONFIRM_TEMPLATE: no template named "byee"; available: bye, named`},
		{"bye", "named", `OPTIN_CONFIRM_TEMPLATE: template "named": a confirmation knows only the phone`},
	} {
		c := Config{TemplatesDir: dir, OptOutConfirm: tc.optOut, OptInConfirm: tc.optIn}
		got, err := c.ConfirmTemplates()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q, %q: %v", tc.optOut, tc.optIn, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q, %q: error %v; want one saying %q", tc.optOut, tc.optIn, err, tc.wantErr)
		case tc.wantErr == "" && tc.optOut != "" && got.OptOut.Source != "No more messages to {{.phone}}.":
			t.Errorf("%q: source %q", tc.optOut, got.OptOut.Source)
		}
	}
}
