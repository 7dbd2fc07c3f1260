// Package harness runs the product from the outside, for the programs that
// measure it as a user would meet it (cmd/campaign-bench, cmd/campaign-chaos):
// it builds the shipped binaries (campaign-api, campaign-worker), starts them
// and redis-server as child processes with their output in log files, stops
// or kills them, talks to the API over HTTP with a Bearer key, generates
// contacts files, summarises what the children logged, and on exit, an
// interrupt or a closed stdout stops every child and removes the work
// directory.
//
// It is Linux only: children get Pdeathsig, so none outlives a harness that
// is itself killed with SIGKILL. A test that needs Redis starts a throwaway
// server of internal/redistest instead of the harness's; the harness's own
// test runs the binaries on redistest's Sentinel topology through a
// failover.
package harness
