package handlers_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

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
