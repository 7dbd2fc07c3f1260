package campaign

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"
)

// The send tasks of a batch of recipients are written to asynq's queue by
// one script per chunk instead of one asynq Enqueue each (README "Design
// decisions": "Batches of send tasks are written in asynq's own format").
// An import queues a task per recipient; one Enqueue each cost the API a
// script call, an encoded message, a goroutine hand-off and a pipelined round
// trip per recipient, and Redis a script call and its reply: half the API's
// CPU of an import and a third of Redis's. The script does for each task
// exactly what asynq's enqueue and schedule scripts do (asynq v0.26,
// internal/rdb/rdb.go): nothing when the task id exists, which keeps
// enqueueing idempotent; otherwise the task hash, then its id in the pending
// list or the scheduled set. taskwriter_test.go checks that what it writes
// is what asynq writes, byte for byte, and that asynq runs it.

// taskChunk is how many tasks one script writes: big enough that the call
// and its round trip are a small part of the work, small enough that the
// script holds Redis's thread for about a millisecond (sends wait meanwhile).
const taskChunk = 128

// writeTasksScript writes a chunk of tasks.
// KEYS[1]: the queue's pending list, KEYS[2]: its scheduled set,
// KEYS[3..]: the tasks' hashes. ARGV[1]: now in Unix nanoseconds (asynq's
// pending_since); then for each task its encoded message, its id and its
// due time in Unix seconds ("0": due now, pending).
// Answers how many tasks were new.
var writeTasksScript = redis.NewScript(`
local pending, scheduled, n = {}, {}, 0
for i = 3, #KEYS do
  local a = (i - 3) * 3 + 2
  if redis.call("EXISTS", KEYS[i]) == 0 then
    local due = ARGV[a + 2]
    if due == "0" then
      redis.call("HSET", KEYS[i], "msg", ARGV[a], "state", "pending", "pending_since", ARGV[1])
      pending[#pending + 1] = ARGV[a + 1]
    else
      redis.call("HSET", KEYS[i], "msg", ARGV[a], "state", "scheduled")
      scheduled[#scheduled + 1] = due
      scheduled[#scheduled + 1] = ARGV[a + 1]
    end
    n = n + 1
  end
end
if #pending > 0 then redis.call("LPUSH", KEYS[1], unpack(pending)) end
if #scheduled > 0 then redis.call("ZADD", KEYS[2], unpack(scheduled)) end
return n
`)

// sendTaskEncoder makes the messages of one campaign's send tasks in a round.
type sendTaskEncoder struct {
	campaign string
	round    int64
	prefix   []byte // `{"c":"<campaign>","s":`: the payload up to the seq
}

func newSendTaskEncoder(campaignID string, round int64) sendTaskEncoder {
	quoted, _ := json.Marshal(campaignID)
	prefix := append(append([]byte(`{"c":`), quoted...), `,"s":`...)
	return sendTaskEncoder{campaign: campaignID, round: round, prefix: prefix}
}

// payload is json.Marshal(sendPayload{...}) without its reflection; slot
// is the task's pacing slot in unix ms (0: none).
func (e sendTaskEncoder) payload(buf []byte, seq, slot int64) []byte {
	buf = append(buf, e.prefix...)
	buf = strconv.AppendInt(buf, seq, 10)
	if e.round != 0 {
		buf = append(buf, `,"r":`...)
		buf = strconv.AppendInt(buf, e.round, 10)
	}
	if slot != 0 {
		buf = append(buf, `,"t":`...)
		buf = strconv.AppendInt(buf, slot, 10)
	}
	return append(buf, '}')
}

