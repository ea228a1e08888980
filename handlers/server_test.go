package handlers_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

func TestMaskAndUnmaskRoundTrip(t *testing.T) {
	g := newGateway(t)
	call := g.sim.StartCall("1234567", false, true)
	tok := g.token("recordings:mask recordings:unmask recordings:read", jwt.MapClaims{"sub": "crm-app"})

	r := g.do("POST", "/v1/agents/1234567/mask", tok, `{"reason":"payment","ttlSeconds":300}`)
	if r.status != 200 {
		t.Fatalf("mask = %d %s; want 200", r.status, r.body)
	}
	s := r.json(t)
	if s["state"] != "masked" || s["maskedBy"] != "crm-app" || s["reason"] != "payment" || s["userId"] != "1234567" {
		t.Errorf("mask answer = %v", s)
	}
	id := s["sessionId"].(string)

	if r := g.do("GET", "/v1/agents/1234567/mask", tok, ""); r.status != 200 || r.json(t)["sessionId"] != id {
		t.Errorf("get = %d %s", r.status, r.body)
	}
	r = g.do("GET", "/v1/agents/1234567/mask?verify=true", tok, "")
	rec, _ := r.json(t)["recording"].(map[string]any)
	if r.status != 200 || rec["activeCall"] != true || rec["statusReason"] != "Mask" {
		t.Errorf("get with verify = %d %s", r.status, r.body)
	}
	if r := g.do("GET", "/v1/masks", tok, ""); r.status != 200 || len(r.json(t)["items"].([]any)) != 1 || r.json(t)["nextCursor"] != nil {
		t.Errorf("list = %d %s", r.status, r.body)
	}

	r = g.do("POST", "/v1/agents/1234567/unmask", tok, fmt.Sprintf(`{"sessionId":%q}`, id))
	s = r.json(t)
	if r.status != 200 || s["state"] != "closed" || s["closeReason"] != "unmasked" || s["unmaskedBy"] != "crm-app" || s["unmaskedAt"] == nil {
		t.Fatalf("unmask = %d %s; want 200 closed", r.status, r.body)
	}
	if c, _ := g.sim.Call(call.ID); c.Masked || len(c.MaskedSpans()) != 1 {
		t.Errorf("CXone call after the round trip: masked=%v spans=%v", c.Masked, c.MaskedSpans())
	}
	if r := g.do("GET", "/v1/agents/1234567/mask", tok, ""); r.status != 404 || r.json(t)["code"] != "not_masked" {
		t.Errorf("get after unmask = %d %s; want 404 not_masked", r.status, r.body)
	}
	if r := g.do("POST", "/v1/agents/1234567/unmask", tok, ""); r.status != 409 || r.json(t)["code"] != "not_masked" {
		t.Errorf("second unmask = %d %s; want 409 not_masked", r.status, r.body)
	}
	if n := g.sim.Count("unmask", "", 0); n != 1 {
		t.Errorf("unmasks sent to CXone = %d; want 1", n)
	}
}

// A body may end in white space, as JSON encoders end theirs with a newline; only
// something else after the value is refused (TestRejectedRequestsNeverReachRedisOrCXone).
func TestBodyEndingInWhiteSpaceIsRead(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	r := g.do("POST", "/v1/agents/a1/mask", g.all(), "{\"reason\":\"payment\"}\n \r\n\t")
	if r.status != 200 || r.json(t)["reason"] != "payment" {
		t.Errorf("mask = %d %s; want 200 with the body's reason", r.status, r.body)
	}
}

// A body refused says what is wrong in the caller's terms (JSON's types, the field's
// name), never echoing what the caller sent.
func TestBodyProblemsSayWhatIsWrong(t *testing.T) {
	g := newGateway(t)
	for body, detail := range map[string]string{
		`{"ttlSeconds":"30"}`:   "field ttlSeconds must be a JSON integer",
		`{"ttlSeconds":1e2}`:    "field ttlSeconds must be a JSON integer",
		`{"ttlSeconds":100.5}`:  "field ttlSeconds must be a JSON integer",
		`{"reason":5}`:          "field reason must be a JSON string",
		`{"reason":`:            "the request body is not valid JSON",
		`[5]`:                   "the request body must be a JSON object",
		`{"ttl":31}`:            `unknown field "ttl"`,
		`{"reason":"x"}{"a":7}`: "the request body must be one JSON value with nothing after it",
	} {
		r := g.do("POST", "/v1/agents/a1/mask", g.all(), body)
		if r.status != 400 || r.json(t)["detail"] != detail {
			t.Errorf("%s: %d %s; want 400 %q", body, r.status, r.body, detail)
		}
	}
	g.untouched("bad bodies")
}

// A body is read as JSON whatever its Content-Type (README, API): curl -d labels it a
// form, and README's examples send it so. A form's body is still not JSON.
func TestBodyIsReadAsJSONWhateverItsContentType(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), `{"reason":"payment"}`, form...); r.status != 200 || r.json(t)["reason"] != "payment" {
		t.Errorf("mask labelled a form = %d %s; want 200 with the body's reason", r.status, r.body)
	}
	if r := g.do("POST", "/v1/agents/a2/mask", g.all(), "reason=payment", form...); r.status != 400 || r.json(t)["code"] != "invalid_body" {
		t.Errorf("mask with a form's body = %d %s; want 400 invalid_body", r.status, r.body)
	}
}

