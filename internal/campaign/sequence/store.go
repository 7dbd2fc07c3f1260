package sequence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// ErrNotFound is returned for a sequence, or an enrolment, that does not
// exist.
var ErrNotFound = errors.New("sequence not found")

// store keeps sequences and enrolments in Redis; their steps' recipients
// are campaign.Store's.
type store struct {
	rdb redis.UniversalClient
}

// save writes a new sequence and lists it.
func (s *store) save(ctx context.Context, seq *Sequence) error {
	steps, _ := json.Marshal(seq.Steps)
	accounts, _ := json.Marshal(seq.Accounts)
	fields, _ := json.Marshal(seq.Fields)
	h := map[string]any{sfName: seq.Name, sfCreatedAt: campaign.UnixMilli(seq.CreatedAt), sfSteps: string(steps),
		sfAccounts: string(accounts), sfFields: string(fields), sfLabel: seq.Label, sfNext: 0, sfEnrolled: 0}
	if seq.Window != nil {
		h[sfWindow] = campaign.EncodeWindow(seq.Window)
	}
	keys, _ := json.Marshal(seq.KeyColumns)
	h[sfKeys] = string(keys)
	if seq.Transactional {
		h[sfTransactional] = "1"
	}
	if seq.TypingSimulation != nil {
		flags, _ := json.Marshal(simulationFlags{seq.TypingSimulation, seq.PresenceSimulation})
		h[sfFlags] = string(flags)
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, sequenceKey(seq.ID), h)
		p.ZAdd(ctx, sequencesIndex, redis.Z{Score: float64(seq.CreatedAt.UnixMilli()), Member: seq.ID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("store sequence %s: %w", seq.ID, err)
	}
	return nil
}

// get reads a sequence, without its steps' counts.
func (s *store) get(ctx context.Context, id string) (*Sequence, error) {
	h, err := s.rdb.HGetAll(ctx, sequenceKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("read sequence %s: %w", id, err)
	}
	if len(h) == 0 {
		return nil, ErrNotFound
	}
	seq := &Sequence{ID: id, Name: h[sfName], Label: h[sfLabel], Window: campaign.DecodeWindow(h[sfWindow]), Fields: []string{}, Accounts: []string{}}
	if t := campaign.ParseUnixMilli(h[sfCreatedAt]); t != nil {
		seq.CreatedAt = *t
	}
	seq.Enrolled, _ = strconv.ParseInt(h[sfEnrolled], 10, 64)
	seq.Transactional = h[sfTransactional] == "1"
	_ = json.Unmarshal([]byte(h[sfAccounts]), &seq.Accounts)
	_ = json.Unmarshal([]byte(h[sfFields]), &seq.Fields)
	if json.Unmarshal([]byte(h[sfKeys]), &seq.KeyColumns) != nil || len(seq.KeyColumns) == 0 {
		seq.KeyColumns = []string{string(campaign.KindPhone)}
	}
	var flags simulationFlags
	if json.Unmarshal([]byte(h[sfFlags]), &flags) == nil {
		seq.TypingSimulation, seq.PresenceSimulation = flags.Typing, flags.Presence
	}
	if err := json.Unmarshal([]byte(h[sfSteps]), &seq.Steps); err != nil {
		return nil, fmt.Errorf("sequence %s: steps: %w", id, err)
	}
	for i := range seq.Steps {
		seq.Steps[i].delay, _ = time.ParseDuration(seq.Steps[i].Delay)
	}
	return seq, nil
}

// simulationFlags are a sequence's typing and presence simulation, stored.
type simulationFlags struct {
	Typing   *bool `json:"typing"`
	Presence *bool `json:"presence"`
}

// ids are the sequences, newest first.
func (s *store) ids(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.ZRevRange(ctx, sequencesIndex, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list sequences: %w", err)
	}
	return ids, nil
}

// claimEnrolment runs enrolScript: the contact's enrolment number, when it
// was enrolled, and whether it is new. Contacts are named by their key
// (phone, JID or chat id) here and below.
func (s *store) claimEnrolment(ctx context.Context, seqID, phone string, now time.Time) (int64, time.Time, enrolClaim, error) {
	res, err := enrolScript.Run(ctx, s.rdb, []string{sequenceKey(seqID), enrolledKey(seqID)}, phone, campaign.UnixMilli(now)).StringSlice()
	if err != nil {
		return 0, time.Time{}, "", fmt.Errorf("enrol in sequence %s: %w", seqID, err)
	}
	n, _ := strconv.ParseInt(res[0], 10, 64)
	at := now
	if t := campaign.ParseUnixMilli(res[1]); t != nil {
		at = *t
	}
	return n, at, enrolClaim(res[2]), nil
}

// setEnrolment records a phone's enrolment.
func (s *store) setEnrolment(ctx context.Context, seqID, phone string, e storedEnrollment) error {
	b, _ := json.Marshal(e)
	if err := s.rdb.HSet(ctx, enrolledKey(seqID), phone, string(b)).Err(); err != nil {
		return fmt.Errorf("record the enrolment in sequence %s: %w", seqID, err)
	}
	return nil
}

// enrolment reads a phone's latest enrolment (ErrNotFound: none).
func (s *store) enrolment(ctx context.Context, seqID, phone string) (storedEnrollment, error) {
	raw, err := s.rdb.HGet(ctx, enrolledKey(seqID), phone).Result()
	if errors.Is(err, redis.Nil) {
		return storedEnrollment{}, ErrNotFound
	}
	if err != nil {
		return storedEnrollment{}, fmt.Errorf("read enrolment: %w", err)
	}
	var e storedEnrollment
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return storedEnrollment{}, fmt.Errorf("read enrolment: %w", err)
	}
	return e, nil
}
