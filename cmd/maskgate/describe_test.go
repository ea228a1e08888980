package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/middleware"
)

// What the gateway says of its configuration at start-up, never a secret of it.

// TestConfigurationIsLoggedAtStartUp: the gateway records what it runs with, for the
// audit trail, and no secret of it.
func TestConfigurationIsLoggedAtStartUp(t *testing.T) {
	_, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	e := env(sim, prefix)
	e["MASKGATE_MASK_TTL"], e["MASKGATE_TRUSTED_PROXIES"] = "5m", "10.0.0.0/8"
	e["MASKGATE_ALLOW_PLAIN_HTTP"] = "true" // said, and warned of
	e["MASKGATE_MASK_TTL_MAXIMUM"] = "3h"   // warned of: not a setting
	s := start(t, nil, e)
	want := map[string]any{"message": "configuration", "redis_key_prefix": prefix, "jwt_keys": "HS256 shared secret",
		"jwt_issuer": "https://idp.test", "mask_ttl": "5m0s", "mask_ttl_max": "2h0m0s", "rate_limit": float64(100000),
		"cxone_api": "discovered from the token's tenant", "cxone_access_key_id": sim.Credentials.AccessKeyID,
		"cxone_client_id": sim.Credentials.ClientID, "trusted_proxies": float64(1), "allow_plain_http": true,
		"jwt_audience": "maskgate", "sweep_interval": "1s", "unmask_giveup": "1h0m0s", "cxone_timeout": "5s",
		"cxone_auth_url": e["CXONE_AUTH_URL"]}
	var found map[string]any
	warned, misspelt := false, false
	for _, l := range s.startup {
		if l["message"] == "configuration" {
			found = l
		}
		msg, _ := l["message"].(string)
		if l["level"] == "warn" && strings.HasPrefix(msg, "MASKGATE_ALLOW_PLAIN_HTTP=true:") {
			warned = true
		}
		if l["level"] == "warn" && strings.Contains(msg, "not maskgate settings") && fmt.Sprint(l["ignored"]) == "[MASKGATE_MASK_TTL_MAXIMUM]" {
			misspelt = true
		}
	}
	if !matches(found, want) {
		t.Fatalf("start-up lines %v; want one with %v", s.startup, want)
	}
	if !warned {
		t.Errorf("start-up lines %v; want a warning that plain HTTP is allowed", s.startup)
	}
	if !misspelt {
		t.Errorf("start-up lines %v; want a warning naming MASKGATE_MASK_TTL_MAXIMUM", s.startup)
	}
	raw, _ := json.Marshal(found)
	for _, secret := range []string{hsSecret, sim.Credentials.ClientSecret, sim.Credentials.AccessKeySecret} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the configuration line shows a secret: %s", raw)
		}
	}
}

// The JWKS URL is shown where the key source is (check-config, the configuration line),
// but not a password it may carry.
func TestKeySourceHidesAJWKSPassword(t *testing.T) {
	got := keySource(middleware.AuthConfig{JWKSURL: "https://jwks-reader:" + hsSecret + "@idp.example/jwks"})
	if strings.Contains(got, hsSecret) || !strings.Contains(got, "https://jwks-reader:xxxxx@idp.example/jwks") {
		t.Errorf("key source %q", got)
	}
}