// message is what asynq's Client.Enqueue stores for the send task of seq
// (enqueueSendAs's options): asynq's TaskMessage protobuf with the fields
// it sets, in field-number order as proto.Marshal writes them (type 1,
// payload 2, id 3, queue 4, retry 5, timeout 8; no deadline: 0).
func (e sendTaskEncoder) message(id string, seq, slot int64) []byte {
	var scratch [80]byte
	payload := e.payload(scratch[:0], seq, slot)
	buf := make([]byte, 0, 32+len(TypeSend)+len(payload)+len(id)+len(QueueSend))
	buf = appendProtoString(buf, 1, TypeSend)
	buf = protowire.AppendTag(buf, 2, protowire.BytesType)
	buf = protowire.AppendBytes(buf, payload)
	buf = appendProtoString(buf, 3, id)
	buf = appendProtoString(buf, 4, QueueSend)
	buf = protowire.AppendTag(buf, 5, protowire.VarintType)
	buf = protowire.AppendVarint(buf, sendMaxRetry)
	buf = protowire.AppendTag(buf, 8, protowire.VarintType)
	return protowire.AppendVarint(buf, uint64(sendTaskTimeout/time.Second))
}

func appendProtoString(buf []byte, field protowire.Number, s string) []byte {
	buf = protowire.AppendTag(buf, field, protowire.BytesType)
	return protowire.AppendString(buf, s)
}

// writeSendTasks writes the send tasks of seqs for the pacing slots their
// accounts' plans booked them (slots, in the same order), as
// enqueuePlanned does one: queued sendLead ahead of the slot, which the
// payload carries. Chunk by chunk, up to parallel chunks at once. Tasks
// that exist already are left alone, as asynq's ErrTaskIDConflict is
// ignored.
func (e *Enqueuer) writeSendTasks(ctx context.Context, campaignID string, round int64, seqs []int64, slots []time.Time, parallel int) error {
	if err := e.publishQueue(ctx); err != nil {
		return err
	}
	enc := newSendTaskEncoder(campaignID, round)
	chunks := make(chan int)
	var wg sync.WaitGroup
	var errOnce sync.Once
	var firstErr error
	for w := 0; w < min(parallel, (len(seqs)+taskChunk-1)/taskChunk); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := range chunks {
				to := min(from+taskChunk, len(seqs))
				if err := e.writeChunk(ctx, enc, seqs[from:to], slots[from:to]); err != nil {
					errOnce.Do(func() { firstErr = err })
				}
			}
		}()
	}
	for from := 0; from < len(seqs); from += taskChunk {
		chunks <- from
	}
	close(chunks)
	wg.Wait()
	return firstErr
}

// writeChunk writes one chunk's tasks with one script call. A task due
// by now is pending, a later one scheduled at its due second, as asynq's
// Enqueue decides.
func (e *Enqueuer) writeChunk(ctx context.Context, enc sendTaskEncoder, seqs []int64, slots []time.Time) error {
	prefix := asynqQueuePrefix(QueueSend)
	keys := make([]string, 2, 2+len(seqs))
	keys[0], keys[1] = prefix+"pending", prefix+"scheduled"
	now := time.Now()
	args := make([]any, 1, 1+3*len(seqs))
	args[0] = now.UnixNano()
	for i, seq := range seqs {
		id := sendTaskID(enc.campaign, seq, enc.round)
		keys = append(keys, prefix+"t:"+id)
		at := int64(0)
		if due := slots[i].Add(-sendLead); due.After(now) {
			at = due.Unix()
		}
		args = append(args, enc.message(id, seq, slots[i].UnixMilli()), id, at)
	}
	if err := writeTasksScript.Run(ctx, e.rdb, keys, args...).Err(); err != nil {
		return fmt.Errorf("enqueue recipients %d to %d of campaign %s: %w", seqs[0], seqs[len(seqs)-1], enc.campaign, err)
	}
	return nil
}

// publishQueue lists the send queue in asynq's set of queues once per
// process, as asynq's own enqueue does, so that its tools see the queue.
func (e *Enqueuer) publishQueue(ctx context.Context) error {
	if e.published.Load() {
		return nil
	}
	if err := e.rdb.SAdd(ctx, asynqAllQueues, QueueSend).Err(); err != nil {
		return fmt.Errorf("list queue %s: %w", QueueSend, err)
	}
	e.published.Store(true)
	return nil
}
