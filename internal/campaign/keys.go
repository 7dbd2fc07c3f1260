package campaign

import (
	"hash/fnv"
	"strconv"
)

// Redis layout. Every key of one campaign carries the campaign id as a hash
// tag ({id}), so a Lua script may touch the campaign hash and its recipient
// buckets together, also on Redis Cluster.
//
//	wac:campaigns               ZSET  campaign id → created at (unix ms)
//	wac:campaigns:active        SET   campaigns not yet seen ended (pruned when read)
//	wac:campaigns:uploading     SET   campaigns whose creating import has not ended cleanly (the janitor's list)
//	wac:janitor:uploads         STRING held by the worker making a pass of the upload janitor
//	wac:c:{id}                  HASH  metadata and counters (see field names below)
//	wac:c:{id}:rows:<bucket>    HASH  seq → the recipient's CSV values, written at import, never changed
//	wac:c:{id}:st:<bucket>      HASH  seq → state record; absent while the recipient is queued
//	wac:c:{id}:h:<bucket>       HASH  seq → history: what happened to the recipient, oldest first
//	wac:c:{id}:rejected         LIST  the first MaxRejectedListed rejected rows (JSON)
//	wac:c:{id}:retry            LIST  recipients requeued by retry-failed, not yet enqueued
//	wac:uid:<bucket>            HASH  message uid → "<campaign>/<seq>" (uidIndexBuckets buckets by hash of the uid)
//	wac:unknown:<phone>         SET   "<campaign>/<seq>" of recipients whose send is unconfirmed (a day)
//	wac:sentev:<phone>          LIST  recent message:sent:new events that matched no recipient (JSON; ten minutes)
//
// The last three lead the provider's message:sent:new webhooks back to
// recipients (store_webhooks.go); they are kept only while a webhook secret
// is set.
//
// Recipients are numbered 0, 1, 2... in upload order (after duplicates are
// dropped) and grouped bucketSize to a hash, which keeps the number of keys
// small and lets listings walk a campaign in order.
const (
	KeyPrefix       = "wac:" // every key of the product starts with it
	campaignsIndex  = KeyPrefix + "campaigns"
	activeIndex     = KeyPrefix + "campaigns:active" // SET: campaigns not known to have ended
	uploadingIndex  = KeyPrefix + "campaigns:uploading"
	janitorLock     = KeyPrefix + "janitor:uploads" // the worker making this pass of the upload janitor
	bucketSize      = 1024
	fieldSeparator  = "\x1f" // ASCII unit separator between a row's values
	maxFieldsLength = 64 << 10
)

func campaignKey(id string) string { return KeyPrefix + "c:{" + id + "}" }

func rowsKey(id string, seq int64) string {
	return campaignKey(id) + ":rows:" + strconv.FormatInt(seq/bucketSize, 10)
}

func stateKey(id string, seq int64) string {
	return campaignKey(id) + ":st:" + strconv.FormatInt(seq/bucketSize, 10)
}

func historyKey(id string, seq int64) string {
	return campaignKey(id) + ":h:" + strconv.FormatInt(seq/bucketSize, 10)
}

// retryListKey lists recipients put back in the queue by a retry, for the
// retry task to enqueue.
func retryListKey(id string) string { return campaignKey(id) + ":retry" }

func rejectedKey(id string) string { return campaignKey(id) + ":rejected" }

// Fields of the campaign hash.
const (
	fName         = "name"
	fStatus       = "status"
	fReason       = "reason"
	fCreatedAt    = "created_at"
	fSendAt       = "send_at"
	fStartedAt    = "started_at"
	fFinishedAt   = "finished_at"
	fImporting    = "importing"
	fHeld         = "held"        // "1" while the request creating the campaign is still being read
	fProgressAt   = "progress_at" // when the import last stored a batch (unix ms): a stalled upload shows here
	fTemplate     = "template"
	fTemplateName = "template_name"
	fAccounts     = "accounts"
	fLabel        = "label"
	fFileUID      = "file_uid"
	fColumns      = "columns"
	fWindow       = "window"
	fSequence     = "sequence"
	fStep         = "step"
	fPhoneColumn  = "phone_column"
	fKeyColumns   = "key_columns" // JSON list: the columns recipients are addressed by (absent: the phone column)
	fUnmetered    = "unmetered"   // "1": the provider meters no credits (a gateway): credits "not metered"
	fTyping       = "typing"      // "1"/"0": typing simulation (absent: the provider has none)
	fPresence     = "presence"    // "1"/"0": presence simulation
	fEstimated    = "credits_estimated"
	fPlanEnd      = "plan_end"    // the latest due time planned for a recipient (unix ms): the ETA
	fRound        = "round"       // tasks of an earlier round are outdated (see sendTaskID)
	fUndelivered  = "undelivered" // failed after the provider had accepted them
	fPollSlowedAt = "poll_slowed_at"
	fPollBasis    = "poll_basis" // why polls wait: the budget's rate and what it comes from
	fDuplicates   = "duplicates"
	fRejected     = "rejected"
	fCreditsSpent = "credits_spent"
	fTotal        = "total"
)

// uidIndexBuckets spreads the message uid index over hashes of a
// manageable size.
const uidIndexBuckets = 4096

func uidIndexKey(uid string) string {
	h := fnv.New32a()
	h.Write([]byte(uid))
	return KeyPrefix + "uid:" + strconv.FormatUint(uint64(h.Sum32()%uidIndexBuckets), 10)
}

func unknownIndexKey(phone string) string { return KeyPrefix + "unknown:" + phone }

func recentEventsKey(phone string) string { return KeyPrefix + "sentev:" + phone }
