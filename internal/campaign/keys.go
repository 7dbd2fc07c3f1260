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
//	wac:campaigns:active        SET   campaigns not yet seen ended (the retention pass moves ended ones to :ended)
//	wac:campaigns:uploading     SET   campaigns whose creating import has not ended cleanly (the janitor's list)
//	wac:campaigns:ended         SET   campaigns seen ended whose keys do not expire yet (the retention pass's list)
//	wac:campaigns:retained      ZSET  ended campaign id → when its keys expire (unix ms): pruned from the indexes then
//	wac:retention:lock          STRING held by the worker making a pass of the retention keeper
//	wac:janitor:uploads         STRING held by the worker making a pass of the upload janitor
//	wac:polls:lock              STRING held by the worker making a pass of the poll sweeper
//	wac:c:{id}                  HASH  metadata and counters (see field names below)
//	wac:c:{id}:rows:<bucket>    HASH  seq → the recipient's CSV values, written at import, never changed
//	wac:c:{id}:st:<bucket>      HASH  seq → state record; absent while the recipient is queued
//	wac:c:{id}:h:<bucket>       HASH  seq → history: what happened to the recipient, oldest first
//	wac:c:{id}:rejected         LIST  the first MaxRejectedListed rejected rows (JSON)
//	wac:c:{id}:retry            LIST  recipients requeued by retry-failed, not yet enqueued
//	wac:c:{id}:rownums          HASH  seq → the row it came from, for the first previewRows recipients
//	wac:c:{id}:tests            LIST  ids of the campaign's test sends, oldest first (testsend.go)
//	wac:c:{id}:polls            ZSET  seq → when its first status poll is due (unix ms), until the poll sweeper enqueues it
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
	endedIndex      = KeyPrefix + "campaigns:ended"
	retainedIndex   = KeyPrefix + "campaigns:retained"
	retentionLock   = KeyPrefix + "retention:lock"
	pollSweepLock   = KeyPrefix + "polls:lock" // the worker making this pass of the poll sweeper
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

// rowNumbersKey keeps where the first recipients came from in the file, so
// that a preview can name the row of each message it shows.
func rowNumbersKey(id string) string { return campaignKey(id) + ":rownums" }

// testsKey lists the campaign's test sends: each a campaign of its own, of
// one recipient, named by testSendID.
func testsKey(id string) string { return campaignKey(id) + ":tests" }

// pollsKey holds the first status polls of the campaign's sent messages
// until the poll sweeper (pollsweep.go) enqueues them: the outcome script
// writes an entry in the same step that records the message sent, so no
// crash between the two can lose its tracking.
func pollsKey(id string) string { return campaignKey(id) + ":polls" }

// testSendID names a campaign's nth test send (from 1). The campaign id
// stays a prefix, so its hash tag differs: a test send is a campaign.
func testSendID(id string, n int64) string { return id + ".t" + strconv.FormatInt(n, 10) }

// campaignKeys are every key of one campaign of total recipients: all share
// its hash tag, so one script may delete them, also on Redis Cluster.
func campaignKeys(id string, total int64) []string {
	keys := []string{campaignKey(id), rejectedKey(id), retryListKey(id), rowNumbersKey(id), testsKey(id), pollsKey(id)}
	for first := int64(0); first < total; first += bucketSize {
		keys = append(keys, rowsKey(id, first), stateKey(id, first), historyKey(id, first))
	}
	return keys
}

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
	fTestOf       = "test_of"    // on a test send: the campaign it tests
	fTestsMade    = "tests_made" // test sends made of the campaign so far
	// fFixedList "1": a listed campaign, whose recipients came as one list,
	// and whose queued recipients nothing but a cancel settles behind their
	// send tasks (unlike a sequence step's, see Store.SkipQueued): a send
	// task's untroubled run need not read its recipient's state first
	// (SendHandler.look). Absent on campaigns made before it: read first.
	fFixedList = "fixed_list"
	// Audience (audience.go, inbound.go):
	fSuppressed    = "suppressed"    // rows not imported because their address is suppressed
	fTransactional = "transactional" // "1": exempt from FREQUENCY_CAP (a transactional sequence's step)
	fCapPolicy     = "cap_policy"    // CapSkip (absent) or CapDefer
	fReplied       = "replied"       // recipients who replied within REPLY_WINDOW
	fOptedOut      = "opted_out"     // recipients who answered with an opt-out keyword
	fVariants      = "variants"      // JSON list of the A/B variants (absent: one template)
	fWinner        = "winner"        // JSON Winner: test-then-winner mode, and its choice once made
	fConfirms      = "confirms"      // on a keyword's confirmation reply: ConfirmOptOut or ConfirmOptIn (confirm.go)
)

// uidIndexBuckets spreads the message uid index over hashes of a
// manageable size.
const uidIndexBuckets = 4096

func uidIndexKey(uid string) string {
	h := fnv.New32a()
	h.Write([]byte(uid))
	return KeyPrefix + "uid:" + strconv.FormatUint(uint64(h.Sum32()%uidIndexBuckets), 10)
}

// winnerLockKey is taken by the process choosing a campaign's winner.
func winnerLockKey(id string) string { return KeyPrefix + "winner-lock:" + id }

func unknownIndexKey(phone string) string { return KeyPrefix + "unknown:" + phone }

func recentEventsKey(phone string) string { return KeyPrefix + "sentev:" + phone }

// asynq's own keys, which the batch task writer (taskwriter.go) writes as
// asynq's enqueue does (asynq's internal/base; metrics/state.go reads the
// same layout, and cannot import this package, which reports to it): per
// queue, under the hash tag {queue}, "pending" (a list), "scheduled" (a
// set scored by due time in unix seconds) and "t:<task id>" (a task's
// hash); and the set of queue names its servers and tools list.
func asynqQueuePrefix(queue string) string { return "asynq:{" + queue + "}:" }

const asynqAllQueues = "asynq:queues"
