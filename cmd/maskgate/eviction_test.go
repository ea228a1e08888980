package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
)

// TestEvictionPolicyIsReported starts the gateway on Redis servers of its own with each
// kind of maxmemory-policy: what the policy may drop of maskgate's keys is logged once
// Redis answers, at a level that says how bad it is, and exported as a metric read at
// every scrape (README, Redis).
func TestEvictionPolicyIsReported(t *testing.T) {
	const evicts = "Redis may evict maskgate's keys when full; set maxmemory-policy noeviction"
	cases := []struct {
		name   string
		conf   []string // the Redis server's configuration
		msg    string
		level  string
		policy string // maxmemory_policy, when Redis said it
		// mayEvict is part of may_evict; "" when the line must have none.
		mayEvict string
		metric   string // maskgate_redis_eviction
	}{
		{name: "default", msg: "Redis evicts nothing of maskgate's: full, it refuses writes", level: "info", policy: "noeviction", metric: "0"},
		{name: "volatile-lru", conf: []string{"maxmemory-policy volatile-lru"},
			msg: evicts, level: "warn", policy: "volatile-lru", mayEvict: "Idempotency-Key records", metric: "1"},
		{name: "allkeys-lfu", conf: []string{"maxmemory-policy allkeys-lfu"},
			msg: evicts, level: "error", policy: "allkeys-lfu", mayEvict: "open sessions", metric: "2"},
		// Managed services rename CONFIG away or deny it to the application's user.
		{name: "CONFIG renamed", conf: []string{`rename-command CONFIG ""`},
			msg: "Redis did not say its maxmemory-policy; it must be noeviction", level: "warn", metric: "NaN"},
		{name: "CONFIG not permitted", conf: []string{"user default on nopass ~* &* +@all -config"},
			msg: "Redis did not say its maxmemory-policy; it must be noeviction", level: "warn", metric: "NaN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			proc := testkit.StartRedis(t, false, c.conf...)
			s := onRedis(t, testkit.NewSim(t), "redis://"+proc.Addr()+"/0", "mgeviction")
			line := s.logLine(t, c.msg)
			if line["level"] != c.level {
				t.Errorf("level = %v, want %s: %v", line["level"], c.level, line)
			}
			if got, _ := line["maxmemory_policy"].(string); got != c.policy {
				t.Errorf("maxmemory_policy = %q, want %q", got, c.policy)
			}
			if got, _ := line["may_evict"].(string); !strings.Contains(got, c.mayEvict) || (c.mayEvict == "") != (got == "") {
				t.Errorf("may_evict = %q, want it to name %q", got, c.mayEvict)
			}
			if m := s.call(t, "GET", "/metrics", "", "").body; !strings.Contains(m, "\nmaskgate_redis_eviction "+c.metric+"\n") {
				t.Errorf("/metrics lacks maskgate_redis_eviction %s", c.metric)
			}
		})
	}
}

// TestEvictionMetricFollowsRedis changes the policy of a running Redis, as a failover to
// a Redis configured otherwise would: the next scrape shows it.
func TestEvictionMetricFollowsRedis(t *testing.T) {
	proc := testkit.StartRedis(t, false)
	s := onRedis(t, testkit.NewSim(t), "redis://"+proc.Addr()+"/0", "mgeviction")
	rdb := redis.NewClient(&redis.Options{Addr: proc.Addr()})
	defer rdb.Close()
	for _, c := range []struct{ policy, metric string }{{"noeviction", "0"}, {"allkeys-lru", "2"}, {"volatile-ttl", "1"}} {
		if err := rdb.ConfigSet(context.Background(), "maxmemory-policy", c.policy).Err(); err != nil {
			t.Fatal(err)
		}
		if m := s.call(t, "GET", "/metrics", "", "").body; !strings.Contains(m, "\nmaskgate_redis_eviction "+c.metric+"\n") {
			t.Errorf("with %s, /metrics lacks maskgate_redis_eviction %s", c.policy, c.metric)
		}
	}
}

