package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMaskbenchRunsEndToEnd runs a tiny benchmark, with -floor and two rounds of each
// target: every figure the command promises is printed and every target answered
// without errors.
func TestMaskbenchRunsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis, the simulator, maskgate and nginx")
	}
	if err := os.Chdir("../.."); err != nil { // it builds ./cmd/... from the repository root
		t.Fatal(err)
	}
	defer os.Chdir("cmd/maskbench")
	var out bytes.Buffer
	profiles := t.TempDir()
	err := run(context.Background(), []string{"-floor", "-rounds", "6", "-duration", "1s", "-conns", "4", "-agents", "40", "-rate", "100", "-profile", profiles,
		"-maskgate-env", "GOGC=100"}, &out)
	if err != nil {
		t.Fatalf("maskbench: %v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())
	for _, want := range []string{
		`(?m)^1 +maskgate +\d+ +[\d.]+ms +[\d.]+ms +[\d.]+ms +0 +[\d.]+$`,
		`(?m)^2 +go-floor +\d+ +[\d.]+ms +[\d.]+ms +[\d.]+ms +0 +[\d.]+$`,
		`(?m)^3 +nginx +\d+ +[\d.]+ms +[\d.]+ms +[\d.]+ms +0 +[\d.]+$`,
		`(?m)^6 +nginx +\d+ +[\d.]+ms +[\d.]+ms +[\d.]+ms +0 +[\d.]+$`,
		`throughput maskgate/nginx per round pair: [\d.]+, [\d.]+; median [\d.]+`,
		`throughput go-floor/nginx per round pair: [\d.]+, [\d.]+; median [\d.]+`,
		// At least one round trip per 100 masks, and no more than the scripts.
		`redis per mask: 2\.\d\d scripts \(EVALSHA\) in (0\.(0[1-9]|[1-9]\d)|1\.\d\d|2\.00) round trips`,
		// Two scripts: HSET and ZADD, then HSET (and maskbench's INFO, once).
		`redis per go-floor mask: 2\.00 scripts \(EVALSHA\), 5\.0\d commands including those inside the scripts\n`,
		`maskgate p50 [\d.]+ms p99 [\d.]+ms errors 0`,
		`go-floor +p50 [\d.]+ms p99 [\d.]+ms errors 0`,
		`nginx +p50 [\d.]+ms p99 [\d.]+ms errors 0`,
		// The fixed-rate rounds alternate as the closed-loop ones do: twice each here.
		`fixed rate 100 req/s for 1s, 2 round\(s\) each, alternating:`,
		`maskgate adds p50 -?[\d.]+ms, p99 -?[\d.]+ms \(medians; p99 by pass: -?[\d.]+, -?[\d.]+ ms\)`,
		`go-floor adds p50 -?[\d.]+ms, p99 -?[\d.]+ms \(medians; p99 by pass: -?[\d.]+, -?[\d.]+ ms\)`,
		`CXone tokens issued during the whole run: 2 `,
		// Idle processes may still tick (the sweeper runs during nginx's rounds too).
		// maskgate, redis, cxone-sim, go-floor, nginx, load and the total.
		`(?m)^  during the maskgate rounds( +[\d.]+){7}$`,
		`(?m)^  during the go-floor rounds( +[\d.]+){7}$`,
		`(?m)^  during the nginx    rounds( +[\d.]+){7}$`,
		`profiles of one more maskgate round: go tool pprof -top `,
		`execution trace of one more fixed-rate round \(p50 [\d.]+ms p99 [\d.]+ms errors 0\): go tool trace -pprof=sched `,
		`maskgate's environment adds: GOGC=100\n`,
		// Go's default GOGC, passed through -maskgate-env, collects within a second.
		`maskgate's garbage collections per 1000 requests: [\d.]*[1-9][\d.]*\n`,
		`maskgate's peak resident memory: [1-9]\d* kB\n`,
	} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("output lacks %s", want)
		}
	}
	checkFigures(t, out.String(), []string{"maskgate", "go-floor", "nginx"})
	for _, name := range []string{"cpu.pprof", "allocs.pprof", "trace.out"} {
		if fi, err := os.Stat(filepath.Join(profiles, name)); err != nil || fi.Size() == 0 {
			t.Errorf("-profile wrote no %s: %v", name, err)
		}
	}
}

// TestMedianOfRatios: an even count of round pairs takes the mean of the middle two,
// not the better of them, and the ratios stay in round order for printing.
func TestMedianOfRatios(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{0.3}, 0.3},
		{[]float64{0.25, 0.20}, 0.225},
		{[]float64{0.4, 0.1, 0.2}, 0.2},
		{[]float64{0.4, 0.1, 0.3, 0.2}, 0.25},
	} {
		in := append([]float64(nil), tt.in...)
		if got := median(in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("median reordered its input to %v", in)
		}
	}
}

// Options that would measure something else than the figures say are refused before
// anything starts.
func TestMaskbenchRefusesOptionsItCannotHonour(t *testing.T) {
	for args, want := range map[string]string{
		"6":                    "it takes no arguments (1 given)",
		"-rounds 1":            "-rounds must give each target a round",
		"-floor -rounds 2":     "-rounds must give each target a round",
		"-duration 100ms":      "-duration must be at least 1s",
		"-conns 0":             "-conns must be at least 1",
		"-rate -5":             "-rate 0 or more",
		"-conns 64 -agents 40": "-agents must be at least -conns (64)",
	} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a run that went on would stop at its first step
		var out bytes.Buffer
		if err := run(ctx, strings.Fields(args), &out); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("maskbench %s = %v; want %q", args, err, want)
		}
	}
}

// TestMaskbenchTakesOptionsAtTheirBounds: each bound that refuses a value takes the
// value next to it.
func TestMaskbenchTakesOptionsAtTheirBounds(t *testing.T) {
	for name, o := range map[string]options{
		"the least":                {rounds: 2, duration: time.Second, conns: 1, agents: 1},
		"-floor with 3 rounds":     {rounds: 3, floor: true, duration: time.Second, conns: 1, agents: 1},
		"as many agents as -conns": {rounds: 4, duration: 10 * time.Second, conns: 32, agents: 32, rate: 2000},
	} {
		if err := o.check(0); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
