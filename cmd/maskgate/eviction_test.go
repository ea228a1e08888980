package main

import (
	"strings"
	"testing"

	"github.com/maskgate/maskgate/internal/testkit"
)

// TestEvictionPolicyIsReported starts the gateway on Redis servers of its own with each
// kind of maxmemory-policy: what the policy may drop of maskgate's keys is logged once
// Redis answers, at a level that says how bad it is (README, Redis).
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
	}{
		{name: "default", msg: "Redis evicts nothing of maskgate's: full, it refuses writes", level: "info", policy: "noeviction"},
		{name: "volatile-lru", conf: []string{"maxmemory-policy volatile-lru"},
			msg: evicts, level: "warn", policy: "volatile-lru", mayEvict: "Idempotency-Key records"},
		{name: "allkeys-lfu", conf: []string{"maxmemory-policy allkeys-lfu"},
			msg: evicts, level: "error", policy: "allkeys-lfu", mayEvict: "open sessions"},
		// Managed services rename CONFIG away or deny it to the application's user.
		{name: "CONFIG renamed", conf: []string{`rename-command CONFIG ""`},
			msg: "Redis did not say its maxmemory-policy; it must be noeviction", level: "warn"},
		{name: "CONFIG not permitted", conf: []string{"user default on nopass ~* &* +@all -config"},
			msg: "Redis did not say its maxmemory-policy; it must be noeviction", level: "warn"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			redis := testkit.StartRedis(t, false, c.conf...)
			sim := testkit.NewSim(t)
			e := env(sim, "mgeviction")
			e["MASKGATE_REDIS_URL"] = "redis://" + redis.Addr() + "/0"
			line := start(t, nil, e).logLine(t, c.msg)
			if line["level"] != c.level {
				t.Errorf("level = %v, want %s: %v", line["level"], c.level, line)
			}
			if got, _ := line["maxmemory_policy"].(string); got != c.policy {
				t.Errorf("maxmemory_policy = %q, want %q", got, c.policy)
			}
			if got, _ := line["may_evict"].(string); !strings.Contains(got, c.mayEvict) || (c.mayEvict == "") != (got == "") {
				t.Errorf("may_evict = %q, want it to name %q", got, c.mayEvict)
			}
		})
	}
}

// TestEvictionPolicyIsReportedOnceRedisAnswers starts the gateway while Redis is down:
// the policy is read when Redis is back.
func TestEvictionPolicyIsReportedOnceRedisAnswers(t *testing.T) {
	redis := testkit.StartRedis(t, false, "maxmemory-policy allkeys-lru")
	redis.Kill()
	sim := testkit.NewSim(t)
	e := env(sim, "mgeviction")
	e["MASKGATE_REDIS_URL"] = "redis://" + redis.Addr() + "/0"
	e["MASKGATE_LOG_LEVEL"] = "debug"
	s := start(t, nil, e)
	s.logLine(t, "Redis's maxmemory-policy not read yet; asking again in 5 s")
	redis.Restart(t)
	if line := s.logLine(t, "Redis may evict maskgate's keys when full; set maxmemory-policy noeviction"); line["maxmemory_policy"] != "allkeys-lru" {
		t.Errorf("line = %v", line)
	}
}
