package sessions_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// chaos drives agents through random masks and unmasks (some of them forced) on
// several replicas that share Redis and a CXone simulator, while CXone fails at random
// and replicas crash (their Redis connection is cut mid-operation, leaving their locks
// and claims behind), then lets everything settle and checks the pairing guarantee
// against the simulator's own records. The property test runs it for seconds, the soak
// test for minutes.
type chaos struct {
	agents   int
	workers  int
	duration time.Duration
	replicas int
	maxTTL   time.Duration
	trail    bool // keep every replica's audit trail and check that it leaves nothing open at the end
}

// chaosReplica is a replica with its own Redis connection, so that it can crash.
type chaosReplica struct {
	svc  *sessions.Service
	cx   *upstream.Client
	rdb  *redis.Client
	reg  *prometheus.Registry
	stop context.CancelFunc
	done chan struct{} // closed when its sweeper has stopped and ended its work
}

// ask is what a caller asked of an agent, and when.
type ask struct {
	start, end time.Time
	mask       bool
	ok         bool          // the caller saw it succeed
	ttl        time.Duration // of a mask
	expiresAt  time.Time     // of a successful mask
}

// chaosReport is what a run did and found.
type chaosReport struct {
	requests, accepted, masks, unmasks, expiries, faults, kills int
	violations, lost                                            int
	p50, p99                                                    time.Duration
	maxLag                                                      string
	goroutinesBefore, goroutinesAfter                           int
	heapBefore, heapAfter                                       uint64
}

