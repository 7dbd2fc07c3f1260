package campaign

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// CountByStatus counts the listed campaigns by status, for metrics: every
// campaign in the index (finished ones leave it when their retention ends),
// its status read in one pipelined round trip.
func (s *Store) CountByStatus(ctx context.Context) (map[string]int64, error) {
	ids, err := s.rdb.ZRange(ctx, campaignsIndex, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("count campaigns: %w", err)
	}
	cmds := make([]*redis.StringCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGet(ctx, campaignKey(id), fStatus)
		}
		return nil
	}); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("count campaigns: %w", err)
	}
	out := map[string]int64{}
	for _, st := range []Status{StatusDraft, StatusScheduled, StatusRunning, StatusPaused, StatusCompleted, StatusCancelled} {
		out[string(st)] = 0 // every status is published, also at 0
	}
	for _, cmd := range cmds {
		if st := cmd.Val(); st != "" {
			out[st]++
		}
	}
	return out, nil
}
