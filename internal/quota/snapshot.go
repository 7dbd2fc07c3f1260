package quota

import (
	"context"
	"sync"
	"time"
)

// snapshot keeps what was read of a whole Redis hash (the accounts' states,
// the send intervals) for ttl, so that a send's look at one account costs
// no round trip: a worker sending through a thousand accounts reads the
// hash once per ttl instead of once per account per send. One read at a
// time; the goroutines that need it meanwhile wait for it.
type snapshot[T any] struct {
	ttl time.Duration

	mu     sync.Mutex // guards value and readAt
	value  T
	readAt time.Time // zero: nothing read, or forgotten

	refresh sync.Mutex
}

// get answers the snapshot, read with load when it is older than ttl.
func (s *snapshot[T]) get(ctx context.Context, load func(context.Context) (T, error)) (T, error) {
	if v, ok := s.fresh(); ok {
		return v, nil
	}
	s.refresh.Lock()
	defer s.refresh.Unlock()
	if v, ok := s.fresh(); ok {
		return v, nil // read by the goroutine this one waited for
	}
	v, err := load(ctx)
	if err != nil {
		return v, err
	}
	s.mu.Lock()
	s.value, s.readAt = v, time.Now()
	s.mu.Unlock()
	return v, nil
}

func (s *snapshot[T]) fresh() (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readAt.IsZero() || time.Since(s.readAt) >= s.ttl {
		var zero T
		return zero, false
	}
	return s.value, true
}

// forget makes the next get read Redis again: this process sees its own
// change at once (the others within ttl).
func (s *snapshot[T]) forget() {
	s.mu.Lock()
	s.readAt = time.Time{}
	s.mu.Unlock()
}
