//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/wacampaign/wacampaign/internal/harness"
)

// Figure 4's setup, as the issue states it.
const (
	pacingAccounts    = 10
	pacingInterval    = 100 * time.Millisecond
	pacingWindow      = 20 * time.Second
	pacingWorkers     = 3
	pacingConcurrency = 50 // a worker's share of about a second of sends (tasks become due at whole seconds)
	// perAccount outlasts the window (25 s of sends at 100 ms), so no account
	// runs dry inside it.
	pacingPerAccount = 250
)

// pacingBench is figure 4: how close to one send per interval per account
// three workers get.
type pacingBench struct {
	b *bench
}

func (p *pacingBench) run() error {
	b := p.b
	ctx := context.Background()
	if err := b.flush(ctx); err != nil {
		return err
	}
	sb, srv := newSandbox()
	defer srv.Close()
	interval := pacingInterval.String()
	api, client, err := b.startAPI("api-fig4", srv.URL, interval)
	if err != nil {
		return err
	}
	defer api.Stop(10 * time.Second)

	// The workers run before the campaign exists, so its tasks are planned
	// from the moment of the upload and the window measures steady sending,
	// not a backlog.
	var workers []*harness.Child
	for i := 1; i <= pacingWorkers; i++ {
		wk, err := b.startProduct(fmt.Sprintf("worker-fig4-%d", i), b.workBin, nil,
			b.productEnv(srv.URL, "SEND_INTERVAL="+interval, "WORKER_CONCURRENCY="+strconv.Itoa(pacingConcurrency)))
		if err != nil {
			return err
		}
		workers = append(workers, wk)
	}
	stopWorkers := func() {
		var wg sync.WaitGroup
		for _, wk := range workers {
			wg.Add(1)
			go func() { defer wg.Done(); wk.Stop(30 * time.Second) }()
		}
		wg.Wait()
	}
	defer stopWorkers()
	if err := p.waitReady(ctx, client); err != nil {
		return err
	}

	accounts := make([]string, pacingAccounts)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("+1415555%04d", 100+i)
	}
	plan, err := harness.NewPhonePlan(pacingAccounts * pacingPerAccount)
	if err != nil {
		return err
	}
	var csv bytes.Buffer
	if _, err := harness.WriteContacts(&csv, pacingAccounts*pacingPerAccount, plan); err != nil {
		return err
	}
	c, err := client.CreateCampaign(ctx, []harness.Field{
		{Name: "name", Value: "bench pacing"}, {Name: "template", Value: benchTemplate}, {Name: "accounts", Value: strings.Join(accounts, ",")},
	}, &csv)
	if err != nil {
		return err
	}

	// Wait for the first send, then for the window to pass.
	deadline := time.Now().Add(30 * time.Second)
	var first time.Time
	for first.IsZero() {
		if msgs := sb.Messages(); len(msgs) > 0 {
			first = msgs[0].ReceivedAt
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no message reached the sandbox 30 s after campaign %s was created", c.ID)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Until(first.Add(pacingWindow + 500*time.Millisecond)))
	stopWorkers()
	return p.analyse(sb.Messages(), accounts, first)
}

// waitReady waits until the three asynq servers have registered and the
// credit ledger has read the provider's quota: setup, not part of the figure.
func (p *pacingBench) waitReady(ctx context.Context, client *harness.APIClient) error {
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: p.b.addr})
	defer insp.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		servers, err := insp.Servers()
		if err == nil && len(servers) >= pacingWorkers && client.CreditsSynced(ctx) {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the workers did not register (or the ledger never synced) within 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *pacingBench) analyse(msgs []sandboxMessage, accounts []string, first time.Time) error {
	b := p.b
	end := first.Add(pacingWindow)
	allowed := float64(pacingWindow / pacingInterval)
	byAccount := map[string][]time.Time{}
	for _, m := range msgs {
		a := m.AccountPhone
		if a == "" {
			a = m.Sender
		}
		byAccount[a] = append(byAccount[a], m.ReceivedAt)
	}
	minUtil, sumUtil, maxUtil := 2.0, 0.0, 0.0
	minGap := time.Duration(1<<63 - 1)
	var lines []string
	for _, a := range accounts {
		times := byAccount[a]
		slices.SortFunc(times, func(x, y time.Time) int { return x.Compare(y) })
		in := 0
		gap := time.Duration(1<<63 - 1)
		for i, t := range times {
			if !t.Before(first) && t.Before(end) {
				in++
			}
			if i > 0 {
				gap = min(gap, t.Sub(times[i-1]))
			}
		}
		u := float64(in) / allowed
		minUtil, maxUtil, sumUtil = min(minUtil, u), max(maxUtil, u), sumUtil+u
		minGap = min(minGap, gap)
		lines = append(lines, fmt.Sprintf("%s %d (%.3f, least gap %.1f ms)", a, in, u, float64(gap.Microseconds())/1000))
	}
	mean := sumUtil / pacingAccounts
	fmt.Printf("  sends per account in the %s after the first send (%.0f allowed):\n    %s\n", pacingWindow, allowed, strings.Join(lines, "\n    "))
	fmt.Printf("  utilisation min %.3f, mean %.3f, max %.3f; least gap between two sends of one account %.1f ms; %d messages in all\n",
		minUtil, mean, maxUtil, float64(minGap.Microseconds())/1000, len(msgs))
	if len(byAccount) != pacingAccounts {
		b.warn(fmt.Sprintf("figure 4: messages came from %d accounts, not %d", len(byAccount), pacingAccounts))
	}

	b.add(result{
		figure:   fmt.Sprintf("4. pacing utilisation, sends / allowed per account (%d accounts × %s, %d workers, %s)", pacingAccounts, pacingInterval, pacingWorkers, pacingWindow),
		ours:     fmt.Sprintf("min %.3f, mean %.3f", minUtil, mean),
		baseline: fmt.Sprintf("%.0f sends allowed", allowed),
		ratio:    fmt.Sprintf("%.3f", minUtil),
		target:   "≥ 0.97",
		verdict:  verdict(minUtil, 0.97, true),
	})
	b.add(result{
		figure: "4. least gap between two sends of one account",
		ours:   fmt.Sprintf("%.1f ms", float64(minGap.Microseconds())/1000), baseline: pacingInterval.String(), ratio: fmt.Sprintf("%.3f", float64(minGap)/float64(pacingInterval)),
		target: "—",
	})
	b.note(fmt.Sprintf("4. %d campaign-worker processes (WORKER_CONCURRENCY=%d, SEND_INTERVAL=%s) are started and registered, and the "+
		"ledger synced, before a campaign of %d accounts × %d recipients is uploaded (accounts field; campaign-api with the same "+
		"SEND_INTERVAL). The sandbox's accepted messages are counted per account (whatsapp_account_phone) by ReceivedAt in "+
		"[first send, first send + %s) — half-open, so at most %.0f fit; utilisation = that count / %.0f. The least gap is over all "+
		"of an account's sends, as the sandbox received them (HTTP in between).",
		pacingWorkers, pacingConcurrency, pacingInterval, pacingAccounts, pacingPerAccount, pacingWindow, allowed, allowed))
	return nil
}