// TestStatusTable walks every row of design §2's status table that a mask, unmask or
// read can answer, each with the problem code the contract names.
func TestStatusTable(t *testing.T) {
	type tc struct {
		name   string
		setup  func(g *gateway) // simulator and state
		method string
		path   string
		body   string
		token  func(g *gateway) string
		status int
		code   string
	}
	all := func(g *gateway) string { return g.all() }
	withCall := func(g *gateway) { g.sim.StartCall("a1", false, true) }
	masked := func(g *gateway) {
		withCall(g)
		if r := g.do("POST", "/v1/agents/a1/mask", g.all(), ""); r.status != 200 {
			t.Fatalf("setup mask = %d %s", r.status, r.body)
		}
	}
	tests := []tc{
		{"mask done", withCall, "POST", "/v1/agents/a1/mask", "", all, 200, ""},
		{"mask accepted by CXone", func(g *gateway) { withCall(g); g.sim.SetBehaviour("a1", 0, time.Second) }, "POST", "/v1/agents/a1/mask", "", all, 202, ""},
		{"unmask done", masked, "POST", "/v1/agents/a1/unmask", "", all, 200, ""},
		{"unmask accepted by CXone", func(g *gateway) { masked(g); g.sim.SetBehaviour("a1", 0, time.Second) }, "POST", "/v1/agents/a1/unmask", "", all, 202, ""},
		{"unmask while CXone fails", func(g *gateway) {
			masked(g)
			g.sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: 503})
		}, "POST", "/v1/agents/a1/unmask", "", all, 202, ""},
		{"no active call", nil, "POST", "/v1/agents/a1/mask", "", all, 404, "no_active_call"},
		{"get not masked", nil, "GET", "/v1/agents/a1/mask", "", all, 404, "not_masked"},
		{"unmask not masked", withCall, "POST", "/v1/agents/a1/unmask", "", all, 409, "not_masked"},
		{"unmask of another session", masked, "POST", "/v1/agents/a1/unmask", `{"sessionId":"stale"}`, all, 409, "session_mismatch"},
		{"internal call", func(g *gateway) { g.sim.StartCall("a1", true, true) }, "POST", "/v1/agents/a1/mask", "", all, 422, "internal_call"},
		{"CXone refuses the key", func(g *gateway) { withCall(g); g.sim.SetFaults(cxonesim.Faults{DenyMasking: true}) }, "POST", "/v1/agents/a1/mask", "", all, 502, "upstream_refused"},
		{"CXone keeps failing", func(g *gateway) {
			withCall(g)
			g.sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: 503})
		}, "POST", "/v1/agents/a1/mask", "", all, 503, "upstream_unavailable"},
		{"CXone keeps locking", func(g *gateway) { withCall(g); g.sim.SetBehaviour("a1", 100, 0) }, "POST", "/v1/agents/a1/mask", "", all, 503, "upstream_unavailable"},
		{"CXone hangs", func(g *gateway) {
			withCall(g)
			if r := g.do("GET", "/readyz", "", ""); r.status != 200 { // token first
				t.Fatalf("readyz = %d", r.status)
			}
			g.sim.SetFaults(cxonesim.Faults{Hang: true})
		}, "POST", "/v1/agents/a1/mask", "", all, 504, "upstream_timeout"},
		{"verify while CXone hangs", func(g *gateway) {
			masked(g)
			g.sim.SetFaults(cxonesim.Faults{Hang: true})
		}, "GET", "/v1/agents/a1/mask?verify=true", "", all, 504, "upstream_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t)
			if tt.setup != nil {
				tt.setup(g)
			}
			r := g.do(tt.method, tt.path, tt.token(g), tt.body)
			if r.status != tt.status {
				t.Fatalf("%s %s = %d %s; want %d", tt.method, tt.path, r.status, r.body, tt.status)
			}
			if tt.code != "" && r.json(t)["code"] != tt.code {
				t.Errorf("code = %v; want %s", r.json(t)["code"], tt.code)
			}
			if r.status == 503 && r.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

func TestUnmaskOfAnEndedCallClosesAsCallEnded(t *testing.T) {
	g := newGateway(t)
	call := g.sim.StartCall("a1", false, true)
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), ""); r.status != 200 {
		t.Fatal(r.status)
	}
	g.sim.EndCall(call.ID)
	r := g.do("POST", "/v1/agents/a1/unmask", g.all(), "")
	if r.status != 200 || r.json(t)["closeReason"] != "call_ended" {
		t.Fatalf("unmask after the call ended = %d %s; want 200 call_ended", r.status, r.body)
	}
}

