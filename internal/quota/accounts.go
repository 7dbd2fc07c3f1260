package quota

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
)

// AccountStatus says whether a sender WhatsApp account may send.
type AccountStatus string

const (
	AccountActive       AccountStatus = "active"
	AccountPaused       AccountStatus = "paused"       // by an operator, until resumed
	AccountDisconnected AccountStatus = "disconnected" // the provider said so; rechecked after a while
)

// Account is a sender account as operators see it.
type Account struct {
	Phone    string        `json:"phone"`
	Status   AccountStatus `json:"status"`
	Reason   string        `json:"reason,omitempty"`
	Since    *time.Time    `json:"since,omitempty"`
	Interval time.Duration `json:"-"`
}

// Accounts keeps which sender accounts may send, shared by every worker
// through Redis: paused by an operator, or disconnected (the provider
// refused the account, or its webhook said so). Reads are cached in the
// process for a moment, so a pause reaches every worker within about a
// second without a Redis read per send.
//
// The cache is a snapshot of the whole registry (one HGETALL a second per
// process), not of each account: Redis holds a record only for an account
// someone paused, resumed or found disconnected, so the snapshot is small,
// and a worker sending through a thousand accounts then reads Redis once a
// second rather than once per account per second, each read in the path of
// a send.
type Accounts struct {
	rdb     redis.UniversalClient
	recheck time.Duration
	states  snapshot[map[string]accountState]
}

// accountState is what Redis holds per account (JSON in wac:accounts).
type accountState struct {
	Status AccountStatus `json:"s"`
	Reason string        `json:"r,omitempty"`
	Since  int64         `json:"t,omitempty"` // unix ms
}

// DisconnectRecheck is how long a disconnected account rests before a send
// is tried through it again, when no webhook says it is back.
const DisconnectRecheck = 5 * time.Minute

// NewAccounts returns the account registry.
func NewAccounts(rdb redis.UniversalClient) *Accounts {
	return &Accounts{rdb: rdb, recheck: DisconnectRecheck, states: snapshot[map[string]accountState]{ttl: time.Second}}
}

// Remember lists accounts that campaigns use, so operators see them.
func (a *Accounts) Remember(ctx context.Context, phones ...string) error {
	if len(phones) == 0 {
		return nil
	}
	members := make([]any, len(phones))
	for i, p := range phones {
		members[i] = accountKey(p)
	}
	if err := a.rdb.SAdd(ctx, knownAccountsKey, members...).Err(); err != nil {
		return fmt.Errorf("quota: remember sender accounts: %w", err)
	}
	return nil
}

// Pause stops sends from an account until Resume.
func (a *Accounts) Pause(ctx context.Context, phone, reason string) error {
	return a.set(ctx, phone, accountState{Status: AccountPaused, Reason: reason, Since: time.Now().UnixMilli()})
}

// Resume lets a paused or disconnected account send again.
func (a *Accounts) Resume(ctx context.Context, phone string) error {
	return a.set(ctx, phone, accountState{Status: AccountActive})
}

// MarkDisconnected records that the provider refuses the account; sends go
// through it again after DisconnectRecheck, or at once on MarkConnected. An
// operator's pause is not overwritten.
func (a *Accounts) MarkDisconnected(ctx context.Context, phone, reason string) error {
	cur, err := a.read(ctx, phone)
	if err != nil {
		return err
	}
	if cur.Status == AccountPaused {
		return nil
	}
	return a.set(ctx, phone, accountState{Status: AccountDisconnected, Reason: reason, Since: time.Now().UnixMilli()})
}

// MarkConnected records that the provider has the account again; an
// operator's pause stays.
func (a *Accounts) MarkConnected(ctx context.Context, phone string) error {
	cur, err := a.read(ctx, phone)
	if err != nil {
		return err
	}
	if cur.Status != AccountDisconnected {
		return nil
	}
	return a.set(ctx, phone, accountState{Status: AccountActive})
}

