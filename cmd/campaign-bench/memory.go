//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/wacampaign/wacampaign/internal/harness"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// Figure 5's setup: a campaign sent at once, whose messages are delivered
// and read soon after, and polled three times each (the schedule brought
// forward from minutes to seconds), so that every recipient's state and
// status history has its three updates by the time Redis is measured.
const (
	memoryRecipients = 5000
	memoryPolls      = "1s,2s,3s"
	memoryPollMaxAge = "1m"
)

// memoryBench is figure 5: Redis bytes per recipient of a finished campaign.
type memoryBench struct {
	b *bench
}

func (m *memoryBench) run() error {
	b := m.b
	ctx := context.Background()
	if err := b.flush(ctx); err != nil {
		return err
	}
	before, err := b.usedMemory(ctx)
	if err != nil {
		return err
	}
	sb := sandbox.New(sandbox.Config{Token: sandboxToken, Credits: 1 << 40, SendInterval: time.Millisecond,
		DeliverAfter: 1500 * time.Millisecond, ReadAfter: 2500 * time.Millisecond, ReadRate: 1})
	srv := newServer(sb)
	defer srv.Close()
	polls := []string{"STATUS_POLL_SCHEDULE=" + memoryPolls, "STATUS_POLL_MAX_AGE=" + memoryPollMaxAge}
	api, client, err := harness.StartAPI("api-fig5", b.apiBin, b.productEnv(srv.URL, append(polls, "SEND_INTERVAL=0s")...), b.apiKey, b.dir)
	if err != nil {
		return err
	}
	defer api.Stop(10 * time.Second)
	worker, err := b.startProduct("worker-fig5", b.workBin, nil, b.productEnv(srv.URL, append(polls, "SEND_INTERVAL=0s")...))
	if err != nil {
		return err
	}
	defer worker.Stop(10 * time.Second)
	plan, err := harness.NewPhonePlan(memoryRecipients)
	if err != nil {
		return err
	}
	var csv bytes.Buffer
	if _, err := harness.WriteContacts(&csv, memoryRecipients, plan); err != nil {
		return err
	}
	c, err := client.CreateCampaign(ctx, []harness.Field{{Name: "name", Value: "bench memory"}, {Name: "template", Value: benchTemplate}}, &csv)
	if err != nil {
		return err
	}
	if err := m.awaitPolled(ctx, client, c.ID); err != nil {
		return err
	}
	worker.Stop(10 * time.Second)
	api.Stop(10 * time.Second)
	after, err := b.usedMemory(ctx)
	if err != nil {
		return err
	}
	perRecipient := float64(after-before) / float64(c.Counts.Total)
	fmt.Printf("  %d recipients sent, read, and polled three times: Redis +%.1f MB → %.0f B a recipient\n",
		c.Counts.Total, float64(after-before)/1e6, perRecipient)
	b.add(result{
		figure:   fmt.Sprintf("5. Redis memory of a finished campaign per recipient (%d sent, 3 status updates each, history included)", c.Counts.Total),
		ours:     fmt.Sprintf("%.0f B", perRecipient),
		baseline: "—", ratio: "—",
		target:  "≤ 1.5 KB",
		verdict: verdict(perRecipient, 1536, false),
	})
	b.note(fmt.Sprintf("5. After FLUSHALL, campaign-api and one campaign-worker (SEND_INTERVAL=0s, STATUS_POLL_SCHEDULE=%s, STATUS_POLL_MAX_AGE=%s) "+
		"send a %d-recipient campaign to a sandbox that delivers each message after 1.5 s and has it read after 2.5 s; once every recipient "+
		"is read and the status queue is empty (polls at 1, 2 and 3 s see it sent, delivered, read), both are stopped and INFO memory used_memory minus the figure before "+
		"the API started is divided by the recipients: rows, states, status history, indexes and the campaign's own keys.",
		memoryPolls, memoryPollMaxAge, c.Counts.Total))
	return nil
}

// awaitPolled waits until every recipient is read and no status poll is
// left in the queue.
func (m *memoryBench) awaitPolled(ctx context.Context, client *harness.APIClient, id string) error {
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: m.b.addr})
	defer insp.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cur, err := client.GetCampaign(ctx, id)
		if err != nil {
			return err
		}
		if cur.Counts.Read == cur.Counts.Total {
			info, err := insp.GetQueueInfo("status")
			if err == nil && info.Pending+info.Scheduled+info.Active+info.Retry == 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("campaign %s not read and polled after 2 minutes: %+v", id, cur.Counts)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
