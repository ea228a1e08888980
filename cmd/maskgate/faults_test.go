package main

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// faulty is a gateway (run, in this process) whose Redis and CXone are reached
// through fault proxies.
type faulty struct {
	t      *testing.T
	sim    *testkit.Sim
	redis  *testkit.FaultProxy
	cxone  *testkit.FaultProxy
	s      *started
	token  string
	client *http.Client
}

func newFaulty(t *testing.T, extra map[string]string) *faulty {
	t.Helper()
	_, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	ru, _ := url.Parse(testkit.RedisURL())
	su, _ := url.Parse(sim.URL)
	f := &faulty{t: t, sim: sim, redis: testkit.NewFaultProxy(t, ru.Host), cxone: testkit.NewFaultProxy(t, su.Host),
		client: &http.Client{Timeout: 60 * time.Second}}
	e := env(sim, prefix)
	e["MASKGATE_REDIS_URL"] = "redis://" + f.redis.Addr() + ru.Path
	e["CXONE_AUTH_URL"] = "http://" + f.cxone.Addr() + cxonesim.TokenPath
	e["CXONE_TIMEOUT"] = "1s"
	e["MASKGATE_SWEEP_INTERVAL"] = "200ms"
	maps.Copy(e, extra)
	f.s = start(t, nil, e)
	f.token = callerToken(t, "recordings:mask recordings:unmask recordings:read")
	return f
}

