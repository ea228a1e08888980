package handlers_test

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// auditLines are the "audit":true lines of a log.
func auditLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range testkit.LogLines(t, logs) {
		if line["audit"] == true {
			out = append(out, line)
		}
	}
	return out
}

// TestAuditLinesAnswerPCIDSS10_2_2 checks every audit line of a busy scenario against
// what PCI DSS v4.0 requirement 10.2.2 asks of each audit record: user identification,
// type of event, date and time, success or failure, origination of the event, and the
// identity of the affected resource.
func TestAuditLinesAnswerPCIDSS10_2_2(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	g.sim.StartCall("a3", true, true)
	tok := g.token("recordings:mask recordings:unmask recordings:read", jwt.MapClaims{"sub": "crm-app", "azp": "crm"})
	g.do("POST", "/v1/agents/a1/mask", tok, `{"reason":"payment"}`)    // masked
	g.do("POST", "/v1/agents/a1/mask", tok, `{"reason":"payment"}`)    // re-masked
	g.do("POST", "/v1/agents/a1/unmask", tok, `{"sessionId":"stale"}`) // rejected
	g.do("POST", "/v1/agents/a1/unmask", tok, "")                      // unmasked
	g.do("POST", "/v1/agents/a1/unmask", tok, "")                      // rejected: not masked
	g.do("POST", "/v1/agents/a2/mask", tok, "")                        // mask_failed: no call
	g.do("POST", "/v1/agents/a3/mask", tok, "")                        // mask_failed: internal call
	g.do("POST", "/v1/agents/a1/mask", tok, "")                        // masked
	g.sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: 503})
	g.do("POST", "/v1/agents/a1/unmask", tok, "") // unmask_retry
	lines := auditLines(t, g.logs.String())
	events := map[string]bool{}
	for _, l := range lines {
		events[l["event"].(string)] = true
		for field, what := range map[string]string{
			"caller":     "user identification",
			"event":      "type of event",
			"time":       "date and time",
			"outcome":    "success or failure",
			"remote_ip":  "origination of the event",
			"request_id": "origination of the event",
			"user_id":    "identity of the affected resource",
		} {
			if v, ok := l[field].(string); !ok || v == "" {
				t.Errorf("audit line %v lacks %s (%s)", l, field, what)
			}
		}
		if _, err := time.Parse(time.RFC3339, l["time"].(string)); err != nil {
			t.Errorf("audit time %q: %v", l["time"], err)
		}
	}
	for _, e := range []string{"masked", "re-masked", "unmasked", "rejected", "mask_failed", "unmask_retry"} {
		if !events[e] {
			t.Errorf("no audit line for event %s (got %v)", e, events)
		}
	}
}

// Behind a trusted load balancer the access and audit lines name the client that
// X-Forwarded-For gives as remote_ip, and the balancer as peer_ip; a peer that is not
// trusted cannot make itself another client with the header.
func TestOriginBehindATrustedProxy(t *testing.T) {
	for _, tt := range []struct {
		name         string
		trusted      []netip.Prefix
		remote, peer any
	}{
		{"trusted", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.7", "127.0.0.1"},
		{"not trusted", nil, "127.0.0.1", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t, withTrustedProxies(tt.trusted...))
			g.sim.StartCall("a1", false, true)
			g.do("POST", "/v1/agents/a1/mask", g.all(), "", "X-Forwarded-For", "192.0.2.66, 203.0.113.7")
			var seen int
			for _, line := range testkit.LogLines(t, g.logs.String()) {
				if line["audit"] == true || line["message"] == "request" {
					seen++
					if line["remote_ip"] != tt.remote || line["peer_ip"] != tt.peer {
						t.Errorf("%s line: remote_ip %v, peer_ip %v; want %v, %v", line["message"], line["remote_ip"], line["peer_ip"], tt.remote, tt.peer)
					}
				}
			}
			if seen != 2 {
				t.Errorf("%d access and audit lines; want 2:\n%s", seen, g.logs.String())
			}
		})
	}
}

