package sessions_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
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

// TestClaimOfAStoppedReplicaIsFinishedByAnother stops a replica while its expiry unmask
// hangs in CXone: another replica finishes the expiry. (A replica killed with -9 while
// holding a claim is cmd/maskgate's TestKilledReplicasSessionsExpireOnTheSurvivor.)
func TestClaimOfAStoppedReplicaIsFinishedByAnother(t *testing.T) {
	c := newCluster(t, 0, func(_ *sessions.Config, s *sessions.SweeperConfig) { s.Lease = time.Second })
	call := c.sim.StartCall("a", false, true)
	r := c.start()
	if _, err := r.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: new(1)}); err != nil {
		t.Fatal(err)
	}
	c.sim.SetFaults(cxonesim.Faults{Hang: true}) // the first replica's expiry unmask hangs...
	testkit.Eventually(t, 5*time.Second, "the first replica to claim the expiry", func() bool { return c.sim.Held() == 1 })
	r.stop() // ...and the replica stops while holding the claim
	c.sim.SetFaults(cxonesim.Faults{})
	c.start()
	c.closed(t, "a", 10*time.Second)
	if got, _ := c.sim.Call(call.ID); got.Masked {
		t.Error("the call stayed masked")
	}
}

// TestBurstOfExpiriesIsWorkedOffSteadily: a burst of expiries is worked off at most
// Concurrency CXone calls at a time, and claimed again as soon as a call ends rather
// than at the next tick: here the interval is an hour, so the sweeper's first sweep
// is its only tick while the test runs.
func TestBurstOfExpiriesIsWorkedOffSteadily(t *testing.T) {
	c := newCluster(t, 0, func(_ *sessions.Config, s *sessions.SweeperConfig) { s.Concurrency, s.Interval = 4, time.Hour })
	c.sim.SetFaults(cxonesim.Faults{LatencyMs: 20})
	// The masks go through a service without a sweeper, so that the whole burst is
	// due when the replica's sweeper first looks.
	masker := sessions.NewService(sessions.NewStore(c.rdb, c.prefix), upstream.New(c.sim.UpstreamConfig()), c.cfg)
	const agents = 200
	var wg sync.WaitGroup
	for i := range agents {
		id := fmt.Sprintf("b-%d", i)
		c.sim.StartCall(id, false, true)
		wg.Go(func() {
			if _, err := masker.Mask(context.Background(), sessions.MaskInput{UserID: id, Caller: "ivr", TTLSeconds: new(1)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	due := time.Now().Add(time.Second) // each deadline was written before its mask returned
	testkit.Eventually(t, 5*time.Second, "the burst to be due", func() bool { return time.Now().After(due) })
	peak := peakHeld(c.sim)
	c.start()
	testkit.Eventually(t, 20*time.Second, "every session to expire", func() bool {
		page, _ := masker.List(context.Background(), "", 1000)
		return len(page.Sessions) == 0
	})
	if p := peak(); p > 4 {
		t.Errorf("%d CXone calls in flight at once; the sweeper's bound is 4", p)
	}
	if n := c.sim.Count("unmask", "", 0); n != agents {
		t.Errorf("unmasks sent = %d; want %d", n, agents)
	}
}

// TestStoppingReplicaHandsItsClaimsOverAtOnce: a replica that stops ends the unmasks it
// is sending and releases their claims, due at once and with no failed attempt counted,
// so that another replica takes them over without waiting for the lease or a backoff.
func TestStoppingReplicaHandsItsClaimsOverAtOnce(t *testing.T) {
	c := newCluster(t, 0, func(_ *sessions.Config, s *sessions.SweeperConfig) { s.Lease = 20 * time.Second })
	call := c.sim.StartCall("a", false, true)
	first := c.start()
	if _, err := first.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: new(1)}); err != nil {
		t.Fatal(err)
	}
	c.sim.SetFaults(cxonesim.Faults{Hang: true})
	testkit.Eventually(t, 5*time.Second, "the first replica to claim the expiry", func() bool { return c.sim.Held() == 1 })
	first.stop()
	<-first.done // it returns only once its claims are released
	if n := testkit.Gathered(t, first.reg, "maskgate_unmask_failures_total"); n != 0 {
		t.Errorf("the claim handed over counted as %v failed unmasks; want none: CXone did not fail", n)
	}
	c.sim.SetFaults(cxonesim.Faults{})
	c.start()
	// Well within the 20 s lease: the claim was handed over, not left to time out.
	c.closed(t, "a", 5*time.Second)
	if got, _ := c.sim.Call(call.ID); got.Masked {
		t.Error("the call is still masked")
	}
}

// TestSkewedReplicaClocksAgree runs two replicas whose clocks are 30 s behind and 30 s
// ahead: deadlines, leases and retries are Redis's time, so masks still expire within
// the sweep interval, identical masks still coalesce, and nothing waits on a clock.
func TestSkewedReplicaClocksAgree(t *testing.T) {
	c := newCluster(t, 0, nil)
	for _, skew := range []time.Duration{-30 * time.Second, 30 * time.Second} {
		c.cfg.Now = func() time.Time { return time.Now().Add(skew) }
		c.start()
	}
	call := c.sim.StartCall("a", false, true)
	c.sim.SetFaults(cxonesim.Faults{LatencyMs: 200})
	var wg sync.WaitGroup
	ids := make([]string, 10)
	for i := range ids {
		wg.Go(func() {
			s, err := c.replicas[i%2].svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: new(1)})
			if err != nil {
				t.Errorf("mask on a skewed replica: %v", err)
			}
			ids[i] = s.ID
		})
	}
	wg.Wait()
	if n := c.sim.Count("mask", "a", 0); n != 1 {
		t.Errorf("masks sent = %d across skewed replicas; want 1 (coalesced)", n)
	}
	c.sim.SetFaults(cxonesim.Faults{})
	s, _ := c.replicas[0].svc.Get(context.Background(), "a")
	c.closed(t, "a", 5*time.Second)
	var sent time.Time
	for _, r := range c.sim.Requests() {
		if r.Op == "unmask" {
			sent = r.At
		}
	}
	if lag := sent.Sub(s.ExpiresAt); lag > c.sweep.Interval+500*time.Millisecond {
		t.Errorf("expiry sent %s after the deadline by replicas 30 s off; want within the sweep interval", lag)
	}
	if got, _ := c.sim.Call(call.ID); got.Masked {
		t.Error("the call is still masked")
	}
}

// TestLockedDueSessionsDoNotHoldBackTheOthers: a claim that finds the first due
// sessions locked by operations under way skips them and claims the due ones after
// them in the same sweep, instead of leaving those to the next tick. It leaves the
// locked ones alone: an unmask sent while a mask is on its way could reach CXone first,
// and the agent would stay masked with no session to unmask it.
func TestLockedDueSessionsDoNotHoldBackTheOthers(t *testing.T) {
	c := newCluster(t, 0, func(_ *sessions.Config, s *sessions.SweeperConfig) {
		s.Interval = time.Hour // one sweep, when the replica starts: no second chance
		s.Concurrency = 2
	})
	// Masks that hang in CXone hold their agents' locks for 5 s, past their deadlines.
	masker := c.patient(5 * time.Second)
	var hung sync.WaitGroup
	defer hung.Wait()
	locked := []string{"locked-1", "locked-2"}
	for _, id := range locked {
		c.sim.StartCall(id, false, true)
		c.sim.SetHang(id, true)
		hung.Go(func() {
			masker.Mask(context.Background(), sessions.MaskInput{UserID: id, Caller: "ivr", TTLSeconds: new(1)})
		})
	}
	testkit.Eventually(t, 5*time.Second, "both masks to hang in CXone", func() bool { return c.sim.Held() == 2 })
	// Due just after them, so a claim of two sees the locked ones first.
	c.sim.StartCall("free", false, true)
	s, err := masker.Mask(context.Background(), sessions.MaskInput{UserID: "free", Caller: "ivr", TTLSeconds: new(1)})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "the free session's deadline to pass", func() bool {
		now, err := c.rdb.Time(context.Background()).Result()
		return err == nil && !now.Before(s.ExpiresAt)
	})
	if c.sim.Held() != 2 {
		t.Fatal("the hung masks ended before the sweep: the test proves nothing")
	}
	c.start()
	c.closed(t, "free", 3*time.Second)
	for _, id := range locked {
		if s, err := masker.Get(context.Background(), id); err != nil || s.State != sessions.StateMasking {
			t.Errorf("%s, whose mask hangs in CXone past its deadline, = %+v, %v; want it masking, left to its mask", id, s, err)
		}
	}
	if c.sim.Held() < 2 {
		t.Fatal("the hung masks ended before the sessions were read: the test proves nothing")
	}
	for _, id := range locked {
		c.sim.SetHang(id, false)
	}
}

