package campaign

// What the poll sweeper (pollsweep.go) reads and writes: the campaigns
// that may have first status polls waiting, and their poll sets
// (wac:c:{id}:polls), which the outcome script fills (settleScript).

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// duePoll is a sent message's first status poll, due at due.
type duePoll struct {
	seq int64
	due time.Time
}

// pollCampaigns lists the campaigns whose poll sets the sweeper looks at:
// those not ended and those ended whose keys do not expire yet. A campaign
// leaves the second list only with an empty poll set (expireCampaign), so
// no first poll is ever out of the sweeper's sight.
func (s *Store) pollCampaigns(ctx context.Context) ([]string, error) {
	var active, ended *redis.StringSliceCmd
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		active = p.SMembers(ctx, activeIndex)
		ended = p.SMembers(ctx, endedIndex)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list the campaigns to sweep for status polls: %w", err)
	}
	seen := make(map[string]bool, len(active.Val()))
	ids := make([]string, 0, len(active.Val())+len(ended.Val()))
	for _, id := range append(active.Val(), ended.Val()...) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// duePolls reads, in one round trip, up to limit first polls of each
// campaign that are due by now, earliest first.
func (s *Store) duePolls(ctx context.Context, ids []string, now time.Time, limit int) ([][]duePoll, error) {
	cmds := make([]*redis.ZSliceCmd, len(ids))
	by := &redis.ZRangeBy{Min: "-inf", Max: UnixMilli(now), Count: int64(limit)}
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.ZRangeByScoreWithScores(ctx, pollsKey(id), by)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read the due status polls: %w", err)
	}
	out := make([][]duePoll, len(ids))
	for i, cmd := range cmds {
		for _, z := range cmd.Val() {
			member, _ := z.Member.(string)
			seq, err := strconv.ParseInt(member, 10, 64)
			if err != nil {
				continue // not ours; dropPolls never sees it, and it harms nobody
			}
			out[i] = append(out[i], duePoll{seq: seq, due: time.UnixMilli(int64(z.Score)).UTC()})
		}
	}
	return out, nil
}

// dropPolls takes enqueued first polls out of a campaign's poll set.
func (s *Store) dropPolls(ctx context.Context, id string, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	members := make([]any, len(seqs))
	for i, seq := range seqs {
		members[i] = strconv.FormatInt(seq, 10)
	}
	if err := s.rdb.ZRem(ctx, pollsKey(id), members...).Err(); err != nil {
		return fmt.Errorf("drop enqueued status polls of campaign %s: %w", id, err)
	}
	return nil
}
