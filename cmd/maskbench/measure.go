package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// redisStats reads the calls of every command and of top-level script calls.
func (b *bench) redisStats(ctx context.Context) (all, scripts int64, err error) {
	info, err := b.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
		all += n
		if name == "cmdstat_evalsha" || name == "cmdstat_eval" {
			scripts += n
		}
	}
	return all, scripts, nil
}

// redisPerMask drives target for 3 s and returns what Redis counted per mask: scripts,
// and commands in all (those inside the scripts included); and the masks.
func (b *bench) redisPerMask(ctx context.Context, target string) (scripts, commands, masks float64, err error) {
	all0, scripts0, err := b.redisStats(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	res := b.closedLoop(ctx, target, 3*time.Second)
	all1, scripts1, err := b.redisStats(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	n := float64(res.requests)
	return float64(scripts1-scripts0) / n, float64(all1-all0) / n, n, nil
}

// maskgate's metrics that maskbench reads.
const (
	gcCount         = "go_gc_duration_seconds_count"
	scriptPipelines = "maskgate_redis_script_pipelines_total"
)

// measure warms every target, runs the closed-loop rounds with the targets
// alternating, counts Redis's work per mask, runs the fixed-rate passes and the profile
// round when asked, and prints each round, the figures drawn from them, and which of
// issue 6's targets those figures meet.
func (b *bench) measure(ctx context.Context, out io.Writer) error {
	fmt.Fprintf(out, "maskbench: %d connections, %d agents, rounds of %s; 2 cores shared by every process\n",
		b.o.conns, b.o.agents, b.o.duration)
	if len(b.o.maskgateEnv) > 0 {
		fmt.Fprintf(out, "maskgate's environment adds: %s\n", strings.Join(b.o.maskgateEnv, " "))
	}
	// Warm every target: maskgate's token, connection pools, the sessions of every agent.
	targets := b.targets()
	for _, t := range targets {
		b.closedLoop(ctx, t.url, 2*time.Second)
	}

	fmt.Fprintf(out, "\n%-6s %-9s %10s %9s %9s %9s %7s %16s\n", "round", "target", "req/s", "p50", "p99", "p99.9", "errors", "CPU s/1000 req")
	ratios := map[string][]float64{} // by target: its throughput over nginx's in the next nginx round
	lastRPS := map[string]float64{}
	cpuUsed := map[string]map[string]float64{} // by target, by process: seconds
	requests := map[string]int{}               // by target
	failed := map[string]int{}                 // by target: errors in the rounds and fixed-rate passes
	gcs := 0.0                                 // maskgate's garbage collections during its rounds
	for r := range b.o.rounds {
		t := targets[r%len(targets)]
		cpu0, gc0 := b.cpuByProcess(), b.metric(gcCount)
		res := b.closedLoop(ctx, t.url, b.o.duration)
		cpu1, gc1 := b.cpuByProcess(), b.metric(gcCount)
		if cpuUsed[t.name] == nil {
			cpuUsed[t.name] = map[string]float64{}
		}
		for name := range cpu1 {
			cpuUsed[t.name][name] += cpu1[name] - cpu0[name]
		}
		requests[t.name] += res.requests
		failed[t.name] += res.errors
		cpu := (cpu1[t.name] - cpu0[t.name]) / float64(res.requests) * 1000 // the target's own process
		switch t.name {
		case "maskgate":
			gcs += gc1 - gc0
		case "nginx":
			for name, rps := range lastRPS {
				ratios[name] = append(ratios[name], rps/res.rps())
			}
			clear(lastRPS)
		}
		if t.name != "nginx" {
			lastRPS[t.name] = res.rps()
		}
		fmt.Fprintf(out, "%-6d %-9s %10.0f %9s %9s %9s %7d %16.3f\n", r+1, t.name, res.rps(), ms(res.pct(.5)), ms(res.pct(.99)), ms(res.pct(.999)), res.errors, cpu)
	}
	printCPU(out, targets, cpuUsed, requests)
	if requests["maskgate"] > 0 {
		fmt.Fprintf(out, "maskgate's garbage collections per 1000 requests: %.2f\n", gcs/float64(requests["maskgate"])*1000)
	}
	fmt.Fprintln(out)
	for _, t := range targets {
		if r := ratios[t.name]; len(r) > 0 {
			fmt.Fprintf(out, "throughput %s/nginx per round pair: %s; median %.2f\n", t.name, twoDecimals(r), median(r))
		}
	}

	pipelines0 := b.metric(scriptPipelines)
	scripts, commands, n, err := b.redisPerMask(ctx, b.maskgateURL)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "redis per mask: %.2f scripts (EVALSHA) in %.2f round trips shared with concurrent masks, %.2f commands including those inside the scripts\n",
		scripts, (b.metric(scriptPipelines)-pipelines0)/n, commands)
	if b.o.floor {
		// gofloor claims maskgate's two scripts per mask and nothing else: measured too.
		floorScripts, floorCommands, _, err := b.redisPerMask(ctx, b.floorURL)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "redis per go-floor mask: %.2f scripts (EVALSHA), %.2f commands including those inside the scripts\n", floorScripts, floorCommands)
	}

	var p99Added map[string]float64
	if b.o.rate > 0 {
		p99Added = b.fixedRates(ctx, out, targets, failed)
	}
	if b.o.profile != "" {
		if err := b.profileRound(ctx, out); err != nil {
			return err
		}
	}
	var tokens struct {
		TokensIssued int `json:"tokensIssued"`
	}
	if resp, err := http.Get(b.simURL + "/sim/requests"); err == nil {
		_ = jsonDecode(resp.Body, &tokens)
		resp.Body.Close()
	}
	fmt.Fprintf(out, "CXone tokens issued during the whole run: %d (nginx's one included)\n", tokens.TokensIssued)
	fmt.Fprintf(out, "maskgate's peak resident memory: %s\n", peakRSS(b.pids["maskgate"]))
	printGoals(out, goals(figures{
		ratio: median(ratios["maskgate"]), rate: b.o.rate, p99Added: p99Added["maskgate"],
		scripts: scripts, tokens: tokens.TokensIssued - 1, errors: failed["maskgate"],
	}))
	return nil
}

