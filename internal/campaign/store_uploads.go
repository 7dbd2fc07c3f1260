package campaign

// The uploads of campaigns in Redis: a campaign is listed as uploading
// from its first stored rows until the request creating it has ended, so
// that the janitor finds the ones nobody could end (upload.go, janitor.go).

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// beginUpload lists a new campaign as uploading, held when asked, with its
// progress starting now. It runs before any of the campaign's tasks exist.
func (s *Store) beginUpload(ctx context.Context, id string, held bool, now time.Time) error {
	fields := []any{fProgressAt, UnixMilli(now)}
	if held {
		fields = append(fields, fHeld, "1")
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, campaignKey(id), fields...)
		p.SAdd(ctx, uploadingIndex, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("note the upload of campaign %s: %w", id, err)
	}
	return nil
}

// endUpload records that the request creating a campaign is over: its
// import is finished and its hold lifted (last: whatever the request
// changed is written by then).
func (s *Store) endUpload(ctx context.Context, id string, now time.Time) error {
	if err := s.finishImport(ctx, id, now); err != nil {
		return err
	}
	if err := s.rdb.HDel(ctx, campaignKey(id), fHeld).Err(); err != nil {
		return fmt.Errorf("release campaign %s: %w", id, err)
	}
	// Best effort: the janitor drops entries whose upload has ended.
	_ = s.rdb.SRem(ctx, uploadingIndex, id).Err()
	return nil
}

// setFields writes fields of the campaign hash that a request changed
// after the contacts (its name, template, accounts...), never a counter.
func (s *Store) setFields(ctx context.Context, id string, fields map[string]any) error {
	if err := s.rdb.HSet(ctx, campaignKey(id), fields).Err(); err != nil {
		return fmt.Errorf("apply the late fields of campaign %s: %w", id, err)
	}
	return nil
}

// uploadingAndActive lists the campaigns listed as uploading, and those
// not known to have ended.
func (s *Store) uploadingAndActive(ctx context.Context) ([][]string, error) {
	var lists [][]string
	for _, index := range []string{uploadingIndex, activeIndex} {
		members, err := s.rdb.SMembers(ctx, index).Result()
		if err != nil {
			return lists, fmt.Errorf("list uploading campaigns: %w", err)
		}
		lists = append(lists, members)
	}
	return lists, nil
}

// uploadStateFields are what the janitor reads of a campaign.
var uploadStateFields = []string{fStatus, fSequence, fHeld, fImporting, fProgressAt, fCreatedAt}

// uploadStates reads the uploadStateFields of each campaign, in one round
// trip.
func (s *Store) uploadStates(ctx context.Context, ids []string) ([][]any, error) {
	cmds := make([]*redis.SliceCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, campaignKey(id), uploadStateFields...)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read uploading campaigns: %w", err)
	}
	out := make([][]any, len(ids))
	for i, cmd := range cmds {
		out[i] = cmd.Val()
	}
	return out, nil
}

// dropUploading takes a campaign whose upload is over off the uploading
// list.
func (s *Store) dropUploading(ctx context.Context, id string) error {
	return s.rdb.SRem(ctx, uploadingIndex, id).Err()
}
