package sessions_test

import (
	"flag"
	"fmt"
	"testing"
	"time"
)

// TestPairingInvariantsUnderRandomFaults checks the pairing guarantee under random
// interleavings of masks, unmasks, expiries, CXone faults, replica crashes and callers
// that hang up:
//   - every call CXone masked ends unmasked (nothing lost);
//   - no call stays masked past its latest deadline (or the end of the faults) plus the
//     sweep interval, a lock lease and the retry time;
//   - no unmask CXone accepted undid a mask that a caller saw succeed, before that mask's
//     deadline, unless a caller asked to unmask since (a request that overlapped the
//     mask may be ordered after it; a crash may repeat an unmask; none may come early).
func TestPairingInvariantsUnderRandomFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("randomized property test")
	}
	rep := chaos{agents: 24, workers: 8, duration: 4 * time.Second, replicas: 3, maxTTL: 2 * time.Second, trail: true}.run(t)
	t.Logf("%d requests to CXone (%d masks and unmasks answered 202), %d fault changes, %d replica crashes",
		rep.requests, rep.accepted, rep.faults, rep.kills)
}

var soak = flag.Duration("soak", 0, "run TestSoak for this long (e.g. 10m)")

// TestSoak is the long run of the same chaos (not in the default run):
// go test ./sessions/ -run TestSoak -soak=10m -timeout 40m -v (the package first: go
// test takes no package after a flag it does not know). It prints the figures kept in
// docs/RELIABILITY.md.
func TestSoak(t *testing.T) {
	if *soak == 0 {
		t.Skip("set -soak=10m to run the soak test")
	}
	rep := chaos{agents: 2000, workers: 32, duration: *soak, replicas: 3, maxTTL: 5 * time.Second}.run(t)
	fmt.Printf(`soak %s, 2000 agents, 3 replicas, 32 callers
requests to CXone:      %d
masks asked:            %d
unmasks asked:          %d
expiries:               %d
fault changes:          %d
replica crashes:        %d
invariant violations:   %d
lost sessions:          %d
p50 / p99 latency:      %s / %s
max sweeper lag:        %s
goroutines before/after %d / %d
heap in use before/after %.1f MiB / %.1f MiB
`, *soak, rep.requests, rep.masks, rep.unmasks, rep.expiries, rep.faults, rep.kills, rep.violations, rep.lost,
		rep.p50.Round(10*time.Microsecond), rep.p99.Round(time.Millisecond), rep.maxLag,
		rep.goroutinesBefore, rep.goroutinesAfter, float64(rep.heapBefore)/(1<<20), float64(rep.heapAfter)/(1<<20))
}
