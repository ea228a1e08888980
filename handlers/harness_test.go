package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	maskgate "github.com/maskgate/maskgate"
	"github.com/maskgate/maskgate/handlers"
	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/middleware"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream"
)

const (
	issuer   = "https://idp.test"
	audience = "maskgate"
)

var secret = []byte(testkit.Canary + "handlers-jwt-0123456789abcdef")

// spec is openapi.yaml loaded once, with a router to find each request's operation.
var spec = func() struct {
	doc    *openapi3.T
	router routers.Router
} {
	doc, err := openapi3.NewLoader().LoadFromData(maskgate.OpenAPI)
	if err != nil {
		panic(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		panic("openapi.yaml is not valid: " + err.Error())
	}
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		panic(err)
	}
	return struct {
		doc    *openapi3.T
		router routers.Router
	}{doc, router}
}()

// countsAsTouching is a command that reads or writes the gateway's state: not one on a
// caller's rate counter (an authorized GET counts against its caller's rate before its
// parameters are checked), nor the handshake of a new connection (go-redis sends it
// through the hooks when a pipeline dials).
func countsAsTouching(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client", "auth", "select":
		return false
	}
	for _, a := range cmd.Args() {
		if s, ok := a.(string); ok && strings.Contains(s, ":rate:") {
			return false
		}
	}
	return true
}

// gateway is a maskgate server over real HTTP, on real Redis, in front of the simulator.
type gateway struct {
	t      *testing.T
	url    string
	sim    *testkit.Sim
	rdb    *redis.Client // the gateway's own client
	prefix string
	cmds   *testkit.CommandCounter
	logs   *testkit.LogBuffer
}

type gatewayOption func(*gatewaySetup)

type gatewaySetup struct {
	rdb      *redis.Client
	upstream upstream.Config
	limit    int
	trusted  []netip.Prefix
	origins  []string
	longest  time.Duration
	checks   []handlers.Check // readiness checks beside redis and cxone
}

// withRateLimit sets the per-caller rate limit (default: high enough not to matter).
func withRateLimit(n int) gatewayOption { return func(s *gatewaySetup) { s.limit = n } }

// withTrustedProxies makes the gateway believe X-Forwarded-For from these peers.
func withTrustedProxies(p ...netip.Prefix) gatewayOption {
	return func(s *gatewaySetup) { s.trusted = p }
}

// withCORS lets pages of these origins call the gateway from a browser.
func withCORS(origins ...string) gatewayOption { return func(s *gatewaySetup) { s.origins = origins } }

// withLongestRequest says how long a request may run (default: two upstream budgets).
func withLongestRequest(d time.Duration) gatewayOption {
	return func(s *gatewaySetup) { s.longest = d }
}

// withCXoneTimeout sets how long one CXone attempt may take (default 300 ms): an
// operation CXone does not answer then holds its agent for the whole budget, 2 s.
func withCXoneTimeout(d time.Duration) gatewayOption {
	return func(s *gatewaySetup) { s.upstream.Timeout = d }
}

// withReadyCheck adds a readiness check to /readyz.
func withReadyCheck(c handlers.Check) gatewayOption {
	return func(s *gatewaySetup) { s.checks = append(s.checks, c) }
}

// withRedis gives the gateway another Redis client (a dead one, say).
func withRedis(rdb *redis.Client) gatewayOption { return func(s *gatewaySetup) { s.rdb = rdb } }