func TestRedisDownAnswers503AndCXoneIsNotCalled(t *testing.T) {
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { dead.Close() })
	g := newGateway(t, withRedis(dead))
	g.sim.StartCall("a1", false, true)
	for _, req := range []struct {
		method, path string
		header       []string
	}{
		{"POST", "/v1/agents/a1/mask", nil},
		{"POST", "/v1/agents/a1/mask", []string{"Idempotency-Key", "k-1"}}, // its record is in Redis too
		{"POST", "/v1/agents/a1/unmask", nil},
		{"GET", "/v1/agents/a1/mask", nil},
		{"GET", "/v1/masks", nil},
	} {
		r := g.do(req.method, req.path, g.all(), "", req.header...)
		if r.status != 503 || r.json(t)["code"] != "store_unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s with Redis down = %d %s; want 503 store_unavailable with Retry-After", req.method, req.path, r.status, r.body)
		}
		if strings.Contains(string(r.body), "127.0.0.1:1") {
			t.Errorf("the answer shows Redis's address: %s", r.body)
		}
	}
	if n := len(g.sim.Requests()); n != 0 {
		t.Errorf("%d requests reached CXone with Redis down; want none", n)
	}
	r := g.do("GET", "/readyz", "", "")
	checks, _ := r.json(t)["checks"].(map[string]any)
	if r.status != 503 || checks["redis"] == "ok" || checks["cxone"] != "ok" {
		t.Errorf("readyz with Redis down = %d %s; want 503 naming redis", r.status, r.body)
	}
}