// TestNoSecretInAnyOutput drives the gateway through successes and failures with debug
// logging and looks for every secret in everything it wrote or answered: the CXone
// client and access key secrets, every CXone token the simulator issued, the callers'
// JWTs and Authorization headers (also garbage ones).
func TestNoSecretInAnyOutput(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	tok := g.all()
	garbage := testkit.Canary + "garbage-token"
	var answers strings.Builder
	keep := func(r response) {
		answers.Write(r.body)
		answers.WriteString(strings.Join(r.header.Values("WWW-Authenticate"), " "))
	}
	keep(g.do("POST", "/v1/agents/a1/mask", tok, ""))
	keep(g.do("POST", "/v1/agents/a1/mask", garbage, ""))
	keep(g.do("POST", "/v1/agents/a1/mask", "", "", "Authorization", "Basic "+garbage))
	keep(g.do("POST", "/v1/agents/a1/mask", g.token("recordings:mask", jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()}), ""))
	g.sim.RevokeTokens() // a 401 from CXone and a refresh
	keep(g.do("POST", "/v1/agents/a1/unmask", tok, ""))
	g.sim.SetFaults(cxonesim.Faults{TokenDown: true})
	g.sim.RevokeTokens()
	keep(g.do("POST", "/v1/agents/a1/mask", tok, ""))
	keep(g.do("GET", "/readyz", "", ""))
	keep(g.do("GET", "/metrics", "", ""))

	everything := g.logs.String() + answers.String()
	secrets := []string{g.sim.Credentials.ClientSecret, g.sim.Credentials.AccessKeySecret, tok, garbage, string(secret)}
	for _, s := range secrets {
		if strings.Contains(everything, s) {
			t.Errorf("a secret (%.12s…) appears in the gateway's output", s)
		}
	}
	if m := regexp.MustCompile(`cxsim-(at|rt)-[0-9a-f]+`).FindString(everything); m != "" {
		t.Errorf("a CXone token appears in the gateway's output: %.14s…", m)
	}
}

