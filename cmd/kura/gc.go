package main

import "runtime/debug"

// defaultGCPercent is the collector's target for processes that serve kura.
// Its live heap is small (tens of MiB: caches, keyrings, policies) and its
// CPU goes to signatures, so collecting at 4x the live heap instead of 2x
// gives back ~7 % of attestation throughput (kura bench attest) for a few
// more MiB of memory. GOGC or GOMEMLIMIT set by the operator win.
const defaultGCPercent = 400

// tuneGC applies defaultGCPercent unless the operator tuned the collector.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(defaultGCPercent)
}

// gcPercent reads the collector's current target without changing it.
func gcPercent() int {
	p := debug.SetGCPercent(-1)
	debug.SetGCPercent(p)
	return p
}