func (c chaos) run(t *testing.T) chaosReport {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	var rep chaosReport
	rep.goroutinesBefore, rep.heapBefore = runtime.NumGoroutine(), heapInUse()
	_, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	opts, _ := redis.ParseURL(testkit.RedisURL())
	cfg := sessions.Config{DefaultTTL: c.maxTTL, MaxTTL: time.Hour, UpstreamBudget: 800 * time.Millisecond,
		RetryBackoff: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond, ConfirmWindow: time.Second}
	var trail testkit.LogBuffer
	logs := io.Discard
	if c.trail {
		logs = &trail
	}
	log := zerolog.New(testkit.LogSink(t, logs)).With().Timestamp().Logger()
	sweep := sessions.SweeperConfig{Interval: 100 * time.Millisecond, Lease: time.Second, Concurrency: 32, Log: log}

	var mu sync.Mutex
	var live, all []*chaosReplica
	startReplica := func() {
		up := sim.UpstreamConfig()
		up.Timeout = 300 * time.Millisecond
		cc := cfg
		r := &chaosReplica{rdb: redis.NewClient(opts), reg: prometheus.NewRegistry(), done: make(chan struct{})}
		cc.Registerer = r.reg
		r.cx = upstream.New(up)
		r.svc = sessions.NewService(sessions.NewStore(r.rdb, prefix), r.cx, cc)
		ctx, stop := context.WithCancel(context.Background())
		r.stop = stop
		go func() { r.svc.NewSweeper(sweep).Run(ctx); close(r.done) }()
		mu.Lock()
		live, all = append(live, r), append(all, r)
		mu.Unlock()
	}
	pick := func(r *rand.Rand) *chaosReplica {
		mu.Lock()
		defer mu.Unlock()
		return live[r.IntN(len(live))]
	}
	for range c.replicas {
		startReplica()
	}
	defer func() {
		for _, r := range all {
			r.stop()
			r.rdb.Close()
		}
	}()
	calls := map[string]string{}
	for i := range c.agents {
		id := fmt.Sprintf("p-%04d", i)
		calls[id] = sim.StartCall(id, false, true).ID
	}

	var asksMu sync.Mutex
	asks := map[string][]ask{}
	var latencies []time.Duration
	record := func(id string, a ask) {
		asksMu.Lock()
		asks[id] = append(asks[id], a)
		latencies = append(latencies, a.end.Sub(a.start))
		asksMu.Unlock()
	}
	var masks, unmasks atomic.Int64
	chaosEnd := time.Now().Add(c.duration)
	var wg sync.WaitGroup
	for w := range c.workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for time.Now().Before(chaosEnd) {
				id := fmt.Sprintf("p-%04d", r.IntN(c.agents))
				ctx, cancel := context.WithTimeout(log.WithContext(context.Background()), 2*time.Second)
				start := time.Now()
				if r.IntN(2) == 0 {
					ttl := 1 + r.IntN(int(c.maxTTL/time.Second))
					sess, err := pick(r).svc.Mask(ctx, sessions.MaskInput{UserID: id, Caller: "chaos", TTLSeconds: &ttl})
					record(id, ask{start: start, end: time.Now(), mask: true, ok: err == nil, ttl: time.Duration(ttl) * time.Second, expiresAt: sess.ExpiresAt})
					masks.Add(1)
				} else {
					// One unmask in four is an operator's forced one, which opens a
					// session of its own when the agent has none.
					pick(r).svc.Unmask(ctx, sessions.UnmaskInput{UserID: id, Caller: "chaos", Force: r.IntN(4) == 0})
					record(id, ask{start: start, end: time.Now()})
					unmasks.Add(1)
				}
				cancel()
				time.Sleep(time.Duration(r.IntN(40)) * time.Millisecond)
			}
		})
	}
	var internal []string // internal calls started, each the latest of its agent's while it lasts
	for time.Now().Before(chaosEnd) {
		for _, id := range internal {
			sim.EndCall(id)
		}
		internal = internal[:0]
		switch rng.IntN(8) {
		case 0:
			// Half the time with a Retry-After of a second: on a 429 or 503 it holds
			// back every request of the replica that got it.
			sim.SetFaults(cxonesim.Faults{ErrorRate: 0.4, ErrorStatus: []int{500, 502, 503, 504, 429}[rng.IntN(5)], RetryAfter: rng.IntN(2)})
		case 1:
			sim.SetFaults(cxonesim.Faults{LatencyMs: 50 + rng.IntN(400)})
		case 2:
			sim.SetBehaviour(fmt.Sprintf("p-%04d", rng.IntN(c.agents)), 1+rng.IntN(3), 0)
		case 3:
			// From now on CXone answers this agent's masks and unmasks 202 and carries
			// them out a little later (425 meanwhile): the confirmations' path.
			sim.SetBehaviour(fmt.Sprintf("p-%04d", rng.IntN(c.agents)), 0, time.Duration(50+rng.IntN(400))*time.Millisecond)
		case 4:
			// The access key loses its masking permission for a while: CXone refuses
			// every mask and unmask outright (403), also with a new token.
			sim.SetFaults(cxonesim.Faults{DenyMasking: true})
		case 5:
			// An agent takes an internal call for a while: CXone refuses its masks and
			// unmasks outright (422), and the call it masked before stays as it was.
			internal = append(internal, sim.StartCall(fmt.Sprintf("p-%04d", rng.IntN(c.agents)), true, true).ID)
		case 6:
			// Every token revoked, and no new one to be had for a while: masks go out
			// once and meet a 401, or, from a replica started meanwhile, never go out.
			sim.SetFaults(cxonesim.Faults{TokenDown: true})
			sim.RevokeTokens()
		default:
			sim.SetFaults(cxonesim.Faults{})
		}
		rep.faults++
		if rng.IntN(3) == 0 {
			mu.Lock()
			victim := live[rng.IntN(len(live))]
			live = slices.DeleteFunc(live, func(r *chaosReplica) bool { return r == victim })
			mu.Unlock()
			victim.stop()
			victim.rdb.Close() // crash: its next Redis step fails, its locks stay behind
			startReplica()
			rep.kills++
		}
		time.Sleep(300 * time.Millisecond)
	}
	wg.Wait()
	sim.SetFaults(cxonesim.Faults{})
	for _, id := range internal {
		sim.EndCall(id)
	}
	faultsEnd := time.Now()

	// Everything must end by itself.
	survivor := pick(rng).svc
	testkit.Eventually(t, 30*time.Second+c.maxTTL, "every session to close", func() bool {
		page, err := survivor.List(context.Background(), "", 1000)
		return err == nil && len(page.Sessions) == 0
	})

	violation := func(format string, args ...any) {
		rep.violations++
		if rep.violations <= 20 {
			t.Errorf(format, args...)
		}
	}
	if c.trail {
		// Every session closed: the audit trail, read as after a loss of Redis's data,
		// must say so too, once every line is written (a sweeper writes an expiry's
		// line after the session closed).
		for _, r := range all {
			r.stop()
			<-r.done
		}
		open, err := sessions.OpenInTrail(strings.NewReader(trail.String()))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range open {
			violation("%s: the audit trail leaves session %s open (its latest line %s at %s)", s.UserID, s.SessionID, s.LastEvent, s.LastAt.Format(time.StampMilli))
			for line := range strings.SplitSeq(trail.String(), "\n") {
				if strings.Contains(line, `"user_id":"`+s.UserID+`"`) {
					t.Log(line)
				}
			}
		}
	}
	slack := sweep.Interval + sweep.Lease + cfg.UpstreamBudget + cfg.RetryMax + 3*time.Second
	byAgent := map[string][]cxonesim.Request{}
	for _, r := range sim.Requests() {
		byAgent[r.UserID] = append(byAgent[r.UserID], r)
	}
	for id, callID := range calls {
		call, _ := sim.Call(callID)
		if call.Masked {
			rep.lost++
			violation("%s: the call is still masked", id)
		}
		bound := faultsEnd
		for _, a := range asks[id] {
			if a.mask && a.end.Add(c.maxTTL).After(bound) {
				bound = a.end.Add(c.maxTTL)
			}
		}
		for _, span := range call.MaskedSpans() {
			if span.To.IsZero() || span.To.After(bound.Add(slack)) {
				violation("%s: masked from %s to %s, past its bound %s plus %s", id, span.From.Format(time.StampMilli),
					span.To.Format(time.StampMilli), bound.Format(time.StampMilli), slack)
			}
		}
		for _, r := range byAgent[id] {
			if r.Op != "unmask" || r.Status != http.StatusOK && r.Status != http.StatusAccepted {
				continue // a 202 is checked when CXone accepted it: what it does later follows from that
			}
			if early, why := unmaskedEarly(asks[id], r.At); early {
				violation("%s: CXone unmasked at %s: %s", id, r.At.Format(time.StampMilli), why)
			}
		}
	}
	rep.requests, rep.masks, rep.unmasks = len(sim.Requests()), int(masks.Load()), int(unmasks.Load())
	rep.accepted = sim.Count("mask", "", http.StatusAccepted) + sim.Count("unmask", "", http.StatusAccepted)
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		rep.p50, rep.p99 = latencies[n/2], latencies[n*99/100]
	}
	lag := 0.0
	for _, r := range all {
		rep.expiries += int(testkit.Gathered(t, r.reg, "maskgate_session_events_total", "event", "expired"))
		lag = math.Max(lag, histogramMax(t, r.reg, "maskgate_sweeper_lag_seconds"))
	}
	rep.maxLag = fmt.Sprintf("≤ %gs", lag)
	for _, r := range all {
		r.stop()
		r.rdb.Close()
		r.cx.Close()
	}
	// What is left in the heap should be the gateway's, not the simulator's record of
	// every request or this test's own: drop those before measuring.
	all, asks, latencies, byAgent = nil, nil, nil, nil
	sim.Reset()
	settled := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !settled; time.Sleep(50 * time.Millisecond) {
		settled = runtime.NumGoroutine() <= rep.goroutinesBefore+20
	}
	if !settled {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after\n%s", rep.goroutinesBefore, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
	rep.goroutinesAfter, rep.heapAfter = runtime.NumGoroutine(), heapInUse()
	return rep
}

