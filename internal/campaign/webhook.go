package campaign

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/sender"
)

// The provider's message:sent:new webhook names messages by UID and by
// recipient phone. Two indexes, kept only while a webhook secret is
// configured, lead from those back to recipients:
//
//	wac:uid:<bucket>     HASH  message uid → "<campaign>/<seq>" (4096 buckets by hash of the uid)
//	wac:unknown:<phone>  SET   "<campaign>/<seq>" of recipients whose send is unconfirmed (a day)
//
// The first confirms sends without a poll. The second turns an unconfirmed
// send (the answer to our POST was lost) into a known one when the provider
// reports the message it did send, often before reconciliation looks.

const (
	uidIndexBuckets = 4096
	unknownIndexTTL = 24 * time.Hour
	// unknownMatchWindow bounds how long after an unknown attempt a sent
	// event may resolve it: the provider queues messages, but not for hours.
	unknownMatchWindow = 2 * time.Hour
)

func uidIndexKey(uid string) string {
	h := fnv.New32a()
	h.Write([]byte(uid))
	return KeyPrefix + "uid:" + strconv.FormatUint(uint64(h.Sum32()%uidIndexBuckets), 10)
}

func unknownIndexKey(phone string) string { return KeyPrefix + "unknown:" + phone }

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

// resolveUnconfirmedScript makes an unconfirmed (or unknown) recipient
// sent, with the uid a sent event named, if the event fits: same account,
// soon after the send was dispatched. KEYS: campaign, state bucket, history
// bucket. ARGV: seq, uid, event time (unix ms), now, the event's account
// phone, window (ms). Answers 1 when it resolved the recipient.
var resolveUnconfirmedScript = redis.NewScript(luaLib + `
local ck, sk, hk = KEYS[1], KEYS[2], KEYS[3]
local seq, uid, at, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local cur = redis.call('HGET', sk, seq)
if not cur then return 0 end
local rec = cjson.decode(cur)
if rec.s ~= 'unknown' and rec.s ~= 'unconfirmed' then return 0 end
if rec.a and rec.a ~= '' and ARGV[5] ~= '' and rec.a ~= ARGV[5] then return 0 end
local t = tonumber(rec.d or rec.t or '0')
if tonumber(at) < t - 60000 or tonumber(at) > t + tonumber(ARGV[6]) then return 0 end
redis.call('HSET', sk, seq, cjson.encode({s = 'sent', a = rec.a, u = uid, t = now}))
redis.call('HINCRBY', ck, rec.s, -1)
redis.call('HINCRBY', ck, 'sent', 1)
hist(ck, hk, seq, 's', at, uid)
hist(ck, hk, seq, 'P', at, 'Sent')
maybe_complete(ck, now)
return 1
`)

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
