package campaign

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/redistest"
)

// The batch writer must leave in Redis exactly what asynq's Enqueue with
// enqueueSendAs's options leaves for a planned task (enqueuePlanned): the
// same task hash (message bytes, state) and the same entry in the pending
// list or the scheduled set. Each task is written once by each path on a
// flushed Redis, and the two states compared.
func TestWriteSendTasksMatchesAsynqEnqueue(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	later := time.Now().Add(time.Hour)
	cases := []struct {
		name  string
		seq   int64
		round int64
		slot  time.Time
	}{
		{"pending, first round", 7, 0, time.Now().Add(-time.Second)},
		{"pending, later round", 1 << 40, 3, time.Now()},
		{"pending, slot within the lead", 9, 0, time.Now().Add(sendLead / 2)},
		{"scheduled", 12, 0, later},
		{"scheduled, later round", 0, 2, later},
	}
	for _, c := range cases {
		id := sendTaskID("cmp1", c.seq, c.round)
		// A client and an Enqueuer of their own: each lists the queue once,
		// and the flush forgets it.
		client := asynq.NewClientFromRedisClient(rdb)
		e := NewEnqueuer(client, rdb, quota.NewPacer(rdb, 0, 0))
		rdb.FlushAll(ctx)
		if err := e.enqueuePlanned(ctx, id, sendPayload{Campaign: "cmp1", Seq: c.seq, Round: c.round}, c.slot); err != nil {
			t.Fatal(err)
		}
		want := queueState(t, rdb, id)
		rdb.FlushAll(ctx)
		if err := e.writeSendTasks(ctx, "cmp1", c.round, []int64{c.seq}, []time.Time{c.slot}, 4); err != nil {
			t.Fatal(err)
		}
		if got := queueState(t, rdb, id); got != want {
			t.Errorf("%s:\nasynq Enqueue left %+v\nthe batch writer %+v", c.name, want, got)
		}
		client.Close()
	}
}

// taskState is what a send task leaves in Redis.
type taskState struct {
	msg, state     string
	pendingSince   bool
	pending        string // the pending list
	scheduledScore float64
	queues         string // asynq's set of queues
}

func queueState(t *testing.T, rdb *redis.Client, id string) taskState {
	t.Helper()
	ctx := context.Background()
	prefix := asynqQueuePrefix(QueueSend)
	h := rdb.HGetAll(ctx, prefix+"t:"+id).Val()
	s := taskState{msg: h["msg"], state: h["state"], pendingSince: h["pending_since"] != ""}
	pending, _ := json.Marshal(rdb.LRange(ctx, prefix+"pending", 0, -1).Val())
	s.pending = string(pending)
	s.scheduledScore = rdb.ZScore(ctx, prefix+"scheduled", id).Val()
	queues, _ := json.Marshal(rdb.SMembers(ctx, asynqAllQueues).Val())
	s.queues = string(queues)
	return s
}

// Writing a batch again writes nothing new (an import or a resume
// replayed), and every task is one asynq can read.
func TestWriteSendTasksIdempotent(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	e := NewEnqueuer(client, rdb, quota.NewPacer(rdb, 0, 0))
	ctx := context.Background()
	seqs := make([]int64, 3*taskChunk+5) // several chunks and a short one
	due := make([]time.Time, len(seqs))
	for i := range seqs {
		seqs[i] = int64(i)
		due[i] = time.Now()
		if i%2 == 1 {
			due[i] = due[i].Add(time.Hour)
		}
	}
	for range 2 {
		if err := e.writeSendTasks(ctx, "c2", 0, seqs, due, 3); err != nil {
			t.Fatal(err)
		}
	}
	prefix := asynqQueuePrefix(QueueSend)
	pending, scheduled := rdb.LLen(ctx, prefix+"pending").Val(), rdb.ZCard(ctx, prefix+"scheduled").Val()
	if pending+scheduled != int64(len(seqs)) || scheduled != int64(len(seqs)/2) {
		t.Fatalf("after two writes of %d tasks: %d pending, %d scheduled", len(seqs), pending, scheduled)
	}
	info, err := asynq.NewInspectorFromRedisClient(rdb).GetTaskInfo(QueueSend, sendTaskID("c2", 131, 0))
	if err != nil {
		t.Fatal(err)
	}
	var p sendPayload
	if err := json.Unmarshal(info.Payload, &p); err != nil || p != (sendPayload{Campaign: "c2", Seq: 131, Slot: due[131].UnixMilli()}) {
		t.Errorf("task 131: payload %s (%v)", info.Payload, err)
	}
	if info.Type != TypeSend || info.MaxRetry != sendMaxRetry || info.Timeout != sendTaskTimeout || info.State != asynq.TaskStateScheduled {
		t.Errorf("task 131: %+v", info)
	}
}

// The payload is json.Marshal's, for campaign ids that need escaping too.
func TestSendTaskPayloadIsJSON(t *testing.T) {
	for _, id := range []string{"mx34q46d58jm41", "a.t1", `q"u\o<te>`, "é"} {
		for _, round := range []int64{0, 5} {
			for _, slot := range []int64{0, time.Now().UnixMilli()} {
				want, _ := json.Marshal(sendPayload{Campaign: id, Seq: 42, Round: round, Slot: slot})
				if got := newSendTaskEncoder(id, round).payload(nil, 42, slot); string(got) != string(want) {
					t.Errorf("payload %s, json.Marshal %s", got, want)
				}
			}
		}
	}
}
