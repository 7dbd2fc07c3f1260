// Package app assembles the product's processes from configuration: it
// reads the environment variables of DESIGN.md's configuration table, finds
// Redis (or starts the embedded development one), picks the provider
// (TimelinesAI, self-hosted gateways, or the built-in sandbox, which is
// never chosen silently: see Config.ProviderKind), and builds the asynq
// worker. cmd/campaign-api and cmd/campaign-worker are thin mains over it.
package app

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/wacampaign/wacampaign/internal/audience"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// Config is every setting of the API and the worker.
type Config struct {
	Addr               string
	RedisURL           string
	APIKeys            []string
	Provider           string // ProviderTimelines, ProviderGateway, ProviderSandbox; "": see ProviderKind
	TimelinesToken     string
	TimelinesBaseURL   string
	GatewayBaseURL     string
	GatewayAPIKey      string
	GatewayAccounts    map[string]string // sender phone (E.164) → instance base URL
	GatewayTypingMax   time.Duration
	SandboxAs          string // ProviderTimelines or ProviderGateway: what the sandbox plays
	SandboxStateFile   string
	ProviderTimeout    time.Duration
	SendInterval       time.Duration
	SendJitter         time.Duration
	DefaultRegion      string
	QuotaSyncInterval  time.Duration
	StatusPollSchedule []time.Duration
	StatusPollMaxAge   time.Duration
	StatusPollBudget   string
	ReconcileAfter     time.Duration
	ReconcileMaxAge    time.Duration
	UnconfirmedPolicy  string // resend or hold
	WebhookSecret      string
	APICallsPerSecond  int
	WorkerConcurrency  int
	MaxUploadBytes     int64
	TemplatesDir       string
	LogLevel           string
	LogFormat          string
	ShutdownTimeout    time.Duration
	DebugAddr          string
	RedisPipeline      string // on, off, auto
	RedisMode          string // standalone, sentinel, cluster; "": what REDIS_URL's form says
	MetricsAddr        string
	ScaleCooldown      time.Duration
	CampaignRetention  time.Duration
	APIRateLimit       RateLimit
	Monitor            string // MonitorReadOnly, MonitorReadWrite, MonitorOff
	FrequencyCap       audience.FrequencyCap
	ReplyWindow        time.Duration
	OptOutKeywords     []string // nil: audience.DefaultOptOut
	OptInKeywords      []string // nil: audience.DefaultOptIn
	Health             quota.HealthThresholds
	// OptOutConfirm and OptInConfirm name the templates of the keywords'
	// confirmation replies ("": none); the API checks them at start
	// (ConfirmTemplates).
	OptOutConfirm string
	OptInConfirm  string
}

// ConfirmTemplates reads the templates OPTOUT_CONFIRM_TEMPLATE and
// OPTIN_CONFIRM_TEMPLATE name from TEMPLATES_DIR. An unknown name, or a
// template that uses a column a confirmation lacks (it knows only the
// phone), is an error naming the variable: the API refuses to start. Only
// the API reads templates (a worker sends the text the API stored).
func (c Config) ConfirmTemplates() (campaign.ConfirmTemplates, error) {
	lib := templating.Library{Dir: c.TemplatesDir}
	out, err := campaign.LoadConfirmTemplate(lib, c.OptOutConfirm)
	if err != nil {
		return campaign.ConfirmTemplates{}, fmt.Errorf("OPTOUT_CONFIRM_TEMPLATE: %w", err)
	}
	in, err := campaign.LoadConfirmTemplate(lib, c.OptInConfirm)
	if err != nil {
		return campaign.ConfirmTemplates{}, fmt.Errorf("OPTIN_CONFIRM_TEMPLATE: %w", err)
	}
	return campaign.ConfirmTemplates{OptOut: out, OptIn: in}, nil
}

// Keywords is the opt-out and opt-in matcher OPTOUT_KEYWORDS and
// OPTIN_KEYWORDS describe (Load has checked them).
func (c Config) Keywords() *audience.Keywords {
	k, err := audience.NewKeywords(c.OptOutKeywords, c.OptInKeywords)
	if err != nil {
		k, _ = audience.NewKeywords(nil, nil)
	}
	return k
}

