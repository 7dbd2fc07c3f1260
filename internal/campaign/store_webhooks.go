package campaign

import (
	"context"
	"errors"
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
	// recentEventsFor is how long an event that matched nobody is kept for
	// a send whose answer is still on its way: the provider may report a
	// message before our request to send it has timed out.
	recentEventsFor  = 10 * time.Minute
	recentEventsKept = 20 // per phone
	unknownIndexTTL  = 24 * time.Hour
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
	if id, seq, found, err := s.confirmIndexed(ctx, ev); found || err != nil {
		return id, seq, false, err
	}
	if ev.Origin != "Public API" || ev.Recipient == "" {
		return "", 0, false, nil // sent from the phone, or by another integration
	}
	// Kept before the indexes are read again, as a send indexes its message
	// (or its unconfirmed send) before it reads what is kept: whichever
	// comes second sees the other.
	kept, err := s.rememberSentEvent(ctx, ev)
	if err != nil {
		return "", 0, false, err
	}
	forget := func() { _ = s.rdb.LRem(ctx, recentEventsKey(ev.Recipient), 1, kept).Err() }
	if id, seq, found, err := s.confirmIndexed(ctx, ev); found || err != nil {
		forget() // its send was recorded meanwhile
		return id, seq, false, err
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
		resolved, err := s.resolveUnconfirmed(ctx, id, seq, ev)
		if resolved {
			forget()
		}
		if err != nil || resolved {
			return id, seq, resolved, err
		}
	}
	return "", 0, false, nil
}

// confirmIndexed gives the recipient whose message ev names (the uid
// index) the provider's "Sent"; found is false when no recipient has it.
func (s *Store) confirmIndexed(ctx context.Context, ev SentEvent) (id string, seq int64, found bool, err error) {
	ref, err := s.rdb.HGet(ctx, uidIndexKey(ev.MessageUID), ev.MessageUID).Result()
	if errors.Is(err, redis.Nil) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, fmt.Errorf("look up message %s: %w", ev.MessageUID, err)
	}
	id, seq, ok := parseRecipientRef(ref)
	if !ok {
		return "", 0, true, nil
	}
	_, err = s.applyStatuses(ctx, id, seq, []sender.StatusEvent{{Status: "Sent", At: ev.At}}, time.Now())
	return id, seq, true, err
}

// resolveUnconfirmed makes recipient seq, unconfirmed (or unknown), sent
// with ev's message, if ev fits it (resolveUnconfirmedScript).
func (s *Store) resolveUnconfirmed(ctx context.Context, id string, seq int64, ev SentEvent) (bool, error) {
	n, err := resolveUnconfirmedScript.Run(ctx, s.rdb,
		[]string{campaignKey(id), stateKey(id, seq), historyKey(id, seq)},
		seq, ev.MessageUID, ev.At.UnixMilli(), UnixMilli(time.Now()), ev.Account, unknownMatchWindow.Milliseconds(),
	).Int()
	if err != nil {
		return false, fmt.Errorf("resolve an unconfirmed send: %w", err)
	}
	if n != 1 {
		return false, nil
	}
	_ = s.rdb.SRem(ctx, unknownIndexKey(ev.Recipient), recipientRef(id, seq)).Err()
	return true, s.indexMessage(ctx, ev.MessageUID, id, seq)
}

// recentEvent is a sent event kept by rememberSentEvent.
type recentEvent struct {
	UID     string `json:"u"`
	Account string `json:"a"`
	At      string `json:"t"` // unix ms
}

// rememberSentEvent keeps an API send's event that no sent recipient has
// for a while: the send it reports may be one whose answer has not come
// back yet, which becomes unconfirmed after the event (the provider sent
// it while our request was timing out) and finds it here
// (ResolveFromRecentEvents).
// It answers the item kept.
func (s *Store) rememberSentEvent(ctx context.Context, ev SentEvent) (string, error) {
	key := recentEventsKey(ev.Recipient)
	item := EncodeRecord(recentEvent{UID: ev.MessageUID, Account: ev.Account, At: UnixMilli(ev.At)})
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, key, item)
		p.LTrim(ctx, key, 0, recentEventsKept-1)
		p.Expire(ctx, key, recentEventsFor)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("keep a sent event: %w", err)
	}
	return item, nil
}

// confirmFromRecentEvent gives a message just recorded sent the provider's
// "Sent" of its event, when the event came first and was kept (the
// provider reported the message before its answer was recorded).
func (s *Store) confirmFromRecentEvent(ctx context.Context, phone, uid, id string, seq int64) error {
	items, err := s.rdb.LRange(ctx, recentEventsKey(phone), 0, -1).Result()
	if err != nil {
		return fmt.Errorf("read recent sent events: %w", err)
	}
	for _, item := range items {
		r, err := DecodeRecord[recentEvent](item)
		if err != nil || r.UID != uid {
			continue
		}
		_ = s.rdb.LRem(ctx, recentEventsKey(phone), 1, item).Err()
		at := time.Now()
		if t := ParseUnixMilli(r.At); t != nil {
			at = *t
		}
		_, err = s.applyStatuses(ctx, id, seq, []sender.StatusEvent{{Status: "Sent", At: at}}, time.Now())
		return err
	}
	return nil
}

// ResolveFromRecentEvents looks among the recent sent events to phone that
// matched nobody for one that resolves recipient seq, whose send has just
// become unconfirmed. It answers the event that did (ok), whose message the
// recipient now has. An event whose message a recipient has meanwhile
// (its send's answer came after its event) is not taken.
func (s *Store) ResolveFromRecentEvents(ctx context.Context, phone, id string, seq int64) (ev SentEvent, ok bool, err error) {
	items, err := s.rdb.LRange(ctx, recentEventsKey(phone), 0, -1).Result()
	if err != nil {
		return SentEvent{}, false, fmt.Errorf("read recent sent events: %w", err)
	}
	for _, item := range items {
		r, err := DecodeRecord[recentEvent](item)
		if err != nil {
			continue
		}
		if taken, err := s.rdb.HExists(ctx, uidIndexKey(r.UID), r.UID).Result(); err != nil || taken {
			continue
		}
		ev := SentEvent{MessageUID: r.UID, Recipient: phone, Account: r.Account, Origin: "Public API"}
		if at := ParseUnixMilli(r.At); at != nil {
			ev.At = *at
		}
		resolved, err := s.resolveUnconfirmed(ctx, id, seq, ev)
		if err != nil {
			return SentEvent{}, false, err
		}
		if resolved {
			_ = s.rdb.LRem(ctx, recentEventsKey(phone), 1, item).Err()
			return ev, true, nil
		}
	}
	return SentEvent{}, false, nil
}
