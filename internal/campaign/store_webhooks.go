package campaign

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/sender"
)

// The provider's message:sent:new webhook names messages by UID and by
// recipient phone. Two indexes (keys.go), kept only while a webhook secret
// is configured, lead from those back to recipients. The first confirms
// sends without a poll. The second turns an unconfirmed send (the answer to
// our POST was lost) into a known one when the provider reports the message
// it did send, often before reconciliation looks.

const (
	unknownIndexTTL = 24 * time.Hour
	// unknownMatchWindow bounds how long after an unknown attempt a sent
	// event may resolve it: the provider queues messages, but not for hours.
	unknownMatchWindow = 2 * time.Hour
)

func recipientRef(campaignID string, seq int64) string {
	return campaignID + "/" + strconv.FormatInt(seq, 10)
}

func parseRecipientRef(ref string) (string, int64, bool) {
	id, seqStr, ok := strings.Cut(ref, "/")
	seq, err := strconv.ParseInt(seqStr, 10, 64)
	return id, seq, ok && err == nil
}

// indexMessage records which recipient a message uid belongs to.
func (s *Store) indexMessage(ctx context.Context, uid, campaignID string, seq int64) error {
	if err := s.rdb.HSet(ctx, uidIndexKey(uid), uid, recipientRef(campaignID, seq)).Err(); err != nil {
		return fmt.Errorf("index message %s: %w", uid, err)
	}
	return nil
}

// indexUnconfirmed records a recipient whose send is unconfirmed, by phone.
func (s *Store) indexUnconfirmed(ctx context.Context, phone, campaignID string, seq int64) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, unknownIndexKey(phone), recipientRef(campaignID, seq))
		p.Expire(ctx, unknownIndexKey(phone), unknownIndexTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("index an unconfirmed send: %w", err)
	}
	return nil
}

// SentEvent is the part of a message:sent:new webhook that matters here.
type SentEvent struct {
	MessageUID string
	Recipient  string // phone, E.164
	Account    string // the sending account's phone
	Origin     string // "Public API" for messages sent through the API
	At         time.Time
}

// ConfirmSent applies a message:sent:new event: the recipient it names gets
// the provider's "Sent" in its history; an unconfirmed (or unknown)
// recipient it matches becomes sent. It answers the recipient it found, and
// whether the event resolved an unconfirmed send (the caller then starts its
// status polls).
func (s *Store) ConfirmSent(ctx context.Context, ev SentEvent) (campaignID string, seq int64, resolved bool, err error) {
	if ev.MessageUID == "" {
		return "", 0, false, nil
	}
	ref, err := s.rdb.HGet(ctx, uidIndexKey(ev.MessageUID), ev.MessageUID).Result()
	switch {
	case err == nil:
		id, seq, ok := parseRecipientRef(ref)
		if !ok {
			return "", 0, false, nil
		}
		_, err := s.applyStatuses(ctx, id, seq, []sender.StatusEvent{{Status: "Sent", At: ev.At}}, time.Now())
		return id, seq, false, err
	case err != redis.Nil:
		return "", 0, false, fmt.Errorf("look up message %s: %w", ev.MessageUID, err)
	}
	if ev.Origin != "Public API" || ev.Recipient == "" {
		return "", 0, false, nil // sent from the phone, or by another integration
	}
	refs, err := s.rdb.SMembers(ctx, unknownIndexKey(ev.Recipient)).Result()
	if err != nil {
		return "", 0, false, fmt.Errorf("look up unconfirmed sends: %w", err)
	}
	for _, ref := range refs {
		id, seq, ok := parseRecipientRef(ref)
		if !ok {
			continue
		}
		n, err := resolveUnconfirmedScript.Run(ctx, s.rdb,
			[]string{campaignKey(id), stateKey(id, seq), historyKey(id, seq)},
			seq, ev.MessageUID, ev.At.UnixMilli(), UnixMilli(time.Now()), ev.Account, unknownMatchWindow.Milliseconds(),
		).Int()
		if err != nil {
			return "", 0, false, fmt.Errorf("resolve an unconfirmed send: %w", err)
		}
		if n == 1 {
			_ = s.rdb.SRem(ctx, unknownIndexKey(ev.Recipient), ref).Err()
			return id, seq, true, s.indexMessage(ctx, ev.MessageUID, id, seq)
		}
	}
	return "", 0, false, nil
}
