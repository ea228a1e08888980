package handlers_test

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/internal/testkit"
)

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

// An agent's token whose agent_id is a UUID acts on that agent whichever case either
// spells it in (sessions.CanonicalUserID), and the access line names the agent as the
// session does; another UUID stays forbidden.
func TestAgentTokenWithAUUIDInAnotherCase(t *testing.T) {
	g := newGateway(t)
	const lower = "11e9a5f0-8cf1-d3f0-9b0c-0242ac110003"
	g.sim.StartCall(lower, false, true)
	tok := g.token("recordings:mask recordings:read", jwt.MapClaims{"agent_id": "11E9A5F0-8CF1-D3F0-9B0C-0242AC110003"})
	r := g.do("POST", "/v1/agents/11e9A5F0-8cf1-d3f0-9B0C-0242ac110003/mask", tok, "")
	if r.status != 200 || r.json(t)["userId"] != lower {
		t.Errorf("agent token masking itself in mixed case = %d %s; want 200 for %s", r.status, r.body, lower)
	}
	named := 0 // the access line and the audit line
	for _, l := range testkit.LogLines(t, g.logs.String()) {
		if l["request_id"] == r.header.Get("X-Request-ID") && l["user_id"] == lower {
			named++
		}
	}
	if named != 2 {
		t.Errorf("%d lines of the mask name %s; want its access and audit lines:\n%s", named, lower, g.logs.String())
	}
	if r := g.do("GET", "/v1/agents/21e9a5f0-8cf1-d3f0-9b0c-0242ac110003/mask", tok, ""); r.status != 403 || r.json(t)["code"] != "agent_forbidden" {
		t.Errorf("agent token reading another UUID = %d %s; want 403 agent_forbidden", r.status, r.body)
	}
}
