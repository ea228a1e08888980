package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
)

// The HTTP server newServer makes: how long a request may take, and what it refuses
// of slow, idle or oversized clients.

// The longest a request may take is waiting its budget for another operation on the
// agent, then spending its own on CXone: the server must let that answer out, for any
// CXONE_TIMEOUT. README gives both: the budget is 3 × CXONE_TIMEOUT (15 s by default,
// after which a request waiting for a busy agent is 503), a request may run 6 ×. A
// fixed 30 s cut it at the default.
func TestServerLetsTheLongestRequestAnswer(t *testing.T) {
	for timeout, budget := range map[string]time.Duration{"5s": 15 * time.Second, "10s": 30 * time.Second, "30s": 90 * time.Second} {
		e := env(testkit.NewSim(t), "p")
		e["CXONE_TIMEOUT"] = timeout
		cfg := mustLoad(t, e)
		longest := cfg.longestRequest()
		if cfg.requestBudget() != budget || longest != 2*budget {
			t.Errorf("CXONE_TIMEOUT=%s: budget %s, longest request %s; README says %s and %s", timeout, cfg.requestBudget(), longest, budget, 2*budget)
		}
		if w := newServer(cfg, http.NotFoundHandler()).WriteTimeout; w <= longest {
			t.Errorf("CXONE_TIMEOUT=%s: write timeout %s; a request may take %s", timeout, w, longest)
		}
	}
}

// A slow or silent client is disconnected after the times README gives.
func TestServerBoundsSlowAndIdleClients(t *testing.T) {
	srv := newServer(mustLoad(t, env(testkit.NewSim(t), "p")), http.NotFoundHandler())
	if srv.ReadHeaderTimeout != 5*time.Second || srv.ReadTimeout != 10*time.Second || srv.IdleTimeout != 2*time.Minute {
		t.Errorf("headers within %s, request within %s, idle for %s; README says 5s, 10s and 2m",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.IdleTimeout)
	}
}

// Headers over 64 KiB are refused (431) before any handler runs; a large JWT passes.
func TestServerBoundsRequestHeaders(t *testing.T) {
	cfg := mustLoad(t, env(testkit.NewSim(t), "p"))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	srv.Config = newServer(cfg, srv.Config.Handler)
	srv.Start()
	defer srv.Close()
	for size, want := range map[int]int{16 << 10: http.StatusNoContent, 128 << 10: http.StatusRequestHeaderFieldsTooLarge} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("Authorization", "Bearer "+strings.Repeat("a", size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("a %d KiB header: %d; want %d", size>>10, resp.StatusCode, want)
		}
	}
}
