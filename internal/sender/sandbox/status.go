package sandbox

import (
	"container/heap"
	"encoding/binary"
	"hash/fnv"
	"time"
)

// record is an accepted message and what will become of it. Its statuses
// are not stored: they follow from SentAt, the outcome and the clock, so
// that a test moving the clock sees them appear.
type record struct {
	msg     Message // Status left empty; see snapshot
	outcome Outcome

	// Where the credits came from, to refund them to the same place.
	fromQuota, fromNonRecurring int64
	refundAt                    time.Time // zero: never
	refunded                    bool
}

// timeline is every status the message will have, in order.
func (r *record) timeline(cfg Config) []StatusEvent {
	sent := r.msg.SentAt
	events := []StatusEvent{{StatusSent, sent}}
	switch r.outcome {
	case OutcomeDelivered:
		events = append(events, StatusEvent{StatusDelivered, sent.Add(cfg.DeliverAfter)})
	case OutcomeRead:
		events = append(events,
			StatusEvent{StatusDelivered, sent.Add(cfg.DeliverAfter)},
			StatusEvent{StatusRead, sent.Add(cfg.ReadAfter)})
	case OutcomeFailed:
		events = append(events, StatusEvent{StatusFailed, sent.Add(cfg.DeliverAfter)})
	}
	return events
}

// history is the part of the timeline that has happened by now.
func (r *record) history(now time.Time, cfg Config) []StatusEvent {
	out := []StatusEvent{}
	for _, ev := range r.timeline(cfg) {
		if ev.At.After(now) {
			break
		}
		out = append(out, ev)
	}
	return out
}

func (r *record) status(now time.Time, cfg Config) string {
	h := r.history(now, cfg)
	if len(h) == 0 {
		return StatusQueued
	}
	return h[len(h)-1].Status
}

func (r *record) snapshot(now time.Time, cfg Config) Message {
	m := r.msg
	m.Status = r.status(now, cfg)
	return m
}

// outcomeLocked decides what becomes of a message to recipient.
func (s *Server) outcomeLocked(recipient, text string) Outcome {
	if s.cfg.MessageOutcome != nil {
		if o := s.cfg.MessageOutcome(recipient, text); o != OutcomeByRates {
			return o
		}
	}
	if s.cfg.Outcome != nil {
		if o := s.cfg.Outcome(recipient); o != OutcomeByRates {
			return o
		}
	}
	// A hash of seed and recipient, not a shared random stream: the same
	// recipient gets the same fate whatever order concurrent sends arrive
	// in, as a number that is not on WhatsApp always fails.
	u := unitInterval(s.cfg.Seed, recipient)
	switch {
	case u < s.cfg.FailRate:
		return OutcomeFailed
	case u < s.cfg.FailRate+s.cfg.ReadRate:
		return OutcomeRead
	default:
		return OutcomeDelivered
	}
}

// unitInterval maps (seed, key) to a number in [0, 1).
func unitInterval(seed int64, key string) float64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(seed))
	h.Write(b[:])
	h.Write([]byte(key))
	// FNV's high bits barely move when only the last characters differ
	// (phone numbers in a row): mix them (splitmix64's finalizer).
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// applyRefundsLocked gives back the credits of Failed messages whose refund
// time has come.
func (s *Server) applyRefundsLocked(now time.Time) {
	for s.refunds.Len() > 0 && !s.refunds[0].refundAt.After(now) {
		s.changedLocked()
		rec := heap.Pop(&s.refunds).(*record)
		rec.refunded = true
		s.creditsUsed -= rec.fromQuota
		if rec.fromNonRecurring > 0 {
			s.nonRecurringCredit += rec.fromNonRecurring
			s.nonRecurringAt = rec.refundAt
		}
	}
}

// refundQueue orders pending refunds by time (container/heap).
type refundQueue []*record

func (q refundQueue) Len() int           { return len(q) }
func (q refundQueue) Less(i, j int) bool { return q[i].refundAt.Before(q[j].refundAt) }
func (q refundQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *refundQueue) Push(x any)        { *q = append(*q, x.(*record)) }
func (q *refundQueue) Pop() any {
	old := *q
	last := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return last
}