// Var documents one environment variable. README's configuration table is
// this list; a test keeps the two in step.
type Var struct {
	Name    string
	Default string
	Meaning string
	set     func(c *Config, v string) error
}

// Vars are the environment variables, in the order README lists them.
var Vars = []Var{
	{"ADDR", "127.0.0.1:8080", "the API's listen address",
		func(c *Config, v string) error { c.Addr = v; return nil }},
	{"REDIS_URL", "", "redis:// or rediss:// URL; Sentinel: redis://sentinel:26379?master_name=mymaster&addr=sentinel2:26379 (or redis-sentinel://); Cluster: redis://node1:6379?addr=node2:6379&addr=node3:6379. Unset: `make run` runs a redis-server of its own (data in .data/), else an embedded in-process Redis (development only, nothing durable); a lone worker refuses",
		func(c *Config, v string) error { c.RedisURL = v; return nil }},
	{"REDIS_PIPELINE", "auto", "on: the Redis commands of concurrent goroutines share round trips; off: one round trip each; auto: on in the API (an import's enqueueing: a fifth less CPU for the API and a third less for Redis, measured), off in workers (their sends mostly wait elsewhere; it cost them CPU)",
		func(c *Config, v string) error {
			switch v {
			case "on", "off", "auto":
				c.RedisPipeline = v
				return nil
			}
			return fmt.Errorf("%q is not on, off or auto", v)
		}},
	{"API_KEYS", "", "comma-separated Bearer keys of the v1 API; `make run` makes and prints one",
		func(c *Config, v string) error { c.APIKeys = splitList(v); return nil }},
	{"PROVIDER", "", "timelines, gateway or sandbox; unset: timelines when TIMELINES_API_TOKEN is set, gateway when GATEWAY_BASE_URL or GATEWAY_ACCOUNTS is, else the process refuses to start (the built-in sandbox is never chosen silently; `make run` sets sandbox)",
		func(c *Config, v string) error {
			switch v {
			case ProviderTimelines, ProviderGateway, ProviderSandbox:
				c.Provider = v
				return nil
			}
			return fmt.Errorf("%q is not timelines, gateway or sandbox", v)
		}},
	{"TIMELINES_API_TOKEN", "", "the TimelinesAI Public API token",
		func(c *Config, v string) error { c.TimelinesToken = v; return nil }},
	{"TIMELINES_BASE_URL", "https://app.timelines.ai/integrations/api", "the TimelinesAI API root",
		func(c *Config, v string) error { c.TimelinesBaseURL = strings.TrimRight(v, "/"); return nil }},
	{"GATEWAY_BASE_URL", "", "the self-hosted WhatsApp gateway's root (like http://gw:7001): the instance for sender accounts GATEWAY_ACCOUNTS does not name, and for messages without one",
		func(c *Config, v string) error {
			if err := sender.CheckBaseURL(v); err != nil {
				return err
			}
			c.GatewayBaseURL = strings.TrimRight(v, "/")
			return nil
		}},
	{"GATEWAY_API_KEY", "", "the gateway's key, sent as the Authorization header exactly as written (a gateway that wants a JWT: `Bearer <jwt>`); the same for every instance",
		func(c *Config, v string) error { c.GatewayAPIKey = v; return nil }},
	{"GATEWAY_ACCOUNTS", "", "sender accounts mapped to the gateway instances serving them (one WhatsApp number each): `+14155550100=http://gw1:7001,+14155550101=http://gw2:7001`",
		func(c *Config, v string) error {
			accounts, err := parseGatewayAccounts(v)
			c.GatewayAccounts = accounts
			return err
		}},
	{"GATEWAY_TYPING_MAX", "30s", "the longest a gateway may take to \"type\" a message before it answers: a send may take PROVIDER_TIMEOUT plus this (and its claim 15s more), so a long typing simulation never times out",
		func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || d > maxGatewayTypingMax {
				return fmt.Errorf("%q is not a duration from 0s to %s", v, maxGatewayTypingMax)
			}
			c.GatewayTypingMax = d
			return nil
		}},
	{"SANDBOX_AS", "timelines", "with PROVIDER=sandbox: the provider the built-in sandbox plays, timelines (credits, statuses, chat history, webhooks) or gateway (one gateway instance, with typing delays)",
		func(c *Config, v string) error {
			if v != ProviderTimelines && v != ProviderGateway {
				return fmt.Errorf("%q is not timelines or gateway", v)
			}
			c.SandboxAs = v
			return nil
		}},
	{"SANDBOX_STATE_FILE", "", "with PROVIDER=sandbox: a JSON file where the sandbox keeps what it was sent, so statuses still arrive after a restart; unset: nothing kept",
		func(c *Config, v string) error { c.SandboxStateFile = v; return nil }},
	{"PROVIDER_TIMEOUT", "30s", "how long one provider request may take; at most 40s (a send's claim must lapse before asynq hands a dead worker's task on, a minute after)",
		func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 100*time.Millisecond || d > MaxProviderTimeout {
				return fmt.Errorf("%q is not a duration from 100ms to %s", v, MaxProviderTimeout)
			}
			c.ProviderTimeout = d
			return nil
		}},
	{"SEND_INTERVAL", "2s", "least gap between two sends of one WhatsApp account; 0s: no pacing of our own (the provider still spaces messages ~2s)",
		durationVar(func(c *Config) *time.Duration { return &c.SendInterval }, 0)},
	{"SEND_JITTER", "0s", "random extra gap in [0, SEND_JITTER) added to the pacing of each account",
		durationVar(func(c *Config) *time.Duration { return &c.SendJitter }, 0)},
	{"DEFAULT_REGION", "US", "region (ISO 3166 code) of phone numbers written without + and a country code",
		func(c *Config, v string) error {
			v = strings.ToUpper(strings.TrimSpace(v))
			if phonenumbers.GetCountryCodeForRegion(v) == 0 {
				return fmt.Errorf("%q is not a region code phone numbers know (e.g. US, GB, DE, IN, BR)", v)
			}
			c.DefaultRegion = v
			return nil
		}},
	{"QUOTA_SYNC_INTERVAL", "1m", "how often the credit ledger re-reads GET /quotas",
		durationVar(func(c *Config) *time.Duration { return &c.QuotaSyncInterval }, time.Second)},
	{"STATUS_POLL_SCHEDULE", "1m,5m,30m,2h,12h", "delays after a send at which its delivery status is polled",
		func(c *Config, v string) error {
			var out []time.Duration
			for _, part := range splitList(v) {
				d, err := time.ParseDuration(part)
				if err != nil || d <= 0 {
					return fmt.Errorf("%q is not a positive duration (like 1m or 2h)", part)
				}
				if len(out) > 0 && d <= out[len(out)-1] {
					return fmt.Errorf("delays must grow: %s comes after %s", d, out[len(out)-1])
				}
				out = append(out, d)
			}
			if len(out) == 0 {
				return fmt.Errorf("give at least one delay")
			}
			c.StatusPollSchedule = out
			return nil
		}},
	{"STATUS_POLL_MAX_AGE", "48h", "no status poll later than this after the send; the message keeps its last known status",
		durationVar(func(c *Config) *time.Duration { return &c.StatusPollMaxAge }, time.Minute)},
	{"STATUS_POLL_BUDGET", "", "API calls status polls may spend, like 5000/day or 2/s; unset: derived from GET /quotas (the calls left this period, minus what queued sends need, spread over the days left)",
		func(c *Config, v string) error {
			if _, err := quota.ParsePollBudget(v); err != nil {
				return err
			}
			c.StatusPollBudget = v
			return nil
		}},
	{"RECONCILE_AFTER", "2m", "how long after an unconfirmed send (its answer lost: a timeout, a reset or a 5xx after the request was written) the provider's chat history is first searched for it; then again at doubling gaps",
		durationVar(func(c *Config) *time.Duration { return &c.ReconcileAfter }, 100*time.Millisecond)},
	{"RECONCILE_MAX_AGE", "30m", "the last search for an unconfirmed send, after which UNCONFIRMED_POLICY decides",
		durationVar(func(c *Config) *time.Duration { return &c.ReconcileMaxAge }, 100*time.Millisecond)},
	{"UNCONFIRMED_POLICY", "resend", "what happens to an unconfirmed send the provider never shows: resend (sent once more; a resend is reconciled the same way, at most 3 resends) or hold (the recipient stays unknown, with the reason, for a person)",
		func(c *Config, v string) error {
			if v != "resend" && v != "hold" {
				return fmt.Errorf("%q is not resend or hold", v)
			}
			c.UnconfirmedPolicy = v
			return nil
		}},
	{"WEBHOOK_SECRET", "", "secret part of the webhook URL given to TimelinesAI: POST /v1/webhooks/timelines/<secret>; unset: no webhook receiver",
		func(c *Config, v string) error {
			if len(v) < 16 {
				return fmt.Errorf("use at least 16 characters: the URL is the only thing protecting the receiver")
			}
			c.WebhookSecret = v
			return nil
		}},
	{"API_CALLS_PER_SECOND", "30", "ceiling of provider API calls per second, all processes together",
		intVar(func(c *Config) *int { return &c.APICallsPerSecond }, 1)},
	{"WORKER_CONCURRENCY", "20", "tasks one worker process runs at once",
		intVar(func(c *Config) *int { return &c.WorkerConcurrency }, 1)},
	{"MAX_UPLOAD_BYTES", "268435456", "largest accepted upload (contacts CSV), in bytes; larger answers 413",
		func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1024 {
				return fmt.Errorf("%q is not a byte count of at least 1024", v)
			}
			c.MaxUploadBytes = n
			return nil
		}},
	{"TEMPLATES_DIR", "templates", "folder of the templates that template_name refers to",
		func(c *Config, v string) error { c.TemplatesDir = v; return nil }},
	{"LOG_LEVEL", "info", "debug, info, warn or error",
		func(c *Config, v string) error {
			switch v {
			case "debug", "info", "warn", "error":
				c.LogLevel = v
				return nil
			}
			return fmt.Errorf("%q is not one of debug, info, warn, error", v)
		}},
	{"LOG_FORMAT", "json", "json (one object a line), or console for people",
		func(c *Config, v string) error {
			if v != "json" && v != "console" {
				return fmt.Errorf("%q is not json or console", v)
			}
			c.LogFormat = v
			return nil
		}},
	{"DEBUG_ADDR", "", "where a worker serves /healthz and Go's profiler (/debug/pprof/); unset: nowhere. Keep it off public networks",
		func(c *Config, v string) error { c.DebugAddr = v; return nil }},
	{"SHUTDOWN_TIMEOUT", "25s", "how long a stopping worker lets running sends finish",
		durationVar(func(c *Config) *time.Duration { return &c.ShutdownTimeout }, time.Second)},
	{"REDIS_MODE", "", "standalone, sentinel or cluster: checked against the form of REDIS_URL (a process whose URL says otherwise refuses to start); unset: what the URL's form says",
		func(c *Config, v string) error {
			switch v {
			case RedisStandalone, RedisSentinel, RedisCluster:
				c.RedisMode = v
				return nil
			}
			return fmt.Errorf("%q is not standalone, sentinel or cluster", v)
		}},
	{"METRICS_ADDR", "", "where a worker serves Prometheus metrics at /metrics (like 0.0.0.0:9090); unset: nowhere. The API serves its own at /metrics on ADDR",
		func(c *Config, v string) error { c.MetricsAddr = v; return nil }},
	{"SCALE_COOLDOWN", "5m", "the window of the API's wacampaign_tasks_due_within_cooldown: tasks due now or within it (the chart gives it KEDA's cooldownPeriod, so a worker stays while anything is due that soon)",
		durationVar(func(c *Config) *time.Duration { return &c.ScaleCooldown }, 0)},
	{"CAMPAIGN_RETENTION", "90d", "how long a completed or cancelled campaign's data (recipients, histories, report) is kept after it ended, like 90d or 36h; at least 1h",
		func(c *Config, v string) error {
			d, err := parseDays(v)
			if err != nil || d < time.Hour {
				return fmt.Errorf("%q is not a duration of at least 1h (like 90d, 36h)", v)
			}
			c.CampaignRetention = d
			return nil
		}},
	{"API_RATE_LIMIT", "20/s burst 40", "requests each API key may make to the v1 API, per API process: <n>/s, /m or /h, and optionally burst <m> (default twice n); off: no limit. Over it: 429 with Retry-After",
		func(c *Config, v string) error {
			l, err := ParseRateLimit(v)
			c.APIRateLimit = l
			return err
		}},
	{"MONITOR", MonitorReadOnly, "the queue monitor (asynqmon) at /monitor, behind the console's sign-in: read-only, read-write (it may delete, run and archive tasks) or off",
		func(c *Config, v string) error {
			switch v {
			case MonitorReadOnly, MonitorReadWrite, MonitorOff:
				c.Monitor = v
				return nil
			}
			return fmt.Errorf("%q is not read-only, read-write or off", v)
		}},
	{"FREQUENCY_CAP", "off", "most marketing messages one phone receives across every campaign: `<messages>/<period>`, like 1/24h or 3/7d; a capped recipient is skipped (\"frequency cap\"), or waits for the cap to free under a campaign's `cap_policy: defer`; transactional sequences are exempt. off: no cap",
		func(c *Config, v string) error {
			fc, err := audience.ParseFrequencyCap(v)
			c.FrequencyCap = fc
			return err
		}},
	{"REPLY_WINDOW", "7d", "an incoming message this long after our latest message to its writer is a reply to the campaign or sequence step that sent it (needs WEBHOOK_SECRET: replies come by the message:received:new webhook)",
		func(c *Config, v string) error {
			d, err := parseDays(v)
			if err != nil || d < time.Minute {
				return fmt.Errorf("%q is not a duration of at least 1m (like 48h or 7d)", v)
			}
			c.ReplyWindow = d
			return nil
		}},
	{"OPTOUT_KEYWORDS", "", "comma-separated opt-out keywords: an incoming message whose whole text is one (whatever its case, spaces, punctuation, accents) suppresses its writer; unset: STOP, UNSUBSCRIBE, CANCEL and their common equivalents in Spanish, Portuguese, German, French and Indonesian (`internal/audience/keywords.go`)",
		func(c *Config, v string) error { c.OptOutKeywords = splitList(v); return nil }},
	{"OPTIN_KEYWORDS", "", "comma-separated opt-in keywords, which lift the writer's suppression; unset: START, UNSTOP, SUBSCRIBE and their equivalents",
		func(c *Config, v string) error { c.OptInKeywords = splitList(v); return nil }},
	{"OPTOUT_CONFIRM_TEMPLATE", "", "a template of TEMPLATES_DIR (its name, without .tmpl) sent, through the normal send path, to whoever an opt-out keyword suppresses, once per keyword message; it may use {{.phone}} and no other column; an unknown name stops the API at start. Unset: no confirmation",
		func(c *Config, v string) error { c.OptOutConfirm = v; return nil }},
	{"OPTIN_CONFIRM_TEMPLATE", "", "likewise, sent to whoever an opt-in keyword takes off the suppression list. Unset: no confirmation",
		func(c *Config, v string) error { c.OptInConfirm = v; return nil }},
	{"HEALTH_WINDOW", "200", "account health: the recent messages of an account its rates are counted over, and the fewest messages with a verdict: `<window>` or `<window>/<least>` (default least: a quarter of the window)",
		func(c *Config, v string) error {
			window, least, err := parseHealthWindow(v)
			c.Health.Window, c.Health.MinMessages = window, least
			return err
		}},
	{"HEALTH_FAILURE_RATES", "10%,25%", "account health: the share of an account's recent messages refused by the provider or failed/undelivered past which its send interval is doubled, then it is paused (`off` for either: never)",
		func(c *Config, v string) error {
			var err error
			c.Health.FailureWarn, c.Health.FailureStop, err = parseRatePair(v)
			return err
		}},
	{"HEALTH_OPTOUT_RATES", "2%,4%", "account health: the same for opt-outs (a person opting out after a message of the account)",
		func(c *Config, v string) error {
			var err error
			c.Health.OptOutWarn, c.Health.OptOutStop, err = parseRatePair(v)
			return err
		}},
}

