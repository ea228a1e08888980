package main

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// The tests here start the gateway with a setting and see the part it sets act on it:
// config_test.go proves each setting is read, these that it gets where it is used.

// startWith starts a gateway, on the test Redis and a simulator of its own, with
// settings over env's.
func startWith(t *testing.T, settings map[string]string) (*started, *testkit.Sim) {
	t.Helper()
	_, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	e := env(sim, prefix)
	maps.Copy(e, settings)
	return start(t, nil, e), sim
}

// maskExpiring masks agents, each on a call, for a second.
func maskExpiring(t *testing.T, s *started, sim *testkit.Sim, agents ...string) {
	t.Helper()
	for _, agent := range agents {
		sim.StartCall(agent, false, true)
		if a := s.call(t, "POST", "/v1/agents/"+agent+"/mask", `{"ttlSeconds":1}`, ""); a.status != http.StatusOK {
			t.Fatalf("mask of %s = %d %s", agent, a.status, a.body)
		}
	}
}

// An idle gateway's only session scripts are its sweeper's claims, one each
// MASKGATE_SWEEP_INTERVAL: at 20 ms, 50 come within a second, where the default
// interval would take 50 s.
func TestSweepIntervalReachesTheSweeper(t *testing.T) {
	s, _ := startWith(t, map[string]string{"MASKGATE_SWEEP_INTERVAL": "20ms"})
	testkit.Eventually(t, 20*time.Second, "50 sweeps", func() bool { return s.metric(t, "maskgate_redis_scripts_total") >= 50 })
}

// MASKGATE_MASK_TTL_MAX reaches the service: at 1m, a mask asked for two minutes is
// refused, one of a minute taken.
func TestMaskTTLMaxReachesTheService(t *testing.T) {
	s, sim := startWith(t, map[string]string{"MASKGATE_MASK_TTL": "30s", "MASKGATE_MASK_TTL_MAX": "1m"})
	sim.StartCall("tm1", false, true)
	if a := s.call(t, "POST", "/v1/agents/tm1/mask", `{"ttlSeconds":120}`, ""); a.status != http.StatusBadRequest {
		t.Errorf("mask for two minutes at MASKGATE_MASK_TTL_MAX=1m = %d %s; want 400", a.status, a.body)
	}
	if a := s.call(t, "POST", "/v1/agents/tm1/mask", `{"ttlSeconds":60}`, ""); a.status != http.StatusOK {
		t.Errorf("mask for a minute at MASKGATE_MASK_TTL_MAX=1m = %d %s; want 200", a.status, a.body)
	}
}

// The authenticator is the gateway's: it logs through the gateway's log (a JWK set that
// cannot be fetched is an error line an operator sees, at start-up or after it, not a
// silence), and it stops with the gateway (no set is fetched for a gateway that is gone).
func TestAuthenticatorLogsAndStopsWithTheGateway(t *testing.T) {
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(idp.Close)
	s, _ := startWith(t, map[string]string{"MASKGATE_JWT_HS256_SECRET": "", "MASKGATE_JWT_JWKS_URL": idp.URL})
	testkit.Eventually(t, 20*time.Second, "the failed JWKS fetch logged", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return slices.ContainsFunc(slices.Concat(s.startup, s.lines), func(l map[string]any) bool {
			return l["message"] == "JWKS refresh failed" && l["jwks_url"] == idp.URL
		})
	})
	s.cancel()
	if err := s.wait(); err != nil {
		t.Fatalf("the gateway stopped with %v", err)
	}
	testkit.Eventually(t, 10*time.Second, "the authenticator's watch ended with the gateway", func() bool {
		stacks := make([]byte, 4<<20)
		return !bytes.Contains(stacks[:runtime.Stack(stacks, true)], []byte("(*Authenticator).watchKeys"))
	})
}

