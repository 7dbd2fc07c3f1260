package campaign

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"
)

// The queued recipients of a campaign with a send window, by the zone they
// live in (Window.Location of their number): how many may go out now and
// how many wait for their window, for the forecast. Counting reads the
// queued recipients' phones, so it looks at most at maxZoneScan of them
// (and scales the rest from those) and keeps a campaign's count for
// zoneCacheFor: a campaign's page follows it every second.

const (
	maxZoneScan  = 20_000
	zoneCacheFor = 15 * time.Second
)

// zoneCache keeps each campaign's recipients by zone for a while.
type zoneCache struct {
	mu      sync.Mutex
	entries map[string]zoneEntry
}

type zoneEntry struct {
	window string // the window the zones were read for (a draft's may change)
	queued int64  // the campaign's queued count then
	at     time.Time
	shares []zoneShare
	scaled bool
}

// windowSplit answers the campaign's queued recipients by zone (scaled to
// all of them) and how many of them are outside their window at now.
func (f *Forecaster) windowSplit(ctx context.Context, c *Campaign, now time.Time) ([]zoneShare, *QueueSplit, error) {
	e, err := f.zoneCounts(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	split := &QueueSplit{Approximate: e.scaled}
	for _, z := range e.shares {
		if open := c.Window.NextOpen(now, z.loc); open.After(now) {
			split.Window += z.n
		}
	}
	split.Window = min(split.Window, c.Counts.Queued)
	split.Due = c.Counts.Queued - split.Window
	return e.shares, split, nil
}

func (f *Forecaster) zoneCounts(ctx context.Context, c *Campaign) (zoneEntry, error) {
	window := EncodeWindow(c.Window)
	f.zones.mu.Lock()
	e, ok := f.zones.entries[c.ID]
	f.zones.mu.Unlock()
	if ok && e.window == window && e.queued == c.Counts.Queued && time.Since(e.at) < zoneCacheFor {
		return e, nil
	}
	phones, err := f.d.Store.queuedPhones(ctx, c, maxZoneScan)
	if err != nil {
		return zoneEntry{}, err
	}
	byZone := map[string]*zoneShare{}
	for _, phone := range phones {
		loc := c.Window.Location(phone)
		z := byZone[loc.String()]
		if z == nil {
			z = &zoneShare{loc: loc}
			byZone[loc.String()] = z
		}
		z.n++
	}
	e = zoneEntry{window: window, queued: c.Counts.Queued, at: time.Now(), scaled: int64(len(phones)) < c.Counts.Queued}
	for _, z := range byZone {
		if e.scaled && len(phones) > 0 {
			z.n = z.n * c.Counts.Queued / int64(len(phones))
		}
		e.shares = append(e.shares, *z)
	}
	sort.Slice(e.shares, func(i, j int) bool { return e.shares[i].loc.String() < e.shares[j].loc.String() })
	f.zones.mu.Lock()
	if f.zones.entries == nil || len(f.zones.entries) >= specCacheSize {
		f.zones.entries = map[string]zoneEntry{}
	}
	f.zones.entries[c.ID] = e
	f.zones.mu.Unlock()
	return e, nil
}

// errEnoughPhones stops the walk of queuedPhones.
var errEnoughPhones = errors.New("enough phones")

// queuedPhones reads the phones of a campaign's queued recipients, in
// upload order, at most limit of them.
func (s *Store) queuedPhones(ctx context.Context, c *Campaign, limit int) ([]string, error) {
	phoneIdx := indexOf(c.Columns, c.PhoneColumn)
	var phones []string
	err := s.eachQueuedBucket(ctx, c.ID, func(seqs []int64) error {
		if len(seqs) == 0 {
			return nil
		}
		seqs = seqs[:min(len(seqs), limit-len(phones))]
		rows, err := s.rows(ctx, c.ID, seqs)
		if err != nil {
			return err
		}
		for _, values := range rows { // nil: a recipient without a row
			if phoneIdx >= 0 && phoneIdx < len(values) {
				phones = append(phones, values[phoneIdx])
			}
		}
		if len(phones) >= limit {
			return errEnoughPhones
		}
		return nil
	})
	if errors.Is(err, errEnoughPhones) {
		err = nil
	}
	return phones, err
}
