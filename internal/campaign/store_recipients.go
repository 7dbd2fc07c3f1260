package campaign

// The recipients of a campaign in Redis: rows written at import, state
// records and histories written by the scripts of scripts.go, and the
// reads of them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/metrics"
	"github.com/wacampaign/wacampaign/internal/sender"
)

// record is a recipient's state record (see scripts.go).
type record struct {
	State   State  `json:"s"`
	Reason  string `json:"r,omitempty"`
	Account string `json:"a,omitempty"`
	UID     string `json:"u,omitempty"`
	At      string `json:"t,omitempty"` // unix ms; a string because Lua's cjson rounds large numbers
	Owner   string `json:"o,omitempty"` // the attempt holding a "sending" claim
	Lease   string `json:"l,omitempty"` // unix ms when that claim lapses
	// Dispatched is when the attempt took its claim, right before it wrote
	// its request to the provider (unix ms): from then on a lost answer
	// means "maybe sent".
	Dispatched string `json:"d,omitempty"`
	// ClaimUnwritten is "1" while the claim's "sending" history entry is
	// still to be written, by whoever settles the claim (claimed_entry).
	ClaimUnwritten string `json:"w,omitempty"`
	// RepliedAt and OptedOutAt (unix ms) are kept by replyScript: the
	// recipient wrote back, and wrote an opt-out keyword.
	RepliedAt  string `json:"rp,omitempty"`
	OptedOutAt string `json:"oo,omitempty"`
}

func (r record) encode() string { return EncodeRecord(r) }

func decodeRecord(s string) (record, error) { return DecodeRecord[record](s) }

// encodeRow joins a recipient's values for storage. Values never contain the
// separator: the importer replaces control characters.
func encodeRow(values []string) string { return strings.Join(values, fieldSeparator) }

func decodeRow(s string) []string { return strings.Split(s, fieldSeparator) }

// pendingRow is an imported recipient on its way to Redis.
type pendingRow struct {
	seq    int64
	values []string
	row    int // where it came from (RejectedRow.Row), kept for a preview of the first ones
	// address is what the recipient is suppressed under ("": nothing).
	address string
}

// rowBatch is an import's batch on its way to Redis: the recipients, and
// the rows counted but not stored.
type rowBatch struct {
	rows                   []pendingRow
	duplicates, suppressed int64
	credits                int64 // estimated for rows
}

// addRows writes a batch of imported recipients and counts them queued, in
// one round trip, and notes the import's progress at now (how the janitor
// tells a live upload from one that stopped arriving).
func (s *Store) addRows(ctx context.Context, id string, b rowBatch, now time.Time) error {
	rows, duplicates, credits := b.rows, b.duplicates, b.credits
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		byBucket := map[string][]any{}
		var order []string
		for _, r := range rows {
			k := rowsKey(id, r.seq)
			if _, ok := byBucket[k]; !ok {
				order = append(order, k)
			}
			byBucket[k] = append(byBucket[k], strconv.FormatInt(r.seq, 10), encodeRow(r.values))
		}
		for _, k := range order {
			p.HSet(ctx, k, byBucket[k]...)
		}
		if len(rows) > 0 && rows[0].seq < previewRows {
			var nums []any
			for _, r := range rows {
				if r.seq < previewRows && r.row > 0 {
					nums = append(nums, strconv.FormatInt(r.seq, 10), r.row)
				}
			}
			if len(nums) > 0 {
				p.HSet(ctx, rowNumbersKey(id), nums...)
			}
		}
		ck := campaignKey(id)
		p.HSet(ctx, ck, fProgressAt, UnixMilli(now))
		if len(rows) > 0 {
			p.HIncrBy(ctx, ck, fTotal, int64(len(rows)))
			p.HIncrBy(ctx, ck, string(StateQueued), int64(len(rows)))
		}
		if duplicates > 0 {
			p.HIncrBy(ctx, ck, fDuplicates, duplicates)
		}
		if b.suppressed > 0 {
			p.HIncrBy(ctx, ck, fSuppressed, b.suppressed)
		}
		if credits > 0 {
			p.HIncrBy(ctx, ck, fEstimated, credits)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store recipients of campaign %s: %w", id, err)
	}
	return nil
}

// addRejected records rejected rows: all of them counted, the first
// MaxRejectedListed listed.
func (s *Store) addRejected(ctx context.Context, id string, rows []RejectedRow, alreadyListed int64) error {
	if len(rows) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, campaignKey(id), fRejected, int64(len(rows)))
		room := MaxRejectedListed - alreadyListed
		var items []any
		for _, r := range rows {
			if int64(len(items)) >= room {
				break
			}
			b, _ := json.Marshal(r)
			items = append(items, string(b))
		}
		if len(items) > 0 {
			p.RPush(ctx, rejectedKey(id), items...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store rejected rows of campaign %s: %w", id, err)
	}
	return nil
}