// TestRejectedRequestsNeverReachRedisOrCXone covers the 4xx answers that come before
// any work: authentication, scopes, the agent binding and input validation.
func TestRejectedRequestsNeverReachRedisOrCXone(t *testing.T) {
	long := strings.Repeat("x", 129)
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		token  func(g *gateway) string
		header []string
		status int
		code   string
	}{
		{"no token", "POST", "/v1/agents/a1/mask", "", func(*gateway) string { return "" }, nil, 401, "unauthorized"},
		{"garbage token", "POST", "/v1/agents/a1/mask", "", func(*gateway) string { return "garbage" }, nil, 401, "unauthorized"},
		{"basic auth", "POST", "/v1/agents/a1/mask", "", func(*gateway) string { return "" }, []string{"Authorization", "Basic dXNlcjpwYXNz"}, 401, "unauthorized"},
		{"alg none", "POST", "/v1/agents/a1/mask", "", func(g *gateway) string {
			return unsigned(g)
		}, nil, 401, "unauthorized"},
		{"expired", "POST", "/v1/agents/a1/mask", "", func(g *gateway) string {
			return g.token("recordings:mask", jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()})
		}, nil, 401, "unauthorized"},
		{"wrong audience", "POST", "/v1/agents/a1/mask", "", func(g *gateway) string {
			return g.token("recordings:mask", jwt.MapClaims{"aud": "other"})
		}, nil, 401, "unauthorized"},
		{"mask without recordings:mask", "POST", "/v1/agents/a1/mask", "", func(g *gateway) string { return g.token("recordings:read recordings:unmask", nil) }, nil, 403, "insufficient_scope"},
		{"unmask without recordings:unmask", "POST", "/v1/agents/a1/unmask", "", func(g *gateway) string { return g.token("recordings:mask", nil) }, nil, 403, "insufficient_scope"},
		{"get without recordings:read", "GET", "/v1/agents/a1/mask", "", func(g *gateway) string { return g.token("recordings:mask", nil) }, nil, 403, "insufficient_scope"},
		{"list without recordings:read", "GET", "/v1/masks", "", func(g *gateway) string { return g.token("recordings:mask", nil) }, nil, 403, "insufficient_scope"},
		{"agent token on another agent", "POST", "/v1/agents/a1/mask", "", func(g *gateway) string {
			return g.token("recordings:mask", jwt.MapClaims{"agent_id": "a2"})
		}, nil, 403, "agent_forbidden"},
		{"agent token unmasking another agent", "POST", "/v1/agents/a1/unmask", "", func(g *gateway) string {
			return g.token("recordings:unmask", jwt.MapClaims{"agent_id": "a2"})
		}, nil, 403, "agent_forbidden"},
		{"agent token listing", "GET", "/v1/masks", "", func(g *gateway) string {
			return g.token("recordings:read", jwt.MapClaims{"agent_id": "a1"})
		}, nil, 403, "agent_forbidden"},
		{"user id with a space", "POST", "/v1/agents/a%20b/mask", "", (*gateway).all, nil, 400, "invalid_user_id"},
		{"user id with a star", "POST", "/v1/agents/a*b/mask", "", (*gateway).all, nil, 400, "invalid_user_id"},
		{"user id with braces", "GET", "/v1/agents/%7Bx%7D/mask", "", (*gateway).all, nil, 400, "invalid_user_id"},
		{"user id with an encoded slash", "POST", "/v1/agents/a%2Fb/unmask", "", (*gateway).all, nil, 400, "invalid_user_id"},
		{"empty user id", "POST", "/v1/agents//mask", "", (*gateway).all, nil, 400, "invalid_user_id"},
		{"empty user id, GET", "GET", "/v1/agents//mask", "", (*gateway).all, nil, 400, "invalid_user_id"},
		{"user id of 129 characters", "POST", "/v1/agents/" + long + "/mask", "", (*gateway).all, nil, 400, "invalid_user_id"},
		{"body not JSON", "POST", "/v1/agents/a1/mask", "reason=payment", (*gateway).all, nil, 400, "invalid_body"},
		{"body truncated", "POST", "/v1/agents/a1/mask", `{"reason":`, (*gateway).all, nil, 400, "invalid_body"},
		{"body an array", "POST", "/v1/agents/a1/mask", `[]`, (*gateway).all, nil, 400, "invalid_body"},
		{"body null", "POST", "/v1/agents/a1/mask", `null`, (*gateway).all, nil, 400, "invalid_body"},
		{"a card number in the reason", "POST", "/v1/agents/a1/mask", `{"reason":"card 4111 1111 1111 1111"}`, (*gateway).all, nil, 400, "invalid_body"},
		{"two bodies", "POST", "/v1/agents/a1/mask", `{"ttlSeconds":60}{"ttlSeconds":1}`, (*gateway).all, nil, 400, "invalid_body"},
		{"body with text after it", "POST", "/v1/agents/a1/unmask", `{} and more`, (*gateway).all, nil, 400, "invalid_body"},
		{"unknown field", "POST", "/v1/agents/a1/mask", `{"ttl":30}`, (*gateway).all, nil, 400, "invalid_body"},
		{"ttlSeconds a string", "POST", "/v1/agents/a1/mask", `{"ttlSeconds":"30"}`, (*gateway).all, nil, 400, "invalid_body"},
		{"ttlSeconds a fraction", "POST", "/v1/agents/a1/mask", `{"ttlSeconds":1.5}`, (*gateway).all, nil, 400, "invalid_body"},
		{"ttlSeconds 0", "POST", "/v1/agents/a1/mask", `{"ttlSeconds":0}`, (*gateway).all, nil, 400, "invalid_body"},
		{"ttlSeconds negative", "POST", "/v1/agents/a1/mask", `{"ttlSeconds":-1}`, (*gateway).all, nil, 400, "invalid_body"},
		{"ttlSeconds over the max", "POST", "/v1/agents/a1/mask", `{"ttlSeconds":7201}`, (*gateway).all, nil, 400, "invalid_body"},
		{"ttlSeconds overflowing", "POST", "/v1/agents/a1/mask", `{"ttlSeconds":99999999999999999999}`, (*gateway).all, nil, 400, "invalid_body"},
		{"reason a number", "POST", "/v1/agents/a1/mask", `{"reason":5}`, (*gateway).all, nil, 400, "invalid_body"},
		{"reason of 201 characters", "POST", "/v1/agents/a1/mask", `{"reason":"` + strings.Repeat("r", 201) + `"}`, (*gateway).all, nil, 400, "invalid_body"},
		{"unmask unknown field", "POST", "/v1/agents/a1/unmask", `{"session":"x"}`, (*gateway).all, nil, 400, "invalid_body"},
		{"unmask empty sessionId", "POST", "/v1/agents/a1/unmask", `{"sessionId":""}`, (*gateway).all, nil, 400, "invalid_body"},
		{"unmask sessionId a number", "POST", "/v1/agents/a1/unmask", `{"sessionId":7}`, (*gateway).all, nil, 400, "invalid_body"},
		{"body over 16 KiB", "POST", "/v1/agents/a1/mask", `{"reason":"` + strings.Repeat("r", 17<<10) + `"}`, (*gateway).all, nil, 413, "body_too_large"},
		{"limit 0", "GET", "/v1/masks?limit=0", "", (*gateway).all, nil, 400, "invalid_parameter"},
		{"limit 1001", "GET", "/v1/masks?limit=1001", "", (*gateway).all, nil, 400, "invalid_parameter"},
		{"limit not a number", "GET", "/v1/masks?limit=ten", "", (*gateway).all, nil, 400, "invalid_parameter"},
		{"cursor not ours", "GET", "/v1/masks?cursor=%25%25", "", (*gateway).all, nil, 400, "invalid_parameter"},
		{"verify not a boolean", "GET", "/v1/agents/a1/mask?verify=maybe", "", (*gateway).all, nil, 400, "invalid_parameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t)
			g.sim.StartCall("a1", false, true)
			r := g.do(tt.method, tt.path, tt.token(g), tt.body, tt.header...)
			if r.status != tt.status || r.json(t)["code"] != tt.code {
				t.Fatalf("%s %s = %d %s; want %d %s", tt.method, tt.path, r.status, r.body, tt.status, tt.code)
			}
			if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", r.header.Get("WWW-Authenticate"))
			}
			g.untouched(tt.name)
		})
	}
}

// unsigned is an alg=none token with otherwise valid claims.
func unsigned(g *gateway) string {
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"iss": issuer, "aud": audience, "sub": "x", "scope": "recordings:mask", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	return tok
}

// A request line Go's HTTP server cannot parse (a malformed % escape in the path) is
// refused by that server before the gateway sees it, as README says: a plain-text 400
// that closes the connection, with no access line, and nothing read or written.
func TestUnparsableRequestLineIsRefusedByTheServer(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/agents/a%%zz1/mask HTTP/1.1\r\nHost: maskgate\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n", g.all())
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || !resp.Close {
		t.Errorf("answer = %d %v (close %v); want net/http's plain-text 400 that closes", resp.StatusCode, resp.Header, resp.Close)
	}
	if lines := testkit.LogLines(t, g.logs.String()); len(lines) != 0 {
		t.Errorf("log lines = %v; want none", lines)
	}
	g.untouched("an unparsable request line")
}

