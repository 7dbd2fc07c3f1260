package campaign

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The first status poll of a sent message is not enqueued by the send: the
// outcome script that records the message sent enters the poll in the
// campaign's poll set (wac:c:{id}:polls, score = when it is due), in the
// campaign's slot and the same atomic step, and the poll sweeper enqueues
// it as a TypePoll task once it is due. A send therefore costs one Redis
// script fewer, and a worker that dies right after recording a message
// cannot leave it unfollowed (it used to, between the record and the
// enqueue). Later polls are enqueued by the poll before them (track.go).

// Defaults of the PollSweeper.
const (
	DefaultPollSweepEvery = time.Second
	// DefaultPollSweepMax bounds the polls one pass enqueues, so a pass of
	// a million-recipient campaign's backlog stays short and the backlog
	// drains a pass at a time (5,000 a second is more than a worker sends).
	DefaultPollSweepMax = 5000
	// pollSweepChunk is how many due polls of one campaign a pass reads at
	// once; pollSweepParallel how many it enqueues at the same time (asynq
	// has no batch enqueue, and one at a time would wait a round trip each).
	pollSweepChunk    = 500
	pollSweepParallel = 8
)

// PollSweeper enqueues the due first status polls of the campaigns' poll
// sets. Every worker runs one; a lock in Redis lets one of them make each
// pass. A pass enqueues a poll before it drops it from the set, and the
// poll task's id ("poll:<campaign>:<seq>:0") makes a second enqueue of it
// a no-op, so sweepers that overlap, or one that dies between the two
// steps, cost at most a repeated poll, never a lost one.
type PollSweeper struct {
	store   *Store
	queue   *Enqueuer
	every   time.Duration
	maxPass int
	log     *zap.Logger
	now     func() time.Time
}

// NewPollSweeper returns a sweeper that looks every interval (0:
// DefaultPollSweepEvery).
func NewPollSweeper(store *Store, queue *Enqueuer, every time.Duration, log *zap.Logger) *PollSweeper {
	if every <= 0 {
		every = DefaultPollSweepEvery
	}
	return &PollSweeper{store: store, queue: queue, every: every, maxPass: DefaultPollSweepMax, log: log, now: time.Now}
}

// Run makes a pass every interval until ctx ends.
func (w *PollSweeper) Run(ctx context.Context) {
	runTurns(ctx, w.store, pollSweepLock, w.every, func(ctx context.Context) {
		if _, err := w.Sweep(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("status poll sweep failed; the next pass takes the polls it left", zap.Error(err))
		}
	})
}

// Sweep makes one pass: it enqueues the first polls due by now of every
// campaign that may have some, at most maxPass of them, a chunk of each
// campaign in turn so that one big backlog does not hold up the others'.
// It answers how many it enqueued.
func (w *PollSweeper) Sweep(ctx context.Context) (int, error) {
	ids, err := w.store.pollCampaigns(ctx)
	if err != nil {
		return 0, err
	}
	now := w.now()
	swept := 0
	for len(ids) > 0 && swept < w.maxPass {
		due, err := w.store.duePolls(ctx, ids, now, min(pollSweepChunk, w.maxPass))
		if err != nil {
			return swept, err
		}
		var more []string // campaigns that filled their chunk: maybe more due
		for i, id := range ids {
			if len(due[i]) == 0 || swept >= w.maxPass {
				continue
			}
			n, err := w.enqueue(ctx, id, due[i][:min(len(due[i]), w.maxPass-swept)])
			swept += n
			if err != nil {
				return swept, err
			}
			if len(due[i]) == min(pollSweepChunk, w.maxPass) {
				more = append(more, id)
			}
		}
		ids = more
	}
	return swept, nil
}

// enqueue enqueues a campaign's due first polls, pollSweepParallel at a
// time, and then drops those enqueued (or found enqueued already) from its
// poll set; one that failed stays for the next pass.
func (w *PollSweeper) enqueue(ctx context.Context, id string, polls []duePoll) (int, error) {
	enqueued := make([]bool, len(polls))
	jobs := make(chan int)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(pollSweepParallel, len(polls)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				err := w.queue.enqueuePoll(ctx, id, polls[i].seq, 0, polls[i].due)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					continue
				}
				enqueued[i] = true
			}
		}()
	}
	for i := range polls {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	var seqs []int64
	for i, ok := range enqueued {
		if ok {
			seqs = append(seqs, polls[i].seq)
		}
	}
	if err := w.store.dropPolls(ctx, id, seqs); err != nil {
		return 0, err
	}
	return len(seqs), firstErr
}