func (s *Store) finishImport(ctx context.Context, id string, now time.Time) error {
	if err := finishImportScript.Run(ctx, s.rdb, []string{campaignKey(id)}, UnixMilli(now)).Err(); err != nil {
		return fmt.Errorf("finish import of campaign %s: %w", id, err)
	}
	return nil
}

// claimOutcome is what claimScript found.
type claimOutcome string

const (
	claimTaken       claimOutcome = "claimed"     // this attempt holds the claim and writes its request now
	claimFree        claimOutcome = "free"        // inspect: nobody holds it
	claimSettled     claimOutcome = "settled"     // an earlier attempt finished, or reconciliation has it
	claimInflight    claimOutcome = "inflight"    // another live attempt holds it
	claimUnconfirmed claimOutcome = "unconfirmed" // a dead attempt had dispatched: now unconfirmed
	claimStale       claimOutcome = "stale"       // the task belongs to an earlier round
	claimStopped     claimOutcome = "status"      // the campaign is not running
	claimGone        claimOutcome = "gone"        // no such campaign
)

// claimParams name one claim attempt.
type claimParams struct {
	Campaign string
	Seq      int64
	Round    int64
	Account  string
	Attempt  string
	Lease    time.Duration
	Now      time.Time
	// InspectOnly settles a dead attempt's claim and claims nothing.
	InspectOnly bool
	// Created is the campaign's created_at and Started that its started_at
	// is set, when the caller knows (each spares the script a command).
	Created *time.Time
	Started bool
	// Alongside queues reads of other stores in the claim's round trip,
	// before it (the audience's suppression look-up): their answers are
	// read once the claim has answered.
	Alongside func(redis.Pipeliner)
}

// claimResult is the answer of claimScript: for a recipient found
// unconfirmed, when and from which account the dead attempt dispatched;
// for a claim in flight, when its lease ends.
type claimResult struct {
	outcome    claimOutcome
	dispatched time.Time
	account    string
	leaseEnds  time.Time
}

// claim runs claimScript: the claim and dispatch mark of an attempt about
// to write its request, or (InspectOnly) the settling of a dead one's.
func (s *Store) claim(ctx context.Context, p claimParams) (claimResult, error) {
	mode := "dispatch"
	if p.InspectOnly {
		mode = "inspect"
	}
	created, started := "", ""
	if p.Created != nil {
		created = UnixMilli(*p.Created)
	}
	if p.Started {
		started = "1"
	}
	res, err := s.runClaim(ctx, p.Alongside,
		[]string{campaignKey(p.Campaign), stateKey(p.Campaign, p.Seq), historyKey(p.Campaign, p.Seq)},
		p.Seq, UnixMilli(p.Now), p.Account, p.Attempt, p.Lease.Milliseconds(), p.Round, reasonDiedAfterDispatch, mode,
		created, started,
	)
	if err != nil {
		return claimResult{}, fmt.Errorf("claim recipient %d of campaign %s: %w", p.Seq, p.Campaign, err)
	}
	out := claimResult{outcome: claimOutcome(res[0])}
	switch {
	case out.outcome == claimInflight && len(res) > 1:
		if t := ParseUnixMilli(res[1]); t != nil {
			out.leaseEnds = *t
		}
	case out.outcome == claimUnconfirmed && len(res) > 2:
		metrics.Outcome(string(StateUnconfirmed))
		if t := ParseUnixMilli(res[1]); t != nil {
			out.dispatched = *t
		}
		out.account = res[2]
	}
	return out, nil
}

// runClaim runs claimScript, after the reads alongside queues (nil: none)
// in the same round trip.
func (s *Store) runClaim(ctx context.Context, alongside func(redis.Pipeliner), keys []string, args ...any) ([]string, error) {
	if alongside == nil {
		return claimScript.Run(ctx, s.rdb, keys, args...).StringSlice()
	}
	var claim *redis.Cmd
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		alongside(p)
		claim = claimScript.EvalSha(ctx, p, keys, args...)
		return nil
	}) // each command keeps its own answer and error
	if err := claim.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// A Redis that has not seen the script yet (restarted, or another
		// node): Run loads it. The reads alongside have their answers.
		return claimScript.Run(ctx, s.rdb, keys, args...).StringSlice()
	}
	return claim.StringSlice()
}

// reasonDiedAfterDispatch is recorded when a retry finds that the attempt
// before it died after writing its request to the provider.
const reasonDiedAfterDispatch = "the worker stopped while handing the message to the provider; checking with the provider before anything is sent again"