// unmaskedEarly reports whether an unmask CXone accepted at `at` undid a mask a caller
// saw succeed, before that mask's deadline (or an earlier one a later mask asked for),
// with no unmask asked since that mask began.
func unmaskedEarly(asks []ask, at time.Time) (bool, string) {
	var latest *ask
	for k, a := range asks {
		if a.mask && a.ok && a.end.Before(at) && (latest == nil || a.end.After(latest.end)) {
			latest = &asks[k]
		}
	}
	if latest == nil {
		return false, ""
	}
	// A mask's deadline is Redis's TIME when it began (in whole milliseconds, at or
	// after the caller's start) plus its ttl: the caller's start, truncated to the
	// millisecond, plus ttl is its lower bound.
	deadline := latest.expiresAt
	for _, a := range asks {
		if earliest := a.start.Truncate(time.Millisecond).Add(a.ttl); a.mask && a.end.After(latest.start) && a.start.Before(at) && earliest.Before(deadline) {
			deadline = earliest
		}
	}
	if !at.Before(deadline) {
		return false, "" // an expiry
	}
	for _, a := range asks {
		if !a.mask && a.end.After(latest.start) && a.start.Before(at) {
			return false, ""
		}
	}
	return true, fmt.Sprintf("before the deadline %s of the mask that succeeded at %s, with no unmask asked since",
		deadline.Format(time.StampMilli), latest.end.Format(time.StampMilli))
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// histogramMax is the upper bound of the highest non-empty bucket of a histogram.
func histogramMax(t *testing.T, reg *prometheus.Registry, name string) float64 {
	top, prev := 0.0, uint64(0)
	for _, b := range histogram(t, reg, name).GetBucket() {
		if b.GetCumulativeCount() > prev {
			top = math.Max(top, b.GetUpperBound())
		}
		prev = b.GetCumulativeCount()
	}
	return top
}
