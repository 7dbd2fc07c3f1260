package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/quota"
)

// Task types and queues of the worker.
const (
	TypeSend  = "campaign:send"
	TypeStart = "campaign:start"
	TypeRetry = "campaign:retry"
	QueueSend = "send"
	// QueueControl carries the few tasks that steer campaigns (starting a
	// scheduled one); weighted so a big send backlog never starves them.
	QueueControl = "control"
)

// sendPayload names a recipient; everything else (its row, the template, the
// accounts) is read from Redis when the task runs, so a million queued tasks
// carry no copies of shared data.
type sendPayload struct {
	Campaign string `json:"c"`
	Seq      int64  `json:"s"`
	Round    int64  `json:"r,omitempty"`
	// Slot is the pacing slot the task was booked (unix ms; 0: none): it
	// is queued a little ahead of it (sendLead) and sleeps until it.
	Slot int64 `json:"t,omitempty"`
}

// startPayload names a campaign to start (a scheduled one at send_at, a
// resumed one at once), and which start of it this is.
type startPayload struct {
	Campaign string `json:"c"`
	Version  int64  `json:"v,omitempty"`
}

// sendTaskID makes enqueueing idempotent: the same recipient of the same
// campaign in the same round is one task, however often an import or a
// resume is replayed. Later rounds (a scheduled start, a resume) get new ids,
// so their tasks never collide with an earlier round's that are still on
// their way out; those find their round outdated and do nothing.
func sendTaskID(campaignID string, seq int64, round int64) string {
	id := campaignID + ":" + strconv.FormatInt(seq, 10)
	if round > 0 {
		id += ":" + strconv.FormatInt(round, 10)
	}
	return id
}

// Enqueuer puts campaign tasks on the queue, each send task at the time its
// account's pacing plan gives it.
type Enqueuer struct {
	client    *asynq.Client
	rdb       redis.UniversalClient // client's Redis: batches of send tasks are written to it directly (taskwriter.go)
	pacer     *quota.Pacer
	published atomic.Bool // the send queue is in asynq's set of queues
}

// NewEnqueuer returns an Enqueuer on an asynq client and the Redis client
// it was made from, planning with pacer.
func NewEnqueuer(client *asynq.Client, rdb redis.UniversalClient, pacer *quota.Pacer) *Enqueuer {
	return &Enqueuer{client: client, rdb: rdb, pacer: pacer}
}

// sendMaxRetry bounds the retries of definite failures (5xx, connection
// refused). Waits for pacing or quota are not failures and do not count
// (see IsFailure in send.go).
const sendMaxRetry = 12

// sendTaskTimeout is how long a send task may run.
const sendTaskTimeout = 2 * time.Minute

// enqueueSend enqueues one recipient's send task, due at processAt (zero:
// now). A task that already exists is not an error: that is the
// idempotency.
func (e *Enqueuer) enqueueSend(ctx context.Context, campaignID string, seq, round int64, processAt time.Time) error {
	return e.enqueueSendAs(ctx, sendTaskID(campaignID, seq, round), sendPayload{Campaign: campaignID, Seq: seq, Round: round}, processAt)
}

// enqueuePlanned enqueues one recipient's send task for the pacing slot
// its account's plan booked it: queued sendLead ahead of it, with the slot
// in the payload for the task to sleep until.
func (e *Enqueuer) enqueuePlanned(ctx context.Context, taskID string, p sendPayload, slot time.Time) error {
	p.Slot = slot.UnixMilli()
	return e.enqueueSendAs(ctx, taskID, p, slot.Add(-sendLead))
}

func (e *Enqueuer) enqueueSendAs(ctx context.Context, taskID string, p sendPayload, processAt time.Time) error {
	campaignID, seq := p.Campaign, p.Seq
	opts := []asynq.Option{
		asynq.TaskID(taskID),
		asynq.Queue(QueueSend),
		asynq.MaxRetry(sendMaxRetry),
		asynq.Timeout(sendTaskTimeout),
	}
	if !processAt.IsZero() {
		opts = append(opts, asynq.ProcessAt(processAt))
	}
	payload, _ := json.Marshal(p)
	_, err := e.client.EnqueueContext(ctx, asynq.NewTask(TypeSend, payload), opts...)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue recipient %d of campaign %s: %w", seq, campaignID, err)
	}
	return nil
}

