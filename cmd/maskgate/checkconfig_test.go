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
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/middleware"
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