// metric is a sample of maskgate's metrics, such as go_gc_duration_seconds_count (the
// garbage collections so far); 0 when it cannot be read.
func (b *bench) metric(name string) float64 {
	resp, err := http.Get(b.maskgateURL + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return n
		}
	}
	return 0
}

// fixedRates runs the fixed-rate rounds, alternating the targets as the closed-loop
// rounds do (as many times each as they ran), and prints what each target adds over
// nginx's latency in the same pass, and the median over the passes: a slow spell of
// the shared cores then weighs on one pair, not on one target's only round. It
// returns the medians of the p99 added, in ms, by target, and counts each target's
// errors into failed.
func (b *bench) fixedRates(ctx context.Context, out io.Writer, targets []target, failed map[string]int) map[string]float64 {
	passes := max(1, b.o.rounds/len(targets))
	fmt.Fprintf(out, "\nfixed rate %d req/s for %s, %d round(s) each, alternating:\n", b.o.rate, b.o.duration, passes)
	type added struct{ p50, p99 []float64 } // milliseconds over nginx's, by pass
	adds := map[string]*added{}
	for range passes {
		fixed := make([]result, len(targets))
		for i, t := range targets {
			fixed[i] = b.fixedRate(ctx, t.url, b.o.rate, b.o.duration)
			fmt.Fprintf(out, "  %-8s p50 %s p99 %s errors %d\n", t.name, ms(fixed[i].pct(.5)), ms(fixed[i].pct(.99)), fixed[i].errors)
			failed[t.name] += fixed[i].errors
		}
		ng := fixed[len(fixed)-1]
		for i, t := range targets[:len(targets)-1] {
			if adds[t.name] == nil {
				adds[t.name] = &added{}
			}
			a := adds[t.name]
			a.p50 = append(a.p50, msOf(fixed[i].pct(.5)-ng.pct(.5)))
			a.p99 = append(a.p99, msOf(fixed[i].pct(.99)-ng.pct(.99)))
		}
	}
	p99Added := map[string]float64{}
	for _, t := range targets[:len(targets)-1] {
		a := adds[t.name]
		p99Added[t.name] = median(a.p99)
		fmt.Fprintf(out, "  %s adds p50 %.2fms, p99 %.2fms", t.name, median(a.p50), p99Added[t.name])
		if passes > 1 {
			fmt.Fprintf(out, " (medians; p99 by pass: %s ms)", twoDecimals(a.p99))
		}
		fmt.Fprintln(out)
	}
	return p99Added
}
