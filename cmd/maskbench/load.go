package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// result is one round's figures.
type result struct {
	requests, errors int
	elapsed          time.Duration
	latencies        []time.Duration
}

func (r result) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(float64(len(r.latencies))*p))]
}

// newClient keeps one connection per worker, as wrk does.
func newClient(conns int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute,
	}}
}

// send is one POST mask of agent k; false on an error or a status other than 200.
func send(c *http.Client, base, token string, k int) bool {
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/agents/"+agent(k)+"/mask", strings.NewReader(`{"ttlSeconds":600}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// closedLoop drives base with conns workers for d; worker w masks agents w, w+conns,
// ... so that no two requests for one agent are ever in flight together.
func (b *bench) closedLoop(ctx context.Context, base string, d time.Duration) result {
	c := newClient(b.o.conns)
	defer c.CloseIdleConnections()
	var mu sync.Mutex
	var res result
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for w := range b.o.conns {
		wg.Go(func() {
			var lat []time.Duration
			errs := 0
			for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
				k := (w + i*b.o.conns) % b.o.agents
				t0 := time.Now()
				if !send(c, base, b.token, k) {
					errs++
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.requests = len(res.latencies)
	slices.Sort(res.latencies)
	return res
}

// fixedRate sends rate requests per second for d whatever the answers' pace, and
// measures each from when it was due (no coordinated omission).
func (b *bench) fixedRate(ctx context.Context, base string, rate int, d time.Duration) result {
	c := newClient(256)
	defer c.CloseIdleConnections()
	type job struct {
		due time.Time
		k   int
	}
	jobs := make(chan job, rate)
	var mu sync.Mutex
	var res result
	var wg sync.WaitGroup
	for range 256 {
		wg.Go(func() {
			for j := range jobs {
				ok := send(c, base, b.token, j.k)
				lat := time.Since(j.due)
				mu.Lock()
				res.latencies = append(res.latencies, lat)
				if !ok {
					res.errors++
				}
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if due.Sub(start) >= d || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Until(due))
		jobs <- job{due: due, k: i % b.o.agents}
	}
	close(jobs)
	wg.Wait()
	res.elapsed = time.Since(start)
	res.requests = len(res.latencies)
	slices.Sort(res.latencies)
	return res
}

// redisStats reads the calls of every command and of top-level script calls.
func (b *bench) redisStats(ctx context.Context) (all, scripts int64, err error) {
	info, err := b.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(info, "\n") {
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

// maskgate's metrics that maskbench reads.
const (
	gcCount         = "go_gc_duration_seconds_count"
	scriptPipelines = "maskgate_redis_script_pipelines_total"
)

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
		cpu := "-"
		switch t.name {
		case "maskgate":
			cpu = fmt.Sprintf("%.3f", (cpu1["maskgate"]-cpu0["maskgate"])/float64(res.requests)*1000)
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
		fmt.Fprintf(out, "%-6d %-9s %10.0f %9s %9s %9s %7d %16s\n", r+1, t.name, res.rps(), ms(res.pct(.5)), ms(res.pct(.99)), ms(res.pct(.999)), res.errors, cpu)
	}
	printCPU(out, targets, cpuUsed, requests)
	if requests["maskgate"] > 0 {
		fmt.Fprintf(out, "maskgate's garbage collections per 1000 requests: %.2f\n", gcs/float64(requests["maskgate"])*1000)
	}
	fmt.Fprintln(out)
	for _, t := range targets {
		if r := ratios[t.name]; len(r) > 0 {
			fmt.Fprintf(out, "throughput %s/nginx per round pair: %s; median %.2f\n", t.name, fmtRatios(r), median(r))
		}
	}

	all0, scripts0, err := b.redisStats(ctx)
	if err != nil {
		return err
	}
	pipelines0 := b.metric(scriptPipelines)
	res := b.closedLoop(ctx, b.maskgateURL, 3*time.Second)
	all1, scripts1, err := b.redisStats(ctx)
	if err != nil {
		return err
	}
	n := float64(res.requests)
	fmt.Fprintf(out, "redis per mask: %.2f scripts (EVALSHA) in %.2f round trips shared with concurrent masks, %.2f commands including those inside the scripts\n",
		float64(scripts1-scripts0)/n, (b.metric(scriptPipelines)-pipelines0)/n, float64(all1-all0)/n)

	if b.o.rate > 0 {
		fmt.Fprintf(out, "\nfixed rate %d req/s for %s:\n", b.o.rate, b.o.duration)
		fixed := make([]result, len(targets))
		for i, t := range targets {
			fixed[i] = b.fixedRate(ctx, t.url, b.o.rate, b.o.duration)
			fmt.Fprintf(out, "  %-8s p50 %s p99 %s errors %d\n", t.name, ms(fixed[i].pct(.5)), ms(fixed[i].pct(.99)), fixed[i].errors)
		}
		ng := fixed[len(fixed)-1]
		for i, t := range targets[:len(targets)-1] {
			fmt.Fprintf(out, "  %s adds p50 %s, p99 %s\n", t.name, ms(fixed[i].pct(.5)-ng.pct(.5)), ms(fixed[i].pct(.99)-ng.pct(.99)))
		}
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

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

// median is the middle value, or the mean of the two middle ones for an even count.
func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	mid := len(s) / 2
	if len(s)%2 == 0 {
		return (s[mid-1] + s[mid]) / 2
	}
	return s[mid]
}

func fmtRatios(r []float64) string {
	parts := make([]string, len(r))
	for i, v := range r {
		parts[i] = fmt.Sprintf("%.2f", v)
	}
	return strings.Join(parts, ", ")
}

// profileRound drives maskgate for one more round while its profiler records CPU and
// allocations, and writes both to the -profile directory for `go tool pprof`; with a
// fixed rate, then one more fixed-rate round while the runtime records an execution
// trace, which shows what the latency's tail waits for (`go tool trace -pprof=sched`).
func (b *bench) profileRound(ctx context.Context, out io.Writer) error {
	if err := os.MkdirAll(b.o.profile, 0o755); err != nil {
		return err
	}
	secs := max(1, int(b.o.duration.Seconds()))
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, p := range []struct{ endpoint, file string }{{"profile", "cpu.pprof"}, {"allocs", "allocs.pprof"}} {
		wg.Go(func() { errs[i] = b.fetchProfile(p.endpoint, secs, filepath.Join(b.o.profile, p.file)) })
	}
	b.closedLoop(ctx, b.maskgateURL, time.Duration(secs)*time.Second)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(out, "profiles of one more maskgate round: go tool pprof -top %s/cpu.pprof (and allocs.pprof)\n", b.o.profile)
	if b.o.rate == 0 {
		return nil
	}
	var err error
	wg.Go(func() { err = b.fetchProfile("trace", secs, filepath.Join(b.o.profile, "trace.out")) })
	r := b.fixedRate(ctx, b.maskgateURL, b.o.rate, time.Duration(secs)*time.Second)
	wg.Wait()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "execution trace of one more fixed-rate round (p50 %s p99 %s errors %d): go tool trace -pprof=sched %s/trace.out\n",
		ms(r.pct(.5)), ms(r.pct(.99)), r.errors, b.o.profile)
	return nil
}

// fetchProfile saves maskgate's named profile over the next secs seconds.
func (b *bench) fetchProfile(name string, secs int, path string) error {
	resp, err := http.Get(b.debugURL + "/debug/pprof/" + name + "?seconds=" + strconv.Itoa(secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("maskgate's %s profile: %s", name, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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
