package main

import (
	"os"
	"strconv"
	"strings"
)

// processCPU is the user and system CPU time every process used so far, in clock
// ticks (100 per second on Linux), and each one's parent (Linux /proc; nginx's workers
// are its children).
func processCPU() (ticks map[int]int64, parent map[int]int) {
	ticks, parent = map[int]int64{}, map[int]int{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue // it ended meanwhile
		}
		// Fields after the ")" that closes the command name: state is 3rd, ppid 4th,
		// utime 14th, stime 15th.
		line := string(stat)
		fields := strings.Fields(line[strings.LastIndexByte(line, ')')+2:])
		ppid, _ := strconv.Atoi(fields[1])
		ut, _ := strconv.ParseInt(fields[11], 10, 64)
		st, _ := strconv.ParseInt(fields[12], 10, 64)
		ticks[pid], parent[pid] = ut+st, ppid
	}
	return ticks, parent
}

// loadGenerator names maskbench's own process, which drives the load.
const loadGenerator = "load"

// cpuByProcess is the CPU seconds each started process (with its children) and the
// load generator used so far. The ticks are summed as integers: summed as floats in
// the random order of a map, the same ticks could differ in the last bit between two
// readings, and a process that used no CPU showed as -0.000.
func (b *bench) cpuByProcess() map[string]float64 {
	ticks, parent := processCPU()
	sum := map[string]int64{loadGenerator: ticks[os.Getpid()]}
	for name, pid := range b.pids {
		sum[name] += ticks[pid]
		for child, ppid := range parent {
			if ppid == pid {
				sum[name] += ticks[child]
			}
		}
	}
	out := make(map[string]float64, len(sum))
	for name, t := range sum {
		out[name] = float64(t) / 100
	}
	return out
}
