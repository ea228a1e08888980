package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/middleware"
	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

func TestCheckConfigReportsWhatItFound(t *testing.T) {
	sim := testkit.NewSim(t)
	e := env(sim, "p")
	e["CXONE_TIMEOUTS"] = "9s" // a warning, not a failure
	var out bytes.Buffer
	if err := run(context.Background(), []string{"check-config"}, environment(e), &out, &out); err != nil {
		t.Fatalf("check-config = %v\n%s", err, out.String())
	}
	for _, want := range []string{"configuration: ok", "configuration: WARNING: not maskgate settings, ignored (misspelt?): CXONE_TIMEOUTS\n", "redis: ok", "cxone token: ok", "cxone api endpoint: ok (" + sim.URL + ", discovered", "jwt keys: ok (HS256", "tls: off (plain HTTP"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, secret := range []string{hsSecret, sim.Credentials.ClientSecret, sim.Credentials.AccessKeySecret} {
		if strings.Contains(out.String(), secret) {
			t.Error("check-config printed a secret")
		}
	}
}

// TestHS256PreviousSecretIsAcceptedBesideTheNewOne: during a rotation of the shared
// secret, tokens signed with either pass, check-config says both are loaded, and the
// previous one alone is a configuration error.
func TestHS256PreviousSecretIsAcceptedBesideTheNewOne(t *testing.T) {
	sim := testkit.NewSim(t)
	e := env(sim, "p")
	newSecret := "the-next-shared-secret-0123456789"
	previousFile := filepath.Join(t.TempDir(), "previous")
	if err := os.WriteFile(previousFile, []byte(hsSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e["MASKGATE_JWT_HS256_SECRET"], e["MASKGATE_JWT_HS256_PREVIOUS_SECRET_FILE"] = newSecret, previousFile
	cfg := mustLoad(t, e)
	a, err := middleware.NewAuthenticator(context.Background(), cfg.Auth)
	if err != nil {
		t.Fatal(err)
	}
	claims := testkit.Claims("https://idp.test", "maskgate", "recordings:read", nil)
	for _, key := range []string{newSecret, hsSecret} {
		if _, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodHS256, []byte(key), claims, nil)); err != nil {
			t.Errorf("a token of the %d-byte secret: %v", len(key), err)
		}
	}
	if _, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodHS256, []byte("neither-of-the-two-secrets-012345"), claims, nil)); err == nil {
		t.Error("a token of another secret passed")
	}

	var out bytes.Buffer
	if err := run(context.Background(), []string{"check-config"}, environment(e), &out, &out); err != nil || !strings.Contains(out.String(), "jwt keys: ok (HS256 shared secret, and the previous one;") {
		t.Errorf("check-config = %v:\n%s", err, out.String())
	}
	if strings.Contains(out.String(), hsSecret) || strings.Contains(out.String(), newSecret) {
		t.Error("check-config printed a secret")
	}

	delete(e, "MASKGATE_JWT_HS256_SECRET")
	if _, err := loadConfig(environment(e)); err == nil || !strings.Contains(err.Error(), "MASKGATE_JWT_HS256_PREVIOUS_SECRET is accepted beside MASKGATE_JWT_HS256_SECRET only") {
		t.Errorf("the previous secret alone: %v", err)
	}
}

