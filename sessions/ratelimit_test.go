package sessions_test

import (
	"context"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

func TestRateLimitIsSharedByReplicas(t *testing.T) {
	rdb, prefix := testkit.Redis(t)
	a, b := sessions.NewStore(rdb, prefix), sessions.NewStore(rdb, prefix)
	allowed := 0
	var wait time.Duration
	for i := range 20 {
		store := a
		if i%2 == 1 {
			store = b
		}
		w, err := store.Allow(context.Background(), "noisy", 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if w == 0 {
			allowed++
		} else {
			wait = w
		}
	}
	if allowed != 10 {
		t.Errorf("%d of 20 requests through two replicas allowed at 10 per second; want 10", allowed)
	}
	if wait <= 0 || wait > time.Second {
		t.Errorf("wait when limited = %s; want within the window", wait)
	}
	if w, err := a.Allow(context.Background(), "quiet", 10, time.Second); err != nil || w != 0 {
		t.Errorf("another caller = %s, %v; want allowed", w, err)
	}
	// The counters expire (two windows) instead of piling up, one per caller ever seen.
	keys, err := rdb.Keys(context.Background(), "{"+prefix+"}:rate:*").Result()
	if err != nil || len(keys) != 2 {
		t.Fatalf("rate counters = %v, %v; want one per caller", keys, err)
	}
	for _, k := range keys {
		if ttl := rdb.PTTL(context.Background(), k).Val(); ttl <= 0 || ttl > 2*time.Second {
			t.Errorf("rate counter %s expires in %s; want within two windows", k, ttl)
		}
	}
}

// TestRequestWaitingForABusyAgentCountsOnce: a request that waits for another operation
// on its agent tries to begin again and again, and counts against its caller's rate
// once, as the request it is, not at every try.
func TestRequestWaitingForABusyAgentCountsOnce(t *testing.T) {
	c := newCluster(t, 0, nil)
	c.sim.StartCall("a", false, true)
	svc := c.patient(3 * time.Second)
	c.sim.SetFaults(cxonesim.Faults{LatencyMs: 500})
	masked := make(chan error, 1)
	go func() {
		_, err := svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr"})
		masked <- err
	}()
	testkit.Eventually(t, 5*time.Second, "the mask to reach CXone", func() bool { return c.sim.Held() == 1 })
	in := sessions.UnmaskInput{UserID: "a", Caller: "crm", Rate: sessions.Rate{Caller: "crm", PerSecond: 2}}
	if _, err := svc.Unmask(context.Background(), in); err != nil {
		t.Errorf("unmask that waited for the mask = %v; want it done, counted once against 2 per second", err)
	}
	if err := <-masked; err != nil {
		t.Fatal(err)
	}
}
