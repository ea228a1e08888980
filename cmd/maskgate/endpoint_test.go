package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// A CXONE_API_BASE_URL that is not the tenant's endpoint is named, by check-config and
// by the gateway once CXone answers (endpoint.go).

// A configured CXONE_API_BASE_URL that is not the endpoint the tenant's discovery
// document names (the token endpoint's host, another region) is named: it may answer
// every mask 404, which reads as no active call. The tenant's own is not.
func TestCheckConfigWarnsOfAnEndpointThatIsNotTheTenants(t *testing.T) {
	sim := testkit.NewSim(t)
	for base, warned := range map[string]bool{"http://127.0.0.1:1": true, sim.URL: false, sim.URL + "/": false, strings.ToUpper(sim.URL): false, "": false} {
		e := env(sim, "p")
		e["CXONE_API_BASE_URL"] = base
		var out bytes.Buffer
		if err := run(context.Background(), []string{"check-config"}, environment(e), &out, &out); err != nil {
			t.Fatalf("check-config with CXONE_API_BASE_URL %s = %v\n%s", base, err, out.String())
		}
		want := "cxone api endpoint: WARNING: CXONE_API_BASE_URL is http://127.0.0.1:1, but the discovery document of the token's tenant names " + sim.URL + ":"
		if got := strings.Contains(out.String(), "cxone api endpoint: WARNING"); got != warned || warned && !strings.Contains(out.String(), want) {
			t.Errorf("CXONE_API_BASE_URL %s: warned %v, want %v (%q):\n%s", base, got, warned, want, out.String())
		}
		how := "configured"
		if base == "" {
			how = "discovered from the token's tenant"
		}
		if !regexp.MustCompile(`(?m)^cxone api endpoint: ok \([^)]*, ` + how + `\)$`).MatchString(out.String()) {
			t.Errorf("CXONE_API_BASE_URL %q: the endpoint is not reported as %s:\n%s", base, how, out.String())
		}
	}
}

// A discovery document that cannot be read leaves the configured endpoint unchecked,
// and check-config says so rather than nothing: the gateway does not need the
// document, so the check passes.
func TestCheckConfigSaysWhenItCouldNotCompareTheEndpoint(t *testing.T) {
	sim := testkit.NewSimServing(t, 0, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == cxonesim.DiscoveryPath {
				http.NotFound(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	e := env(sim, "p")
	e["CXONE_API_BASE_URL"] = sim.URL
	var out bytes.Buffer
	if err := run(context.Background(), []string{"check-config"}, environment(e), &out, &out); err != nil {
		t.Fatalf("check-config with the discovery document missing = %v\n%s", err, out.String())
	}
	want := "cxone api endpoint: WARNING: not compared with the endpoint the discovery document of the token's tenant names, which could not be read: cxone discovery: " +
		upstream.ErrRefused.Error() + " (HTTP 404)\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("check-config with the discovery document missing printed\n%s\nwant a line %q", out.String(), want)
	}
}

// The gateway itself warns of such an endpoint once CXone answers after start-up, for
// an operator who never runs check-config; of the tenant's own, it says that it is.
func TestAnEndpointThatIsNotTheTenantsIsWarnedOfAtStartUp(t *testing.T) {
	_, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	e := env(sim, prefix)
	e["CXONE_API_BASE_URL"] = "http://127.0.0.1:1"
	s := start(t, nil, e)
	s.logLineWith(t, "CXONE_API_BASE_URL is http://127.0.0.1:1, but the discovery document of the token's tenant names "+sim.URL+
		": unless a proxy of yours stands for it, leave CXONE_API_BASE_URL empty (an endpoint that is not the tenant's may answer every mask 404, which reads as no active call)",
		map[string]any{"level": "warn"})

	e = env(sim, prefix)
	e["CXONE_API_BASE_URL"] = sim.URL
	s = start(t, nil, e)
	s.logLineWith(t, "CXONE_API_BASE_URL is the endpoint that the discovery document of the token's tenant names", map[string]any{"level": "info"})
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if l["level"] == "warn" {
			t.Errorf("a warning with the tenant's own endpoint: %v", l)
		}
	}

	// With none configured, the endpoint is the tenant's by definition: nothing to say.
	cx := upstream.New(sim.UpstreamConfig())
	defer cx.Close()
	var said bytes.Buffer
	reportTenantEndpoint(context.Background(), cx, "", time.Millisecond, zerolog.New(&said))
	if said.Len() > 0 {
		t.Errorf("with no CXONE_API_BASE_URL, the start-up said %s; want nothing", said.String())
	}
}

// The start-up's comparison waits for CXone to answer, asking again each retry, and
// then says its word once.
func TestTenantEndpointIsReportedOnceCXoneAnswers(t *testing.T) {
	sim := testkit.NewSim(t)
	sim.SetFaults(cxonesim.Faults{TokenDown: true})
	cx := upstream.New(sim.UpstreamConfig())
	defer cx.Close()
	var logs testkit.LogBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		reportTenantEndpoint(ctx, cx, "http://127.0.0.1:1", 20*time.Millisecond, zerolog.New(&logs))
		close(done)
	}()
	testkit.Eventually(t, 5*time.Second, "a failed try", func() bool { return strings.Contains(logs.String(), "not read yet") })
	sim.SetFaults(cxonesim.Faults{})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no word within 5 s of CXone answering; it asks again every 20 ms")
	}
	warnings := 0
	for _, l := range testkit.LogLines(t, logs.String()) {
		if l["level"] == "warn" {
			warnings++
		}
	}
	if warnings != 1 || ctx.Err() != nil {
		t.Errorf("%d warnings (context: %v); want one, once CXone answered:\n%s", warnings, ctx.Err(), logs.String())
	}
}
