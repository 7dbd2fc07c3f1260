package campaign

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// recordReply records that recipient seq of campaign id wrote back, and
// whether with an opt-out keyword (replyScript); false when it was
// already recorded.
func (s *Store) recordReply(ctx context.Context, id string, seq int64, optedOut bool, at time.Time) (bool, error) {
	opt := "0"
	if optedOut {
		opt = "1"
	}
	keys := []string{campaignKey(id), stateKey(id, seq), historyKey(id, seq)}
	n, err := replyScript.Run(ctx, s.rdb, keys, strconv.FormatInt(seq, 10), UnixMilli(at), opt).Int()
	if err != nil {
		return false, fmt.Errorf("record a reply to campaign %s: %w", id, err)
	}
	return n == 1, nil
}
