package campaign

// The Store's side of drafts and what comes before a campaign sends: edits
// while it is a draft, deletion (every key under its hash tag in one
// script, then its entries in the indexes that lead to it, and its test
// sends), the list of its test sends, and what a preview and a forecast
// read of its recipients.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// editDraft writes fields of a campaign while it is a draft.
func (s *Store) editDraft(ctx context.Context, id string, fields map[string]any) error {
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	st, err := editDraftScript.Run(ctx, s.rdb, []string{campaignKey(id)}, args...).Text()
	switch {
	case err != nil:
		return fmt.Errorf("edit draft %s: %w", id, err)
	case st == "":
		return ErrNotFound
	case Status(st) != StatusDraft:
		return &TransitionError{Action: "edit", Status: Status(st)}
	}
	return nil
}

// estimateCredits is what every message of a campaign costs with the
// campaign's file fileUID ("" none): 2 a message with a file, else 1, or 2
// for a recipient whose row names a file of its own (sender.Message.Credits).
func (s *Store) estimateCredits(ctx context.Context, c *Campaign, fileUID string) (int64, error) {
	total := c.Counts.Total
	fileIdx := indexOf(c.Columns, fileColumn)
	if fileUID != "" || fileIdx < 0 {
		if fileUID != "" {
			return 2 * total, nil
		}
		return total, nil
	}
	own := int64(0)
	for first := int64(0); first < total; first += bucketSize {
		rows, err := s.rdb.HVals(ctx, rowsKey(c.ID, first)).Result()
		if err != nil {
			return 0, fmt.Errorf("read recipients of campaign %s: %w", c.ID, err)
		}
		for _, row := range rows {
			if v := decodeRow(row); fileIdx < len(v) && v[fileIdx] != "" {
				own++
			}
		}
	}
	return total + own, nil
}

// deletable are the statuses in which a campaign may be deleted: nothing of
// it can be sending.
var deletable = []Status{StatusDraft, StatusCompleted, StatusCancelled}

// Delete removes a draft, completed or cancelled campaign and everything
// Redis holds of it, its test sends included. A campaign that may still send
// is a *TransitionError (the API answers 409: cancel it first). Tasks of it
// still queued find it gone and do nothing.
func (s *Store) Delete(ctx context.Context, id string) error {
	tests, err := s.rdb.LRange(ctx, testsKey(id), 0, -1).Result()
	if err != nil {
		return fmt.Errorf("read the test sends of campaign %s: %w", id, err)
	}
	if err := s.deleteCampaign(ctx, id, deletable); err != nil {
		return err
	}
	for _, test := range tests {
		// A test send still under way is deleted too: it is one message
		// to the user's own phone, and its parent is gone.
		if err := s.deleteCampaign(ctx, test, nil); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// deleteCampaign deletes a campaign whose status is one of allowed (nil:
// any), with its index entries.
func (s *Store) deleteCampaign(ctx context.Context, id string, allowed []Status) error {
	for try := 0; ; try++ {
		total, err := s.rdb.HGet(ctx, campaignKey(id), fTotal).Int64()
		if errors.Is(err, redis.Nil) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read campaign %s: %w", id, err)
		}
		uids, err := s.sentUIDs(ctx, id, total)
		if err != nil {
			return err
		}
		res, err := deleteScript.Run(ctx, s.rdb, campaignKeys(id, total), statusList(allowed), total).StringSlice()
		if err != nil {
			return fmt.Errorf("delete campaign %s: %w", id, err)
		}
		switch res[0] {
		case "gone":
			return ErrNotFound
		case "status":
			return &TransitionError{Action: "delete", Status: Status(res[1])}
		case "changed":
			if try < 3 {
				continue // recipients were added meanwhile: list the keys again
			}
			return fmt.Errorf("delete campaign %s: it keeps gaining recipients", id)
		}
		return s.dropIndexEntries(ctx, id, uids)
	}
}

// statusList writes statuses as the scripts take them: ",a,b," ("" for none).
func statusList(statuses []Status) string {
	if len(statuses) == 0 {
		return ""
	}
	parts := make([]string, len(statuses))
	for i, st := range statuses {
		parts[i] = string(st)
	}
	return "," + strings.Join(parts, ",") + ","
}

// sentUIDs are the message uids of a campaign's recipients, for the uid
// index (which lives outside the campaign's hash tag).
func (s *Store) sentUIDs(ctx context.Context, id string, total int64) ([]string, error) {
	var uids []string
	for first := int64(0); first < total; first += bucketSize {
		records, err := s.rdb.HVals(ctx, stateKey(id, first)).Result()
		if err != nil {
			return nil, fmt.Errorf("read recipients of campaign %s: %w", id, err)
		}
		for _, v := range records {
			if r, err := decodeRecord(v); err == nil && r.UID != "" {
				uids = append(uids, r.UID)
			}
		}
	}
	return uids, nil
}

// dropIndexEntries takes a deleted campaign off the lists of campaigns and
// its messages out of the uid index.
func (s *Store) dropIndexEntries(ctx context.Context, id string, uids []string) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, campaignsIndex, id)
		p.SRem(ctx, activeIndex, id)
		p.SRem(ctx, uploadingIndex, id)
		p.SRem(ctx, endedIndex, id)
		p.ZRem(ctx, retainedIndex, id)
		for _, uid := range uids {
			p.HDel(ctx, uidIndexKey(uid), uid)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("drop deleted campaign %s from the indexes: %w", id, err)
	}
	return nil
}

// newTest numbers a campaign's next test send and lists it; ErrNotFound
// when the campaign is gone.
func (s *Store) newTest(ctx context.Context, id string) (string, error) {
	n, err := newTestScript.Run(ctx, s.rdb, []string{campaignKey(id), testsKey(id)}, id).Int64()
	if err != nil {
		return "", fmt.Errorf("number a test send of campaign %s: %w", id, err)
	}
	if n == 0 {
		return "", ErrNotFound
	}
	return testSendID(id, n), nil
}

// testIDs are the ids of a campaign's latest n test sends, oldest first.
func (s *Store) testIDs(ctx context.Context, id string, n int) ([]string, error) {
	ids, err := s.rdb.LRange(ctx, testsKey(id), int64(-n), -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read the test sends of campaign %s: %w", id, err)
	}
	return ids, nil
}

// previewRows is how many recipients, the first ones, keep the row of the
// file they came from (rowNumbersKey): as many as a preview shows at most.
const previewRows = 50

// rowNumbers answers the row of the file each of the first recipients
// came from, by seq (0 where it is not kept).
func (s *Store) rowNumbers(ctx context.Context, id string, seqs []int64) (map[int64]int, error) {
	out := make(map[int64]int, len(seqs))
	if len(seqs) == 0 {
		return out, nil
	}
	fields := make([]string, len(seqs))
	for i, seq := range seqs {
		fields[i] = strconv.FormatInt(seq, 10)
	}
	vals, err := s.rdb.HMGet(ctx, rowNumbersKey(id), fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("read the rows of campaign %s: %w", id, err)
	}
	for i, v := range vals {
		if str, ok := v.(string); ok {
			n, _ := strconv.Atoi(str)
			out[seqs[i]] = n
		}
	}
	return out, nil
}