func TestAgentTokenActsOnItsOwnAgent(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	tok := g.token("recordings:mask recordings:unmask recordings:read", jwt.MapClaims{"sub": "agent-desktop", "agent_id": "a1", "azp": "crm-desktop"})
	r := g.do("POST", "/v1/agents/a1/mask", tok, "")
	if r.status != 200 || r.json(t)["maskedBy"] != "agent-desktop (crm-desktop)" {
		t.Fatalf("agent token masking itself = %d %s", r.status, r.body)
	}
	if r := g.do("POST", "/v1/agents/a1/unmask", tok, ""); r.status != 200 {
		t.Fatalf("agent token unmasking itself = %d %s", r.status, r.body)
	}
}

// An agent's id in the path may be percent-encoded, as encodeURIComponent writes
// "user@tenant": it is still the token's own agent, and another agent's stays refused.
func TestAgentTokenActsOnItsOwnAgentEncoded(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("user@tenant", false, true)
	tok := g.token("recordings:mask recordings:read", jwt.MapClaims{"agent_id": "user@tenant"})
	if r := g.do("POST", "/v1/agents/user%40tenant/mask", tok, ""); r.status != 200 || r.json(t)["userId"] != "user@tenant" {
		t.Errorf("agent token masking itself, encoded = %d %s; want 200", r.status, r.body)
	}
	if r := g.do("GET", "/v1/agents/other%40tenant/mask", tok, ""); r.status != 403 || r.json(t)["code"] != "agent_forbidden" {
		t.Errorf("agent token reading another agent, encoded = %d %s; want 403 agent_forbidden", r.status, r.body)
	}
}

// A numeric agent_id, as identity providers write CXone's agent ids, binds the token to
// that agent; it was once read as no agent_id at all, a token for every agent.
func TestAgentTokenWithANumericAgentID(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("1234567", false, true)
	tok := g.token("recordings:mask recordings:read", jwt.MapClaims{"agent_id": 1234567})
	if r := g.do("POST", "/v1/agents/1234567/mask", tok, ""); r.status != 200 {
		t.Errorf("agent 1234567 masking itself = %d %s; want 200", r.status, r.body)
	}
	for _, path := range []string{"/v1/agents/7654321/mask", "/v1/masks"} {
		if r := g.do("GET", path, tok, ""); r.status != 403 || r.json(t)["code"] != "agent_forbidden" {
			t.Errorf("agent 1234567: GET %s = %d %s; want 403 agent_forbidden", path, r.status, r.body)
		}
	}
}

func TestListPaginates(t *testing.T) {
	g := newGateway(t)
	for i := range 5 {
		id := fmt.Sprintf("agent-%d", i)
		g.sim.StartCall(id, false, true)
		if r := g.do("POST", "/v1/agents/"+id+"/mask", g.all(), ""); r.status != 200 {
			t.Fatal(r.status)
		}
	}
	var seen []string
	path := "/v1/masks?limit=2"
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("more pages than sessions")
		}
		r := g.do("GET", path, g.all(), "")
		body := r.json(t)
		for _, it := range body["items"].([]any) {
			seen = append(seen, it.(map[string]any)["userId"].(string))
		}
		next, _ := body["nextCursor"].(string)
		if next == "" {
			break
		}
		path = "/v1/masks?limit=2&cursor=" + next
	}
	if strings.Join(seen, ",") != "agent-0,agent-1,agent-2,agent-3,agent-4" {
		t.Errorf("pages gave %v", seen)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	g := newGateway(t)
	if r := g.do("GET", "/healthz", "", ""); r.status != 200 || r.json(t)["status"] != "ok" {
		t.Errorf("healthz = %d %s", r.status, r.body)
	}
	if r := g.do("GET", "/readyz", "", ""); r.status != 200 {
		t.Errorf("readyz = %d %s", r.status, r.body)
	}
	if r := g.do("GET", "/openapi.yaml", "", ""); r.status != 200 || !strings.Contains(string(r.body), "openapi: 3.0.3") {
		t.Errorf("openapi.yaml = %d", r.status)
	}
	g.sim.StartCall("a1", false, true)
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), ""); r.status != 200 {
		t.Fatalf("mask = %d", r.status)
	}
	r := g.do("GET", "/metrics", "", "")
	for _, line := range []string{
		`maskgate_http_requests_total{method="POST",route="/v1/agents/{userId}/mask",status="200"} 1`,
		`maskgate_cxone_requests_total{op="mask",status="200"} 1`,
		`maskgate_cxone_token_requests_total{grant="password",status="200"} 1`,
		`maskgate_session_events_total{event="masked"} 1`,
		`maskgate_session_events_total{event="unmask_gave_up"} 0`, // every event from the start
		"maskgate_open_sessions 1",
		"maskgate_redis_up 1",
		"maskgate_unmasks_pending 0",
		"maskgate_unmask_giveups_total 0",
		"maskgate_unmask_failures_total 0",
		"maskgate_sweeper_lag_seconds_count 0",
	} {
		if !strings.Contains(string(r.body), line+"\n") {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	// The mask's two scripts, each its own round trip here; the sweeper's may add to both.
	sample := func(name string) float64 {
		for line := range strings.Lines(string(r.body)) {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				return f
			}
		}
		t.Errorf("/metrics lacks %s", name)
		return 0
	}
	if pipelines, scripts := sample("maskgate_redis_script_pipelines_total"), sample("maskgate_redis_scripts_total"); scripts < 2 || pipelines < 1 || pipelines > scripts {
		t.Errorf("/metrics: %v script pipelines carrying %v scripts; want at least the mask's 2 scripts, in at most as many pipelines", pipelines, scripts)
	}
	if strings.Contains(string(r.body), `route="/v1/agents/a1`) {
		t.Error("/metrics labels a route with a user id")
	}
	if r := g.do("GET", "/nowhere", "", ""); r.status != 404 || r.json(t)["code"] != "not_found" {
		t.Errorf("unknown route = %d %s", r.status, r.body)
	}
}

