package audience

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Store holds the suppression list, the frequency caps and the last
// messaged index; it is the only holder of their Redis keys.
type Store struct {
	rdb redis.UniversalClient
}

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// storedEntry is an Entry as stored under its address.
type storedEntry struct {
	Reason   string `json:"r"`
	Source   Source `json:"s"`
	At       int64  `json:"t"` // unix ms
	Why      string `json:"w"`
	Campaign string `json:"c,omitempty"`
}

func encodeEntry(e Entry) string {
	b, _ := json.Marshal(storedEntry{Reason: e.Reason, Source: e.Source, At: e.At.UnixMilli(), Why: e.Why, Campaign: e.Campaign})
	return string(b)
}

func decodeEntry(address, s string) Entry {
	var st storedEntry
	_ = json.Unmarshal([]byte(s), &st) // only encodeEntry writes it
	return Entry{Address: address, Reason: st.Reason, Source: st.Source, At: time.UnixMilli(st.At).UTC(), Why: st.Why, Campaign: st.Campaign}
}

// Suppress adds (or replaces) the entry of e.Address; added is false when
// the address was already suppressed.
func (s *Store) Suppress(ctx context.Context, e Entry) (added bool, err error) {
	e.Describe()
	n, err := suppressScript.Run(ctx, s.rdb, []string{suppressedKey, orderKey}, e.Address, encodeEntry(e)).Int()
	if err != nil {
		return false, fmt.Errorf("suppress %s: %w", e.Address, err)
	}
	return n == 1, nil
}

// SuppressMany adds entries in one transaction (a CSV import): the
// commands suppressScript runs, for every entry at once (both keys share
// the {aud} slot, so MULTI works on Redis Cluster too).
func (s *Store) SuppressMany(ctx context.Context, entries []Entry) error {
	fields := make([]any, 0, 2*len(entries))
	order := make([]redis.Z, 0, len(entries))
	for i := range entries {
		entries[i].Describe()
		fields = append(fields, entries[i].Address, encodeEntry(entries[i]))
		order = append(order, redis.Z{Member: entries[i].Address})
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, suppressedKey, fields...)
		p.ZAdd(ctx, orderKey, order...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("suppress %d addresses: %w", len(entries), err)
	}
	return nil
}

// Unsuppress lifts the suppression of address; false when there was none.
func (s *Store) Unsuppress(ctx context.Context, address string) (bool, error) {
	n, err := unsuppressScript.Run(ctx, s.rdb, []string{suppressedKey, orderKey}, address).Int()
	if err != nil {
		return false, fmt.Errorf("lift the suppression of %s: %w", address, err)
	}
	return n == 1, nil
}

// Get is the entry of address; false when it is not suppressed.
func (s *Store) Get(ctx context.Context, address string) (Entry, bool, error) {
	e, err := readSuppressed(s.rdb.HGet(ctx, suppressedKey, address), address)
	if e == nil || err != nil {
		return Entry{}, false, err
	}
	return *e, true, nil
}

// readSuppressed reads the answer of an HGET of address's entry: nil when
// it is not suppressed.
func readSuppressed(cmd *redis.StringCmd, address string) (*Entry, error) {
	v, err := cmd.Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("check the suppression of %s: %w", address, err)
	}
	e := decodeEntry(address, v)
	return &e, nil
}

// Count is how many addresses are suppressed.
func (s *Store) Count(ctx context.Context) (int64, error) {
	return s.rdb.HLen(ctx, suppressedKey).Result()
}

// List pages through the suppressed addresses in address order: up to
// limit after cursor ("" from the start); next is "" after the last page.
func (s *Store) List(ctx context.Context, cursor string, limit int) (entries []Entry, next string, err error) {
	min := "-"
	if cursor != "" {
		min = "(" + cursor
	}
	addrs, err := s.rdb.ZRangeByLex(ctx, orderKey, &redis.ZRangeBy{Min: min, Max: "+", Count: int64(limit) + 1}).Result()
	if err != nil || len(addrs) == 0 {
		return nil, "", err
	}
	more := len(addrs) > limit
	if more {
		addrs = addrs[:limit]
	}
	vals, err := s.rdb.HMGet(ctx, suppressedKey, addrs...).Result()
	if err != nil {
		return nil, "", err
	}
	for i, v := range vals {
		if str, ok := v.(string); ok { // lifted between the two reads: left out
			entries = append(entries, decodeEntry(addrs[i], str))
		}
	}
	if more {
		next = addrs[len(addrs)-1]
	}
	return entries, next, nil
}