// candidate is what a send task reads of its recipient before anything
// else, in one round trip: the row (nil: gone) and the state record (nil:
// queued, nobody holds it).
func (s *Store) candidate(ctx context.Context, id string, seq int64) ([]string, *record, error) {
	field := strconv.FormatInt(seq, 10)
	var row, state *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		row = p.HGet(ctx, rowsKey(id, seq), field)
		state = p.HGet(ctx, stateKey(id, seq), field)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("read recipient %d of campaign %s: %w", seq, id, err)
	}
	if row.Err() != nil {
		return nil, nil, nil
	}
	if state.Err() != nil {
		return decodeRow(row.Val()), nil, nil
	}
	rec, err := decodeRecord(state.Val())
	if err != nil {
		return nil, nil, fmt.Errorf("recipient %d of campaign %s: %w", seq, id, err)
	}
	return decodeRow(row.Val()), &rec, nil
}

// settleParams describe one move of a recipient from the state the caller
// saw (From) to Record.State.
type settleParams struct {
	Campaign string
	Seq      int64
	From     State
	// Attempt, when set, is the attempt that holds the claim: only it may
	// settle a "sending" (or its own "unconfirmed") recipient.
	Attempt string
	Record  record
	Credits int    // credits spent, added to the campaign's
	Detail  string // for the history: a reason, a message uid, why a claim was released
	Now     time.Time
	// PollAt, on a move to "sent", is when the message's first status poll
	// is due (zero: none): the move enters it in the campaign's poll set.
	PollAt time.Time
	// Created is the campaign's created_at when the caller knows it (it
	// spares the script a read).
	Created *time.Time
	// Unwritten says the claim being settled never had its request
	// written: its "sending" entry stays out of the history.
	Unwritten bool
}

// settle moves a recipient (see settleScript). It answers false when the
// recipient was no longer in state From (or no longer held by Attempt).
func (s *Store) settle(ctx context.Context, p settleParams) (bool, error) {
	p.Record.At = UnixMilli(p.Now)
	pollAt, created := "", ""
	if !p.PollAt.IsZero() {
		pollAt = UnixMilli(p.PollAt)
	}
	if p.Created != nil {
		created = UnixMilli(*p.Created)
	}
	unwritten := ""
	if p.Unwritten {
		unwritten = "1"
	}
	n, err := settleScript.Run(ctx, s.rdb,
		[]string{campaignKey(p.Campaign), stateKey(p.Campaign, p.Seq), historyKey(p.Campaign, p.Seq), pollsKey(p.Campaign)},
		p.Seq, string(p.From), string(p.Record.State), p.Record.encode(), p.Credits, UnixMilli(p.Now), p.Attempt, p.Detail, pollAt, created,
		unwritten,
	).Int()
	if err != nil {
		return false, fmt.Errorf("record %s for recipient %d of campaign %s: %w", p.Record.State, p.Seq, p.Campaign, err)
	}
	if n == 1 {
		metrics.Outcome(string(p.Record.State))
	}
	return n == 1, nil
}

// row reads a recipient's CSV values (ErrNotFound when there is none).
func (s *Store) row(ctx context.Context, id string, seq int64) ([]string, error) {
	row, err := s.rdb.HGet(ctx, rowsKey(id, seq), strconv.FormatInt(seq, 10)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read recipient %d of campaign %s: %w", seq, id, err)
	}
	return decodeRow(row), nil
}

// rows reads the rows of recipients seqs, which lie in one bucket, in
// their order; a recipient without a row (not added yet, or gone) is nil.
func (s *Store) rows(ctx context.Context, id string, seqs []int64) ([][]string, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	fields := make([]string, len(seqs))
	for i, seq := range seqs {
		fields[i] = strconv.FormatInt(seq, 10)
	}
	vals, err := s.rdb.HMGet(ctx, rowsKey(id, seqs[0]), fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("read recipients of campaign %s: %w", id, err)
	}
	out := make([][]string, len(vals))
	for i, v := range vals {
		if row, ok := v.(string); ok {
			out[i] = decodeRow(row)
		}
	}
	return out, nil
}

// tracking reads what a status poll needs: the recipient's record and
// history. ErrNotFound when the campaign is gone.
func (s *Store) tracking(ctx context.Context, id string, seq int64) (record, []HistoryEntry, error) {
	var created *redis.StringCmd
	var rec, hist *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		created = p.HGet(ctx, campaignKey(id), fCreatedAt)
		rec = p.HGet(ctx, stateKey(id, seq), strconv.FormatInt(seq, 10))
		hist = p.HGet(ctx, historyKey(id, seq), strconv.FormatInt(seq, 10))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return record{}, nil, fmt.Errorf("read recipient %d of campaign %s: %w", seq, id, err)
	}
	createdAt := ParseUnixMilli(created.Val())
	if createdAt == nil {
		return record{}, nil, ErrNotFound
	}
	r := record{State: StateQueued}
	if rec.Val() != "" {
		if r, err = decodeRecord(rec.Val()); err != nil {
			return record{}, nil, fmt.Errorf("recipient %d of campaign %s: %w", seq, id, err)
		}
	}
	return r, decodeHistory(hist.Val(), *createdAt), nil
}

