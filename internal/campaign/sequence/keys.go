package sequence

import "github.com/wacampaign/wacampaign/internal/campaign"

// Redis layout of sequences (their steps are campaigns, under campaign's
// keys). The {id} hash tag keeps one sequence's keys in one cluster slot.
//
//	wac:sequences           ZSET  sequence id → created at (unix ms)
//	wac:s:{id}              HASH  name, created_at, steps (JSON), fields (JSON), key_columns (JSON), simulation flags, transactional, next (enrolment counter), enrolled
//	wac:s:{id}:enrolled     HASH  contact's key (phone, JID or chat id) → its latest enrolment (JSON: n, at, status)
const sequencesIndex = campaign.KeyPrefix + "sequences"

func sequenceKey(id string) string { return campaign.KeyPrefix + "s:{" + id + "}" }
func enrolledKey(id string) string { return sequenceKey(id) + ":enrolled" }

// Fields of the sequence hash.
const (
	sfName      = "name"
	sfCreatedAt = "created_at"
	sfSteps     = "steps"
	sfAccounts  = "accounts"
	sfFields    = "fields"
	sfLabel     = "label"
	sfWindow    = "window"
	sfKeys      = "key_columns" // absent: phone (a sequence from before recipient kinds)
	sfFlags     = "simulation"  // JSON {"typing","presence"}; absent: the provider has none
	sfNext      = "next"
	sfEnrolled  = "enrolled"
	// "1": exempt from FREQUENCY_CAP (its steps carry it too)
	sfTransactional = "transactional"
)