// TestOverdueSessionsShowWhenNoSweeperWorks: the sweepers' backlog is read from Redis,
// not from the sweepers, so that when none works (all stopped, stuck, or failing to
// claim) maskgate_sweeper_overdue_seconds grows past the deadline they missed; once one
// works again, it is back to 0.
func TestOverdueSessionsShowWhenNoSweeperWorks(t *testing.T) {
	c := newCluster(t, 1, nil)
	r := c.replicas[0]
	r.stop() // its sweeper stops; the service still answers
	<-r.done
	call := c.sim.StartCall("a", false, true)
	if _, err := r.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: new(1)}); err != nil {
		t.Fatal(err)
	}
	overdue := func(reg *prometheus.Registry) float64 {
		return testkit.Gathered(t, reg, "maskgate_sweeper_overdue_seconds")
	}
	if late := overdue(r.reg); late != 0 {
		t.Errorf("overdue before the deadline = %v s; want 0", late)
	}
	testkit.Eventually(t, 10*time.Second, "the missed deadline to show", func() bool { return overdue(r.reg) >= 1 })
	if got, _ := c.sim.Call(call.ID); !got.Masked {
		t.Fatal("the call was unmasked with no sweeper running")
	}
	survivor := c.start()
	c.closed(t, "a", 5*time.Second)
	if late := overdue(survivor.reg); late != 0 {
		t.Errorf("overdue once a sweeper worked the expiry = %v s; want 0", late)
	}
}