// applyStatuses records the provider's status reports for a recipient (see
// statusScript) and answers its state afterwards.
func (s *Store) applyStatuses(ctx context.Context, id string, seq int64, events []sender.StatusEvent, now time.Time) (State, error) {
	args := []any{seq, UnixMilli(now)}
	for _, e := range events {
		word := strings.TrimSpace(strings.ReplaceAll(e.Status, ";", ","))
		if word == "" {
			continue
		}
		at := e.At
		if at.IsZero() {
			at = now
		}
		args = append(args, word, at.UnixMilli(), string(ProviderState(word)))
	}
	st, err := statusScript.Run(ctx, s.rdb, []string{campaignKey(id), stateKey(id, seq), historyKey(id, seq)}, args...).Text()
	if err != nil {
		return "", fmt.Errorf("record statuses of recipient %d of campaign %s: %w", seq, id, err)
	}
	return State(st), nil
}

// Recipients lists a campaign's recipients in upload order, from seq cursor
// on, at most limit of them, optionally only those in one state. It returns
// the cursor of the next page, or -1 at the end. One call reads at most
// maxBucketsPerPage buckets, so a page may come back short (even empty) with a
// cursor to go on from: a rare state in a huge campaign costs several calls
// rather than one unbounded one.
func (s *Store) Recipients(ctx context.Context, id string, state State, cursor int64, limit int) ([]Recipient, int64, error) {
	fields := []string{fTotal, fColumns, fPhoneColumn, fCreatedAt, fKeyColumns}
	h, err := s.rdb.HMGet(ctx, campaignKey(id), fields...).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("read campaign %s: %w", id, err)
	}
	if h[0] == nil {
		return nil, 0, ErrNotFound
	}
	hash := make(map[string]string, len(fields))
	for i, f := range fields {
		hash[f], _ = h[i].(string)
	}
	total, _ := strconv.ParseInt(hash[fTotal], 10, 64)
	var columns []string
	_ = json.Unmarshal([]byte(hash[fColumns]), &columns)
	keys := keyColumnsNamed(columns, storedKeyColumns(hash))
	var created time.Time
	if t := ParseUnixMilli(hash[fCreatedAt]); t != nil {
		created = *t
	}

	out := make([]Recipient, 0, limit)
	const maxBucketsPerPage = 16
	seq := cursor
	for buckets := 0; seq < total && len(out) < limit && buckets < maxBucketsPerPage; buckets++ {
		end := min((seq/bucketSize+1)*bucketSize, total)
		fields := make([]string, 0, end-seq)
		for i := seq; i < end; i++ {
			fields = append(fields, strconv.FormatInt(i, 10))
		}
		var rowsCmd, statesCmd, historyCmd *redis.SliceCmd
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			rowsCmd = p.HMGet(ctx, rowsKey(id, seq), fields...)
			statesCmd = p.HMGet(ctx, stateKey(id, seq), fields...)
			historyCmd = p.HMGet(ctx, historyKey(id, seq), fields...)
			return nil
		}); err != nil {
			return nil, 0, fmt.Errorf("read recipients of campaign %s: %w", id, err)
		}
		for i, rowVal := range rowsCmd.Val() {
			cur := seq + int64(i)
			rowStr, _ := rowVal.(string)
			rec := record{State: StateQueued}
			if st, ok := statesCmd.Val()[i].(string); ok {
				if r, err := decodeRecord(st); err == nil {
					rec = r
				}
			}
			if state != "" && rec.State != state {
				continue
			}
			r := recipientFrom(cur, columns, keys, rowStr, rec)
			stored, _ := historyCmd.Val()[i].(string)
			r.History = decodeHistory(stored, created)
			out = append(out, r)
			if len(out) == limit {
				next := cur + 1
				if next >= total {
					next = -1
				}
				return out, next, nil
			}
		}
		seq = end
	}
	if seq >= total {
		seq = -1
	}
	return out, seq, nil
}

func recipientFrom(seq int64, columns []string, keys []keyColumn, row string, rec record) Recipient {
	values := decodeRow(row)
	r := Recipient{
		Seq:        seq,
		Fields:     make(map[string]string, len(columns)),
		State:      rec.State,
		Reason:     rec.Reason,
		Account:    rec.Account,
		MessageUID: rec.UID,
		UpdatedAt:  ParseUnixMilli(rec.At),
	}
	for i, col := range columns {
		if i < len(values) {
			r.Fields[col] = values[i]
		}
	}
	if key, ok := keyOf(keys, values); ok {
		r.Key, r.Kind = key.value, key.kind
		if key.kind == KindPhone {
			r.Phone = key.value
		}
	}
	return r
}
