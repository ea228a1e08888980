package sessions_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream"
)

// replica is one gateway's sessions service and sweeper, sharing Redis and CXone with
// the others.
type replica struct {
	svc  *sessions.Service
	reg  *prometheus.Registry
	stop context.CancelFunc
	done chan struct{}
}

type cluster struct {
	rdb      *redis.Client
	prefix   string
	sim      *testkit.Sim
	replicas []*replica
	cfg      sessions.Config
	sweep    sessions.SweeperConfig
}

func newCluster(t *testing.T, n int, tweak func(*sessions.Config, *sessions.SweeperConfig)) *cluster {
	t.Helper()
	rdb, prefix := testkit.Redis(t)
	c := &cluster{rdb: rdb, prefix: prefix, sim: testkit.NewSim(t),
		cfg:   sessions.Config{DefaultTTL: time.Minute, MaxTTL: time.Hour, UpstreamBudget: 2 * time.Second, RetryBackoff: 100 * time.Millisecond},
		sweep: sessions.SweeperConfig{Interval: 200 * time.Millisecond, Lease: 2 * time.Second, Log: zerolog.New(testkit.LogSink(t, io.Discard))}}
	if tweak != nil {
		tweak(&c.cfg, &c.sweep)
	}
	for range n {
		c.start()
	}
	t.Cleanup(func() {
		for _, r := range c.replicas {
			r.stop()
			<-r.done
		}
	})
	return c
}

// start adds a replica and runs its sweeper.
func (c *cluster) start() *replica {
	up := c.sim.UpstreamConfig()
	up.Timeout = 500 * time.Millisecond
	cfg := c.cfg
	r := &replica{reg: prometheus.NewRegistry(), done: make(chan struct{})}
	cfg.Registerer = r.reg
	up.Registerer = r.reg
	r.svc = sessions.NewService(sessions.NewStore(c.rdb, c.prefix), upstream.New(up), cfg)
	ctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	go func() { r.svc.NewSweeper(c.sweep).Run(ctx); close(r.done) }()
	c.replicas = append(c.replicas, r)
	return r
}

// key is the Redis key of the cluster's store named name ("due", "result:*"), for the
// tests that look at Redis itself.
func (c *cluster) key(name string) string { return "{" + c.prefix + "}:" + name }

// patient is a service on the cluster's store, apart from its replicas, whose CXone
// calls are each one attempt that may take the whole of budget.
func (c *cluster) patient(budget time.Duration) *sessions.Service {
	up := c.sim.UpstreamConfig()
	up.Timeout, up.MaxAttempts, up.Registerer = budget, 1, prometheus.NewRegistry()
	cfg := c.cfg
	cfg.UpstreamBudget, cfg.Registerer = budget, prometheus.NewRegistry()
	return sessions.NewService(sessions.NewStore(c.rdb, c.prefix), upstream.New(up), cfg)
}

// closed waits until the agent has no open session.
func (c *cluster) closed(t *testing.T, userID string, within time.Duration) {
	t.Helper()
	testkit.Eventually(t, within, userID+"'s session to close", func() bool {
		_, err := c.replicas[0].svc.Get(context.Background(), userID)
		return errors.Is(err, sessions.ErrNotMasked)
	})
}

// histogram is a histogram (without labels) that reg gathers.
func histogram(t *testing.T, reg *prometheus.Registry, name string) *dto.Histogram {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no histogram %s", name)
	return nil
}

// peakHeld samples how many CXone requests the simulator holds at once until the
// returned function is called, which answers the peak.
func peakHeld(sim *testkit.Sim) func() int {
	var peak atomic.Int32
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if h := int32(sim.Held()); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() int { close(stop); <-done; return int(peak.Load()) }
}