// parseHealthWindow reads HEALTH_WINDOW: "200" or "200/50".
func parseHealthWindow(v string) (window, least int, err error) {
	w, l, hasLeast := strings.Cut(v, "/")
	window, err = strconv.Atoi(strings.TrimSpace(w))
	if err != nil || window < 10 || window > 10_000 {
		return 0, 0, fmt.Errorf("%q is not a window of 10 to 10000 messages, optionally /the fewest to judge (like 200 or 200/50)", v)
	}
	least = max(window/4, 1)
	if hasLeast {
		least, err = strconv.Atoi(strings.TrimSpace(l))
		if err != nil || least < 1 || least > window {
			return 0, 0, fmt.Errorf("%q: the fewest messages to judge must be from 1 to the window", v)
		}
	}
	return window, least, nil
}

// parseRatePair reads "<warn>,<stop>" percentages ("10%,25%"; "off": never).
func parseRatePair(v string) (warn, stop float64, err error) {
	a, b, ok := strings.Cut(v, ",")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not two percentages, warn then stop (like 10%%,25%%; off for never)", v)
	}
	if warn, err = parsePercent(a); err == nil {
		stop, err = parsePercent(b)
	}
	if err == nil && warn > 0 && stop > 0 && warn > stop {
		err = errors.New("the warning percentage is above the stop percentage")
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%q: %w", v, err)
	}
	return warn, stop, nil
}

