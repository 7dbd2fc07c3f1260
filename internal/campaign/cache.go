package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// sendSpec is what every recipient of a campaign shares, parsed once per
// worker and campaign.
type sendSpec struct {
	name     string
	template *templating.Template
	// variants are the A/B templates with their weights (none: template);
	// winner the test-then-winner mode (its choice comes from the gate).
	variants []*templating.Template
	weights  []int
	winner   *Winner
	accounts []string
	label    string
	fileUID  string
	columns  []string
	keys     []keyColumn // where a row's key is (address.go)
	fileIdx  int         // the per-recipient file_uid column, or -1
	window   *Window
	testOf   string // a test send's campaign: its {{.campaign.id}}
	// transactional messages are exempt from FREQUENCY_CAP: a sequence
	// marked so, and test sends.
	transactional bool
	capPolicy     string // CapSkip or CapDefer
	// confirms is ConfirmOptOut on the confirmation of an opt-out, which
	// the suppression it confirms does not hold back (confirm.go).
	confirms string
	typing   *bool // the simulation flags; nil for a provider without them
	presence *bool
	maxText  int // the provider's text limit (0: templating's)
	created  *time.Time
	// fixedList: see fFixedList.
	fixedList bool
	loadedAt  time.Time
}

// key is the recipient's address in its row.
func (s *sendSpec) key(values []string) (recipientKey, error) {
	k, ok := keyOf(s.keys, values)
	if !ok {
		return k, errors.New("the recipient's row has no phone, jid or chat_id")
	}
	return k, nil
}

// templateFor is the template of recipient key: its variant's (winner:
// the A/B winner once chosen), or the campaign's only one.
func (s *sendSpec) templateFor(campaignID, key, winner string) *templating.Template {
	if len(s.variants) == 0 {
		return s.template
	}
	w := s.winner
	if w != nil {
		chosen := *w
		chosen.Variant = winner
		w = &chosen
	}
	if i := variantIndex(campaignID, key, s.weights, w); i >= 0 {
		return s.variants[i]
	}
	return s.variants[0] // not reached: admit holds back a recipient with no variant yet
}

// message renders one recipient's message from its row; winner is the
// A/B winner once chosen.
func (s *sendSpec) message(values []string, campaignID, account, winner string) (sender.Message, error) {
	key, err := s.key(values)
	if err != nil {
		return sender.Message{}, err
	}
	tmpl := s.templateFor(campaignID, key.value, winner)
	row := make(map[string]string, len(s.columns))
	for i, col := range s.columns {
		if i < len(values) {
			row[col] = values[i]
		}
	}
	if s.testOf != "" {
		campaignID = s.testOf // a test shows what the campaign itself sends
	}
	text, err := tmpl.RenderUpTo(row, templating.Campaign{ID: campaignID, Name: s.name, Recipient: key.value}, s.maxText)
	if err != nil {
		return sender.Message{}, err
	}
	msg := sender.Message{AccountPhone: account, Text: text, FileUID: s.fileUID, Label: s.label,
		TypingSimulation: s.typing, PresenceSimulation: s.presence}
	key.address(&msg)
	if s.fileIdx >= 0 && row[s.columns[s.fileIdx]] != "" {
		msg.FileUID = row[s.columns[s.fileIdx]]
	}
	if strings.TrimSpace(msg.Text) == "" && msg.FileUID == "" {
		return sender.Message{}, errors.New("the rendered message is empty")
	}
	return msg, nil
}

// gateCache keeps each campaign's status and round for a quarter second.
// The gate only spares stopped campaigns a pacing slot and a credit
// reservation; the claim checks both again atomically, so a pause still
// stops every send at once, and the cache saves a Redis round trip on
// nearly every message of a running campaign. Only a "go ahead" may come
// from the cache: a task is dropped on a fresh read alone.
type gateCache struct {
	mu    sync.Mutex
	gates map[string]cachedGate
}

