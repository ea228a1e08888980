package main

import (
	"fmt"
	"io"
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
