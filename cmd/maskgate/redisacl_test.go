package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// redisACL is the least-privilege Redis user README gives for maskgate (Redis, under
// Deployment), read from README itself so that what it documents is what runs here, as
// a config line: keys under prefix, a password that starts with testkit.Canary (so
// that the scan at the end of the test run would find it in any log), and extra
// permissions (a Cluster's).
func redisACL(t *testing.T, prefix, password string, extra ...string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const head = "ACL SETUSER maskgate on >PASSWORD ~{maskgate}:* "
	_, block, ok := strings.Cut(string(readme), "```\n"+head)
	block, _, closed := strings.Cut(block, "```")
	if !ok || !closed {
		t.Fatalf("README has no code block starting %q", head)
	}
	return "user maskgate on >" + password + " ~{" + prefix + "}:* " + strings.Join(append(strings.Fields(block), extra...), " ")
}

// redisPassword is maskgate's Redis password in the tests that use redisACL.
var redisPassword = testkit.Canary + "redis-" + testkit.RandomHex(6)

// TestLeastPrivilegeRedisUser runs every use the gateway makes of Redis — masks, an
// Idempotency-Key replay, reads, the listing, metrics, a joined request, an unmask the
// sweeper retries, a 202 it confirms, an expiry, the eviction policy — as a Redis user
// with only README's permissions, and checks that each of them was needed.
func TestLeastPrivilegeRedisUser(t *testing.T) {
	ctx := context.Background()
	proc := testkit.StartRedis(t, false, redisACL(t, "mgacl", redisPassword))
	as := redis.NewClient(&redis.Options{Addr: proc.Addr(), Username: "maskgate", Password: redisPassword})
	defer as.Close()
	// The user is restricted: what maskgate never needs is refused.
	for _, cmd := range [][]any{{"keys", "*"}, {"flushall"}, {"get", "other:key"}, {"config", "set", "maxmemory", "1"}} {
		if err := as.Do(ctx, cmd...).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Fatalf("%v as maskgate's user = %v; want NOPERM", cmd, err)
		}
	}

	sim := testkit.NewSim(t)
	s := onRedis(t, sim, "redis://maskgate:"+redisPassword+"@"+proc.Addr()+"/0", "mgacl")
	want := func(method, path, body string, status int) answer {
		t.Helper()
		a := s.call(t, method, path, body, "")
		if a.status != status {
			t.Errorf("%s %s = %d; want %d: %s", method, path, a.status, status, a.body)
		}
		return a
	}

	s.logLine(t, "Redis evicts nothing of maskgate's: full, it refuses writes") // CONFIG GET
	want("GET", "/readyz", "", http.StatusOK)
	for _, agent := range []string{"a1", "a2", "a3", "a4"} {
		sim.StartCall(agent, false, true)
	}
	// A mask, and its Idempotency-Key replayed.
	if a := s.call(t, "POST", "/v1/agents/a1/mask", "", "k1"); a.status != http.StatusOK {
		t.Fatalf("mask = %d: %s", a.status, a.body)
	}
	if replay := s.call(t, "POST", "/v1/agents/a1/mask", "", "k1"); replay.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the repeat of an Idempotency-Key was not replayed: %d", replay.status)
	}
	want("GET", "/v1/agents/a1/mask", "", http.StatusOK)
	want("GET", "/v1/masks", "", http.StatusOK)
	if m := want("GET", "/metrics", "", http.StatusOK); !strings.Contains(m.body, "\nmaskgate_open_sessions 1\n") {
		t.Error("/metrics does not count the open session")
	}
	// Two identical masks at once: the second joins the first and reads its answer.
	sim.SetFaults(cxonesim.Faults{LatencyMs: 300})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { want("POST", "/v1/agents/a4/mask", "", http.StatusOK) })
	}
	wg.Wait()
	if n := sim.Count("mask", "a4", 200); n != 1 {
		t.Errorf("CXone masked a4 %d times; want 1 (the second request joins the first)", n)
	}
	// An unmask that CXone fails: retried by the sweeper once CXone is back.
	sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: 503})
	want("POST", "/v1/agents/a1/unmask", "", http.StatusAccepted)
	sim.SetFaults(cxonesim.Faults{})
	// A mask CXone answers 202: confirmed through the recording status.
	sim.SetBehaviour("a3", 0, 200*time.Millisecond)
	want("POST", "/v1/agents/a3/mask", "", http.StatusAccepted)
	// An expiry by the sweeper.
	want("POST", "/v1/agents/a2/mask", `{"ttlSeconds":1}`, http.StatusOK)
	testkit.Eventually(t, 15*time.Second, "the sweeper to retry a1's unmask, confirm a3's mask and expire a2", func() bool {
		return sim.Count("unmask", "a1", 200) == 1 && sim.Count("unmask", "a2", 200) == 1 &&
			strings.Contains(s.call(t, "GET", "/v1/agents/a3/mask", "", "").body, `"state":"masked"`)
	})
	want("GET", "/v1/agents/a1/mask", "", http.StatusNotFound)
	want("GET", "/v1/agents/a2/mask", "", http.StatusNotFound)

	// Every command README grants was needed: each was run (select only on a database
	// other than 0; the connection's own commands are not counted).
	admin := redis.NewClient(&redis.Options{Addr: proc.Addr()})
	defer admin.Close()
	stats, err := admin.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for grant := range strings.FieldsSeq(redisACL(t, "mgacl", redisPassword)) {
		cmd, ok := strings.CutPrefix(grant, "+")
		if !ok || strings.HasPrefix(cmd, "@") || cmd == "select" {
			continue
		}
		if !strings.Contains(stats, "cmdstat_"+cmd+":calls=") || strings.Contains(stats, "cmdstat_"+cmd+":calls=0,") {
			t.Errorf("README grants %s, which the gateway never ran", cmd)
		}
	}

	// Redis refused nothing (a command refused fails with "NOPERM", or inside a script
	// with "ERR The user executing the script can't run this command"; audit lines carry
	// such errors at level info), and nothing else failed but what CXone was told to.
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		err, _ := l["error"].(string)
		refused := strings.Contains(err, "NOPERM") || strings.Contains(err, "can't run this command")
		if refused || (l["level"] == "warn" || l["level"] == "error") && l["message"] != "cxone transient failure, retrying" {
			t.Errorf("the gateway met a failure: %v", l)
		}
	}
}
