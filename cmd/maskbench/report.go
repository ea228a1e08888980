package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// peakRSS is a process's high-water mark of resident memory (Linux: VmHWM), which
// shows what a runtime setting such as GOGC costs in memory.
func peakRSS(pid int) string {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", msOf(d)) }

// msOf is d in milliseconds, to the microsecond.
func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// median is the middle value, or the mean of the two middle ones for an even count.
func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	mid := len(s) / 2
	if len(s)%2 == 0 {
		return (s[mid-1] + s[mid]) / 2
	}
	return s[mid]
}

// twoDecimals lists ratios or milliseconds, in order.
func twoDecimals(r []float64) string {
	parts := make([]string, len(r))
	for i, v := range r {
		parts[i] = fmt.Sprintf("%.2f", v)
	}
	return strings.Join(parts, ", ")
}

// printCPU shows where the shared cores went during each target's rounds: CPU seconds
// per 1,000 requests of every process.
func printCPU(out io.Writer, targets []target, used map[string]map[string]float64, requests map[string]int) {
	procs := []string{"maskgate", "redis", "cxone-sim"}
	for _, t := range targets[1:] {
		procs = append(procs, t.name) // the other targets are a process each
	}
	procs = append(procs, loadGenerator)
	fmt.Fprintf(out, "\nCPU s/1000 req by process %-8s", "")
	for _, p := range procs {
		fmt.Fprintf(out, " %9s", p)
	}
	fmt.Fprintf(out, " %9s\n", "total")
	for _, t := range targets {
		if requests[t.name] == 0 {
			continue
		}
		fmt.Fprintf(out, "  during the %-8s rounds %-8s", t.name, "")
		total := 0.0
		for _, p := range procs {
			v := used[t.name][p] / float64(requests[t.name]) * 1000
			total += v
			fmt.Fprintf(out, " %9.3f", v)
		}
		fmt.Fprintf(out, " %9.3f\n", total)
	}
}

// figures are what one run measured of maskgate, against issue 6's targets.
type figures struct {
	ratio    float64 // maskgate's throughput over nginx's: the median over round pairs
	rate     int     // the fixed rate, requests/s; 0 when none ran
	p99Added float64 // ms over nginx's p99 at that rate: the median over passes
	scripts  float64 // Redis scripts per mask, each one round trip at most
	tokens   int     // CXone tokens maskgate fetched during the run
	errors   int     // maskgate's failed requests in the rounds and passes
}

// goal is one target of issue 6 (docs/PERFORMANCE.md, Targets) with the run's figure
// for it, as printed above it.
type goal struct {
	target, figure string
	met            bool
}

// goals judges a run's figures against the targets, each on its figure as printed (to
// two decimals): a ratio of 0.3996, printed 0.40, meets 0.40, as a reader of the
// output would judge it. The latency target needs a fixed-rate run; one CXone token
// per lifetime is one token in a run, which lasts minutes against a token's hour.
func goals(f figures) []goal {
	printed := func(v float64) float64 { return math.Round(v*100) / 100 }
	g := []goal{{"maskgate/nginx throughput ≥ 0.40", fmt.Sprintf("%.2f", f.ratio), printed(f.ratio) >= 0.40}}
	if f.rate > 0 {
		g = append(g, goal{fmt.Sprintf("p99 at %d req/s ≤ 2 ms above nginx's", f.rate),
			fmt.Sprintf("%.2f ms", f.p99Added), printed(f.p99Added) <= 2})
	}
	return append(g,
		goal{"Redis round trips per mask ≤ 3", fmt.Sprintf("%.2f", f.scripts), printed(f.scripts) <= 3},
		goal{"CXone tokens fetched by maskgate = 1", strconv.Itoa(f.tokens), f.tokens == 1},
		goal{"maskgate's errors = 0", strconv.Itoa(f.errors), f.errors == 0},
	)
}

func printGoals(out io.Writer, goals []goal) {
	fmt.Fprintln(out, "\ntargets (docs/PERFORMANCE.md, Targets), judged on this run's figures:")
	for _, g := range goals {
		verdict := "not met"
		if g.met {
			verdict = "met"
		}
		fmt.Fprintf(out, "  %s: %s, %s\n", g.target, g.figure, verdict)
	}
}
