package campaign

import (
	"context"
	"errors"
	"sync"
	"time"
)

// rowCache keeps a worker's recently read recipient rows, read a chunk of
// consecutive recipients at a time. A campaign's send tasks come out of the
// queue in recipient order, so the rows after the one a task asks for are
// the next ones asked for, by this worker's other tasks: one read serves a
// chunk of sends instead of one round trip each. Rows are written once, at
// import, and never change (keys.go), so a cached row is never stale; a
// recipient missing from its chunk (added since to a campaign that keeps
// taking recipients) is read on its own.
type rowCache struct {
	mu     sync.Mutex
	chunks map[rowChunkKey]*rowChunk
}

const (
	// rowChunkSize recipients are read at once; it divides bucketSize, so a
	// chunk is one HMGET of one bucket (were it not to, the rows past the
	// bucket would be read one by one: slower, never wrong).
	rowChunkSize = 32
	// rowChunkTTL bounds how long a chunk is kept: long enough for a paced
	// campaign's tasks to come by, short enough that a finished campaign's
	// rows leave the worker soon.
	rowChunkTTL = 30 * time.Second
	// rowCacheChunks bounds the cache (some hundreds of KB of rows).
	rowCacheChunks = 512
)

type rowChunkKey struct {
	campaign string
	first    int64
}

// seqs are the recipients of the chunk.
func (k rowChunkKey) seqs() []int64 {
	seqs := make([]int64, rowChunkSize)
	for i := range seqs {
		seqs[i] = k.first + int64(i)
	}
	return seqs
}

// rowChunk is one read. ready is closed once rows (or err) and readAt are
// set; the tasks that want the chunk meanwhile wait for that one read.
type rowChunk struct {
	ready  chan struct{}
	rows   [][]string
	err    error
	readAt time.Time
}

// row answers recipient seq's CSV values; nil when it has no row (the
// campaign or the recipient is gone).
func (c *rowCache) row(ctx context.Context, store *Store, id string, seq int64) ([]string, error) {
	key := rowChunkKey{campaign: id, first: seq - seq%rowChunkSize}
	chunk, mine := c.chunk(key)
	if mine {
		chunk.rows, chunk.err = store.rows(ctx, id, key.seqs())
		chunk.readAt = time.Now()
		close(chunk.ready)
		if chunk.err != nil {
			c.forget(key, chunk)
		}
	} else {
		select {
		case <-chunk.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if chunk.err != nil && mine {
		return nil, chunk.err
	}
	if chunk.err == nil {
		if row := chunk.rows[seq-key.first]; row != nil {
			return row, nil
		}
	}
	// Not in the chunk, or another task's read of it failed (its own
	// context may have ended): read this one row.
	row, err := store.row(ctx, id, seq)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return row, err
}

// chunk answers the chunk of key, and whether the caller is to read it (a
// new one): a chunk read too long ago is replaced.
func (c *rowCache) chunk(key rowChunkKey) (*rowChunk, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if chunk, ok := c.chunks[key]; ok && !chunk.expired() {
		return chunk, false
	}
	if c.chunks == nil || len(c.chunks) >= rowCacheChunks {
		c.chunks = make(map[rowChunkKey]*rowChunk)
	}
	chunk := &rowChunk{ready: make(chan struct{})}
	c.chunks[key] = chunk
	return chunk, true
}

// expired: read more than rowChunkTTL ago. A chunk still being read is
// not (readAt is only read once ready is closed).
func (r *rowChunk) expired() bool {
	select {
	case <-r.ready:
		return time.Since(r.readAt) > rowChunkTTL
	default:
		return false
	}
}

// forget drops a chunk whose read failed, so the next task reads again.
func (c *rowCache) forget(key rowChunkKey, chunk *rowChunk) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.chunks[key] == chunk {
		delete(c.chunks, key)
	}
}