// Suppressed says which of addresses are suppressed, in one command (an
// import's batch); "" is never suppressed.
func (s *Store) Suppressed(ctx context.Context, addresses []string) ([]bool, error) {
	out := make([]bool, len(addresses))
	if len(addresses) == 0 {
		return out, nil
	}
	vals, err := s.rdb.HMGet(ctx, suppressedKey, addresses...).Result()
	if err != nil {
		return nil, fmt.Errorf("look up suppressions: %w", err)
	}
	for i, v := range vals {
		out[i] = v != nil && addresses[i] != ""
	}
	return out, nil
}

// AdmitParams name one message about to be sent.
type AdmitParams struct {
	Address  string // the recipient's normalised address
	Campaign string
	Seq      int64
	Cap      FrequencyCap // zero: the message is not capped (transactional, or no FREQUENCY_CAP)
	Now      time.Time
}

// Admission is the audience's answer about one message.
type Admission struct {
	Suppressed  *Entry    // the address is suppressed: why
	CappedUntil time.Time // the cap is full until then (zero: not capped)
	Reserved    bool      // a cap slot was reserved for the message: release it if it does not go out
}

// Admit is one round trip to the audience (admitScript): a suppressed
// address, a full cap, or a reserved cap slot. A message no cap holds
// needs only the suppression list: one HGET (Get), not a script; the send
// path reads that with its claim instead (QueueSuppressed) and calls Admit
// only for a capped message.
func (s *Store) Admit(ctx context.Context, p AdmitParams) (Admission, error) {
	if !p.Cap.On() {
		return s.admitUncapped(ctx, p.Address)
	}
	res, err := admitScript.Run(ctx, s.rdb, []string{suppressedKey, capKey(p.Address)}, p.Address,
		capMember(p.Campaign, p.Seq), p.Now.UnixMilli(), p.Cap.Messages, p.Cap.Period.Milliseconds()).StringSlice()
	if err != nil || len(res) == 0 {
		return Admission{}, fmt.Errorf("check the audience of %s: %w", p.Address, err)
	}
	switch res[0] {
	case "suppressed":
		e := decodeEntry(p.Address, res[1])
		return Admission{Suppressed: &e}, nil
	case "capped":
		ms, _ := strconv.ParseInt(res[1], 10, 64)
		return Admission{CappedUntil: time.UnixMilli(ms)}, nil
	}
	return Admission{Reserved: p.Cap.On()}, nil
}

func (s *Store) admitUncapped(ctx context.Context, address string) (Admission, error) {
	e, suppressed, err := s.Get(ctx, address)
	switch {
	case err != nil:
		return Admission{}, err // it names the address
	case suppressed:
		return Admission{Suppressed: &e}, nil
	}
	return Admission{}, nil
}

// SuppressionRead is a look-up of one address queued in a round trip of
// the caller's: the send path reads the list in the same round trip as the
// claim it takes right before a request is written, so that an opt-out is
// honoured up to that moment at no extra round trip.
type SuppressionRead struct {
	address string
	cmd     *redis.StringCmd
}

// QueueSuppressed queues the look-up of address in p; read its answer with
// Entry once p has run.
func (s *Store) QueueSuppressed(ctx context.Context, p redis.Pipeliner, address string) *SuppressionRead {
	return &SuppressionRead{address: address, cmd: p.HGet(ctx, suppressedKey, address)}
}

// Entry is why the address is suppressed, nil when it is not.
func (r *SuppressionRead) Entry() (*Entry, error) {
	return readSuppressed(r.cmd, r.address)
}

// ReleaseCap gives back the cap slot of a message that did not go out.
func (s *Store) ReleaseCap(ctx context.Context, address, campaign string, seq int64) error {
	return s.rdb.ZRem(ctx, capKey(address), capMember(campaign, seq)).Err()
}

// NoteMessaged records the latest message sent to address, kept for window
// (REPLY_WINDOW): a reply within it is attributed to that message.
func (s *Store) NoteMessaged(ctx context.Context, address string, m LastMessage, window time.Duration) error {
	b, _ := json.Marshal(m)
	return s.rdb.Set(ctx, lastKey(address), b, window).Err()
}

// LastMessaged is the latest message sent to address within the reply
// window; false when there is none.
func (s *Store) LastMessaged(ctx context.Context, address string) (LastMessage, bool, error) {
	v, err := s.rdb.Get(ctx, lastKey(address)).Bytes()
	if errors.Is(err, redis.Nil) {
		return LastMessage{}, false, nil
	}
	if err != nil {
		return LastMessage{}, false, err
	}
	var m LastMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return LastMessage{}, false, nil
	}
	return m, true, nil
}
