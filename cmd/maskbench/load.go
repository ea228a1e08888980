package main

import (
	"context"
	"io"
	"net/http"
	"slices"
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
// w+2·conns ... below -agents, in turn. No two workers share an agent, so no two
// requests for one agent are ever in flight together, however far the workers drift
// apart.
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
			mine := (b.o.agents - w + b.o.conns - 1) / b.o.conns // at least one: -agents ≥ -conns
			for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
				k := w + i%mine*b.o.conns
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
