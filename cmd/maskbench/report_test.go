package main

import (
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// round is one line of maskbench's table of rounds, as printed.
type round struct {
	target              string
	rps, p50, p99, p999 float64
	cpu                 float64 // the target's own CPU s/1000 req
}

var roundLine = regexp.MustCompile(`(?m)^\d+ +(\S+) +(\d+) +([\d.]+)ms +([\d.]+)ms +([\d.]+)ms +\d+ +([\d.]+)$`)

func rounds(t *testing.T, out string) []round {
	var rs []round
	for _, m := range roundLine.FindAllStringSubmatch(out, -1) {
		rs = append(rs, round{target: m[1], rps: number(t, m[2]), p50: number(t, m[3]), p99: number(t, m[4]), p999: number(t, m[5]), cpu: number(t, m[6])})
	}
	return rs
}

func number(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%q in maskbench's output is not a number", s)
	}
	return v
}

// numbers are the numbers that pattern's first group lists, comma-separated, in out.
func numbers(t *testing.T, out, pattern string) []float64 {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output lacks %s", pattern)
	}
	var v []float64
	for s := range strings.SplitSeq(m[1], ", ") {
		v = append(v, number(t, s))
	}
	return v
}

// near: printed figures agree to their last printed digit, give or take rounding.
func near(got, want, tolerance float64) bool { return math.Abs(got-want) <= tolerance }

