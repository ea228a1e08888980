package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// TestMain lets a test run the real main in a child process (to see its exit status).
func TestMain(m *testing.M) {
	if os.Getenv("MASKGATE_RUN_MAIN") == "1" {
		os.Args = append([]string{"maskgate"}, strings.Fields(os.Getenv("MASKGATE_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const hsSecret = testkit.Canary + "jwt-hs256-0123456789abcdef"

// env is a complete, valid configuration for sim and the test Redis.
func env(sim *testkit.Sim, prefix string) map[string]string {
	return map[string]string{
		"MASKGATE_ADDR":             "127.0.0.1:0",
		"MASKGATE_REDIS_URL":        testkit.RedisURL(),
		"MASKGATE_REDIS_KEY_PREFIX": prefix,
		"MASKGATE_RATE_LIMIT":       "100000",
		"MASKGATE_JWT_ISSUER":       "https://idp.test",
		"MASKGATE_JWT_AUDIENCE":     "maskgate",
		"MASKGATE_JWT_HS256_SECRET": hsSecret,
		"CXONE_AUTH_URL":            sim.URL + cxonesim.TokenPath,
		"CXONE_CLIENT_ID":           sim.Credentials.ClientID,
		"CXONE_CLIENT_SECRET":       sim.Credentials.ClientSecret,
		"CXONE_ACCESS_KEY_ID":       sim.Credentials.AccessKeyID,
		"CXONE_ACCESS_KEY_SECRET":   sim.Credentials.AccessKeySecret,
	}
}

// callerToken is a caller's JWT with scope, as the configuration env makes trusts.
func callerToken(t *testing.T, scope string) string {
	return testkit.Token(t, jwt.SigningMethodHS256, []byte(hsSecret), testkit.Claims("https://idp.test", "maskgate", scope, nil), nil)
}

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

// started runs maskgate in the background and returns its address once it listens.
type started struct {
	addr    string
	version string             // as its "listening" line says
	tls     bool               // as its "listening" line says
	env     map[string]string  // its environment
	https   *http.Client       // set when it serves TLS: trusts its certificate
	cancel  context.CancelFunc // what SIGTERM does
	wait    func() error       // run's result, once it returned
	stderr  *strings.Builder

	startup []map[string]any // the log lines before "listening"

	mu    sync.Mutex
	lines []map[string]any // the log lines after "listening"
}

// logLine waits for the first log line after "listening" whose message is msg.
func (s *started) logLine(t *testing.T, msg string) map[string]any {
	t.Helper()
	return s.logLineWith(t, msg, nil)
}

// logLineWith waits for the first log line after "listening" whose message is msg and
// whose fields include these.
func (s *started) logLineWith(t *testing.T, msg string, fields map[string]any) map[string]any {
	t.Helper()
	var found map[string]any
	testkit.Eventually(t, 20*time.Second, fmt.Sprintf("log line %q with %v", msg, fields), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, l := range s.lines {
			if l["message"] == msg && matches(l, fields) {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

func matches(line, fields map[string]any) bool {
	for k, v := range fields {
		if line[k] != v {
			return false
		}
	}
	return true
}

// start runs maskgate with args and the environment e until the test ends.
func start(t *testing.T, args []string, e map[string]string) *started {
	t.Helper()
	return startWriting(t, args, e, func(w io.Writer) io.Writer { return w })
}

// startWriting is start with the gateway's standard output passed through out.
func startWriting(t *testing.T, args []string, e map[string]string, out func(io.Writer) io.Writer) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	s := &started{env: e, cancel: cancel, wait: sync.OnceValue(func() error { return <-done }), stderr: &strings.Builder{}}
	go func() {
		done <- run(ctx, args, environment(e), out(testkit.LogSink(t, pw)), testkit.LogSink(t, s.stderr))
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	for lines.Scan() {
		var entry struct {
			Message, Addr, Version string
			TLS                    bool
		}
		_ = json.Unmarshal(lines.Bytes(), &entry)
		if entry.Message == "listening" {
			s.addr, s.version, s.tls = entry.Addr, entry.Version, entry.TLS
			break
		}
		var line map[string]any
		if json.Unmarshal(lines.Bytes(), &line) == nil {
			s.startup = append(s.startup, line)
		}
	}
	if s.addr == "" {
		cancel()
		t.Fatalf("maskgate did not start: %v %s", s.wait(), s.stderr)
	}
	go func() {
		for lines.Scan() {
			var l map[string]any
			if json.Unmarshal(lines.Bytes(), &l) == nil {
				s.mu.Lock()
				s.lines = append(s.lines, l)
				s.mu.Unlock()
			}
		}
		io.Copy(io.Discard, pr) // a line too long for the scanner
	}()
	t.Cleanup(func() {
		cancel()
		_ = s.wait()
	})
	return s
}

// onRedis starts a gateway on the Redis at url (keys under prefix), its sweeper ticking
// every 200 ms.
func onRedis(t *testing.T, sim *testkit.Sim, url, prefix string) *started {
	t.Helper()
	e := env(sim, prefix)
	e["MASKGATE_REDIS_URL"] = url
	e["MASKGATE_SWEEP_INTERVAL"] = "200ms"
	return start(t, nil, e)
}

// answer is what the gateway answered.
type answer struct {
	status int
	header http.Header
	body   string
	proto  string // HTTP/1.1 or HTTP/2.0
}

// code is the problem code of an error answer ("" for any other).
func (a answer) code() string {
	var p struct{ Code string }
	_ = json.Unmarshal([]byte(a.body), &p)
	return p.Code
}

// call sends a request with a token of every caller scope, and with an Idempotency-Key
// unless idemKey is "".
func (s *started) call(t *testing.T, method, path, body, idemKey string) answer {
	t.Helper()
	a, err := s.send(t, method, path, body, idemKey)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// metric is the value /metrics gives the unlabelled metric name.
func (s *started) metric(t *testing.T, name string) float64 {
	t.Helper()
	for line := range strings.Lines(s.call(t, "GET", "/metrics", "", "").body) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// send is call that returns a failure to get an answer instead of ending the test.
func (s *started) send(t *testing.T, method, path, body, idemKey string) (answer, error) {
	base, client := "http://"+s.addr, http.DefaultClient
	if s.https != nil {
		base, client = "https://"+s.addr, s.https
	}
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+callerToken(t, "recordings:mask recordings:unmask recordings:read"))
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b), resp.Proto}, nil
}

func post(t *testing.T, url, token string) (*http.Response, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	return http.DefaultClient.Do(req)
}

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

var (
	tokenLine  = regexp.MustCompile(`export TOKEN=(\S+)`)
	localRedis = regexp.MustCompile(`^127\.0\.0\.1:\d+ db 0$`)
)

func TestLocalModeNeedsNoConfiguration(t *testing.T) {
	s := start(t, []string{"-local"}, map[string]string{"MASKGATE_ADDR": ":0"})
	if !strings.HasPrefix(s.addr, "127.0.0.1:") {
		t.Errorf("-local listens on %s; want loopback only", s.addr)
	}
	m := tokenLine.FindStringSubmatch(s.stderr.String())
	if m == nil || !strings.Contains(s.stderr.String(), "NOT FOR PRODUCTION") || !strings.Contains(s.stderr.String(), "curl") {
		t.Fatalf("-local printed no token, warning or curl:\n%s", s.stderr)
	}
	// It runs with a deployment's defaults: the configuration is read as one's is. And
	// its log says, as a warning, what it is, for a -local started where it should not be.
	var redis any
	warned := false
	for _, l := range s.startup {
		if l["message"] == "configuration" {
			redis = l["redis"]
		}
		warned = warned || l["level"] == "warn" && strings.HasPrefix(fmt.Sprint(l["message"]), "LOCAL MODE") && strings.Contains(fmt.Sprint(l["message"]), "NOT FOR PRODUCTION")
	}
	if !warned {
		t.Errorf("start-up lines %v; want a warning that this is -local, not for production", s.startup)
	}
	if r, _ := redis.(string); !localRedis.MatchString(r) {
		t.Errorf("-local's Redis is %v; want maskgate's own timeouts, which the configuration line leaves out", redis)
	}
	resp, err := post(t, "http://"+s.addr+"/v1/agents/1001/mask", m[1])
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("mask in -local = %v %v; want 200", resp, err)
	}
	resp.Body.Close()
	for _, path := range []string{"/v1/agents/1001/mask?verify=true", "/v1/masks"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+m[1])
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s in -local = %v %v; want 200", path, resp, err)
		}
		resp.Body.Close()
	}
	resp, err = post(t, "http://"+s.addr+"/v1/agents/1001/unmask", m[1])
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("unmask in -local = %v %v; want 200", resp, err)
	}
	resp.Body.Close()
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(m[1], &claims); err != nil || claims.ExpiresAt.Sub(claims.IssuedAt.Time) != 12*time.Hour {
		t.Errorf("-local's token: %+v (%v); want it valid for README's 12 hours", claims, err)
	}
}

// -local's embedded Redis lets keys expire as Redis does (miniredis only expires them
// when told that time passed): the records that Redis is trusted to drop, such as
// Idempotency-Key records and the rate counters, do not pile up while it runs.
func TestLocalModesRedisExpiresKeys(t *testing.T) {
	s := start(t, []string{"-local"}, map[string]string{"MASKGATE_ADDR": ":0"})
	var addr string
	for _, l := range s.startup {
		if l["message"] == "configuration" {
			addr, _ = strings.CutSuffix(fmt.Sprint(l["redis"]), " db 0")
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Set(ctx, "expires", "soon", time.Second).Err(); err != nil {
		t.Fatalf("-local's Redis at %q: %v", addr, err)
	}
	testkit.Eventually(t, 20*time.Second, "the key expired", func() bool { return rdb.Exists(ctx, "expires").Val() == 0 })
}

// TestLocalModeHonoursTheEnvironmentsSettings: -local takes the environment's settings
// as a deployment does, but for what it supplies itself (its Redis, simulator, dev key
// and loopback listener), which it says it ignored.
func TestLocalModeHonoursTheEnvironmentsSettings(t *testing.T) {
	read := map[string]bool{}
	_, _ = readConfig(func(name string) string { read[name] = true; return "" })
	for _, name := range localSupplies {
		if !read[name] {
			t.Errorf("-local supplies %s, which is no setting of maskgate's", name)
		}
	}
	s := start(t, []string{"-local"}, map[string]string{"MASKGATE_ADDR": "0.0.0.0:0", "MASKGATE_MASK_TTL": "42s",
		"MASKGATE_JWT_ISSUER": "https://idp.example", "CXONE_AUTH_URL": "https://cxone.example/auth/token",
		"MASKGATE_TLS_CERT_FILE": "/nonexistent", "MASKGATE_MASK_TIMEOUT": "1m", "MASKGATE_DEBUG_ADDR": "127.0.0.1:0"})
	want := map[string]any{"message": "configuration", "mask_ttl": "42s", "jwt_issuer": "maskgate-local"}
	var found, ignored bool
	for _, l := range s.startup {
		found = found || matches(l, want)
		ignored = ignored || fmt.Sprint(l["ignored"]) == "[MASKGATE_MASK_TIMEOUT]"
	}
	if !found || !ignored {
		t.Errorf("start-up lines %v; want one with %v, and MASKGATE_MASK_TIMEOUT named as no setting", s.startup, want)
	}
	if said := "ignored, -local supplies its own: MASKGATE_TLS_CERT_FILE, MASKGATE_DEBUG_ADDR, MASKGATE_JWT_ISSUER, CXONE_AUTH_URL\n"; !strings.Contains(s.stderr.String(), said) {
		t.Errorf("-local printed:\n%s\nwant %q", s.stderr, said)
	}
	if !strings.HasPrefix(s.addr, "127.0.0.1:") {
		t.Errorf("-local listens on %s; want loopback only", s.addr)
	}
	m := tokenLine.FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("-local printed no token:\n%s", s.stderr)
	}
	resp, err := post(t, "http://"+s.addr+"/v1/agents/1001/mask", m[1])
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("mask in -local = %v %v; want 200", resp, err)
	}
	var session struct{ MaskedAt, ExpiresAt time.Time }
	err = json.NewDecoder(resp.Body).Decode(&session)
	resp.Body.Close()
	if ttl := session.ExpiresAt.Sub(session.MaskedAt); err != nil || ttl != 42*time.Second {
		t.Errorf("the mask's deadline is %v after it (%v); want MASKGATE_MASK_TTL's 42s", ttl, err)
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
