package quota

import "time"

// demandMeter estimates how much a process asked for over the last window
// (credits, API calls), to size what it leases from Redis at once. It is an
// estimate, never a limit: correctness lives in the Redis scripts. It is not
// safe for concurrent use; its owner holds a mutex.
type demandMeter struct {
	window   time.Duration
	start    time.Time // of the current window
	current  int       // asked for since start
	previous int       // asked for in the window before
}

// add counts n units asked for at now.
func (d *demandMeter) add(now time.Time, n int) {
	d.roll(now)
	d.current += n
}

// recent is the demand of about the last window: the larger of the window
// under way and the one before, so a burst is remembered for one window
// and a steady stream is not underestimated just after a window starts.
func (d *demandMeter) recent(now time.Time) int {
	d.roll(now)
	return max(d.current, d.previous)
}

func (d *demandMeter) roll(now time.Time) {
	elapsed := now.Sub(d.start)
	if elapsed < d.window {
		return
	}
	d.previous = d.current
	if elapsed >= 2*d.window {
		d.previous = 0 // a quiet window in between: nothing recent
	}
	d.current = 0
	d.start = now
}