type cachedGate struct {
	gate sendGate
	at   time.Time
}

const gateCacheFor = 250 * time.Millisecond

func (c *gateCache) get(ctx context.Context, store *Store, id string, fresh bool) (sendGate, error) {
	c.mu.Lock()
	g, ok := c.gates[id]
	c.mu.Unlock()
	if ok && !fresh && time.Since(g.at) < gateCacheFor {
		return g.gate, nil
	}
	gate, err := store.gate(ctx, id)
	if err != nil {
		return gate, err
	}
	c.mu.Lock()
	if c.gates == nil || len(c.gates) >= specCacheSize {
		c.gates = make(map[string]cachedGate)
	}
	c.gates[id] = cachedGate{gate: gate, at: time.Now()}
	c.mu.Unlock()
	return gate, nil
}

// specCache keeps parsed campaigns for a while. What it holds never changes
// after a campaign is created, so staleness is harmless; the bound only
// keeps memory in check.
type specCache struct {
	store *Store
	caps  sender.Capabilities // the provider's: its text limit and simulation
	mu    sync.Mutex
	specs map[string]*sendSpec
}

const (
	specCacheTTL  = 10 * time.Minute
	specCacheSize = 1024
)

func (c *specCache) get(ctx context.Context, id string) (*sendSpec, error) {
	c.mu.Lock()
	s, ok := c.specs[id]
	c.mu.Unlock()
	if ok && time.Since(s.loadedAt) < specCacheTTL {
		return s, nil
	}
	h, err := c.store.sendingSpec(ctx, id)
	if err != nil {
		return nil, err
	}
	tmpl, err := templating.Parse(id, h[fTemplate])
	if err != nil {
		return nil, fmt.Errorf("campaign %s has a template that does not parse: %w", id, err)
	}
	s = &sendSpec{
		name:     h[fName],
		template: tmpl,
		label:    h[fLabel],
		fileUID:  h[fFileUID],
		created:  ParseUnixMilli(h[fCreatedAt]),
		loadedAt: time.Now(),
	}
	_ = json.Unmarshal([]byte(h[fAccounts]), &s.accounts)
	_ = json.Unmarshal([]byte(h[fColumns]), &s.columns)
	s.keys = keyColumnsNamed(s.columns, storedKeyColumns(h))
	s.fileIdx = indexOf(s.columns, fileColumn)
	s.window = DecodeWindow(h[fWindow])
	s.testOf = h[fTestOf]
	s.transactional = h[fTransactional] == "1" || s.testOf != ""
	s.capPolicy = h[fCapPolicy]
	s.fixedList = h[fFixedList] == "1"
	if err := s.parseVariants(id, h); err != nil {
		return nil, err
	}
	s.confirms = h[fConfirms]
	s.maxText = c.caps.MaxTextLength
	if c.caps.TypingSimulation {
		// A campaign made under another provider has no flags: the default.
		s.typing, s.presence = orOn(parseFlag(h[fTyping])), orOn(parseFlag(h[fPresence]))
	}
	c.mu.Lock()
	if c.specs == nil || len(c.specs) >= specCacheSize {
		c.specs = make(map[string]*sendSpec) // crude, but a worker rarely juggles a thousand campaigns
	}
	c.specs[id] = s
	c.mu.Unlock()
	return s, nil
}

// parseVariants reads a campaign's A/B variants and winner mode.
func (s *sendSpec) parseVariants(id string, h map[string]string) error {
	c := &Campaign{ID: id}
	readVariantFields(c, h)
	for _, v := range c.Variants {
		tmpl, err := templating.Parse(id+" variant "+v.Name, v.Template)
		if err != nil {
			return fmt.Errorf("campaign %s has a variant %s that does not parse: %w", id, v.Name, err)
		}
		s.variants = append(s.variants, tmpl)
		s.weights = append(s.weights, v.Weight)
	}
	s.winner = c.Winner
	return nil
}