func newGateway(t *testing.T, opts ...gatewayOption) *gateway {
	t.Helper()
	cmds := &testkit.CommandCounter{Match: countsAsTouching}
	rdb, prefix := testkit.Redis(t, cmds)
	sim := testkit.NewSim(t)
	setup := gatewaySetup{rdb: rdb, upstream: sim.UpstreamConfig(), limit: 10000, longest: 4 * time.Second}
	setup.upstream.Timeout = 300 * time.Millisecond
	for _, o := range opts {
		o(&setup)
	}
	logs := &testkit.LogBuffer{}
	log := zerolog.New(testkit.LogSink(t, logs)).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	auth, err := middleware.NewAuthenticator(context.Background(), middleware.AuthConfig{
		Issuer: issuer, Audience: audience, Leeway: 30 * time.Second, HS256Secret: secret,
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	upCfg := setup.upstream
	upCfg.Registerer = reg
	cx := upstream.New(upCfg)
	store := sessions.NewStore(setup.rdb, prefix)
	svc := sessions.NewService(store, cx, sessions.Config{
		DefaultTTL: 15 * time.Minute, MaxTTL: 2 * time.Hour, UpstreamBudget: 2 * time.Second, Registerer: reg,
	})
	srv := httptest.NewServer(handlers.NewServer(handlers.Deps{
		Log: log, Sessions: svc, Replays: store, Rates: store, Limit: setup.limit, Auth: auth, Registry: reg,
		Checks: append([]handlers.Check{{Name: "redis", Fn: svc.Ready}, {Name: "cxone", Fn: cx.Ready}}, setup.checks...), TrustedProxies: setup.trusted, CORSOrigins: setup.origins, LongestRequest: setup.longest,
	}))
	t.Cleanup(srv.Close)
	return &gateway{t: t, url: srv.URL, sim: sim, rdb: setup.rdb, prefix: prefix, cmds: cmds, logs: logs}
}

// token signs a caller token with scope, changed by extra (nil values remove claims).
func (g *gateway) token(scope string, extra jwt.MapClaims) string {
	return testkit.Token(g.t, jwt.SigningMethodHS256, secret, testkit.Claims(issuer, audience, scope, extra), nil)
}

// all is a token holding every scope.
func (g *gateway) all() string {
	return g.token("recordings:mask recordings:unmask recordings:read", nil)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a map.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
	return m
}

// do sends a request and checks that the answer conforms to openapi.yaml. header holds
// name, value pairs, which replace do's own headers of that name; a name given twice is
// sent twice.
func (g *gateway) do(method, path, token, body string, header ...string) response {
	g.t.Helper()
	req, err := http.NewRequest(method, g.url+path, strings.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Del(header[i])
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	g.conforms(req, resp, raw)
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// conforms fails the test when an answer is not what the spec promises for its
// operation: an undocumented status, a body that breaks its schema, or an error that
// is not problem+json with the request id.
func (g *gateway) conforms(req *http.Request, resp *http.Response, body []byte) {
	g.t.Helper()
	if resp.Header.Get("X-Request-ID") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		g.t.Errorf("%s %s: no X-Request-ID header, or no X-Content-Type-Options: nosniff", req.Method, req.URL.Path)
	}
	if strings.HasPrefix(req.URL.Path, "/v1/") && resp.Header.Get("Cache-Control") != "no-store" {
		g.t.Errorf("%s %s: answered without Cache-Control: no-store", req.Method, req.URL.Path)
	}
	head := req.Method == http.MethodHead // GET's answer without its body (RFC 9110 §9.3.2)
	if head {
		get := req.Clone(req.Context())
		get.Method = http.MethodGet
		if _, _, err := spec.router.FindRoute(get); err != nil && resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			g.t.Errorf("HEAD %s: answered %d but the spec has no GET there", req.URL.Path, resp.StatusCode)
		}
		if len(body) > 0 {
			g.t.Errorf("HEAD %s: answered with a body", req.URL.Path)
		}
	}
	if resp.StatusCode >= 400 && !(req.URL.Path == "/readyz" && resp.StatusCode == http.StatusServiceUnavailable) && !head { // readyz's 503 answers its checks, not a problem
		var p struct {
			Code      string `json:"code"`
			RequestID string `json:"requestId"`
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			g.t.Errorf("%s %s: error %d with Content-Type %q", req.Method, req.URL.Path, resp.StatusCode, ct)
		}
		replay := resp.Header.Get("Idempotent-Replayed") == "true" // carries the first request's id
		if err := json.Unmarshal(body, &p); err != nil || p.Code == "" || (!replay && p.RequestID != resp.Header.Get("X-Request-ID")) {
			g.t.Errorf("%s %s: problem %s without the request id", req.Method, req.URL.Path, body)
		}
	}
	if head {
		return
	}
	route, params, err := spec.router.FindRoute(req)
	if err != nil {
		// chi matches an empty userId (/v1/agents//mask), which the spec's router does
		// not; it is refused as any other invalid userId.
		emptyUserID := resp.StatusCode == http.StatusBadRequest && strings.HasPrefix(req.URL.Path, "/v1/agents//")
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed && !emptyUserID {
			g.t.Errorf("%s %s: answered %d but the spec has no such operation", req.Method, req.URL.Path, resp.StatusCode)
		}
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true},
		},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		g.t.Errorf("%s %s answered %d, which breaks openapi.yaml: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
}

// untouched fails the test when anything but the caller's rate counter reached Redis,
// or anything reached CXone.
func (g *gateway) untouched(what string) {
	g.t.Helper()
	if n := g.cmds.N(); n != 0 {
		g.t.Errorf("%s: %d Redis commands were sent; want none", what, n)
	}
	if n := len(g.sim.Requests()); n != 0 {
		g.t.Errorf("%s: %d requests reached CXone; want none", what, n)
	}
	if n := g.sim.TokensIssued(); n != 0 {
		g.t.Errorf("%s: %d CXone tokens were requested; want none", what, n)
	}
}

// upstreamClient is a CXone client of its own on the gateway's simulator, for acting
// on CXone behind the gateway's back.
func upstreamClient(t *testing.T, g *gateway) *upstream.Client {
	t.Helper()
	return upstream.New(g.sim.UpstreamConfig())
}
