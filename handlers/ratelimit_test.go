package handlers_test

import (
	"slices"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

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
	masked, refused := burst(t, g, "/v1/agents/a1/mask", masker, 200)
	if masked > 5 || refused < 5 {
		t.Errorf("12 rapid masks at 5/s: %d masked, %d refused", masked, refused)
	}
	if n := g.sim.Count("mask", "a1", 0); n != masked {
		t.Errorf("CXone got %d masks for %d allowed: a limited mask reached CXone", n, masked)
	}
	// So do unmasks: the first allowed one unmasks, the others find nothing to unmask.
	unmasker := g.token("recordings:unmask", jwt.MapClaims{"sub": "unmasker"})
	answered, refused := burst(t, g, "/v1/agents/a1/unmask", unmasker, 200, 409)
	if answered > 5 || refused < 5 {
		t.Errorf("12 rapid unmasks at 5/s: %d answered, %d refused", answered, refused)
	}
	if n := g.sim.Count("unmask", "a1", 0); n != 1 {
		t.Errorf("CXone got %d unmasks; want the first allowed one only", n)
	}
	if r := g.do("GET", "/healthz", "", ""); r.status != 200 {
		t.Errorf("healthz = %d; unauthenticated routes are not limited", r.status)
	}
}

// burst sends 12 rapid POSTs to path and counts those let through (answered with one of
// the statuses given) and those refused as rate_limited with a Retry-After.
func burst(t *testing.T, g *gateway, path, token string, through ...int) (passed, refused int) {
	t.Helper()
	for range 12 {
		switch r := g.do("POST", path, token, ""); {
		case slices.Contains(through, r.status):
			passed++
		case r.status == 429:
			refused++
			if r.json(t)["code"] != "rate_limited" || r.header.Get("Retry-After") == "" {
				t.Errorf("429 on %s = %s %v", path, r.body, r.header)
			}
		default:
			t.Errorf("POST %s = %d %s; want one of %v or 429", path, r.status, r.body, through)
		}
	}
	return passed, refused
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
