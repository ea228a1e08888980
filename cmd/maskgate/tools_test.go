package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// The container's health check and the dev token (tools.go).

// A container's health check leaves CXone's check out: /readyz names CXone's token
// endpoint as failing, the health check passes.
func TestHealthcheckLeavesCXoneOut(t *testing.T) {
	_, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	sim.SetFaults(cxonesim.Faults{TokenDown: true})
	e := env(sim, prefix)
	s := start(t, nil, e)
	e["MASKGATE_ADDR"] = s.addr
	resp, err := http.Get("http://" + s.addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"cxone":"`) {
		t.Fatalf("readyz with CXone's token endpoint down = %d %s; want 503 naming cxone", resp.StatusCode, body)
	}
	if err := run(context.Background(), []string{"healthcheck"}, environment(e), io.Discard, io.Discard); err != nil {
		t.Errorf("healthcheck with CXone's token endpoint down = %v; want healthy", err)
	}
}

func TestHealthcheckAndDevToken(t *testing.T) {
	_, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	sim.StartCall("80", false, true)
	e := env(sim, prefix)
	s := start(t, nil, e)
	e["MASKGATE_ADDR"] = s.addr
	if err := run(context.Background(), []string{"healthcheck"}, environment(e), io.Discard, io.Discard); err != nil {
		t.Errorf("healthcheck of a ready gateway = %v", err)
	}
	var tok bytes.Buffer
	if err := run(context.Background(), []string{"dev-token"}, environment(e), &tok, io.Discard); err != nil {
		t.Fatal(err)
	}
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(strings.TrimSpace(tok.String()), &claims); err != nil || claims.ExpiresAt.Sub(claims.IssuedAt.Time) != time.Hour {
		t.Errorf("dev-token's token: %+v (%v); want it valid for README's hour", claims, err)
	}
	// It has every scope: it masks, reads who is masked and unmasks.
	for _, call := range []struct{ method, path string }{
		{http.MethodPost, "/v1/agents/80/mask"}, {http.MethodGet, "/v1/masks"}, {http.MethodPost, "/v1/agents/80/unmask"},
	} {
		req, _ := http.NewRequest(call.method, "http://"+s.addr+call.path, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok.String()))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s with the dev token = %d; want 200", call.method, call.path, resp.StatusCode)
		}
	}
	s.cancel()
	_ = s.wait()
	if err := run(context.Background(), []string{"healthcheck"}, environment(e), io.Discard, io.Discard); err == nil {
		t.Error("healthcheck of a stopped gateway = nil")
	}
	// Without the shared secret, it has nothing to sign with.
	delete(e, "MASKGATE_JWT_HS256_SECRET")
	e["MASKGATE_JWT_JWKS_URL"] = "https://idp.test/jwks"
	tok.Reset()
	var ce *configError
	if err := run(context.Background(), []string{"dev-token"}, environment(e), &tok, io.Discard); !errors.As(err, &ce) ||
		!strings.Contains(err.Error(), "MASKGATE_JWT_HS256_SECRET") || tok.Len() > 0 {
		t.Errorf("dev-token with a JWKS = %v, printed %q; want a configuration error naming the secret", err, tok.String())
	}
}