// enqueueStart enqueues the task that starts a scheduled campaign at at.
// version tells reschedules apart: the start task of an earlier send_at
// still fires, finds the campaign's send_at moved, and does nothing.
func (e *Enqueuer) enqueueStart(ctx context.Context, campaignID string, at time.Time, version int64) error {
	payload, _ := json.Marshal(startPayload{Campaign: campaignID, Version: version})
	_, err := e.client.EnqueueContext(ctx, asynq.NewTask(TypeStart, payload),
		asynq.TaskID("start:"+campaignID+":"+strconv.FormatInt(version, 10)),
		asynq.Queue(QueueControl),
		asynq.ProcessAt(at),
		asynq.MaxRetry(50),
		asynq.Timeout(30*time.Minute), // a million recipients to enqueue
	)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue the start of campaign %s: %w", campaignID, err)
	}
	return nil
}

// enqueueRetry enqueues the task that enqueues the recipients a retry of
// failed recipients put back in the queue.
func (e *Enqueuer) enqueueRetry(ctx context.Context, campaignID string, now time.Time) error {
	payload, _ := json.Marshal(startPayload{Campaign: campaignID})
	_, err := e.client.EnqueueContext(ctx, asynq.NewTask(TypeRetry, payload),
		asynq.TaskID("retry:"+campaignID+":"+strconv.FormatInt(now.UnixNano(), 36)),
		asynq.Queue(QueueControl),
		asynq.MaxRetry(50),
		asynq.Timeout(30*time.Minute),
	)
	if err != nil {
		return fmt.Errorf("enqueue the retry of campaign %s: %w", campaignID, err)
	}
	return nil
}

// plan books a pacing slot for each recipient on its account's timeline
// (recipients are spread over the accounts in turn) and answers their due
// times, in the order of seqs. One booking per account and batch, all in
// one round trip, however many recipients and accounts there are.
func (e *Enqueuer) plan(ctx context.Context, accounts []string, seqs []int64) ([]time.Time, error) {
	byAccount := map[string][]int{} // account → indexes into seqs
	for i, seq := range seqs {
		a := accountOf(accounts, seq)
		byAccount[a] = append(byAccount[a], i)
	}
	counts := make(map[string]int, len(byAccount))
	for account, idx := range byAccount {
		counts[account] = len(idx)
	}
	bookings, err := e.pacer.PlanEach(ctx, counts)
	if err != nil {
		return nil, err
	}
	out := make([]time.Time, len(seqs))
	for account, idx := range byAccount {
		b := bookings[account]
		for k, i := range idx {
			out[i] = b.First.Add(time.Duration(k) * b.Step)
		}
	}
	return out, nil
}

// sendBatch is a batch of recipients of one campaign to enqueue in a round.
type sendBatch struct {
	campaign string
	accounts []string // the campaign's, to plan each recipient on its own
	round    int64
	seqs     []int64
	parallel int // chunks of tasks written at once (taskwriter.go)
}

// enqueueBatch plans and enqueues the send tasks of a batch of recipients,
// up to parallel chunks of them at once, and answers the latest due time it
// planned.
func (e *Enqueuer) enqueueBatch(ctx context.Context, b sendBatch) (time.Time, error) {
	if len(b.seqs) == 0 {
		return time.Time{}, nil
	}
	due, err := e.plan(ctx, b.accounts, b.seqs)
	if err != nil {
		return time.Time{}, err
	}
	var latest time.Time
	for _, t := range due {
		if t.After(latest) {
			latest = t
		}
	}
	return latest, e.writeSendTasks(ctx, b.campaign, b.round, b.seqs, due, b.parallel)
}

// accountOf is the sender account a recipient is planned on: the campaign's
// accounts in turn; "" (the provider's default) when it names none.
func accountOf(accounts []string, seq int64) string {
	if len(accounts) == 0 {
		return ""
	}
	return accounts[seq%int64(len(accounts))]
}