// list is the open sessions.
func (f *faulty) list() []struct{ ExpiresAt time.Time } {
	req, _ := http.NewRequest("GET", "http://"+f.s.addr+"/v1/masks?limit=1000", nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("GET /v1/masks = %d", resp.StatusCode)
	}
	var page struct {
		Items []struct{ ExpiresAt time.Time } `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		f.t.Fatal(err)
	}
	return page.Items
}

// call answers the status and how long it took.
func (f *faulty) call(method, path string) (int, time.Duration) {
	req, _ := http.NewRequest(method, "http://"+f.s.addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	start := time.Now()
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Errorf("%s %s: %v", method, path, err)
		return 0, time.Since(start)
	}
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

func TestRedisUnreachableAnswers503AndRecovers(t *testing.T) {
	f := newFaulty(t, nil)
	f.sim.StartCall("r1", false, true)
	if status, _ := f.call("GET", "/readyz"); status != 200 {
		t.Fatalf("readyz = %d", status)
	}
	f.redis.Set(testkit.Fault{Refuse: true})
	for _, req := range []struct{ method, path string }{{"POST", "/v1/agents/r1/mask"}, {"GET", "/v1/agents/r1/mask"}, {"GET", "/v1/masks"}, {"GET", "/readyz"}} {
		status, took := f.call(req.method, req.path)
		if status != 503 || took > 3*time.Second {
			t.Errorf("%s %s with Redis unreachable = %d after %s; want 503 quickly", req.method, req.path, status, took)
		}
	}
	if n := f.sim.Count("mask", "", 0); n != 0 {
		t.Errorf("CXone received %d masks while Redis was unreachable; want none (write-ahead)", n)
	}
	f.redis.Set(testkit.Fault{})
	testkit.Eventually(t, 10*time.Second, "the gateway to use Redis again, without a restart", func() bool {
		status, _ := f.call("POST", "/v1/agents/r1/mask")
		return status == 200
	})
}

func TestRedisBlackholedAnswersWithinBudgetWithoutPileUp(t *testing.T) {
	f := newFaulty(t, nil)
	f.sim.StartCall("b1", false, true)
	f.call("GET", "/readyz") // warm: token and pool
	runtime.GC()
	before, connsBefore := runtime.NumGoroutine(), f.redis.Conns()
	f.redis.Set(testkit.Fault{Blackhole: true})
	var wg sync.WaitGroup
	var mu sync.Mutex
	worst := time.Duration(0)
	for i := range 40 {
		wg.Go(func() {
			path := "/v1/agents/b1/mask"
			method := "GET"
			if i%2 == 0 {
				method = "POST"
			}
			status, took := f.call(method, path)
			mu.Lock()
			worst = max(worst, took)
			mu.Unlock()
			if status != 503 {
				t.Errorf("%s with Redis black-holed = %d; want 503", method, status)
			}
		})
	}
	wg.Wait()
	connsDuring := f.redis.Conns()
	if worst > 8*time.Second {
		t.Errorf("slowest answer %s; the budget is the Redis timeouts (1 s reads, a few retries)", worst)
	}
	f.redis.Set(testkit.Fault{})
	testkit.Eventually(t, 15*time.Second, "recovery", func() bool {
		status, _ := f.call("GET", "/v1/agents/b1/mask")
		return status == 404
	})
	testkit.Eventually(t, 15*time.Second, "goroutines to come back to where they were", func() bool {
		runtime.GC()
		return runtime.NumGoroutine() <= before+10
	})
	t.Logf("40 requests with Redis black-holed: slowest answered in %s; goroutines %d before, %d after; "+
		"Redis connections %d before, %d during, %d after", worst, before, runtime.NumGoroutine(), connsBefore, connsDuring, f.redis.Conns())
	if connsDuring > 10*runtime.GOMAXPROCS(0) {
		t.Errorf("%d Redis connections during the black hole: more than the pool (10 per CPU)", connsDuring)
	}
	if n := f.sim.Count("mask", "", 0); n != 0 {
		t.Errorf("CXone received %d masks while Redis was black-holed; want none", n)
	}
}

func TestHungCXoneAgentDoesNotBlockOthers(t *testing.T) {
	f := newFaulty(t, nil)
	f.sim.StartCall("h1", false, true)
	f.sim.StartCall("h2", false, true)
	f.call("GET", "/readyz")
	f.sim.SetHang("h1", true)
	hung := make(chan struct {
		status int
		took   time.Duration
	}, 1)
	go func() {
		status, took := f.call("POST", "/v1/agents/h1/mask")
		hung <- struct {
			status int
			took   time.Duration
		}{status, took}
	}()
	testkit.Eventually(t, 5*time.Second, "h1's mask to hang in CXone", func() bool { return f.sim.Held() >= 1 })
	status, took := f.call("POST", "/v1/agents/h2/mask")
	if status != 200 || took > time.Second {
		t.Errorf("another agent's mask while h1 hangs = %d after %s; want 200 at once", status, took)
	}
	r := <-hung
	if r.status != 504 && r.status != 503 {
		t.Errorf("hung agent's mask = %d; want 504 or 503", r.status)
	}
	if r.took > 16*time.Second {
		t.Errorf("hung agent's mask answered after %s; the budget is 15 s", r.took)
	}
	f.sim.SetHang("h1", false)
}

// TestCXoneFailuresLoseNothing runs masks through flapping 5xx, a 425 storm, 429 with
// Retry-After and the token endpoint down past a token's lifetime: requests answer
// within their budget, and once CXone recovers every open session reaches its unmask.
func TestCXoneFailuresLoseNothing(t *testing.T) {
	f := newFaulty(t, map[string]string{"MASKGATE_MASK_TTL": "2s", "MASKGATE_UNMASK_GIVEUP": "10m"})
	const agents = 12
	ids := make([]string, agents)
	calls := make([]string, agents)
	for i := range agents {
		ids[i] = "f" + string(rune('a'+i))
		calls[i] = f.sim.StartCall(ids[i], false, true).ID
	}
	phases := []struct {
		name   string
		apply  func()
		outage bool // CXone refuses everything: no mask may succeed
	}{
		{"flapping 5xx", func() { f.sim.SetFaults(cxonesim.Faults{ErrorRate: 0.5, ErrorStatus: 502}) }, false},
		{"425 storm", func() {
			f.sim.SetFaults(cxonesim.Faults{})
			for _, id := range ids {
				f.sim.SetBehaviour(id, 6, 0)
			}
		}, false},
		{"429 with Retry-After", func() { f.sim.SetFaults(cxonesim.Faults{ErrorRate: 0.7, ErrorStatus: 429, RetryAfter: 1}) }, false},
		{"token endpoint down, token revoked", func() {
			f.sim.SetFaults(cxonesim.Faults{TokenDown: true})
			f.sim.RevokeTokens()
		}, true},
	}
	for _, ph := range phases {
		ph.apply()
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Go(func() {
				status, took := f.call("POST", "/v1/agents/"+id+"/mask")
				if took > 16*time.Second {
					t.Errorf("%s: mask %s answered after %s", ph.name, id, took)
				}
				if status != 200 && status != 503 && status != 504 && status != 502 || ph.outage && status == 200 {
					t.Errorf("%s: mask %s = %d", ph.name, id, status)
				}
			})
		}
		wg.Wait()
	}
	// Sessions whose masks failed in the earlier phases may have expired meanwhile, and
	// their unmasks got through the 425s and 429s: only what follows is the outage, which
	// the last phase's masks, all refused, have just shown in force.
	before := f.sim.Count("unmask", "", 200)
	// The outage goes on until every open session's deadline has passed: their expiry
	// unmasks fail (no token) and wait for CXone.
	testkit.Eventually(t, 10*time.Second, "every deadline to pass during the outage", func() bool {
		page := f.list()
		for _, s := range page {
			if time.Now().Before(s.ExpiresAt) {
				return false
			}
		}
		return true
	})
	if n := f.sim.Count("unmask", "", 200) - before; n != 0 {
		t.Errorf("%d unmasks succeeded during the outage", n)
	}
	open := len(f.list())
	t.Logf("%d sessions open when CXone comes back", open)
	f.sim.SetFaults(cxonesim.Faults{})
	// Both: a session whose mask failed never masked its call, and still ends in an
	// unmask of its own.
	testkit.Eventually(t, 60*time.Second, "every session to be unmasked once CXone is back", func() bool {
		if len(f.list()) != 0 {
			return false
		}
		for _, c := range calls {
			if call, _ := f.sim.Call(c); call.Masked {
				return false
			}
		}
		return true
	})
	for i, id := range ids {
		if status, _ := f.call("GET", "/v1/agents/"+id+"/mask"); status != 404 {
			t.Errorf("%s still has a session (%d)", id, status)
		}
		if call, _ := f.sim.Call(calls[i]); call.Masked {
			t.Errorf("%s's call is still masked", id)
		}
	}
}

// ?verify=true takes a quarter of CXONE_MAX_IN_FLIGHT at most (README): with 4 slots,
// one verification hangs at CXone, and the next finds no slot within a second and is
// told CXone is busy, with Retry-After.
func TestVerificationsTakeAQuarterOfTheCXoneSlots(t *testing.T) {
	s, sim := startWith(t, map[string]string{"CXONE_MAX_IN_FLIGHT": "4", "CXONE_TIMEOUT": "3s"})
	for _, id := range []string{"q1", "q2"} {
		sim.StartCall(id, false, true)
		if a := s.call(t, "POST", "/v1/agents/"+id+"/mask", "", ""); a.status != http.StatusOK {
			t.Fatalf("mask %s = %d %s", id, a.status, a.body)
		}
		sim.SetHang(id, true)
	}
	first := make(chan answer, 1)
	go func() {
		a, _ := s.send(t, "GET", "/v1/agents/q1/mask?verify=true", "", "")
		first <- a
	}()
	testkit.Eventually(t, 5*time.Second, "q1's verification to hang at CXone", func() bool { return sim.Held() == 1 })
	a := s.call(t, "GET", "/v1/agents/q2/mask?verify=true", "", "")
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "1" || !strings.Contains(a.body, `"code":"upstream_unavailable"`) {
		t.Errorf("a second verification while the first holds the only slot = %d (Retry-After %q) %s; want 503 upstream_unavailable, Retry-After 1",
			a.status, a.header.Get("Retry-After"), a.body)
	}
	if n := sim.Held(); n != 1 {
		t.Errorf("%d requests held at CXone; want the first verification's only", n)
	}
	sim.SetHang("q1", false)
	sim.SetHang("q2", false)
	<-first
}
