package sessions

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the sessions' Prometheus metrics; labels are bounded (no user ids).
type metrics struct {
	events         *prometheus.CounterVec
	unmaskFailures prometheus.Counter
	giveUps        prometheus.Counter
	failingFor     prometheus.Histogram
	sweeperLag     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, store *Store) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "maskgate_session_events_total",
			Help: "Mask session decisions, by audit event (masked, re-masked, unmasked, expired, call_ended, unmask_retry, unmask_gave_up, ...; every event from 0).",
		}, []string{"event"}),
		unmaskFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "maskgate_unmask_failures_total",
			Help: "Unmasks that CXone did not do (each is retried until MASKGATE_UNMASK_GIVEUP).",
		}),
		giveUps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "maskgate_unmask_giveups_total",
			Help: "Unmasks given up after MASKGATE_UNMASK_GIVEUP: agents that may still be masked.",
		}),
		failingFor: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "maskgate_unmask_failing_for_seconds",
			Help: "At each unmask CXone did not do, how long that session's unmask had been failing (0 at its first failure): " +
				"how long an agent's recording has not resumed.",
			Buckets: []float64{10, 60, 300, 600, 1800, 3600},
		}),
		sweeperLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "maskgate_sweeper_lag_seconds",
			Help:    "How late after a session's deadline its expiry unmask was sent.",
			Buckets: []float64{.1, .25, .5, 1, 2, 5, 10, 30, 60, 300},
		}),
	}
	for _, e := range auditEvents {
		m.events.WithLabelValues(e.name)
	}
	// Open sessions and unfinished unmasks are read from Redis at scrape time, so every
	// replica reports the same figures; NaN while Redis cannot be read.
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "maskgate_open_sessions",
		Help: "Open mask sessions, all replicas together (read from Redis at scrape time).",
	}, fromRedis(store.openCount))
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "maskgate_unmasks_pending",
		Help: "Sessions whose unmask is accepted but not finished: retried or being confirmed.",
	}, fromRedis(store.unmaskingCount))
	givenUp := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "maskgate_unmasks_given_up",
		Help: "Open sessions whose unmask was given up after MASKGATE_UNMASK_GIVEUP: agents CXone may still mask, " +
			"until an operator's unmask closes them (read from Redis at scrape time).",
	}, fromRedis(store.givenUp))
	// Read from Redis, not from a sweeper: when no sweeper works, this still says so.
	overdueMs := fromRedis(store.overdue)
	overdue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "maskgate_sweeper_overdue_seconds",
		Help: "How far past its due time (a deadline, a retry, a confirmation) the session the sweepers should have looked at " +
			"first is, by Redis's clock: under the sweep interval while they keep up (read from Redis at scrape time).",
	}, func() float64 { return overdueMs() / 1000 })
	up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "maskgate_redis_up",
		Help: "1 when Redis answered this replica's ping at scrape time, else 0.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if store.Ping(ctx) != nil {
			return 0
		}
		return 1
	})
	// Read at scrape time, so that a failover to a Redis configured otherwise shows.
	eviction := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "maskgate_redis_eviction",
		Help: "What Redis's maxmemory-policy may evict of maskgate's keys when full: 0 nothing (noeviction), " +
			"1 Idempotency-Key records and other keys with a time to live (volatile-*), 2 open sessions too (allkeys-*); " +
			"NaN when Redis will not say.",
	}, fromRedis(func(ctx context.Context) (int64, error) {
		policy, err := store.EvictionPolicy(ctx)
		return int64(EvictionUnder(policy)), err
	}))
	pipelines := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "maskgate_redis_script_pipelines_total",
		Help: "Round trips that carried session scripts to Redis; concurrent requests' scripts share them.",
	}, func() float64 { return float64(store.scripts.pipelines.Load()) })
	scripts := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "maskgate_redis_scripts_total",
		Help: "Session scripts sent to Redis; per pipeline, how many requests shared a round trip.",
	}, func() float64 { return float64(store.scripts.scripts.Load()) })
	reg.MustRegister(m.events, m.unmaskFailures, m.giveUps, m.failingFor, m.sweeperLag, open, pending, givenUp, overdue, up, eviction, pipelines, scripts)
	return m
}

// fromRedis is a gauge's value read from Redis at scrape time, within a second: NaN
// when Redis cannot say.
func fromRedis(read func(context.Context) (int64, error)) func() float64 {
	return func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		v, err := read(ctx)
		if err != nil {
			return math.NaN()
		}
		return float64(v)
	}
}

// openCount returns how many sessions are open.
func (s *Store) openCount(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, s.open).Result()
	return n, storeErr(err)
}

// unmaskingCount returns how many unmasks are not finished.
func (s *Store) unmaskingCount(ctx context.Context) (int64, error) {
	n, err := s.rdb.SCard(ctx, s.unmasking).Result()
	return n, storeErr(err)
}

// overdue returns how far past its due time the most overdue session is, in ms.
func (s *Store) overdue(ctx context.Context) (int64, error) {
	ms, err := overdueScript.Run(ctx, s.rdb, []string{s.due}).Int64()
	return ms, storeErr(err)
}

// givenUp returns how many open sessions have had their unmask given up.
func (s *Store) givenUp(ctx context.Context) (int64, error) {
	n, err := givenUpScript.Run(ctx, s.rdb, []string{s.unmasking}, s.sessionPrefix).Int64()
	return n, storeErr(err)
}
