package handlers_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

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
	// Verified, no session is still a 404, with CXone's view of the agent: recording.
	r = g.do("GET", "/v1/agents/1234567/mask?verify=true", tok, "")
	rec, _ = r.json(t)["recording"].(map[string]any)
	if r.status != 404 || r.json(t)["code"] != "not_masked" || rec["activeCall"] != true || rec["statusReason"] == "Mask" || rec["contactId"] != call.ID {
		t.Errorf("get with verify after unmask = %d %s; want 404 not_masked with CXone's unmasked call", r.status, r.body)
	}
	if n := g.sim.Count("unmask", "", 0); n != 1 {
		t.Errorf("unmasks sent to CXone = %d; want 1", n)
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
	tok := g.token("recordings:mask recordings:unmask", jwt.MapClaims{"sub": "ivr-7", "azp": "ivr"})
	g.do("POST", "/v1/agents/a1/mask", tok, `{"reason":"payment"}`)
	g.do("POST", "/v1/agents/a1/unmask", tok, "")
	// A path of no route is logged as such, not as the path, which may carry anything.
	g.do("GET", "/v1/agents/a1/card-4111111111111111", tok, "")
	logs := g.logs.String()
	for _, want := range []string{
		`"audit":true,"event":"masked","user_id":"a1"`,
		`"audit":true,"event":"unmasked","user_id":"a1"`,
		`"caller":"ivr-7 (ivr)"`,
		`"upstream_status":200`,
		`"route":"/v1/agents/{userId}/mask"`,
		`"sub":"ivr-7","client_id":"ivr"`,
		`"method":"GET","route":"unmatched","status":404`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	if strings.Contains(logs, "4111111111111111") || strings.Contains(logs, tok) || strings.Contains(logs, g.sim.Credentials.ClientSecret) || strings.Contains(logs, g.sim.Credentials.AccessKeySecret) {
		t.Error("the logs show a path of no route, a token or a secret")
	}
}

// CXone's own Retry-After reaches the caller with the 503 (README, Status codes): a
// caller that retried sooner would only meet the gateway's own hold of CXone's wait.
func TestCXonesRetryAfterIsPassedOn(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	g.sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable, RetryAfter: 7})
	r := g.do("POST", "/v1/agents/a1/mask", g.all(), "")
	// 7 s, less what has passed since CXone answered.
	if wait, err := strconv.Atoi(r.header.Get("Retry-After")); r.status != 503 || r.json(t)["code"] != "upstream_unavailable" || err != nil || wait < 5 || wait > 7 {
		t.Errorf("mask while CXone asks to wait 7 s = %d %s, Retry-After %q; want 503 upstream_unavailable with CXone's wait", r.status, r.body, r.header.Get("Retry-After"))
	}
}