// Refused attempts (PCI DSS v4.0 10.2.1.4, invalid logical access attempts) are in the
// access lines with what 10.2.2 asks of them: the caller when its token was read, the
// status, time and origin, and the agent the attempt aimed at (user_id, the route being
// a pattern). A userId that is not one is not echoed.
func TestRefusedAttemptsNameTheAgentTheyAimedAt(t *testing.T) {
	g := newGateway(t)
	agent := g.token("recordings:mask", jwt.MapClaims{"sub": "desk-7", "agent_id": "a1"})
	reader := g.token("recordings:read", jwt.MapClaims{"sub": "reporting"})
	want := map[string]string{} // the agents aimed at, with the sub their lines must carry
	for _, tt := range []struct {
		token, agent string
		status       int
		sub          string
	}{
		{"", "a2", 401, ""},
		{"not-a-jwt", "a3", 401, ""},
		{reader, "a4", 403, "reporting"},
		{agent, "a5", 403, "desk-7"},
	} {
		if r := g.do("POST", "/v1/agents/"+tt.agent+"/mask", tt.token, ""); r.status != tt.status {
			t.Fatalf("POST mask of %s = %d; want %d", tt.agent, r.status, tt.status)
		}
		want[tt.agent] = tt.sub
	}
	g.do("POST", "/v1/agents/bad%20id/mask", agent, "")
	for _, l := range testkit.LogLines(t, g.logs.String()) {
		if l["message"] != "request" {
			continue
		}
		id, _ := l["user_id"].(string)
		switch {
		case id == "bad id" || strings.Contains(id, "%"):
			t.Errorf("an invalid userId was echoed: %v", l)
		default:
			sub, aimed := want[id]
			if !aimed {
				continue
			}
			delete(want, id)
			for _, f := range []string{"time", "remote_ip", "request_id", "route"} {
				if v, _ := l[f].(string); v == "" {
					t.Errorf("access line of a refused attempt lacks %s: %v", f, l)
				}
			}
			if got, _ := l["sub"].(string); got != sub {
				t.Errorf("access line of a refused attempt: sub %q; want %q: %v", got, sub, l)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("no access line names the agents %v", want)
	}
}

// An answer that is a problem has its code and detail in its access line, as its caller
// was told them: the log says why a request was refused (an expired token or another
// audience, which scope was missing, which of the 409s), not only its status. An
// answer that is not a problem carries neither.
func TestAccessLinesSayWhyARequestWasRefused(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	expired := g.token("recordings:mask", jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()})
	answers := []response{
		g.do("POST", "/v1/agents/a1/mask", expired, ""),
		g.do("POST", "/v1/agents/a1/mask", g.token("recordings:mask", jwt.MapClaims{"aud": "other"}), ""),
		g.do("POST", "/v1/agents/a1/unmask", g.token("recordings:mask", nil), ""),
		g.do("POST", "/v1/agents/a1/unmask", g.all(), ""),                                    // 409 not_masked
		g.do("POST", "/v1/agents/a1/mask", g.all(), `{"ttlSeconds":"30"}`),                   // 400 invalid_body
		g.do("POST", "/v1/agents/a9/mask", g.all(), ""),                                      // 404 no_active_call, from CXone
		g.do("POST", "/v1/agents/a1/mask", g.all(), `{"reason":"card 4111 1111 1111 1111"}`), // not echoed
		g.do("DELETE", "/v1/masks", g.all(), ""),
		g.do("POST", "/v1/agents/a8/mask", g.all(), "", "Idempotency-Key", "k-404"), // 404 no_active_call
		g.do("POST", "/v1/agents/a8/mask", g.all(), "", "Idempotency-Key", "k-404"), // its replay
		g.do("POST", "/v1/agents/a1/mask", g.all(), ""),                             // 200
	}
	lines := map[string]map[string]any{} // access lines by request id
	for _, l := range testkit.LogLines(t, g.logs.String()) {
		if id, _ := l["request_id"].(string); l["message"] == "request" {
			lines[id] = l
		}
	}
	codes, replays := map[any]bool{}, 0
	for _, a := range answers {
		l, ok := lines[a.header.Get("X-Request-ID")]
		if !ok {
			t.Fatalf("no access line for the answer %d %s", a.status, a.body)
		}
		if a.status < 400 {
			if l["code"] != nil || l["detail"] != nil {
				t.Errorf("access line of a %d carries a problem: %v", a.status, l)
			}
			continue
		}
		p := a.json(t)
		if l["code"] != p["code"] || l["detail"] != p["detail"] {
			t.Errorf("access line of %s: code %v, detail %v; want the answer's %v, %v", a.body, l["code"], l["detail"], p["code"], p["detail"])
		}
		codes[l["code"]] = true
		replays += len(a.header.Values("Idempotent-Replayed"))
	}
	if replays != 1 {
		t.Errorf("%d replayed answers; want 1", replays)
	}
	for _, c := range []string{"unauthorized", "insufficient_scope", "not_masked", "invalid_body", "no_active_call", "method_not_allowed"} {
		if !codes[c] {
			t.Errorf("no access line carries code %s (got %v)", c, codes)
		}
	}
	// As sent, or its digits alone: "4111" by itself turns up in a random request id
	// or session id once in a few hundred runs.
	if logs := g.logs.String(); strings.Contains(logs, "4111 1111 1111 1111") || strings.Contains(logs, "4111111111111111") {
		t.Error("the card number of a refused reason reached the log")
	}
}

// Anyone may send any token as a method: the access line names one of HTTP's, or
// "other", as the metrics do, so that a made-up method of kilobytes is not repeated
// into the log.
func TestAccessLineNamesAMadeUpMethodOther(t *testing.T) {
	g := newGateway(t)
	long := strings.Repeat("M", 300)
	r := g.do(long, "/healthz", "", "")
	if r.status != 405 {
		t.Fatalf("%s.../healthz = %d %s; want 405", long[:8], r.status, r.body)
	}
	g.do("PATCH", "/healthz", "", "")
	methods := map[any]bool{}
	for _, l := range testkit.LogLines(t, g.logs.String()) {
		if l["message"] == "request" {
			methods[l["method"]] = true
		}
	}
	if len(methods) != 2 || !methods["other"] || !methods["PATCH"] {
		t.Errorf("access lines name the methods %v; want other and PATCH", methods)
	}
}
