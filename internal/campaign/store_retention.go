package campaign

// What the retention keeper (retention.go) reads and writes: the indexes
// of ended campaigns, the expiry of a campaign's keys, and the message uid
// index entries of its recipients.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// endedState is what the retention keeper reads of a campaign.
type endedState struct {
	id       string
	exists   bool
	status   Status
	finished time.Time // zero when not recorded
	campaign *Campaign // the hash as read, for the lifecycle log line
}

// campaignStates reads the campaigns of an index (active or ended) in one
// round trip.
func (s *Store) campaignStates(ctx context.Context, index string) ([]endedState, error) {
	ids, err := s.rdb.SMembers(ctx, index).Result()
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", index, err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, campaignKey(id))
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read %s: %w", index, err)
	}
	out := make([]endedState, len(ids))
	for i, id := range ids {
		h := cmds[i].Val()
		out[i] = endedState{id: id, exists: len(h) > 0, status: Status(h[fStatus])}
		if out[i].exists {
			out[i].campaign = campaignFromHash(id, h)
			if t := ParseUnixMilli(h[fFinishedAt]); t != nil {
				out[i].finished = *t
			}
		}
	}
	return out, nil
}

// moveToEnded takes a campaign off the active index onto the ended one
// (two slots: a pipeline, not a transaction; the keeper repeats an
// interrupted move).
func (s *Store) moveToEnded(ctx context.Context, id string) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, endedIndex, id)
		p.SRem(ctx, activeIndex, id)
		return nil
	})
	return err
}

// dropFromIndexes forgets a campaign whose hash is gone.
func (s *Store) dropFromIndexes(ctx context.Context, id string) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SRem(ctx, activeIndex, id)
		p.SRem(ctx, endedIndex, id)
		p.ZRem(ctx, retainedIndex, id)
		p.ZRem(ctx, campaignsIndex, id)
		return nil
	})
	return err
}

// expireCampaign sets every key of an ended campaign to expire at, drops its
// message uids from the webhook index (no webhook comes for a message of an
// ended campaign this late), and lists it as retained until then. A
// campaign whose poll set still holds first status polls is left as it is
// (answering false): it stays on the ended index, where the poll sweeper
// looks, until the sweeper has enqueued them.
func (s *Store) expireCampaign(ctx context.Context, id string, at time.Time) (bool, error) {
	var total *redis.StringCmd
	var polls *redis.IntCmd
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		total = p.HGet(ctx, campaignKey(id), fTotal)
		polls = p.ZCard(ctx, pollsKey(id))
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("read campaign %s: %w", id, err)
	}
	if polls.Val() > 0 {
		return false, nil
	}
	return true, s.setExpiry(ctx, id, total.Val(), at)
}

// setExpiry is expireCampaign's work on a campaign of total recipients.
func (s *Store) setExpiry(ctx context.Context, id, totalField string, at time.Time) error {
	total, _ := strconv.ParseInt(totalField, 10, 64)
	if err := s.unindexMessages(ctx, id, total); err != nil {
		return err
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range campaignKeys(id, total) {
			p.PExpireAt(ctx, k, at)
		}
		p.ZAdd(ctx, retainedIndex, redis.Z{Score: float64(at.UnixMilli()), Member: id})
		p.SRem(ctx, endedIndex, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("set the retention of campaign %s: %w", id, err)
	}
	return nil
}

// unindexMessages removes the uid index entries of a campaign's sent
// messages, a bucket of state records at a time.
func (s *Store) unindexMessages(ctx context.Context, id string, total int64) error {
	for first := int64(0); first < total; first += bucketSize {
		recs, err := s.rdb.HVals(ctx, stateKey(id, first)).Result()
		if err != nil {
			return fmt.Errorf("read recipients of campaign %s: %w", id, err)
		}
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, raw := range recs {
				if r, err := decodeRecord(raw); err == nil && r.UID != "" {
					p.HDel(ctx, uidIndexKey(r.UID), r.UID)
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("unindex the messages of campaign %s: %w", id, err)
		}
	}
	return nil
}

// keepCampaign undoes expireCampaign for a campaign that runs again (a
// retry of its failed recipients): its keys stay, and it is active.
func (s *Store) keepCampaign(ctx context.Context, id string) error {
	total, err := s.rdb.HGet(ctx, campaignKey(id), fTotal).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read campaign %s: %w", id, err)
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range campaignKeys(id, total) {
			p.Persist(ctx, k)
		}
		p.ZRem(ctx, retainedIndex, id)
		p.SRem(ctx, endedIndex, id)
		p.SAdd(ctx, activeIndex, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("keep campaign %s: %w", id, err)
	}
	return nil
}

// expiredCampaigns lists retained campaigns whose keys expired by now.
func (s *Store) expiredCampaigns(ctx context.Context, now time.Time) ([]string, error) {
	return s.rdb.ZRangeByScore(ctx, retainedIndex, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10)}).Result()
}

// exists reports whether a campaign's hash is still there.
func (s *Store) exists(ctx context.Context, id string) (bool, error) {
	n, err := s.rdb.Exists(ctx, campaignKey(id)).Result()
	return n == 1, err
}