func parsePercent(v string) (float64, error) {
	v = strings.TrimSpace(v)
	if v == "off" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
	if err != nil || f <= 0 || f > 100 {
		return 0, fmt.Errorf("%q is not a percentage above 0 and at most 100, or off", v)
	}
	return f / 100, nil
}

// REDIS_MODE values.
const (
	RedisStandalone = "standalone"
	RedisSentinel   = "sentinel"
	RedisCluster    = "cluster"
)

// MONITOR values.
const (
	MonitorReadOnly  = "read-only"
	MonitorReadWrite = "read-write"
	MonitorOff       = "off"
)

// MaxProviderTimeout keeps ClaimLease under asynq's recovery of a dead
// worker's task (its 30s lease plus a 30s margin).
const MaxProviderTimeout = 40 * time.Second

// ClaimLease is how long a send's claim marks its attempt alive: the
// provider call (with a gateway's typing) plus a margin (see
// campaign.SendDeps.ClaimLease).
func (c Config) ClaimLease() time.Duration {
	return c.ProviderTimeout + c.TypingAllowance() + 15*time.Second
}

// Load reads the configuration; getenv is os.Getenv outside tests. An
// invalid value is an error naming the variable.
func Load(getenv func(string) string) (Config, error) {
	var c Config
	for _, v := range Vars {
		value := strings.TrimSpace(getenv(v.Name))
		if value == "" {
			value = v.Default
		}
		if value == "" {
			continue
		}
		if err := v.set(&c, value); err != nil {
			return Config{}, fmt.Errorf("%s: %w", v.Name, err)
		}
	}
	// Contradictions stop the process now; no provider at all stops the
	// processes that send (OpenProvider), so that tests and tools can
	// load a configuration and fill in the provider themselves.
	if _, err := c.ProviderKind(); err != nil && !errors.Is(err, ErrNoProvider) {
		return Config{}, err
	}
	if _, err := audience.NewKeywords(c.OptOutKeywords, c.OptInKeywords); err != nil {
		return Config{}, fmt.Errorf("OPTOUT_KEYWORDS, OPTIN_KEYWORDS: %w", err)
	}
	return c, nil
}

// parseDays is time.ParseDuration that also reads whole days ("90d").
func parseDays(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("%q is not a number of days", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

func splitList(v string) []string {
	var out []string
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func durationVar(field func(*Config) *time.Duration, least time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < least {
			return fmt.Errorf("%q is not a duration of at least %s (like 500ms, 2s, 1m)", v, least)
		}
		*field(c) = d
		return nil
	}
}

func intVar(field func(*Config) *int, least int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < least {
			return fmt.Errorf("%q is not a whole number of at least %d", v, least)
		}
		*field(c) = n
		return nil
	}
}