// A method a route does not serve is 405 with the methods it does serve in Allow (RFC
// 9110 §15.5.6), before authentication, as for a route that does not exist.
func TestWrongMethodIsAnsweredWithTheAllowedOnes(t *testing.T) {
	g := newGateway(t)
	for _, tt := range []struct{ method, path, allow string }{
		{"DELETE", "/v1/masks", "GET"},
		{"PUT", "/v1/agents/a1/mask", "GET, POST"},
		{"GET", "/v1/agents/a1/unmask", "POST"},
		{"OPTIONS", "/v1/agents/a1/unmask", "POST"},
		{"POST", "/healthz", "GET"},
	} {
		r := g.do(tt.method, tt.path, "", "")
		if r.status != 405 || r.json(t)["code"] != "method_not_allowed" || r.header.Get("Allow") != tt.allow {
			t.Errorf("%s %s = %d, Allow %q, %s; want 405, Allow %q", tt.method, tt.path, r.status, r.header.Get("Allow"), r.body, tt.allow)
		}
	}
}

func TestReadyzNamesAFailingCXone(t *testing.T) {
	g := newGateway(t)
	g.sim.SetFaults(cxonesim.Faults{TokenDown: true})
	r := g.do("GET", "/readyz", "", "")
	checks, _ := r.json(t)["checks"].(map[string]any)
	if r.status != 503 || checks["redis"] != "ok" || !strings.Contains(fmt.Sprint(checks["cxone"]), "unavailable") {
		t.Errorf("readyz with the token endpoint down = %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), g.sim.Credentials.ClientSecret) || strings.Contains(string(r.body), g.sim.Credentials.AccessKeySecret) {
		t.Error("readyz shows a secret")
	}
}

func TestRequestIDIsKeptAndLogged(t *testing.T) {
	g := newGateway(t)
	r := g.do("GET", "/v1/agents/a1/mask", g.all(), "", "X-Request-ID", "trace-42")
	if r.header.Get("X-Request-ID") != "trace-42" || r.json(t)["requestId"] != "trace-42" {
		t.Errorf("request id not kept: header %q body %s", r.header.Get("X-Request-ID"), r.body)
	}
	if !strings.Contains(g.logs.String(), `"request_id":"trace-42"`) {
		t.Error("the access log lacks the request id")
	}
	r = g.do("GET", "/healthz", "", "", "X-Request-ID", "bad id with spaces")
	if id := r.header.Get("X-Request-ID"); id == "" || strings.Contains(id, " ") {
		t.Errorf("an unsafe request id was kept: %q", id)
	}
}

func TestAuditLinesNameCallerAgentAndOutcome(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	tok := g.token("recordings:mask recordings:unmask", jwt.MapClaims{"sub": "ivr-7"})
	g.do("POST", "/v1/agents/a1/mask", tok, `{"reason":"payment"}`)
	g.do("POST", "/v1/agents/a1/unmask", tok, "")
	logs := g.logs.String()
	for _, want := range []string{
		`"audit":true,"event":"masked","user_id":"a1"`,
		`"audit":true,"event":"unmasked","user_id":"a1"`,
		`"caller":"ivr-7"`,
		`"upstream_status":200`,
		`"route":"/v1/agents/{userId}/mask"`,
		`"sub":"ivr-7"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	if strings.Contains(logs, tok) || strings.Contains(logs, g.sim.Credentials.ClientSecret) || strings.Contains(logs, g.sim.Credentials.AccessKeySecret) {
		t.Error("the logs show a token or a secret")
	}
}

func TestNoisyCallerIsLimitedWhileAQuietOnePasses(t *testing.T) {
	g := newGateway(t, withRateLimit(5))
	g.sim.StartCall("a1", false, true)
	noisy := g.token("recordings:read", jwt.MapClaims{"sub": "noisy"})
	quiet := g.token("recordings:read", jwt.MapClaims{"sub": "quiet"})
	limited := 0
	var last response
	for range 12 {
		if r := g.do("GET", "/v1/agents/a1/mask", noisy, ""); r.status == 429 {
			limited++
			last = r
		}
	}
	if limited < 5 {
		t.Fatalf("%d of 12 rapid requests were limited at 5/s; want at least 5", limited)
	}
	if last.json(t)["code"] != "rate_limited" || last.header.Get("Retry-After") == "" {
		t.Errorf("429 = %s %v; want rate_limited with Retry-After", last.body, last.header)
	}
	if r := g.do("GET", "/v1/agents/a1/mask", quiet, ""); r.status != 404 {
		t.Errorf("a quiet caller = %d; want it served (404 not_masked)", r.status)
	}
	// Masks count in their first Redis script: the same limit, no write-ahead when over it.
	masker := g.token("recordings:mask", jwt.MapClaims{"sub": "masker"})
	masked, refused := 0, 0
	for range 12 {
		switch r := g.do("POST", "/v1/agents/a1/mask", masker, ""); r.status {
		case 200:
			masked++
		case 429:
			refused++
			if r.json(t)["code"] != "rate_limited" || r.header.Get("Retry-After") == "" {
				t.Errorf("429 on mask = %s %v", r.body, r.header)
			}
		}
	}
	if masked > 5 || refused < 5 {
		t.Errorf("12 rapid masks at 5/s: %d masked, %d refused", masked, refused)
	}
	if n := g.sim.Count("mask", "a1", 0); n != masked {
		t.Errorf("CXone got %d masks for %d allowed: a limited mask reached CXone", n, masked)
	}
	if r := g.do("GET", "/healthz", "", ""); r.status != 200 {
		t.Errorf("healthz = %d; unauthenticated routes are not limited", r.status)
	}
}

// TestWhatARejectedRequestCountsAgainstTheRate: a POST refused for its body is not
// counted (masks count in their session script, which it never reaches); a GET is
// counted before its parameters are checked.
func TestWhatARejectedRequestCountsAgainstTheRate(t *testing.T) {
	g := newGateway(t, withRateLimit(2))
	g.sim.StartCall("a1", false, true)
	masker := g.token("recordings:mask", jwt.MapClaims{"sub": "masker"})
	for range 5 {
		if r := g.do("POST", "/v1/agents/a1/mask", masker, `{"ttlSeconds":"soon"}`); r.status != 400 {
			t.Fatalf("a bad mask body = %d; want 400", r.status)
		}
	}
	if r := g.do("POST", "/v1/agents/a1/mask", masker, ""); r.status != 200 {
		t.Errorf("a mask after 5 bad bodies at 2/s = %d %s; want 200 (bad bodies not counted)", r.status, r.body)
	}
	reader := g.token("recordings:read", jwt.MapClaims{"sub": "reader"})
	// A parameter not of its type is refused by the generated router, before the token
	// is checked (README): 400 even without a token, and never counted.
	for _, token := range []string{"", reader, reader, reader} {
		if r := g.do("GET", "/v1/masks?limit=abc", token, ""); r.status != 400 || r.json(t)["code"] != "invalid_parameter" {
			t.Fatalf("limit=abc = %d %s; want 400 invalid_parameter", r.status, r.body)
		}
	}
	for range 2 {
		if r := g.do("GET", "/v1/masks?limit=0", reader, ""); r.status != 400 {
			t.Fatalf("a bad limit = %d; want 400", r.status)
		}
	}
	if r := g.do("GET", "/v1/masks", reader, ""); r.status != 429 {
		t.Errorf("a list after 2 bad lists at 2/s = %d; want 429 (bad reads counted)", r.status)
	}
}

func TestForcedUnmaskWithoutSessionNeedsAdminAndIsAudited(t *testing.T) {
	g := newGateway(t)
	call := g.sim.StartCall("a1", false, true)
	// The gateway lost its record (Redis lost data) while CXone still masks the call.
	cx := upstreamClient(t, g)
	if _, err := cx.Mask(t.Context(), "a1"); err != nil {
		t.Fatal(err)
	}
	if r := g.do("POST", "/v1/agents/a1/unmask?force=true", g.token("recordings:unmask", nil), ""); r.status != 403 || r.json(t)["code"] != "insufficient_scope" {
		t.Fatalf("force without recordings:admin = %d %s; want 403", r.status, r.body)
	}
	if n := g.sim.Count("unmask", "a1", 0); n != 0 {
		t.Fatalf("a refused force sent %d unmasks", n)
	}
	admin := g.token("recordings:unmask recordings:admin", jwt.MapClaims{"sub": "ops-oncall"})
	r := g.do("POST", "/v1/agents/a1/unmask?force=true", admin, "")
	if r.status != 200 || r.json(t)["forced"] != true || r.json(t)["unmaskedBy"] != "ops-oncall" {
		t.Fatalf("forced unmask = %d %s; want 200 forced", r.status, r.body)
	}
	if got, _ := g.sim.Call(call.ID); got.Masked {
		t.Error("the call is still masked after a forced unmask")
	}
	if !strings.Contains(g.logs.String(), `"event":"forced_unmask","user_id":"a1"`) || !strings.Contains(g.logs.String(), `"caller":"ops-oncall"`) {
		t.Error("no audit line for the forced unmask")
	}
	if r := g.do("POST", "/v1/agents/a1/unmask", admin, ""); r.status != 409 {
		t.Errorf("unforced unmask without a session = %d; want 409", r.status)
	}
}

// A forced unmask that CXone does not carry out at once goes on as any unmask, in the
// session it opened: 202 unmasking while CXone only accepted it or failed (the sweeper
// confirms or retries it; sessions' TestForcedUnmaskIsRetriedAndConfirmed), closed as
// call_ended when CXone has no call. Each is audited as such, with forced, and no
// "rejected" line precedes it.
func TestForcedUnmaskThatCXoneDoesNotCarryOut(t *testing.T) {
	admin := jwt.MapClaims{"sub": "ops-oncall"}
	for _, tt := range []struct {
		name        string
		setup       func(*testkit.Sim)
		status      int
		state       string // the answer's state and closeReason
		closeReason any
		event       string // the audit line's
		outcome     string
		upstream    float64
	}{
		{"accepted", func(s *testkit.Sim) { s.StartCall("a1", false, true); s.SetBehaviour("a1", 0, time.Hour) },
			202, "unmasking", nil, "unmask_pending", "accepted", 202},
		{"call ended", func(*testkit.Sim) {}, 200, "closed", "call_ended", "call_ended", "done", 404},
		{"outage", func(s *testkit.Sim) {
			s.StartCall("a1", false, true)
			s.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: 503})
		}, 202, "unmasking", nil, "unmask_retry", "pending", 503},
		{"timeout", func(s *testkit.Sim) { s.StartCall("a1", false, true); s.SetHang("a1", true) },
			202, "unmasking", nil, "unmask_retry", "pending", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t)
			tt.setup(g.sim)
			token := g.token("recordings:unmask recordings:admin recordings:read", admin)
			r := g.do("POST", "/v1/agents/a1/unmask?force=true", token, "")
			body := r.json(t)
			if r.status != tt.status || body["forced"] != true || body["sessionId"] == "" || body["state"] != tt.state || body["closeReason"] != tt.closeReason ||
				body["maskedAt"] != "0001-01-01T00:00:00Z" || body["expiresAt"] != "0001-01-01T00:00:00Z" || body["maskedBy"] != "" {
				t.Errorf("forced unmask = %d %s; want %d %s", r.status, r.body, tt.status, tt.state)
			}
			lines := auditLines(t, g.logs.String())
			if len(lines) != 1 || lines[0]["event"] != tt.event || lines[0]["outcome"] != tt.outcome || lines[0]["forced"] != true ||
				lines[0]["upstream_status"] != tt.upstream || lines[0]["caller"] != "ops-oncall" || lines[0]["session_id"] != body["sessionId"] {
				t.Errorf("audit lines = %v; want one %s, forced, outcome %s, upstream_status %v", lines, tt.event, tt.outcome, tt.upstream)
			}
			// What is left is the session the sweeper finishes, or nothing.
			get := g.do("GET", "/v1/agents/a1/mask", token, "")
			if tt.state == "closed" && get.status != 404 ||
				tt.state != "closed" && (get.status != 200 || get.json(t)["sessionId"] != body["sessionId"] || get.json(t)["state"] != tt.state) {
				t.Errorf("the agent's session after it = %d %s", get.status, get.body)
			}
		})
	}
}

// TestMetricLabelsAreBounded scrapes /metrics after traffic for many agents and checks
// that every maskgate metric uses only bounded labels: no user id, token or path.
func TestMetricLabelsAreBounded(t *testing.T) {
	g := newGateway(t)
	for i := range 20 {
		id := fmt.Sprintf("agent-%d", i)
		g.sim.StartCall(id, false, true)
		g.do("POST", "/v1/agents/"+id+"/mask", g.all(), "")
		g.do("GET", "/v1/agents/"+id+"/mask?verify=true", g.all(), "")
		g.do("POST", "/v1/agents/"+id+"/unmask", g.all(), "")
	}
	g.do("GET", "/v1/agents/nobody/mask", "garbage", "")
	for i := range 5 { // made-up methods must not each make a series
		g.do(fmt.Sprintf("BREW%d", i), "/v1/masks", g.all(), "")
	}
	allowed := map[string]bool{"route": true, "method": true, "status": true, "op": true, "grant": true, "event": true, "le": true}
	methods := map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true,
		"OPTIONS": true, "CONNECT": true, "TRACE": true, "other": true}
	body := string(g.do("GET", "/metrics", "", "").body)
	labels := regexp.MustCompile(`([a-z_]+)="`)
	series := 0
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "maskgate_") {
			continue
		}
		series++
		for _, m := range labels.FindAllStringSubmatch(line, -1) {
			if !allowed[m[1]] {
				t.Errorf("unbounded label %s in %s", m[1], line)
			}
		}
		if strings.Contains(line, "agent-") || strings.Contains(line, "nobody") {
			t.Errorf("a user id in a metric: %s", line)
		}
		if m := regexp.MustCompile(`method="([^"]*)"`).FindStringSubmatch(line); m != nil && !methods[m[1]] {
			t.Errorf("a method of the caller's own making in a metric: %s", line)
		}
	}
	if series < 20 {
		t.Errorf("only %d maskgate series", series)
	}
}
