// Package recurring runs recurring campaigns: a saved definition (template, accounts, the contacts
// CSV) and a cron spec; every tick of the spec starts a run, which is an
// ordinary campaign imported from the saved CSV.
//
// Any number of worker replicas run a Scheduler, so a tick must
// start exactly one run however many schedulers see it due. Two guards make
// sure of it, each enough alone:
//
//  1. The scheduler claims a tick before it enqueues the run: one Lua script
//     moves the definition's last_tick forward, and only forward, so of all
//     the schedulers that see a tick due exactly one moves last_tick to it.
//  2. The run task records its tick in the definition's runs hash (HSETNX
//     semantics, in a script) before it imports, so a task that is run
//     twice (asynq runs tasks at least once), or enqueued twice after a
//     rollback, imports once.
//
// A scheduler that was down (or a definition created long ago) starts only
// the latest tick it missed, never a backlog: a list messaged ten times in a
// row after an outage is worse than one missed run.
package recurring

import (
	"errors"
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// TypeRun is the task that imports one run of a recurring campaign.
const TypeRun = "campaign:recurring-run"

// MaxContactsBytes caps the contacts CSV of a recurring campaign:
// unlike a campaign's upload, which is streamed into recipients, it is kept
// whole in Redis as one string and read whole at every run.
const MaxContactsBytes = 32 << 20

// ErrNotFound is returned for a recurring campaign id that does not
// exist.
var ErrNotFound = errors.New("recurring campaign not found")

// Status is whether a definition still starts runs.
type Status string

// Statuses of a recurring campaign.
const (
	Active  Status = "active"
	Stopped Status = "stopped"
)

// RunState is where one run of a recurring campaign is.
type RunState string

// States of a run.
const (
	RunImporting RunState = "importing" // a worker is importing the contacts
	RunCreated   RunState = "created"   // its campaign exists (CampaignID)
	RunFailed    RunState = "failed"    // no campaign could be made (Reason)
)

// Definition is a recurring campaign as the API shows it.
type Definition struct {
	ID           string                   `json:"id"`
	Name         string                   `json:"name"`
	Status       Status                   `json:"status"`
	Cron         string                   `json:"cron"`
	CronZone     string                   `json:"cron_zone"`
	Template     string                   `json:"template"`
	TemplateName string                   `json:"template_name,omitempty"`
	Accounts     []string                 `json:"accounts"`
	Label        string                   `json:"label,omitempty"`
	FileUID      string                   `json:"file_uid,omitempty"`
	Window       *campaign.Window         `json:"window,omitempty"`
	Contacts     campaign.ContactsSummary `json:"contacts"`
	CreatedAt    time.Time                `json:"created_at"`
	StoppedAt    *time.Time               `json:"stopped_at,omitempty"`
	// LastRunAt is the latest tick a run was started for.
	LastRunAt *time.Time `json:"last_run_at,omitempty"`
	// NextRunAt is the next tick; in the past when it is due and no
	// scheduler has picked it up yet; absent once stopped.
	NextRunAt *time.Time `json:"next_run_at"`
	RunsCount int64      `json:"runs_count"` // campaigns its runs created
	// Runs are the latest runs, newest first (GET of one definition only).
	Runs []Run `json:"runs,omitempty"`
}

// Run is one run: the tick it is for, and the campaign it made.
type Run struct {
	Tick       time.Time `json:"tick"`
	State      RunState  `json:"state"`
	CampaignID string    `json:"campaign_id,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	At         time.Time `json:"at"` // when it got to State
}

// Draft is what a user asks for when creating a recurring campaign.
// Draft carries what every run's campaign gets; its SendAt must be zero (the
// cron spec says when runs start).
type Draft struct {
	campaign.Draft
	Cron     string // 5 fields, or 6 with seconds first; may start with CRON_TZ=<zone>
	CronZone string // IANA zone the spec's times are in; empty: UTC
	Contacts []byte // the CSV, saved and imported at every run
}

const (
	// recurringNameMax leaves room in a campaign's name for the " · <tick>"
	// each run appends.
	recurringNameMax     = campaign.MaxNameLength - 40
	recurringDefaultName = "Recurring campaign"

	// recurringRunsKept bounds the runs hash of a definition (a per-second
	// spec would otherwise grow it forever). A run task for a tick older than
	// every kept record cannot tell whether it ran, and does nothing.
	recurringRunsKept = 1000

	// recurringRunLease is how long an importing run counts as alive without
	// a heartbeat; the importing attempt renews it every third of it. A task
	// that finds a lapsed one takes the run over (see takeOver).
	recurringRunLease = 30 * time.Second

	// recurringRunTimeout is the asynq timeout of a run task: a 32 MiB CSV is
	// a million recipients to import and enqueue (like a start task).
	recurringRunTimeout  = 30 * time.Minute
	recurringRunMaxRetry = 20

	// recurringRunNameLayout is how a run's tick appears in its campaign's
	// name, in the definition's zone; the seconds are there because specs
	// may have a seconds field.
	recurringRunNameLayout = "2006-01-02 15:04:05 MST"
)