// MASKGATE_SWEEP_CONCURRENCY bounds the unmasks one sweeper has at CXone at once: with
// CXone slow to answer, 6 expired sessions are unmasked 3 at a time, not one at a time
// nor all at once. (CXone's 3 s outlast the sweeps of a second apart that may claim
// them, should the masks have taken a while to send.)
func TestSweepConcurrencyReachesTheSweeper(t *testing.T) {
	s, sim := startWith(t, map[string]string{"MASKGATE_SWEEP_CONCURRENCY": "3"})
	agents := make([]string, 6)
	for i := range agents {
		agents[i] = fmt.Sprintf("sc%d", i)
	}
	maskExpiring(t, s, sim, agents...)
	sim.SetFaults(cxonesim.Faults{LatencyMs: 3000})
	most := 0
	testkit.Eventually(t, 60*time.Second, "the expired sessions unmasked", func() bool {
		most = max(most, sim.Held())
		return sim.Count("unmask", "", http.StatusOK) == len(agents)
	})
	if most != 3 {
		t.Errorf("at most %d unmasks at CXone at once; want MASKGATE_SWEEP_CONCURRENCY's 3", most)
	}
}

// MASKGATE_UNMASK_GIVEUP is how long the sweeper retries an unmask that CXone keeps
// refusing: at 1s, it is given up within seconds, not after the default hour.
func TestUnmaskGiveUpReachesTheSweeper(t *testing.T) {
	s, sim := startWith(t, map[string]string{"MASKGATE_UNMASK_GIVEUP": "1s"})
	maskExpiring(t, s, sim, "gu1")
	sim.SetFaults(cxonesim.Faults{ErrorRate: 1})
	testkit.Eventually(t, 30*time.Second, "the failing unmask given up", func() bool {
		return s.metric(t, "maskgate_unmask_giveups_total") == 1
	})
}

// MASKGATE_RATE_LIMIT reaches the limiter: at 1 a second, ten reads in a row are not
// all answered.
func TestRateLimitReachesTheLimiter(t *testing.T) {
	s, _ := startWith(t, map[string]string{"MASKGATE_RATE_LIMIT": "1"})
	var statuses []int
	for range 10 {
		statuses = append(statuses, s.call(t, "GET", "/v1/masks", "", "").status)
	}
	if !slices.Contains(statuses, http.StatusTooManyRequests) {
		t.Errorf("ten reads at MASKGATE_RATE_LIMIT=1: %v; want some 429", statuses)
	}
}

// MASKGATE_TRUSTED_PROXIES reaches the access line: from a trusted peer, the client
// that X-Forwarded-For names is the caller.
func TestTrustedProxiesReachTheAccessLine(t *testing.T) {
	s, _ := startWith(t, map[string]string{"MASKGATE_TRUSTED_PROXIES": "127.0.0.1"})
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr+"/v1/masks", nil)
	req.Header.Set("Authorization", "Bearer "+callerToken(t, "recordings:read"))
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s.logLineWith(t, "request", map[string]any{"route": "/v1/masks", "remote_ip": "203.0.113.9", "peer_ip": "127.0.0.1"})
}

// MASKGATE_CORS_ORIGINS reaches the API: a page of the origin named is answered its
// preflight.
func TestCORSOriginsReachTheAPI(t *testing.T) {
	s, _ := startWith(t, map[string]string{"MASKGATE_CORS_ORIGINS": "https://crm.example.com"})
	req, _ := http.NewRequest(http.MethodOptions, "http://"+s.addr+"/v1/agents/1001/mask", nil)
	req.Header.Set("Origin", "https://crm.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://crm.example.com" {
		t.Errorf("preflight from the origin named: %d, Access-Control-Allow-Origin %q; want it allowed", resp.StatusCode, got)
	}
}

// A request's budget for CXone is 3 × CXONE_TIMEOUT (README): at 1s, a mask that CXone
// answers 503 after 400 ms is tried three or four times, where a budget of one
// CXONE_TIMEOUT would leave room for two.
func TestCXoneTimeoutSetsTheRequestsBudget(t *testing.T) {
	s, sim := startWith(t, map[string]string{"CXONE_TIMEOUT": "1s"})
	sim.StartCall("bu1", false, true)
	sim.SetFaults(cxonesim.Faults{LatencyMs: 400, ErrorRate: 1})
	if a := s.call(t, "POST", "/v1/agents/bu1/mask", "", ""); a.status < 500 {
		t.Fatalf("mask with CXone failing = %d %s; want a 5xx", a.status, a.body)
	}
	if tries := sim.Count("mask", "bu1", http.StatusServiceUnavailable); tries < 3 {
		t.Errorf("the mask was tried %d times; want 3 or 4 within 3 × CXONE_TIMEOUT", tries)
	}
}