// TestEvictionPolicyIsReportedOnceRedisAnswers starts the gateway while Redis is down:
// the policy is read when Redis is back.
func TestEvictionPolicyIsReportedOnceRedisAnswers(t *testing.T) {
	proc := testkit.StartRedis(t, false, "maxmemory-policy allkeys-lru")
	proc.Kill()
	sim := testkit.NewSim(t)
	e := env(sim, "mgeviction")
	e["MASKGATE_REDIS_URL"] = "redis://" + proc.Addr() + "/0"
	e["MASKGATE_LOG_LEVEL"] = "debug"
	s := start(t, nil, e)
	s.logLine(t, "Redis's maxmemory-policy not read yet; asking again in 5 s")
	proc.Restart(t)
	if line := s.logLine(t, "Redis may evict maskgate's keys when full; set maxmemory-policy noeviction"); line["maxmemory_policy"] != "allkeys-lru" {
		t.Errorf("line = %v", line)
	}
}

// TestFullRedisRefusesUnmasksAndExpiriesWaitForMemory fills a noeviction Redis past its
// maxmemory (README, Redis): an unmask answers 503 without reaching CXone, and an expiry
// that falls due waits in Redis until memory is freed, then goes out once.
func TestFullRedisRefusesUnmasksAndExpiriesWaitForMemory(t *testing.T) {
	ctx := context.Background()
	proc := testkit.StartRedis(t, false, "maxmemory 4mb", "maxmemory-policy noeviction")
	rdb := redis.NewClient(&redis.Options{Addr: proc.Addr()})
	defer rdb.Close()
	sim := testkit.NewSim(t)
	s := onRedis(t, sim, "redis://"+proc.Addr()+"/0", "mgfull")
	call := func(path, body string) (int, string) {
		a := s.call(t, http.MethodPost, path, body, "")
		return a.status, a.code()
	}
	for _, agent := range []string{"expiring", "unmasked"} {
		sim.StartCall(agent, false, true)
	}
	if status, _ := call("/v1/agents/expiring/mask", `{"ttlSeconds":3}`); status != http.StatusOK {
		t.Fatalf("mask = %d", status)
	}
	if status, _ := call("/v1/agents/unmasked/mask", ""); status != http.StatusOK {
		t.Fatalf("mask = %d", status)
	}

	// Past maxmemory, well before the deadline: the limit is lifted while the junk is
	// written, then set again.
	junk := strings.Repeat("x", 1000)
	rdb.ConfigSet(ctx, "maxmemory", "0")
	pipe := rdb.Pipeline()
	for i := range 8000 {
		pipe.Set(ctx, "junk:"+strconv.Itoa(i), junk, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	rdb.ConfigSet(ctx, "maxmemory", "4mb")

	if status, code := call("/v1/agents/unmasked/unmask", ""); status != http.StatusServiceUnavailable || code != "store_unavailable" {
		t.Errorf("unmask with Redis full = %d %s; want 503 store_unavailable", status, code)
	}
	s.logLine(t, "sweeper could not claim due sessions") // the expiry is due and refused
	if n := sim.Count("unmask", "", 0); n != 0 {
		t.Errorf("CXone received %d unmasks while Redis was full; want none", n)
	}

	for i := range 8000 {
		pipe.Del(ctx, "junk:"+strconv.Itoa(i))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the expiry to go out once memory is freed", func() bool {
		return sim.Count("unmask", "expiring", 200) == 1
	})
	if status, _ := call("/v1/agents/unmasked/unmask", ""); status != http.StatusOK {
		t.Errorf("unmask once memory is freed = %d", status)
	}
}

// TestMemoryPerSessionAndRecord holds README's sizing figures (Redis, under Deployment):
// 0.5–0.7 KB of Redis memory per open session and about 1 KB per Idempotency-Key
// record, measured as Redis's used_memory over a few hundred of each (it varies with
// the allocator and the resizing of Redis's tables: the bounds are loose).
func TestMemoryPerSessionAndRecord(t *testing.T) {
	ctx := context.Background()
	proc := testkit.StartRedis(t, false)
	rdb := redis.NewClient(&redis.Options{Addr: proc.Addr()})
	defer rdb.Close()
	sim := testkit.NewSim(t)
	s := onRedis(t, sim, "redis://"+proc.Addr()+"/0", "maskgate")
	used := func() int64 {
		info, err := rdb.InfoMap(ctx, "memory").Result()
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
		return n
	}
	do := func(path, body, idemKey string) {
		if a := s.call(t, http.MethodPost, path, body, idemKey); a.status != http.StatusOK {
			t.Fatalf("POST %s = %d: %s", path, a.status, a.body)
		}
	}
	const n = 300
	for i := range n + 1 {
		sim.StartCall("agent-"+strconv.Itoa(i), false, true)
	}
	do("/v1/agents/agent-0/mask", "", "") // the scripts loaded, the caller's rate counted
	do("/v1/agents/agent-0/unmask", "", "")
	before := used()
	for i := 1; i <= n; i++ {
		do("/v1/agents/agent-"+strconv.Itoa(i)+"/mask", `{"reason":"payment","ttlSeconds":3600}`, "")
	}
	perSession := (used() - before) / n
	for i := 1; i <= n; i++ {
		do("/v1/agents/agent-"+strconv.Itoa(i)+"/unmask", "", "9f1c2d3e-"+strconv.Itoa(100000+i)+"-4a5b-8c7d-0e1f2a3b4c5d")
	}
	perRecord := (used() - before) / n // the sessions are gone; the records stay
	t.Logf("Redis memory: %d B per open session, %d B per Idempotency-Key record", perSession, perRecord)
	if perSession < 300 || perSession > 1000 {
		t.Errorf("%d B per open session; README says 0.5–0.7 KB", perSession)
	}
	if perRecord < 500 || perRecord > 1500 {
		t.Errorf("%d B per Idempotency-Key record; README says about 1 KB", perRecord)
	}
}

// A reply that passes (a Redis busy with a script, or loading its data) is no answer:
// the policy is asked again until Redis gives it. Only a refusal of CONFIG for good
// (ERR, NOPERM) ends the report with a warning that Redis did not say.
func TestEvictionPolicyIsAskedAgainAfterABusyReply(t *testing.T) {
	proc := testkit.StartRedis(t, false, "busy-reply-threshold 50", "maxmemory-policy allkeys-lru")
	ctx := context.Background()
	busy, other := redis.NewClient(&redis.Options{Addr: proc.Addr(), ReadTimeout: -1}), redis.NewClient(&redis.Options{Addr: proc.Addr()})
	defer busy.Close()
	defer other.Close()
	go busy.Eval(ctx, "while true do end", nil) // until SCRIPT KILL
	testkit.Eventually(t, 10*time.Second, "Redis to be busy with the script", func() bool {
		err := other.Ping(ctx).Err()
		return err != nil && strings.HasPrefix(err.Error(), "BUSY")
	})
	var logs testkit.LogBuffer
	done := make(chan struct{})
	go func() {
		reportEvictionPolicy(ctx, sessions.NewStore(other, "mgbusy"), time.Second, zerolog.New(&logs))
		close(done)
	}()
	testkit.Eventually(t, 10*time.Second, "a try answered BUSY", func() bool { return strings.Contains(logs.String(), "not read yet") })
	if err := other.ScriptKill(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("no word within 15 s of the script's end; it asks again every 5 s")
	}
	if !strings.Contains(logs.String(), `"maxmemory_policy":"allkeys-lru"`) || strings.Contains(logs.String(), "did not say") {
		t.Errorf("logged %s; want the policy read once Redis was no longer busy", logs.String())
	}
}