// checkFigures holds maskbench's summary figures to the rounds they summarize, as
// printed: a figure computed from the wrong round, target or process fails here.
func checkFigures(t *testing.T, out string, targets []string) {
	t.Helper()
	rs := rounds(t, out)
	if len(rs) == 0 {
		t.Fatal("no rounds in the output")
	}
	for i, r := range rs {
		if want := targets[i%len(targets)]; r.target != want {
			t.Errorf("round %d is %s's, want %s's", i+1, r.target, want)
		}
		if !(r.rps > 0 && r.p50 <= r.p99 && r.p99 <= r.p999 && r.cpu > 0) {
			t.Errorf("round %d: %v req/s, p50 %v ≤ p99 %v ≤ p99.9 %v, CPU %v does not hold", i+1, r.rps, r.p50, r.p99, r.p999, r.cpu)
		}
	}

	// Each target's throughput over nginx's in the round pair's nginx round.
	var compared []string
	for _, m := range regexp.MustCompile(`(?m)^throughput (\S+)/nginx per round pair`).FindAllStringSubmatch(out, -1) {
		compared = append(compared, m[1])
	}
	if !slices.Equal(compared, targets[:len(targets)-1]) {
		t.Errorf("throughput compared with nginx's for %v, want %v", compared, targets[:len(targets)-1])
	}
	for j, name := range targets[:len(targets)-1] {
		var want []float64
		for i := j; i+len(targets)-1-j < len(rs); i += len(targets) {
			want = append(want, rs[i].rps/rs[i+len(targets)-1-j].rps)
		}
		got := numbers(t, out, name+`/nginx per round pair: ([\d., ]+);`)
		if len(got) != len(want) {
			t.Errorf("%s: %d ratios, want one per round pair (%d)", name, len(got), len(want))
			continue
		}
		for k := range want {
			if !near(got[k], want[k], 0.006) {
				t.Errorf("%s/nginx ratio of pair %d is %v; its rounds give %.3f", name, k+1, got[k], want[k])
			}
		}
		if m := numbers(t, out, name+`/nginx per round pair: .*; median ([\d.]+)`); !near(m[0], median(got), 0.011) {
			t.Errorf("%s/nginx median %v; the ratios give %.3f", name, m[0], median(got))
		}
	}

	// Redis's commands per mask count the scripts and the commands they run.
	scripts := numbers(t, out, `redis per mask: ([\d.]+) scripts`)[0]
	if commands := numbers(t, out, `redis per mask: .*, ([\d.]+) commands including`)[0]; commands <= scripts {
		t.Errorf("%v Redis commands per mask for %v scripts", commands, scripts)
	}

	// The CPU table: each row's total is the sum of its processes, the target's own
	// figure over its rounds lies within its rounds' own, and the processes that
	// served a target's rounds used CPU in them.
	procs := strings.Fields(regexp.MustCompile(`(?m)^CPU s/1000 req by process +(.*)$`).FindStringSubmatch(out)[1])
	rows := map[string][]float64{}
	for _, m := range regexp.MustCompile(`(?m)^  during the (\S+) +rounds +(.*)$`).FindAllStringSubmatch(out, -1) {
		for s := range strings.FieldsSeq(m[2]) {
			rows[m[1]] = append(rows[m[1]], number(t, s))
		}
	}
	for _, name := range targets {
		row := rows[name]
		if len(row) != len(procs) {
			t.Errorf("the %s row has %d figures for %d columns", name, len(row), len(procs))
			continue
		}
		busy := []string{name, "cxone-sim", loadGenerator}
		if name != "nginx" {
			busy = append(busy, "redis")
		}
		sum := 0.0
		for i, v := range row[:len(row)-1] {
			sum += v
			if slices.Contains(busy, procs[i]) && v == 0 {
				t.Errorf("during the %s rounds %s used no CPU", name, procs[i])
			}
		}
		if total := row[len(row)-1]; !near(total, sum, 0.0005*float64(len(row))) {
			t.Errorf("during the %s rounds the total is %v; its processes sum to %.3f", name, total, sum)
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, r := range rs {
			if r.target == name {
				lo, hi = min(lo, r.cpu), max(hi, r.cpu)
			}
		}
		if v := row[slices.Index(procs, name)]; v < lo-0.001 || v > hi+0.001 {
			t.Errorf("%s's CPU over its rounds %v lies outside its rounds' %v…%v", name, v, lo, hi)
		}
	}

	// The fixed rate: what each target adds over nginx's p50 and p99 in the same
	// pass, and the medians over the passes.
	type pass struct{ p50, p99 float64 }
	passes := map[string][]pass{}
	for _, m := range regexp.MustCompile(`(?m)^  (\S+) +p50 ([\d.]+)ms p99 ([\d.]+)ms errors \d+$`).FindAllStringSubmatch(out, -1) {
		passes[m[1]] = append(passes[m[1]], pass{number(t, m[2]), number(t, m[3])})
	}
	ng := passes["nginx"]
	for _, name := range targets[:len(targets)-1] {
		got := numbers(t, out, name+` adds p50 .*p99 by pass: ([-\d., ]+) ms\)`)
		if len(got) != len(ng) || len(passes[name]) != len(ng) {
			t.Errorf("%s: %d p99s added, %d passes, nginx %d", name, len(got), len(passes[name]), len(ng))
			continue
		}
		var p50s []float64
		for k, p := range passes[name] {
			p50s = append(p50s, p.p50-ng[k].p50)
			if want := p.p99 - ng[k].p99; !near(got[k], want, 0.02) {
				t.Errorf("%s adds %v to nginx's p99 in pass %d; the pass's lines give %.2f", name, got[k], k+1, want)
			}
		}
		medians := regexp.MustCompile(name + ` adds p50 (-?[\d.]+)ms, p99 (-?[\d.]+)ms`).FindStringSubmatch(out)
		if medians == nil {
			t.Errorf("output lacks what %s adds", name)
		} else if !near(number(t, medians[1]), median(p50s), 0.02) || !near(number(t, medians[2]), median(got), 0.011) {
			t.Errorf("%s adds p50 %s, p99 %s; the passes give %.3f and %.3f", name, medians[1], medians[2], median(p50s), median(got))
		}
	}

	checkGoals(t, out)
}

// checkGoals holds the targets' verdicts, the last lines, to maskgate's figures
// printed above them, and to the targets' bounds.
func checkGoals(t *testing.T, out string) {
	t.Helper()
	type judged struct {
		figure float64
		met    bool
	}
	goals := map[string]judged{} // by target, its words up to the first digit
	for _, m := range regexp.MustCompile(`(?m)^  (.+): (-?[\d.]+)(?: ms)?, (met|not met)$`).FindAllStringSubmatch(out, -1) {
		name, _, _ := strings.Cut(m[1], " at ") // "p99 at 100 req/s …" is "p99"
		goals[name] = judged{number(t, m[2]), m[3] == "met"}
	}
	errors := 0.0
	for _, m := range regexp.MustCompile(`(?m)^(?:\d+ +maskgate +\d+ +\S+ +\S+ +\S+ +(\d+) |  maskgate +p50 .* errors (\d+)$)`).FindAllStringSubmatch(out, -1) {
		errors += number(t, m[1]+m[2])
	}
	for _, tc := range []struct {
		name  string
		want  float64 // the figure printed above
		bound func(float64) bool
	}{
		{"maskgate/nginx throughput ≥ 0.40", numbers(t, out, `maskgate/nginx per round pair: .*; median ([\d.]+)`)[0], func(v float64) bool { return v >= 0.40 }},
		{"p99", numbers(t, out, `maskgate adds p50 -?[\d.]+ms, p99 (-?[\d.]+)ms`)[0], func(v float64) bool { return v <= 2 }},
		{"Redis round trips per mask ≤ 3", numbers(t, out, `redis per mask: ([\d.]+) scripts`)[0], func(v float64) bool { return v <= 3 }},
		{"CXone tokens fetched by maskgate = 1", numbers(t, out, `CXone tokens issued during the whole run: (\d+) `)[0] - 1, func(v float64) bool { return v == 1 }},
		{"maskgate's errors = 0", errors, func(v float64) bool { return v == 0 }},
	} {
		g, ok := goals[tc.name]
		switch {
		case !ok:
			t.Errorf("no verdict on %q among %v", tc.name, goals)
		case g.figure != tc.want:
			t.Errorf("%s: judged on %v; the output above prints %v", tc.name, g.figure, tc.want)
		case g.met != tc.bound(g.figure):
			t.Errorf("%s: %v judged met %v", tc.name, g.figure, g.met)
		}
	}
}

// TestGoalsAreJudgedOnTheFiguresAsPrinted: each target is judged on its figure as the
// output prints it, at the bound included, and the latency target only when a
// fixed-rate run measured it.
func TestGoalsAreJudgedOnTheFiguresAsPrinted(t *testing.T) {
	type verdict struct {
		figure string
		met    bool
	}
	for _, tc := range []struct {
		name string
		f    figures
		want []verdict
	}{
		{"each at its bound", figures{ratio: 0.3996, rate: 2000, p99Added: 2.004, scripts: 3, tokens: 1, errors: 0},
			[]verdict{{"0.40", true}, {"2.00 ms", true}, {"3.00", true}, {"1", true}, {"0", true}}},
		{"each past it", figures{ratio: 0.394, rate: 2000, p99Added: 2.006, scripts: 3.006, tokens: 2, errors: 1},
			[]verdict{{"0.39", false}, {"2.01 ms", false}, {"3.01", false}, {"2", false}, {"1", false}}},
		{"no token, faster than nginx", figures{ratio: 1.2, rate: 2000, p99Added: -0.5, scripts: 0.3, tokens: 0},
			[]verdict{{"1.20", true}, {"-0.50 ms", true}, {"0.30", true}, {"0", false}, {"0", true}}},
		{"no fixed rate", figures{ratio: 0.41, scripts: 2, tokens: 1},
			[]verdict{{"0.41", true}, {"2.00", true}, {"1", true}, {"0", true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []verdict
			for _, g := range goals(tc.f) {
				got = append(got, verdict{g.figure, g.met})
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("goals(%+v) = %v; want %v", tc.f, got, tc.want)
			}
		})
	}
	var out strings.Builder
	printGoals(&out, goals(figures{ratio: 0.36, rate: 2000, p99Added: 11.82, scripts: 2, tokens: 1}))
	for _, want := range []string{
		"  maskgate/nginx throughput ≥ 0.40: 0.36, not met\n",
		"  p99 at 2000 req/s ≤ 2 ms above nginx's: 11.82 ms, not met\n",
		"  Redis round trips per mask ≤ 3: 2.00, met\n",
		"  CXone tokens fetched by maskgate = 1: 1, met\n",
		"  maskgate's errors = 0: 0, met\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed targets lack %q:\n%s", want, out.String())
		}
	}
}