// TestCheckConfigCountsThePublicKeys: during a rotation the public key file holds two
// keys, and check-config says it loaded both, or which block does not load.
func TestCheckConfigCountsThePublicKeys(t *testing.T) {
	e := env(testkit.NewSim(t), "p")
	delete(e, "MASKGATE_JWT_HS256_SECRET")
	var keys []byte
	for range 2 {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalPKIXPublicKey(pub)
		keys = append(keys, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	ca, leafFile, _ := writeTestPKI(t) // a certificate, and the test CA that issued it
	leaf, _ := os.ReadFile(leafFile)
	chain, _ := os.ReadFile(ca.file)
	file := filepath.Join(t.TempDir(), "keys.pem")
	e["MASKGATE_JWT_PUBLIC_KEY_FILE"] = file
	for _, c := range []struct {
		name, content, want string
	}{
		{"two keys", string(keys), "jwt keys: ok (public key file, 2 keys; iss"},
		{"a signing certificate and its chain", string(leaf) + string(chain), "jwt keys: ok (public key file; iss"},
		{"a key, then a block that is none", string(keys[:len(keys)/2]) + "-----BEGIN PRIVATE KEY-----\nAQ==\n-----END PRIVATE KEY-----\n",
			`jwt keys: FAILED: JWT public key (PEM block 2): unsupported PEM block "PRIVATE KEY"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(file, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			_ = run(context.Background(), []string{"check-config"}, environment(e), &out, &out)
			if !strings.Contains(out.String(), c.want) {
				t.Errorf("check-config lacks %q:\n%s", c.want, out.String())
			}
		})
	}
}

// A JWKS key that verifies no token, though not published for encryption, is named
// by check-config, which still passes while another key verifies: a provider that
// rotates onto it would have every caller refused, and one that publishes a private
// key lets whoever reads the set sign tokens.
func TestCheckConfigNamesJWKSKeysThatVerifyNoToken(t *testing.T) {
	good, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	leaked, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var set jwkset.JWKSMarshal
	for kid, key := range map[string]any{"good": &good.PublicKey, "leaked": leaked} {
		jwk, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid}, Marshal: jwkset.JWKMarshalOptions{Private: true}})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(set) }))
	t.Cleanup(idp.Close)
	e := env(testkit.NewSim(t), "p")
	delete(e, "MASKGATE_JWT_HS256_SECRET")
	e["MASKGATE_JWT_JWKS_URL"] = idp.URL
	var out bytes.Buffer
	if err := run(context.Background(), []string{"check-config"}, environment(e), &out, &out); err != nil {
		t.Fatalf("check-config with a good key beside the leaked one = %v\n%s", err, out.String())
	}
	want := `jwt keys: WARNING: key "leaked" verifies no token: the JWK set publishes its private part: whoever reads the set can sign any token with it` + "\n"
	if !strings.Contains(out.String(), want) || strings.Contains(out.String(), `key "good"`) {
		t.Errorf("check-config printed\n%s\nwant the line %q, and nothing of the good key", out.String(), want)
	}
}

// TestCheckConfigReportsTheEvictionPolicy runs check-config against Redis servers of
// its own: a policy that may evict sessions fails the check, one that may evict
// Idempotency-Key records or a Redis that will not say is a warning.
func TestCheckConfigReportsTheEvictionPolicy(t *testing.T) {
	cases := []struct {
		conf   string
		line   string
		failed bool
	}{
		{"maxmemory-policy noeviction", "redis eviction: ok (maxmemory-policy noeviction)", false},
		{"maxmemory-policy volatile-ttl", "redis eviction: WARNING: maxmemory-policy volatile-ttl may evict Idempotency-Key records", false},
		{"maxmemory-policy allkeys-random", "redis eviction: FAILED: maxmemory-policy allkeys-random may evict any key, open sessions", true},
		{`rename-command CONFIG ""`, "redis eviction: WARNING: Redis did not say its maxmemory-policy (ERR unknown command", false},
	}
	for _, c := range cases {
		t.Run(c.conf, func(t *testing.T) {
			proc := testkit.StartRedis(t, false, c.conf)
			e := env(testkit.NewSim(t), "p")
			e["MASKGATE_REDIS_URL"] = "redis://" + proc.Addr() + "/0"
			var out bytes.Buffer
			err := run(context.Background(), []string{"check-config"}, environment(e), &out, &out)
			var failed *checkFailed
			if errors.As(err, &failed) != c.failed || !c.failed && err != nil {
				t.Errorf("check-config = %v; want failed %v\n%s", err, c.failed, out.String())
			}
			if !strings.Contains(out.String(), "\n"+c.line) {
				t.Errorf("output lacks %q:\n%s", c.line, out.String())
			}
		})
	}
}

// TestCheckConfigReportsTheTLSCertificate: the names and the expiry of the API
// listener's certificate, and a failure when it is not valid now.
func TestCheckConfigReportsTheTLSCertificate(t *testing.T) {
	ca, certFile, keyFile := writeTestPKI(t)
	sim := testkit.NewSim(t)
	e := env(sim, "p")
	e["MASKGATE_TLS_CERT_FILE"], e["MASKGATE_TLS_KEY_FILE"] = certFile, keyFile
	now := time.Now().Truncate(time.Second)
	for _, c := range []struct {
		name     string
		notAfter time.Time
		line     string
		failed   bool
	}{
		{"valid", now.Add(time.Hour), "tls: ok (certificate for 127.0.0.1, expires " + now.Add(time.Hour).UTC().Format(time.RFC3339) + ")", false},
		{"expired", now.Add(-time.Minute), "tls: FAILED: the certificate expired at " + now.Add(-time.Minute).UTC().Format(time.RFC3339), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ca.issue(t, certFile, keyFile, 7, now.Add(-time.Hour), c.notAfter)
			var out bytes.Buffer
			err := run(context.Background(), []string{"check-config"}, environment(e), &out, &out)
			var failed *checkFailed
			if errors.As(err, &failed) != c.failed || !c.failed && err != nil {
				t.Errorf("check-config = %v; want failed %v\n%s", err, c.failed, out.String())
			}
			if !strings.Contains(out.String(), "\n"+c.line+"\n") {
				t.Errorf("output lacks %q:\n%s", c.line, out.String())
			}
		})
	}
}

func TestCheckConfigFailsOnUnreachableParts(t *testing.T) {
	sim := testkit.NewSim(t)
	sim.SetFaults(cxonesim.Faults{TokenDown: true})
	e := env(sim, "p")
	e["MASKGATE_REDIS_URL"] = "redis://127.0.0.1:1/0"
	e["MASKGATE_JWT_HS256_SECRET"], e["MASKGATE_JWT_JWKS_URL"] = "", "http://127.0.0.1:1/jwks"
	var out bytes.Buffer
	err := run(context.Background(), []string{"check-config"}, environment(e), &out, &out)
	var failed *checkFailed
	if !errors.As(err, &failed) || failed.n != 3 {
		t.Fatalf("check-config = %v; want 3 failed checks\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "redis: FAILED") || !strings.Contains(out.String(), "cxone token: FAILED: CXone") ||
		!strings.Contains(out.String(), "jwt keys: FAILED") {
		t.Errorf("output:\n%s", out.String())
	}
	// A Redis that did not answer is not asked its eviction policy as well.
	if strings.Contains(out.String(), "redis eviction") {
		t.Errorf("the eviction policy of a Redis that did not answer is reported:\n%s", out.String())
	}
	var ce *configError
	if err := run(context.Background(), []string{"check-config"}, environment(nil), &out, &out); !errors.As(err, &ce) {
		t.Errorf("check-config without configuration = %v; want a configuration error (exit 2)", err)
	}
}

// check-config names a Redis password that would cross a network unencrypted, without
// showing it (TEST-NET-1's address answers nothing: the redis check fails as well).
func TestCheckConfigWarnsOfARedisPasswordInTheClear(t *testing.T) {
	e := env(testkit.NewSim(t), "p")
	e["MASKGATE_REDIS_URL"] = "redis://:" + testkit.Canary + "redis-pw@192.0.2.1:6379/0?dial_timeout=100ms"
	var out bytes.Buffer
	_ = run(context.Background(), []string{"check-config"}, environment(e), &out, &out)
	if want := "\nredis: WARNING: MASKGATE_REDIS_URL sends Redis's password to 192.0.2.1:6379 unencrypted (redis://)"; !strings.Contains(out.String(), want) ||
		strings.Contains(out.String(), testkit.Canary) {
		t.Errorf("output lacks %q, or shows the password:\n%s", want, out.String())
	}
}

// A configured CXONE_API_BASE_URL that is not the endpoint the tenant's discovery
// document names (the token endpoint's host, another region) is named: it may answer
// every mask 404, which reads as no active call. The tenant's own is not.
func TestCheckConfigWarnsOfAnEndpointThatIsNotTheTenants(t *testing.T) {
	sim := testkit.NewSim(t)
	for base, warned := range map[string]bool{"http://127.0.0.1:1": true, sim.URL: false, sim.URL + "/": false, strings.ToUpper(sim.URL): false, "": false} {
		e := env(sim, "p")
		e["CXONE_API_BASE_URL"] = base
		var out bytes.Buffer
		if err := run(context.Background(), []string{"check-config"}, environment(e), &out, &out); err != nil {
			t.Fatalf("check-config with CXONE_API_BASE_URL %s = %v\n%s", base, err, out.String())
		}
		want := "cxone api endpoint: WARNING: CXONE_API_BASE_URL is http://127.0.0.1:1, but the discovery document of the token's tenant names " + sim.URL + ":"
		if got := strings.Contains(out.String(), "cxone api endpoint: WARNING"); got != warned || warned && !strings.Contains(out.String(), want) {
			t.Errorf("CXONE_API_BASE_URL %s: warned %v, want %v (%q):\n%s", base, got, warned, want, out.String())
		}
		how := "configured"
		if base == "" {
			how = "discovered from the token's tenant"
		}
		if !regexp.MustCompile(`(?m)^cxone api endpoint: ok \([^)]*, ` + how + `\)$`).MatchString(out.String()) {
			t.Errorf("CXONE_API_BASE_URL %q: the endpoint is not reported as %s:\n%s", base, how, out.String())
		}
	}
}

// A discovery document that cannot be read leaves the configured endpoint unchecked,
// and check-config says so rather than nothing: the gateway does not need the
// document, so the check passes.
func TestCheckConfigSaysWhenItCouldNotCompareTheEndpoint(t *testing.T) {
	sim := testkit.NewSimServing(t, 0, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == cxonesim.DiscoveryPath {
				http.NotFound(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	e := env(sim, "p")
	e["CXONE_API_BASE_URL"] = sim.URL
	var out bytes.Buffer
	if err := run(context.Background(), []string{"check-config"}, environment(e), &out, &out); err != nil {
		t.Fatalf("check-config with the discovery document missing = %v\n%s", err, out.String())
	}
	want := "cxone api endpoint: WARNING: not compared with the endpoint the discovery document of the token's tenant names, which could not be read: cxone discovery: " +
		upstream.ErrRefused.Error() + " (HTTP 404)\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("check-config with the discovery document missing printed\n%s\nwant a line %q", out.String(), want)
	}
}

// The gateway itself warns of such an endpoint once CXone answers after start-up, for
// an operator who never runs check-config; of the tenant's own, it says that it is.
func TestAnEndpointThatIsNotTheTenantsIsWarnedOfAtStartUp(t *testing.T) {
	_, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	e := env(sim, prefix)
	e["CXONE_API_BASE_URL"] = "http://127.0.0.1:1"
	s := start(t, nil, e)
	s.logLineWith(t, "CXONE_API_BASE_URL is http://127.0.0.1:1, but the discovery document of the token's tenant names "+sim.URL+
		": unless a proxy of yours stands for it, leave CXONE_API_BASE_URL empty (an endpoint that is not the tenant's may answer every mask 404, which reads as no active call)",
		map[string]any{"level": "warn"})

	e = env(sim, prefix)
	e["CXONE_API_BASE_URL"] = sim.URL
	s = start(t, nil, e)
	s.logLineWith(t, "CXONE_API_BASE_URL is the endpoint that the discovery document of the token's tenant names", map[string]any{"level": "info"})
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if l["level"] == "warn" {
			t.Errorf("a warning with the tenant's own endpoint: %v", l)
		}
	}

	// With none configured, the endpoint is the tenant's by definition: nothing to say.
	cx := upstream.New(sim.UpstreamConfig())
	defer cx.Close()
	var said bytes.Buffer
	reportTenantEndpoint(context.Background(), cx, "", time.Millisecond, zerolog.New(&said))
	if said.Len() > 0 {
		t.Errorf("with no CXONE_API_BASE_URL, the start-up said %s; want nothing", said.String())
	}
}

// The start-up's comparison waits for CXone to answer, asking again each retry, and
// then says its word once.
func TestTenantEndpointIsReportedOnceCXoneAnswers(t *testing.T) {
	sim := testkit.NewSim(t)
	sim.SetFaults(cxonesim.Faults{TokenDown: true})
	cx := upstream.New(sim.UpstreamConfig())
	defer cx.Close()
	var logs testkit.LogBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		reportTenantEndpoint(ctx, cx, "http://127.0.0.1:1", 20*time.Millisecond, zerolog.New(&logs))
		close(done)
	}()
	testkit.Eventually(t, 5*time.Second, "a failed try", func() bool { return strings.Contains(logs.String(), "not read yet") })
	sim.SetFaults(cxonesim.Faults{})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no word within 5 s of CXone answering; it asks again every 20 ms")
	}
	warnings := 0
	for _, l := range testkit.LogLines(t, logs.String()) {
		if l["level"] == "warn" {
			warnings++
		}
	}
	if warnings != 1 || ctx.Err() != nil {
		t.Errorf("%d warnings (context: %v); want one, once CXone answered:\n%s", warnings, ctx.Err(), logs.String())
	}
}

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
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.addr+"/v1/agents/80/mask", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok.String()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("mask with the dev token = %v %v", resp, err)
	}
	resp.Body.Close()
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
