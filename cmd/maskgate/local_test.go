package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/testkit"
)

// maskgate -local: no configuration, loopback only, an embedded Redis and simulator.

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
	if !strings.Contains(s.stderr.String(), "http://"+s.addr+"/v1/agents/1001/mask") {
		t.Errorf("-local's curls do not name %s, where it listens:\n%s", s.addr, s.stderr)
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
	// Nothing in it calls for an operator: its Redis, miniredis, evicts nothing and has
	// no CONFIG, so -local does not ask it for an eviction policy and warn that it had none.
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if l["level"] == "warn" || l["level"] == "error" {
			t.Errorf("-local logged, after it listened: %v", l)
		}
	}
}

// -local prints its token and curls only once it listens: on a port already taken it
// stops with the reason and how to pick another port, and shows no curl for a gateway
// that is not there.
func TestLocalModeOnATakenPortPrintsNoCurls(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, port, _ := net.SplitHostPort(taken.Addr().String())
	var stderr strings.Builder
	err = run(context.Background(), []string{"-local"}, environment{"MASKGATE_ADDR": ":" + port}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "MASKGATE_ADDR=:8081") {
		t.Errorf("-local on a taken port = %v; want it to stop, saying the address is in use and how to pick another", err)
	}
	if strings.Contains(stderr.String(), "TOKEN") || strings.Contains(stderr.String(), "curl") {
		t.Errorf("-local that could not listen printed:\n%s", stderr.String())
	}
}

// A single setting that -local supplies itself is named as ignored, as several are.
func TestLocalModeNamesASingleSettingItSupplies(t *testing.T) {
	lm, err := startLocal(environment{"MASKGATE_JWT_AUDIENCE": "crm"})
	if err != nil {
		t.Fatal(err)
	}
	defer lm.stop()
	var out strings.Builder
	lm.greet(&out, "127.0.0.1:8080")
	if said := "ignored, -local supplies its own: MASKGATE_JWT_AUDIENCE\n"; !strings.Contains(out.String(), said) {
		t.Errorf("-local printed:\n%s\nwant %q", out.String(), said)
	}
}

// -local with an address it cannot read is a configuration that cannot run (main
// exits 2), as the same address is without -local.
func TestLocalModeRefusesAnAddressItCannotRead(t *testing.T) {
	err := run(context.Background(), []string{"-local"}, environment{"MASKGATE_ADDR": "8080"}, io.Discard, io.Discard)
	var ce *configError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "MASKGATE_ADDR must be host:port") {
		t.Errorf("-local with MASKGATE_ADDR=8080 = %v; want a configuration error naming the setting", err)
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
		"MASKGATE_JWT_ISSUER": "https://idp.example", "MASKGATE_JWT_JWKS_URL": "https://idp.example/jwks",
		"CXONE_AUTH_URL": "https://cxone.example/auth/token", "MASKGATE_TLS_CERT_FILE": "/nonexistent",
		"MASKGATE_MASK_TIMEOUT": "1m", "MASKGATE_DEBUG_ADDR": "127.0.0.1:0"})
	want := map[string]any{"message": "configuration", "mask_ttl": "42s", "jwt_issuer": "maskgate-local"}
	var found, ignored bool
	for _, l := range s.startup {
		found = found || matches(l, want)
		ignored = ignored || fmt.Sprint(l["ignored"]) == "[MASKGATE_MASK_TIMEOUT]"
	}
	if !found || !ignored {
		t.Errorf("start-up lines %v; want one with %v, and MASKGATE_MASK_TIMEOUT named as no setting", s.startup, want)
	}
	if said := "ignored, -local supplies its own: MASKGATE_TLS_CERT_FILE, MASKGATE_DEBUG_ADDR, MASKGATE_JWT_ISSUER, MASKGATE_JWT_JWKS_URL, CXONE_AUTH_URL\n"; !strings.Contains(s.stderr.String(), said) {
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
