package campaign

import (
	"context"
	"time"
)

// Housekeeping that every worker runs but only one should do at a time
// (the upload janitor, retention) takes turns: each interval, the worker
// that wins the turn's lock makes the pass.

// takeTurn claims the lock of one kind of pass for ttl: true when this
// process won it. The lock outlives nobody: it lapses before the next turn.
func (s *Store) takeTurn(ctx context.Context, lock string, ttl time.Duration) (bool, error) {
	return s.rdb.SetNX(ctx, lock, "1", ttl).Result()
}

// runTurns makes pass every interval, when this process wins the turn's
// lock, until ctx ends. A turn whose lock cannot be read (Redis down) is
// skipped: the next one will do.
func runTurns(ctx context.Context, s *Store, lock string, every time.Duration, pass func(context.Context)) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if taken, err := s.takeTurn(ctx, lock, every*9/10); err == nil && taken {
			pass(ctx)
		}
	}
}
