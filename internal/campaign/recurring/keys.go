package recurring

import "github.com/wacampaign/wacampaign/internal/campaign"

// Redis layout (the {id} hash tag keeps one definition's keys in one cluster
// slot, so a script may touch them together):
//
//	wac:recurring            ZSET  definition id → created at (unix ms), for listing
//	wac:recurring:active     SET   definitions the schedulers look at
//	wac:r:{id}               HASH  the definition, its status, last_tick (unix s) and runs (campaigns created)
//	wac:r:{id}:source        STRING the contacts CSV as uploaded
//	wac:r:{id}:runs          HASH  tick (unix s) → run record (JSON): importing, created (with the campaign id), failed
//	wac:r:{id}:ticks         ZSET  the ticks of the runs hash, to list them newest first and trim the oldest

const (
	recurringIndex       = campaign.KeyPrefix + "recurring"
	recurringActiveIndex = campaign.KeyPrefix + "recurring:active"
)

func recurringKey(id string) string       { return campaign.KeyPrefix + "r:{" + id + "}" }
func recurringSourceKey(id string) string { return recurringKey(id) + ":source" }
func recurringRunsKey(id string) string   { return recurringKey(id) + ":runs" }
func recurringTicksKey(id string) string  { return recurringKey(id) + ":ticks" }

// Fields of the definition hash.
const (
	rfName         = "name"
	rfStatus       = "status"
	rfCron         = "cron"
	rfCronZone     = "cron_zone"
	rfTemplate     = "template"
	rfTemplateName = "template_name"
	rfAccounts     = "accounts"
	rfLabel        = "label"
	rfFileUID      = "file_uid"
	rfWindow       = "window"
	rfTyping       = "typing"   // "1"/"0": the runs' typing simulation (absent: the provider has none)
	rfPresence     = "presence" // "1"/"0": their presence simulation
	rfColumns      = "columns"
	rfPhoneColumn  = "phone_column"
	rfKeyColumns   = "key_columns" // JSON list; absent: the phone column
	rfRows         = "contacts_rows"
	rfBytes        = "contacts_bytes"
	rfCreatedAt    = "created_at" // unix ms
	rfStoppedAt    = "stopped_at" // unix ms
	rfLastTick     = "last_tick"  // unix s of the latest tick a scheduler claimed; absent: none yet
	rfRuns         = "runs"       // campaigns the runs created
)
