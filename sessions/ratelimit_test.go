package sessions_test

import (
	"context"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
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