// Usable reports whether the account may send now, and why not. A
// disconnected account becomes usable again after the recheck period, so a
// reconnection the webhook missed is found by trying.
func (a *Accounts) Usable(ctx context.Context, phone string) (bool, string, error) {
	st, err := a.cached(ctx, phone)
	if err != nil {
		return false, "", err
	}
	switch st.Status {
	case AccountPaused:
		return false, "sender account " + phone + " is paused", nil
	case AccountDisconnected:
		if time.Since(time.UnixMilli(st.Since)) >= a.recheck {
			return true, "", nil
		}
		return false, "sender account " + phone + " is disconnected: " + st.Reason, nil
	}
	return true, "", nil
}

// cached is the account's state in a snapshot at most a second old.
func (a *Accounts) cached(ctx context.Context, phone string) (accountState, error) {
	states, err := a.states.get(ctx, a.readStates)
	if err != nil {
		return accountState{}, err
	}
	return stateOr(states, phone), nil
}

// readStates reads every account's state.
func (a *Accounts) readStates(ctx context.Context) (map[string]accountState, error) {
	raw, err := a.rdb.HGetAll(ctx, accountsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("quota: read sender accounts: %w", err)
	}
	states := make(map[string]accountState, len(raw))
	for k, v := range raw {
		states[phoneOfKey(k)] = parseAccountState(v)
	}
	return states, nil
}

// stateOr is the account's state in states; an account without a record
// is active.
func stateOr(states map[string]accountState, phone string) accountState {
	if st, ok := states[phone]; ok {
		return st
	}
	return accountState{Status: AccountActive}
}

// parseAccountState reads a record of wac:accounts; a record it cannot read
// counts as active, as no record does.
func parseAccountState(raw string) accountState {
	var st accountState
	if json.Unmarshal([]byte(raw), &st) != nil || st.Status == "" {
		st.Status = AccountActive
	}
	return st
}

// List returns every account campaigns have used or operators have set,
// with its status and send interval.
func (a *Accounts) List(ctx context.Context, pacer *Pacer) ([]Account, error) {
	known, err := a.rdb.SMembers(ctx, knownAccountsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("quota: list sender accounts: %w", err)
	}
	states, err := a.rdb.HGetAll(ctx, accountsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("quota: list sender accounts: %w", err)
	}
	seen := map[string]bool{}
	for _, k := range known {
		seen[k] = true
	}
	for k := range states {
		seen[k] = true
	}
	out := make([]Account, 0, len(seen))
	for k := range seen {
		phone := phoneOfKey(k)
		acc := Account{Phone: phone, Status: AccountActive}
		if raw, ok := states[k]; ok {
			var st accountState
			if json.Unmarshal([]byte(raw), &st) == nil && st.Status != "" {
				acc.Status, acc.Reason = st.Status, st.Reason
				if st.Since > 0 {
					t := time.UnixMilli(st.Since).UTC()
					acc.Since = &t
				}
			}
		}
		if pacer != nil {
			if acc.Interval, err = pacer.Interval(ctx, phone); err != nil {
				return nil, err
			}
		}
		out = append(out, acc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Phone < out[j].Phone })
	return out, nil
}

func (a *Accounts) read(ctx context.Context, phone string) (accountState, error) {
	raw, err := a.rdb.HGet(ctx, accountsKey, accountKey(phone)).Result()
	if err == redis.Nil {
		return accountState{Status: AccountActive}, nil
	}
	if err != nil {
		return accountState{}, fmt.Errorf("quota: read sender account %s: %w", phone, err)
	}
	return parseAccountState(raw), nil
}

func (a *Accounts) set(ctx context.Context, phone string, st accountState) error {
	b, _ := json.Marshal(st)
	_, err := a.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, accountsKey, accountKey(phone), string(b))
		p.SAdd(ctx, knownAccountsKey, accountKey(phone))
		return nil
	})
	if err != nil {
		return fmt.Errorf("quota: set sender account %s %s: %w", phone, st.Status, err)
	}
	a.states.forget()
	return nil
}
