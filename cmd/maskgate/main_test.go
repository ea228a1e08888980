package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// TestRunServesAndDrainsInFlightRequestsOnShutdown: on SIGTERM /readyz turns 503, a
// mask in flight still gets its answer, and run returns nil; over HTTP/1.1, and over
// HTTP/2 with TLS, whose connections are closed with a GOAWAY instead.
func TestRunServesAndDrainsInFlightRequestsOnShutdown(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) {
			_, prefix := testkit.Redis(t)
			sim := testkit.NewSim(t)
			sim.StartCall("77", false, true)
			e := env(sim, prefix)
			e["MASKGATE_SHUTDOWN_DELAY"] = "300ms"
			var ca *testCA
			if h2 {
				var certFile, keyFile string
				ca, certFile, keyFile = writeTestPKI(t)
				e["MASKGATE_TLS_CERT_FILE"], e["MASKGATE_TLS_KEY_FILE"] = certFile, keyFile
			}
			s := start(t, nil, e)
			if s.tls != h2 {
				t.Errorf(`the "listening" line says tls %v`, s.tls)
			}
			if h2 {
				s.https = ca.client(true)
			}
			if a := s.call(t, "GET", "/readyz", "", ""); a.status != 200 || h2 != (a.proto == "HTTP/2.0") {
				t.Fatalf("readyz = %d %s", a.status, a.proto)
			}
			sim.SetFaults(cxonesim.Faults{LatencyMs: 500})
			answered := make(chan answer, 1)
			go func() {
				a, err := s.send(t, "POST", "/v1/agents/77/mask", "", "")
				if err != nil {
					a.body = err.Error()
				}
				answered <- a
			}()
			testkit.Eventually(t, 5*time.Second, "the mask to reach CXone", func() bool { return sim.Held() == 1 })
			s.cancel() // SIGTERM
			testkit.Eventually(t, 5*time.Second, "/readyz to answer 503", func() bool {
				a, err := s.send(t, "GET", "/readyz", "", "")
				return err == nil && a.status == http.StatusServiceUnavailable
			})
			if a := <-answered; a.status != 200 {
				t.Errorf("the in-flight mask answered %d %s during shutdown; want 200", a.status, a.body)
			}
			if err := s.wait(); err != nil {
				t.Errorf("run returned %v after shutdown; want nil", err)
			}
		})
	}
}

// The wiring gives the Idempotency-Key middleware the longest a request may run: with
// CXONE_TIMEOUT=20s a key stays reserved over two minutes while its request runs.
func TestIdempotencyKeyIsReservedForTheConfiguredLongestRequest(t *testing.T) {
	rdb, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	sim.StartCall("77", false, true)
	e := env(sim, prefix)
	e["CXONE_TIMEOUT"] = "20s"
	longest := mustLoad(t, e).longestRequest()
	s := start(t, nil, e)
	token := callerToken(t, "recordings:mask")
	sim.SetFaults(cxonesim.Faults{LatencyMs: 300})
	answered := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.addr+"/v1/agents/77/mask", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Idempotency-Key", "k-1")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	testkit.Eventually(t, 5*time.Second, "the mask to reach CXone", func() bool { return sim.Held() == 1 })
	var ttl time.Duration
	for _, k := range testkit.Keys(t, rdb, prefix) {
		if strings.Contains(k, ":idem:") {
			ttl = rdb.PTTL(context.Background(), k).Val()
		}
	}
	if ttl <= longest {
		t.Errorf("the key is reserved for %s while its request runs; a request may run %s", ttl, longest)
	}
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
}

