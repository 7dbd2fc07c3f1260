//go:build linux

package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/wacampaign/wacampaign/internal/harness"
)

// report prints each scenario's details and the children's logs, then the
// table and the verdict; it answers the exit status.
func report(run *chaosRun, results []*result, took time.Duration) int {
	for _, r := range results {
		printDetails(run, r)
	}
	fmt.Printf("== campaign-chaos, %s run (seed %d), %s in all\n\n", run.size.name, run.seed, took.Round(time.Second))
	fmt.Println("| scenario | recipients | twice | lost | unknown | completed in | counts add up |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, r := range results {
		fmt.Println(tableRow(r))
	}
	fmt.Println()
	for _, r := range results {
		if r.probeLost != nil {
			fmt.Printf("Redis kill -9 with appendfsync %s: %d acknowledged write(s) lost (a probe's INCRs, checked after the restart).\n\n", run.fsync, *r.probeLost)
		}
	}
	failed := 0
	for _, r := range results {
		if f := r.failures(); len(f) > 0 {
			failed++
			fmt.Printf("FAILED %s: %s\n", r.sc.name, strings.Join(f, "; "))
		}
	}
	if failed > 0 {
		fmt.Printf("\n%d of %d scenario(s) failed. Reproduce: make chaos%s (CHAOS_SEED=%d)\n", failed, len(results), sizeTarget(run), run.seed)
		return 1
	}
	fmt.Printf("every scenario kept the promise: nobody twice, nobody lost, unknown at most %.1f%%, the counts add up\n", maxUnknownShare)
	return 0
}

func sizeTarget(run *chaosRun) string {
	if run.size.name == "short" {
		return "-short"
	}
	return ""
}

// tableRow is the scenario's line of the table.
func tableRow(r *result) string {
	if r.err != nil && r.audit.byState == nil {
		return fmt.Sprintf("| %s | %d | — | — | — | could not run | — |", r.sc.name, r.sc.recipients)
	}
	completed := r.took.Round(time.Second).String()
	if !r.completed {
		completed = "NOT completed after " + completed
	}
	counts := "yes"
	if len(r.audit.problems) > 0 {
		counts = "NO: " + strings.Join(r.audit.problems, "; ")
	}
	return fmt.Sprintf("| %s | %d | %d | %d | %d (%.1f%%) | %s | %s |", r.sc.name, r.audit.recipients,
		r.audit.twice, r.audit.lost, r.audit.unknown, r.audit.unknownShare(), completed, counts)
}

// printDetails prints what the scenario did and saw, and what its children
// logged.
func printDetails(run *chaosRun, r *result) {
	fmt.Printf("== %s\n", r.sc.name)
	for _, d := range r.details {
		fmt.Println("  " + d)
	}
	if r.err != nil {
		fmt.Println("  error:", r.err)
	}
	if r.audit.byState != nil {
		a := r.audit
		fmt.Printf("  final counts: %s\n", describeCounts(r.final))
		fmt.Printf("  the sandbox got %d of %d recipients (%d twice or more); %d recorded sent/delivered/read, %d unknown of which %d were in fact received\n",
			a.received, a.recipients, a.twice, a.sentLike, a.unknown, a.unknownReceived)
		if len(a.unsettled) > 0 {
			fmt.Printf("  unsettled, lost or unknown at the end: %s\n", strings.Join(a.unsettled, ", "))
		}
	}
	harness.PrintChildLogs("  what its processes logged (the product at LOG_LEVEL=warn; redis: warnings only):", filepath.Join(run.session.Dir, r.sc.name))
	fmt.Println()
}
