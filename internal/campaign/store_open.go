package campaign

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Campaigns that keep taking recipients one at a time (sequence steps), and
// what other packages read of one recipient.

// CreateOpen writes a campaign that keeps taking recipients through
// Service.AddRecipient and is not listed among the campaigns (a sequence
// step); phoneColumn names its phone column.
func (s *Store) CreateOpen(ctx context.Context, c *Campaign, phoneColumn string) error {
	return s.create(ctx, c, phoneColumn, false)
}

// addRecipientOnce stores recipient seq's row and counts it queued, unless
// it is there already (see addRowOnceScript). It answers whether it added it.
func (s *Store) addRecipientOnce(ctx context.Context, id string, seq int64, values []string, credits int) (bool, error) {
	n, err := addRowOnceScript.Run(ctx, s.rdb, []string{campaignKey(id), rowsKey(id, seq)}, seq, encodeRow(values), credits).Int()
	if err != nil {
		return false, fmt.Errorf("add recipient %d to campaign %s: %w", seq, id, err)
	}
	return n == 1, nil
}

// Recipient reads one recipient (queued, with no fields, when it has no row
// yet); ErrNotFound when the campaign is gone.
func (s *Store) Recipient(ctx context.Context, id string, seq int64) (Recipient, error) {
	list, _, err := s.Recipients(ctx, id, "", seq, 1)
	if err != nil {
		return Recipient{}, err
	}
	if len(list) == 0 || list[0].Seq != seq {
		return Recipient{Seq: seq, State: StateQueued, Fields: map[string]string{}, History: []HistoryEntry{}}, nil
	}
	return list[0], nil
}

// SkipQueued marks a recipient that is still queued skipped, saying why (an
// unenrolled step); one already claimed or settled is left as it is. It
// answers whether it skipped it.
func (s *Store) SkipQueued(ctx context.Context, id string, seq int64, reason string, now time.Time) (bool, error) {
	return s.settle(ctx, settleParams{Campaign: id, Seq: seq, From: StateQueued,
		Record: record{State: StateSkipped, Reason: reason}, Detail: reason, Now: now})
}

// eachQueuedBucket calls fn with the queued recipients of each bucket of a
// campaign in turn (those without a state record), so that a million of
// them never sit in memory at once.
func (s *Store) eachQueuedBucket(ctx context.Context, id string, fn func(seqs []int64) error) error {
	total, err := s.rdb.HGet(ctx, campaignKey(id), fTotal).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read campaign %s: %w", id, err)
	}
	for first := int64(0); first < total; first += bucketSize {
		settled, err := s.rdb.HKeys(ctx, stateKey(id, first)).Result()
		if err != nil {
			return fmt.Errorf("read recipients of campaign %s: %w", id, err)
		}
		done := make(map[string]bool, len(settled))
		for _, seq := range settled {
			done[seq] = true
		}
		var seqs []int64
		for seq := first; seq < min(first+bucketSize, total); seq++ {
			if !done[strconv.FormatInt(seq, 10)] {
				seqs = append(seqs, seq)
			}
		}
		if err := fn(seqs); err != nil {
			return err
		}
	}
	return nil
}
