package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/testkit"
)

// TestSentinelFailoverLosesNothingAcknowledged runs the gateway on a Sentinel setup
// (one master, one replica, three sentinels) and kills the master with SIGKILL while
// masks and unmasks run: every session the master had acknowledged to its replica is
// still there after the failover, and the gateway carries on without a restart.
func TestSentinelFailoverLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five redis-server processes")
	}
	// The master alone may evict (volatile-lru, with no maxmemory: it never does here):
	// the gateway must report the master's policy.
	master := testkit.StartRedis(t, false, "appendonly yes", "maxmemory-policy volatile-lru")
	replica := testkit.StartRedis(t, false, "appendonly yes", "replicaof 127.0.0.1 "+strconv.Itoa(master.Port))
	// The replica's initial sync takes a moment; WAIT below only counts a linked replica.
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer rc.Close()
	testkit.Eventually(t, 30*time.Second, "the replica to link to its master", func() bool {
		info, err := rc.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	var sentinels []string
	for range 3 {
		s := testkit.StartRedis(t, true,
			"sentinel monitor mg 127.0.0.1 "+strconv.Itoa(master.Port)+" 2",
			"sentinel down-after-milliseconds mg 1000",
			"sentinel failover-timeout mg 10000")
		sentinels = append(sentinels, s.Addr())
	}
	sim := testkit.NewSim(t)
	_, prefix := testkit.Redis(t) // only for a fresh prefix
	e := env(sim, prefix)
	e["MASKGATE_REDIS_URL"] = fmt.Sprintf("redis://%s/0?master_name=mg&addr=%s&addr=%s", sentinels[0], sentinels[1], sentinels[2])
	e["MASKGATE_MASK_TTL"] = "10m"
	s := start(t, nil, e)
	if line := s.logLine(t, "Redis may evict maskgate's keys when full; set maxmemory-policy noeviction"); line["maxmemory_policy"] != "volatile-lru" {
		t.Errorf("the policy reported is not the master's: %v", line)
	}
	token := callerToken(t, "recordings:mask recordings:unmask recordings:read")
	call := func(method, path string) int {
		req, _ := http.NewRequest(method, "http://"+s.addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	const before = 20
	for i := range before {
		id := "s-" + strconv.Itoa(i)
		sim.StartCall(id, false, true)
		if status := call("POST", "/v1/agents/"+id+"/mask"); status != 200 {
			t.Fatalf("mask %s before the failover = %d", id, status)
		}
	}
	// What the master acknowledged to its replica is what must survive.
	mc := redis.NewClient(&redis.Options{Addr: master.Addr()})
	if n, err := mc.Wait(context.Background(), 1, 5*time.Second).Result(); err != nil || n < 1 {
		t.Fatalf("WAIT = %d, %v; the replica did not acknowledge", n, err)
	}
	mc.Close()

	// Traffic during the failover: masks and unmasks of other agents.
	stop := make(chan struct{})
	var during, failed atomic.Int32
	var wg sync.WaitGroup
	for w := range 4 {
		id := "d-" + strconv.Itoa(w)
		sim.StartCall(id, false, true)
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				path := "/v1/agents/" + id + "/mask"
				if i%2 == 1 {
					path = "/v1/agents/" + id + "/unmask"
				}
				start := time.Now()
				status := call("POST", path)
				during.Add(1)
				if status >= 500 || status == 0 {
					failed.Add(1)
				}
				if time.Since(start) > 20*time.Second {
					t.Errorf("a request took %s during the failover", time.Since(start))
				}
			}
		})
	}
	master.Kill()
	testkit.Eventually(t, 30*time.Second, "the sentinels to promote the replica", func() bool {
		role, err := rc.Do(context.Background(), "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master"
	})
	testkit.Eventually(t, 30*time.Second, "the gateway to write to the new master", func() bool {
		return call("POST", "/v1/agents/s-0/mask") == 200
	})
	close(stop)
	wg.Wait()
	t.Logf("%d requests during the failover, %d answered 5xx", during.Load(), failed.Load())

	for i := range before {
		id := "s-" + strconv.Itoa(i)
		if status := call("GET", "/v1/agents/"+id+"/mask"); status != 200 {
			t.Errorf("session %s, acknowledged before the failover, is gone (%d)", id, status)
		}
		if status := call("POST", "/v1/agents/"+id+"/unmask"); status != 200 {
			t.Errorf("unmask %s after the failover = %d", id, status)
		}
	}
	if n := sim.Count("unmask", "", 200); n < before {
		t.Errorf("unmasks after the failover = %d; want at least %d", n, before)
	}
}
