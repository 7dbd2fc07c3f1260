//go:build linux

package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/wacampaign/wacampaign/internal/harness"
)

// scenario is one way of breaking things while a campaign sends.
type scenario struct {
	name       string
	about      string // what it does, for the report
	recipients int
	workers    int
	faultRate  float64 // share of provider requests the proxy spoils
	// disrupt breaks things while the campaign sends; it returns when it
	// is done or ctx ends. nil: nothing beyond the proxy's faults.
	disrupt func(ctx context.Context, st *stage)
}

// result is what a scenario measured.
type result struct {
	sc        *scenario
	err       error         // the scenario could not be run (setup, the upload, the audit's reads)
	completed bool          // the campaign completed, nobody sending or unconfirmed, before the deadline
	took      time.Duration // from the upload's answer to completion, or to the deadline
	audit     audit
	final     harness.Counts
	details   []string // what was done and seen, for the report
	probeLost *int64   // acknowledged Redis writes a kill -9 lost; nil: not measured
}

// failures are the reasons the scenario fails; none when it passes.
func (r *result) failures() []string {
	if r.err != nil {
		return []string{"could not run: " + r.err.Error()}
	}
	out := r.audit.failures()
	if !r.completed {
		out = append(out, fmt.Sprintf("not completed within %s", r.took.Round(time.Second)))
	}
	return out
}

// runScenario sets the scenario's stage up, uploads the campaign, lets the
// disruption loose, follows the campaign until it completes or the
// deadline passes, and audits it.
func runScenario(ctx context.Context, run *chaosRun, sc *scenario) *result {
	res := &result{sc: sc}
	st, err := newStage(ctx, run, sc)
	if err != nil {
		res.err = fmt.Errorf("setting up: %w", err)
		return res
	}
	defer st.close()
	if res.err = st.createCampaign(ctx); res.err != nil {
		return res
	}
	run.printf(sc.name, "campaign %s: %d recipients over %d accounts, about %s of sending at %s per account",
		st.campaignID, sc.recipients, len(senderAccounts), estimate(sc.recipients), sendInterval)
	disruptCtx, stopDisrupt := context.WithCancel(ctx)
	disrupted := make(chan struct{})
	go func() {
		defer close(disrupted)
		if sc.disrupt != nil {
			sc.disrupt(disruptCtx, st)
		}
	}()
	res.completed, res.took = st.follow(ctx, run.size.deadline)
	stopDisrupt()
	<-disrupted
	res.err = st.finalAudit(ctx, res)
	res.details = st.details()
	res.probeLost = st.probeLost.Load()
	return res
}

// estimate is how long the campaign's sending takes when nothing breaks.
func estimate(recipients int) time.Duration {
	perAccount := (recipients + len(senderAccounts) - 1) / len(senderAccounts)
	return time.Duration(perAccount) * sendInterval
}

// follow polls the campaign until it is completed with nobody sending or
// unconfirmed, or the deadline passes, printing progress now and then. API
// errors (while Redis is down, say) are counted and retried.
func (st *stage) follow(ctx context.Context, deadline time.Duration) (bool, time.Duration) {
	end := st.created.Add(deadline)
	nextPrint := time.Now().Add(15 * time.Second)
	for time.Now().Before(end) {
		reqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := st.client.GetCampaign(reqCtx, st.campaignID)
		cancel()
		if err != nil {
			st.apiError(err)
		} else {
			st.latest.Store(c)
			if done(c) {
				return true, time.Since(st.created)
			}
		}
		if time.Now().After(nextPrint) {
			st.printProgress()
			nextPrint = time.Now().Add(15 * time.Second)
		}
		if sleep(ctx, 250*time.Millisecond) != nil {
			break
		}
	}
	return false, time.Since(st.created)
}

// done: completed, and nobody sending or unconfirmed (a missing
// unconfirmed count is 0).
func done(c *harness.Campaign) bool {
	return c.Status == "completed" && c.Counts.Queued == 0 && c.Counts.Sending == 0 && c.Counts.Unconfirmed == 0
}

func (st *stage) printProgress() {
	c := st.latest.Load()
	st.run.printf(st.sc.name, "%s: %s, %s; the sandbox has %d messages",
		time.Since(st.created).Round(time.Second), c.Status, describeCounts(c.Counts), len(st.sandbox.Messages()))
}

// describeAnswers lists answers by HTTP status, in order of status.
func describeAnswers(answers map[int]int) string {
	statuses := slices.Sorted(maps.Keys(answers))
	parts := make([]string, len(statuses))
	for i, status := range statuses {
		parts[i] = fmt.Sprintf("%d × %d", answers[status], status)
	}
	return strings.Join(parts, ", ")
}

func describeCounts(c harness.Counts) string {
	return fmt.Sprintf("queued %d, sending %d, unconfirmed %d, sent %d, delivered %d, read %d, failed %d, skipped %d, unknown %d",
		c.Queued, c.Sending, c.Unconfirmed, c.Sent, c.Delivered, c.Read, c.Failed, c.Skipped, c.Unknown)
}

// finalAudit reads the campaign and its recipients (retrying a few times:
// the API may just be reconnecting to Redis) and audits them against the
// sandbox.
func (st *stage) finalAudit(ctx context.Context, res *result) error {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 && sleep(ctx, time.Second) != nil {
			break
		}
		reqCtx, cancel := context.WithTimeout(ctx, time.Minute)
		c, err := st.client.GetCampaign(reqCtx, st.campaignID)
		var list []harness.Recipient
		if err == nil {
			list, err = st.client.Recipients(reqCtx, st.campaignID)
		}
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		res.final = c.Counts
		res.audit = auditCampaign(c, list, st.sandbox.Messages())
		return nil
	}
	return fmt.Errorf("reading the campaign for the audit: %w", lastErr)
}

// details are the lines of the scenario's report beyond the table.
func (st *stage) details() []string {
	lines := []string{"what it does: " + st.sc.about}
	st.mu.Lock()
	lines = append(lines, st.notes...)
	st.mu.Unlock()
	lines = append(lines, st.pool.summary()...)
	for _, m := range st.proxy.mix() {
		lines = append(lines, "proxy: "+m)
	}
	lines = append(lines, fmt.Sprintf("the sandbox answered %d API calls: %s", st.sandbox.APICallsUsed(), describeAnswers(st.sandbox.Answers())))
	if n, example := st.apiErrors(); n > 0 {
		lines = append(lines, fmt.Sprintf("%d failed reads of GET /v1/campaigns/{id} while following (retried); first: %s", n, example))
	}
	return lines
}