// /readyz checks callers' keys: a replica whose JWKS holds no key could verify no
// caller, and is not ready, naming why; with that check left out, it is.
func TestReadyzChecksTheCallersKeys(t *testing.T) {
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"keys":[]}`) }))
	defer idp.Close()
	_, prefix := testkit.Redis(t)
	e := env(testkit.NewSim(t), prefix)
	delete(e, "MASKGATE_JWT_HS256_SECRET")
	e["MASKGATE_JWT_JWKS_URL"] = idp.URL
	s := start(t, nil, e)
	for query, want := range map[string]int{"": http.StatusServiceUnavailable, "?exclude=jwt_keys": http.StatusOK} {
		resp, err := http.Get("http://" + s.addr + "/readyz" + query)
		if err != nil {
			t.Fatal(err)
		}
		var ready struct{ Checks map[string]string }
		err = json.NewDecoder(resp.Body).Decode(&ready)
		resp.Body.Close()
		keys := ready.Checks["jwt_keys"]
		if failed := keys != "excluded" && keys != "ok"; err != nil || resp.StatusCode != want || failed != (want != http.StatusOK) {
			t.Errorf("/readyz%s with a JWKS of no keys = %d %v (%v); want %d, jwt_keys failing or excluded", query, resp.StatusCode, ready.Checks, err, want)
		}
	}
}

// TestHealthcheckAsksTheGatewayItsConfigurationNames: the image's health check passes
// while the gateway it is configured for is ready, fails once it has stopped, and says
// what is wrong with a configuration the gateway could not run with.
func TestHealthcheckAsksTheGatewayItsConfigurationNames(t *testing.T) {
	_, prefix := testkit.Redis(t)
	s := start(t, nil, env(testkit.NewSim(t), prefix))
	e := maps.Clone(s.env)
	e["MASKGATE_ADDR"] = s.addr
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := healthcheck(ctx, environment(e)); err != nil {
		t.Errorf("healthcheck of a ready gateway: %v", err)
	}
	// One bound to a single address other than 127.0.0.1 is asked there.
	one := maps.Clone(s.env)
	one["MASKGATE_ADDR"] = "127.0.0.2:" + strconv.Itoa(testkit.FreePort(t))
	other := start(t, nil, one)
	if err := healthcheck(ctx, environment(one)); err != nil || !strings.HasPrefix(other.addr, "127.0.0.2:") {
		t.Errorf("healthcheck of a gateway listening on %s only: %v", other.addr, err)
	}
	// One that is not ready is told apart, with the check that fails.
	noRedis := maps.Clone(s.env)
	noRedis["MASKGATE_ADDR"] = "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	noRedis["MASKGATE_REDIS_URL"] = "redis://127.0.0.1:" + strconv.Itoa(testkit.FreePort(t)) + "/0"
	start(t, nil, noRedis)
	if err := healthcheck(ctx, environment(noRedis)); err == nil || !strings.Contains(err.Error(), "readyz answered 503") || !strings.Contains(err.Error(), `"redis":`) {
		t.Errorf("healthcheck of a gateway without Redis = %v; want 503 naming the redis check", err)
	}
	// Something else answering on the gateway's port is not the gateway being ready.
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	elsewhere := maps.Clone(s.env)
	elsewhere["MASKGATE_ADDR"] = strings.TrimPrefix(notFound.URL, "http://")
	if err := healthcheck(ctx, environment(elsewhere)); err == nil || !strings.Contains(err.Error(), "readyz answered 404") {
		t.Errorf("healthcheck of a server answering 404 = %v; want it failed", err)
	}
	e["MASKGATE_MASK_TTL"] = "soon"
	var ce *configError
	if err := healthcheck(ctx, environment(e)); !errors.As(err, &ce) || !strings.Contains(err.Error(), "MASKGATE_MASK_TTL") {
		t.Errorf("healthcheck with a bad configuration = %v; want the configuration error", err)
	}
	delete(e, "MASKGATE_MASK_TTL")
	s.cancel()
	if err := s.wait(); err != nil {
		t.Fatal(err)
	}
	if err := healthcheck(ctx, environment(e)); err == nil {
		t.Error("healthcheck passed with the gateway stopped")
	}
}

// TestVersionIsReported: the version subcommand, the start-up line and
// maskgate_build_info name the same version, so that the replicas of a rolling upgrade
// can be told apart.
func TestVersionIsReported(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, environment(nil), &out, &out); err != nil ||
		!strings.HasPrefix(out.String(), "maskgate "+buildVersion()+" (revision ") || !strings.Contains(out.String(), runtime.Version()) {
		t.Errorf("maskgate version = %q, %v", out.String(), err)
	}
	_, prefix := testkit.Redis(t)
	s := start(t, nil, env(testkit.NewSim(t), prefix))
	// Not stamped with -X (the Dockerfile's build is tested in deploy_test.go), it is
	// what Go recorded for the main module.
	info, _ := debug.ReadBuildInfo()
	if s.version != info.Main.Version || s.version == "" {
		t.Errorf("the listening line says version %q; want Go's %q", s.version, info.Main.Version)
	}
	want := regexp.MustCompile(`\nmaskgate_build_info\{[^\n]*goversion="` + regexp.QuoteMeta(runtime.Version()) + `"[^\n]*version="` + regexp.QuoteMeta(buildVersion()) + `"\} 1\n`)
	if metrics := s.call(t, "GET", "/metrics", "", "").body; !want.MatchString(metrics) {
		t.Errorf("/metrics lacks maskgate_build_info with the version:\n%s", metrics)
	}
}

// TestProfilerOnlyOnItsOwnListener: MASKGATE_DEBUG_ADDR serves pprof there and nowhere
// else; the API's listener does not expose it.
func TestProfilerOnlyOnItsOwnListener(t *testing.T) {
	_, prefix := testkit.Redis(t)
	e := env(testkit.NewSim(t), prefix)
	debug := "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	e["MASKGATE_DEBUG_ADDR"] = debug
	s := start(t, nil, e)
	for _, c := range []struct {
		url  string
		want int
		says string // in the body
	}{
		{"http://" + debug + "/debug/pprof/heap?debug=1", http.StatusOK, "heap profile"},
		{"http://" + debug + "/debug/pprof/profile?seconds=1", http.StatusOK, ""}, // what docs/PERFORMANCE.md reads
		{"http://" + debug + "/debug/pprof/trace?seconds=0.01", http.StatusOK, ""},
		{"http://" + debug + "/debug/pprof/cmdline", http.StatusOK, os.Args[0]},
		{"http://" + debug + "/debug/pprof/symbol", http.StatusOK, "num_symbols"},
		{"http://" + s.addr + "/debug/pprof/heap?debug=1", http.StatusNotFound, ""},
	} {
		resp, err := http.Get(c.url)
		if err != nil {
			t.Fatalf("GET %s: %v", c.url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || !strings.Contains(string(body), c.says) {
			t.Errorf("GET %s = %d %.200q; want %d saying %q", c.url, resp.StatusCode, body, c.want, c.says)
		}
	}
	if level := profilerLine(s.startup)["level"]; level != "info" {
		t.Errorf("the profiler's start-up line on loopback is at %v; want info", level)
	}
	s.cancel()
	if err := s.wait(); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get("http://" + debug + "/debug/pprof/"); err == nil {
		resp.Body.Close()
		t.Errorf("the profiler answers %d after the gateway stopped; want its listener closed with it", resp.StatusCode)
	}
}

// A profiler that any host may reach is warned of: it has no authentication.
func TestAProfilerBeyondLoopbackIsWarnedOf(t *testing.T) {
	_, prefix := testkit.Redis(t)
	e := env(testkit.NewSim(t), prefix)
	e["MASKGATE_DEBUG_ADDR"] = ":" + strconv.Itoa(testkit.FreePort(t))
	s := start(t, nil, e)
	if l := profilerLine(s.startup); l["level"] != "warn" || !strings.Contains(l["message"].(string), "bind MASKGATE_DEBUG_ADDR to 127.0.0.1") {
		t.Errorf("the profiler's start-up line on every interface = %v; want a warning", l)
	}
}

// profilerLine is the start-up line that says where the profiler listens.
func profilerLine(lines []map[string]any) map[string]any {
	for _, l := range lines {
		if msg, _ := l["message"].(string); strings.HasPrefix(msg, "profiler listening") {
			return l
		}
	}
	return map[string]any{"message": ""}
}

// TestGCTargetIsMaskgatesUnlessGOGCIsSet: maskgate collects garbage less often than Go's
// default, and an operator's GOGC wins.
func TestGCTargetIsMaskgatesUnlessGOGCIsSet(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	tuneGC(environment(map[string]string{"GOGC": "150"}))
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, the GC target became %d; want it left alone", got)
	}
	tuneGC(environment(nil))
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("without GOGC, the GC target is %d; want %d", got, gcPercent)
	}
}

// TestUsage: -h and help list the subcommands and exit 0; an argument that names none
// is a usage error (exit 2), not a gateway started without it, and not called a
// configuration error: nothing is wrong with the environment.
func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}} {
		var out strings.Builder
		if err := run(context.Background(), args, environment(nil), &out, &out); err != nil ||
			!strings.Contains(out.String(), "maskgate check-config | healthcheck | dev-token | audit-open | version") {
			t.Errorf("%v = %v:\n%s", args, err, out.String())
		}
	}
	for args, want := range map[string]string{
		"chek-config": "usage: maskgate [-local]",
		"help me":     "usage: maskgate [-local]",
		"-locale":     "flag provided but not defined: -locale\nusage: maskgate [-local]",
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = []string{"MASKGATE_RUN_MAIN=1", "MASKGATE_ARGS=" + args}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("maskgate %s: exit = %v; want status 2\n%s", args, err, out)
		}
		if !strings.HasPrefix(string(out), want) || strings.Contains(string(out), "invalid configuration") ||
			strings.Count(string(out), strings.Fields(args)[0]) != 1 {
			t.Errorf("maskgate %s printed\n%s\nwant %q first, what is wrong once, and no configuration error", args, out, want)
		}
	}
}

// A subcommand that takes no arguments refuses any (exit 2) rather than ignoring it:
// `dev-token -agent 1001` would otherwise print a token of every scope, bound to no
// agent, to someone who asked for one agent's. The arguments are not repeated (one may
// be a secret typed in the wrong place).
func TestSubcommandsRefuseArgumentsTheyDoNotTake(t *testing.T) {
	e := environment{"MASKGATE_REDIS_URL": "redis://127.0.0.1:6379", "MASKGATE_JWT_ISSUER": "i", "MASKGATE_JWT_AUDIENCE": "a",
		"MASKGATE_JWT_HS256_SECRET": strings.Repeat("s", 32), "CXONE_CLIENT_ID": "c", "CXONE_CLIENT_SECRET": "cs",
		"CXONE_ACCESS_KEY_ID": "k", "CXONE_ACCESS_KEY_SECRET": "ks"}
	for _, args := range [][]string{{"dev-token", "-agent", "1001"}, {"check-config", "-h"}, {"healthcheck", "hunter2"}, {"version", "x"}} {
		var out, errOut strings.Builder
		err := run(context.Background(), args, e, &out, &errOut)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), args[0]+" takes no arguments") {
			t.Errorf("%v = %v; want a usage error", args, err)
		}
		if out.Len() > 0 || strings.Contains(err.Error()+errOut.String(), args[len(args)-1]) {
			t.Errorf("%v printed %q, %q, %v; want nothing but the error, which does not repeat the arguments", args, out.String(), errOut.String(), err)
		}
	}
}