// While Redis is down every sweep fails to claim; the sweeper says so once, not at
// every sweep (maskgate_redis_up and its alert tell the rest).
func TestSweeperThatCannotClaimSaysSoOnce(t *testing.T) {
	claims := &testkit.CommandCounter{Match: func(redis.Cmder) bool { return true }}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t)), MaxRetries: -1, DialerRetries: 1})
	rdb.AddHook(claims)
	t.Cleanup(func() { rdb.Close() })
	svc := sessions.NewService(sessions.NewStore(rdb, "down"), upstream.New(testkit.NewSim(t).UpstreamConfig()), sessions.Config{
		DefaultTTL: 15 * time.Minute, MaxTTL: 2 * time.Hour,
	})
	var logs testkit.LogBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.NewSweeper(sessions.SweeperConfig{Interval: 10 * time.Millisecond, Log: zerolog.New(&logs)}).Run(ctx)
	}()
	testkit.Eventually(t, 10*time.Second, "ten failed claims", func() bool { return claims.N() >= 10 })
	cancel()
	<-done
	if n := strings.Count(logs.String(), "sweeper could not claim due sessions"); n != 1 {
		t.Errorf("%d lines for %d failed claims; want 1:\n%s", n, claims.N(), logs.String())
	}
}

// TestDeadlineOfAVanishedSessionIsDropped: a deadline whose session is gone (its hash
// evicted by an allkeys policy, or deleted by hand) is dropped at the next sweep, so
// that maskgate_sweeper_overdue_seconds does not grow for ever and page for a session
// no sweeper could ever unmask.
func TestDeadlineOfAVanishedSessionIsDropped(t *testing.T) {
	c := newCluster(t, 1, nil)
	ctx := context.Background()
	due := c.key("due")
	if err := c.rdb.ZAdd(ctx, due, redis.Z{Score: 1, Member: "vanished"}).Err(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "the sweeper to drop the deadline", func() bool {
		return errors.Is(c.rdb.ZScore(ctx, due, "vanished").Err(), redis.Nil)
	})
	if late := testkit.Gathered(t, c.replicas[0].reg, "maskgate_sweeper_overdue_seconds"); late != 0 {
		t.Errorf("overdue once the deadline was dropped = %v s; want 0", late)
	}
}

// TestFailingUnmaskBacksOff: a failing unmask is retried after a wait that doubles from
// RetryBackoff, so that while CXone fails the pending unmasks are not all sent again at
// every sweep.
func TestFailingUnmaskBacksOff(t *testing.T) {
	const backoff, failures = 20 * time.Millisecond, 7
	c := newCluster(t, 1, func(cfg *sessions.Config, s *sessions.SweeperConfig) {
		cfg.RetryBackoff, cfg.RetryMax, cfg.UnmaskGiveUp = backoff, time.Hour, time.Hour
		s.Interval = 10 * time.Millisecond
	})
	c.sim.StartCall("a", false, true)
	svc := c.replicas[0].svc
	if _, err := svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	c.sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusBadGateway})
	began := time.Now()
	if _, err := svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, fmt.Sprintf("the unmask to fail %d times", failures), func() bool {
		return testkit.Gathered(t, c.replicas[0].reg, "maskgate_unmask_failures_total") >= failures
	})
	// The waits between them: backoff, twice that, four times, ...
	least := backoff * (1<<(failures-1) - 1)
	if took := time.Since(began); took < least {
		t.Errorf("%d failed unmasks in %s; want at least %s from the first to the last, the waits doubling from %s", failures, took, least, backoff)
	}
}
