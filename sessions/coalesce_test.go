package sessions_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// A request that joined an operation gets its refusal too, across replicas: identical
// masks of an agent with no call reach CXone once and all hear "no active call".
func TestJoinedRequestsGetTheOperationsRefusal(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.sim.SetFaults(cxonesim.Faults{LatencyMs: 300})
	const n = 10
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := c.replicas[i%2].svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, sessions.ErrNoActiveCall) {
			t.Errorf("Mask = %v; want ErrNoActiveCall for every caller", err)
		}
	}
	if sent := c.sim.Count("mask", "a", 0); sent != 1 {
		t.Errorf("masks sent = %d; want 1 for %d identical requests", sent, n)
	}
	if _, err := c.replicas[0].svc.Get(context.Background(), "a"); !errors.Is(err, sessions.ErrNotMasked) {
		t.Errorf("Get = %v; want no session after the refusal", err)
	}
}

// TestConcurrentIdenticalOperationsCoalesce: identical masks, then identical unmasks,
// sent at once through two replicas reach CXone once and all get that one answer; the
// answer kept for them is the only result record, and an operation nobody joined keeps
// none.
func TestConcurrentIdenticalOperationsCoalesce(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.sim.StartCall("a", false, true)
	ctx := context.Background()
	results := func() int {
		keys, err := c.rdb.Keys(ctx, c.key("result:*")).Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	// Alone: nobody joins, nothing is kept for joiners.
	if _, err := c.replicas[0].svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: new(60)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.replicas[0].svc.Unmask(ctx, sessions.UnmaskInput{UserID: "a", Caller: "ivr"}); err != nil {
		t.Fatal(err)
	}
	if n := results(); n != 0 {
		t.Errorf("%d result records after operations nobody joined; want 0", n)
	}

	c.sim.SetFaults(cxonesim.Faults{LatencyMs: 300})
	for _, op := range []string{"mask", "unmask"} {
		const n = 50
		answers := make(chan sessions.Session, n)
		var failed atomic.Int32
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				svc := c.replicas[i%2].svc
				var s sessions.Session
				var err error
				if op == "mask" {
					s, err = svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: new(60)})
				} else {
					s, err = svc.Unmask(ctx, sessions.UnmaskInput{UserID: "a", Caller: "ivr"})
				}
				if err != nil {
					failed.Add(1)
					return
				}
				answers <- s
			})
		}
		wg.Wait()
		close(answers)
		if failed.Load() != 0 {
			t.Fatalf("%d of %d %ss failed", failed.Load(), n, op)
		}
		var first sessions.Session
		for s := range answers {
			if first.ID == "" {
				first = s
			}
			if s.ID != first.ID || s.State != first.State {
				t.Fatalf("%ss answered different sessions: %+v and %+v", op, first, s)
			}
		}
		if sent := c.sim.Count(op, "a", 0); sent != 2 {
			t.Errorf("%ss sent to CXone = %d for one alone and %d identical concurrent requests; want 2", op, sent, n)
		}
	}
	if n := results(); n != 2 {
		t.Errorf("%d result records after two joined operations; want 2", n)
	}
}

// TestDifferentMasksDoNotCoalesce: only identical requests join one in flight. A mask
// of the agent with another ttlSeconds waits for the one under way, then is sent
// itself, and each caller's answer has its own deadline.
func TestDifferentMasksDoNotCoalesce(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.sim.StartCall("a", false, true)
	c.sim.SetFaults(cxonesim.Faults{LatencyMs: 300})
	ttls := []int{60, 600}
	answers, errs := make([]sessions.Session, len(ttls)), make([]error, len(ttls))
	var wg sync.WaitGroup
	for i, ttl := range ttls {
		wg.Go(func() {
			answers[i], errs[i] = c.replicas[i].svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: new(ttl)})
		})
		if i == 0 {
			testkit.Eventually(t, 5*time.Second, "the first mask to reach CXone", func() bool { return c.sim.Held() == 1 })
		}
	}
	wg.Wait()
	for i, ttl := range ttls {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if left := time.Until(answers[i].ExpiresAt); left > time.Duration(ttl)*time.Second || left < time.Duration(ttl-10)*time.Second {
			t.Errorf("the mask with ttlSeconds %d was answered a session expiring in %s: another request's answer", ttl, left)
		}
	}
	if sent := c.sim.Count("mask", "a", 0); sent != len(ttls) {
		t.Errorf("masks sent to CXone = %d; want one for each of %d different requests", sent, len(ttls))
	}
}

// TestSlowCXoneCallKeepsTheAgentsLock: an operation holds the agent's lock for as long
// as its CXone call may take, its whole budget: an opposite request waits for a call
// that takes most of it, rather than taking the lock over and reaching CXone beside it.
func TestSlowCXoneCallKeepsTheAgentsLock(t *testing.T) {
	c := newCluster(t, 0, nil)
	c.sim.StartCall("a", false, true)
	svc := c.patient(3 * time.Second)
	c.sim.SetFaults(cxonesim.Faults{LatencyMs: 2000}) // two thirds of the budget
	peak := peakHeld(c.sim)
	masked := make(chan error, 1)
	go func() {
		_, err := svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr"})
		masked <- err
	}()
	testkit.Eventually(t, 5*time.Second, "the mask to reach CXone", func() bool { return c.sim.Held() == 1 })
	if _, err := svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	if err := <-masked; err != nil {
		t.Fatal(err)
	}
	if p := peak(); p != 1 {
		t.Errorf("%d CXone operations on the agent were in flight at once; want 1 at a time", p)
	}
}

func TestOppositeOperationsRunOneAfterTheOther(t *testing.T) {
	c := newCluster(t, 2, nil)
	call := c.sim.StartCall("a", false, true)
	c.sim.SetFaults(cxonesim.Faults{LatencyMs: 20})
	peak := peakHeld(c.sim)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			r := c.replicas[i%2].svc
			if i%2 == 0 {
				r.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: new(30 + i)})
			} else {
				r.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "ivr"})
			}
		})
	}
	wg.Wait()
	// One operation at a time: the gateway's record agrees with CXone's.
	got, _ := c.sim.Call(call.ID)
	s, err := c.replicas[0].svc.Get(context.Background(), "a")
	open := err == nil
	if open != got.Masked {
		t.Errorf("gateway open session = %v (%+v) but CXone masked = %v", open, s, got.Masked)
	}
	if open && s.State != sessions.StateMasked {
		t.Errorf("final session state = %s; want masked", s.State)
	}
	if p := peak(); p != 1 {
		t.Errorf("%d CXone operations on the agent were in flight at once; want 1 at a time", p)
	}
}
