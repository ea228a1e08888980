package middleware_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/middleware"
)

const (
	issuer   = "https://idp.example"
	audience = "maskgate"
)

var hsSecret = []byte("0123456789abcdef0123456789abcdef")

func newAuth(t testing.TB, cfg middleware.AuthConfig) *middleware.Authenticator {
	t.Helper()
	cfg.Issuer, cfg.Audience = issuer, audience
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	a, err := middleware.NewAuthenticator(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func pemOf(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// valid returns valid claims, changed by extra (a nil value removes a claim).
func valid(extra jwt.MapClaims) jwt.MapClaims {
	return testkit.Claims(issuer, audience, "recordings:mask", extra)
}

// jwtFailures are the tokens every key source must refuse, given the key it trusts
// (signer) and another key of the same kind (other).
func jwtFailures(t testing.TB, method jwt.SigningMethod, signer, other any, publicPEM []byte) map[string]string {
	sign := func(c jwt.MapClaims) string { return testkit.Token(t, method, signer, c, nil) }
	hour := time.Hour
	f := map[string]string{
		"garbage":             "not-a-jwt",
		"three garbage":       "a.b.c",
		"alg none":            testkit.Token(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid(nil), nil),
		"wrong key":           testkit.Token(t, method, other, valid(nil), nil),
		"expired":             sign(valid(jwt.MapClaims{"exp": time.Now().Add(-hour).Unix()})),
		"expired past leeway": sign(valid(jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()})),
		"not yet valid":       sign(valid(jwt.MapClaims{"nbf": time.Now().Add(hour).Unix()})),
		"issued in future":    sign(valid(jwt.MapClaims{"iat": time.Now().Add(hour).Unix()})),
		"wrong issuer":        sign(valid(jwt.MapClaims{"iss": "https://evil.example"})),
		"no issuer":           sign(valid(jwt.MapClaims{"iss": nil})),
		"wrong audience":      sign(valid(jwt.MapClaims{"aud": "another-service"})),
		"no audience":         sign(valid(jwt.MapClaims{"aud": nil})),
		"no exp":              sign(valid(jwt.MapClaims{"exp": nil})),
		"no sub":              sign(valid(jwt.MapClaims{"sub": nil})),
		"tampered payload":    tamper(sign(valid(nil))),
		// RFC 7515 §4.1.11: a recipient that does not support every extension "crit"
		// lists must refuse the token; the gateway supports none.
		"critical extension": testkit.Token(t, method, signer, valid(nil), map[string]any{"crit": []string{"exp-bound"}, "exp-bound": true}),
	}
	if publicPEM != nil {
		// Algorithm confusion: an HS256 token whose "secret" is the public key.
		f["HS256 with the public key as secret"] = testkit.Token(t, jwt.SigningMethodHS256, publicPEM, valid(nil), nil)
	}
	return f
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload := testkit.Claims(issuer, audience, "recordings:mask recordings:admin", nil)
	raw, _ := json.Marshal(payload)
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

func TestKeySourcesAcceptValidTokensAndRefuseTheRest(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaOther, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecOther, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	_, edOther, _ := ed25519.GenerateKey(rand.Reader)

	tests := []struct {
		name   string
		cfg    middleware.AuthConfig
		method jwt.SigningMethod
		signer any
		other  any
		pem    []byte
	}{
		{"HS256 secret", middleware.AuthConfig{HS256Secret: hsSecret}, jwt.SigningMethodHS256, hsSecret, []byte("another-secret-another-secret-00"), nil},
		{"RS256 public key", middleware.AuthConfig{PublicKeyPEM: pemOf(t, &rsaKey.PublicKey)}, jwt.SigningMethodRS256, rsaKey, rsaOther, pemOf(t, &rsaKey.PublicKey)},
		{"PS256 public key", middleware.AuthConfig{PublicKeyPEM: pemOf(t, &rsaKey.PublicKey)}, jwt.SigningMethodPS256, rsaKey, rsaOther, pemOf(t, &rsaKey.PublicKey)},
		{"ES256 public key", middleware.AuthConfig{PublicKeyPEM: pemOf(t, &ecKey.PublicKey)}, jwt.SigningMethodES256, ecKey, ecOther, pemOf(t, &ecKey.PublicKey)},
		{"EdDSA public key", middleware.AuthConfig{PublicKeyPEM: pemOf(t, edPub)}, jwt.SigningMethodEdDSA, edKey, edOther, pemOf(t, edPub)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAuth(t, tt.cfg)
			c, err := a.Authenticate(testkit.Token(t, tt.method, tt.signer, valid(jwt.MapClaims{"azp": "crm"}), nil))
			if err != nil || c.Subject != "test-caller" || c.ClientID != "crm" || !c.HasScope("recordings:mask") {
				t.Fatalf("valid token: %+v, %v", c, err)
			}
			// Within the leeway, an expired token still passes.
			if _, err := a.Authenticate(testkit.Token(t, tt.method, tt.signer, valid(jwt.MapClaims{"exp": time.Now().Add(-10 * time.Second).Unix()}), nil)); err != nil {
				t.Errorf("token expired 10s ago with 30s leeway: %v", err)
			}
			for name, tok := range jwtFailures(t, tt.method, tt.signer, tt.other, tt.pem) {
				if _, err := a.Authenticate(tok); err == nil {
					t.Errorf("%s: accepted", name)
				}
			}
		})
	}
}

// A key rotation without downtime: while a static key source holds the next key beside
// the one in use, a token signed with either passes, and passes again from the cache,
// and a token of any other key is refused.
func TestStaticKeySourcesAcceptEveryKeyTheyHold(t *testing.T) {
	rsaOld, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaNew, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaOther, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	hsNew := []byte("fedcba9876543210fedcba9876543210")
	type signer struct {
		method jwt.SigningMethod
		key    any
	}
	tests := []struct {
		name    string
		cfg     middleware.AuthConfig
		signers []signer
		other   signer
	}{
		{"HS256 secret and the previous one", middleware.AuthConfig{HS256Secret: hsNew, HS256PreviousSecret: hsSecret},
			[]signer{{jwt.SigningMethodHS256, hsNew}, {jwt.SigningMethodHS256, hsSecret}},
			signer{jwt.SigningMethodHS256, []byte("another-secret-another-secret-00")}},
		{"two RSA keys in the file", middleware.AuthConfig{PublicKeyPEM: append(pemOf(t, &rsaOld.PublicKey), pemOf(t, &rsaNew.PublicKey)...)},
			[]signer{{jwt.SigningMethodRS256, rsaOld}, {jwt.SigningMethodPS256, rsaNew}},
			signer{jwt.SigningMethodRS256, rsaOther}},
		{"an RSA and an Ed25519 key in the file", middleware.AuthConfig{PublicKeyPEM: append(pemOf(t, &rsaOld.PublicKey), pemOf(t, edPub)...)},
			[]signer{{jwt.SigningMethodRS256, rsaOld}, {jwt.SigningMethodEdDSA, edKey}},
			signer{jwt.SigningMethodRS256, rsaOther}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAuth(t, tt.cfg)
			for i, s := range tt.signers {
				tok := testkit.Token(t, s.method, s.key, valid(nil), nil)
				for try := range 2 {
					if _, err := a.Authenticate(tok); err != nil {
						t.Errorf("key %d, try %d: %v", i+1, try+1, err)
					}
				}
			}
			if n := a.Verified(); n != int64(len(tt.signers)) {
				t.Errorf("%d tokens remembered; want %d", n, len(tt.signers))
			}
			for name, tok := range jwtFailures(t, tt.signers[0].method, tt.signers[0].key, tt.other.key, nil) {
				if _, err := a.Authenticate(tok); err == nil {
					t.Errorf("%s: accepted", name)
				}
			}
		})
	}
}

func TestPublicKeySourceRefusesHS256EvenWithTheRightBytes(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pub := pemOf(t, &rsaKey.PublicKey)
	a := newAuth(t, middleware.AuthConfig{PublicKeyPEM: pub})
	_, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodHS256, pub, valid(nil), nil))
	if err == nil || !strings.Contains(err.Error(), "signing method HS256 is invalid") {
		t.Fatalf("HS256 token against an RSA public key: %v; want the method refused", err)
	}
}

func TestScopesComeFromScopeOrScp(t *testing.T) {
	a := newAuth(t, middleware.AuthConfig{HS256Secret: hsSecret})
	tests := []struct {
		name  string
		extra jwt.MapClaims
		want  []string
	}{
		{"scope string", jwt.MapClaims{"scope": "recordings:mask recordings:read"}, []string{"recordings:mask", "recordings:read"}},
		{"scp string", jwt.MapClaims{"scope": nil, "scp": "recordings:unmask"}, []string{"recordings:unmask"}},
		{"scp array", jwt.MapClaims{"scope": nil, "scp": []string{"recordings:read", "recordings:mask"}}, []string{"recordings:read", "recordings:mask"}},
		{"scope array", jwt.MapClaims{"scope": []string{"recordings:unmask", "recordings:read"}}, []string{"recordings:unmask", "recordings:read"}},
		{"both", jwt.MapClaims{"scope": "recordings:mask", "scp": []string{"recordings:read"}}, []string{"recordings:mask", "recordings:read"}},
		{"none", jwt.MapClaims{"scope": nil}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodHS256, hsSecret, valid(tt.extra), nil))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(c.Scopes, " ") != strings.Join(tt.want, " ") {
				t.Errorf("scopes = %v; want %v", c.Scopes, tt.want)
			}
		})
	}
}

// The caller's client, which audit lines and the rate limit name beside the subject,
// comes from azp (OpenID Connect) or, without it, client_id (RFC 9068's access tokens).
func TestClientComesFromAzpOrClientID(t *testing.T) {
	a := newAuth(t, middleware.AuthConfig{HS256Secret: hsSecret})
	for _, tt := range []struct {
		name  string
		extra jwt.MapClaims
		want  string
	}{
		{"azp", jwt.MapClaims{"azp": "crm"}, "crm"},
		{"client_id", jwt.MapClaims{"client_id": "ivr"}, "ivr"},
		{"both: azp", jwt.MapClaims{"azp": "crm", "client_id": "ivr"}, "crm"},
		{"neither", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodHS256, hsSecret, valid(tt.extra), nil))
			if err != nil || c.ClientID != tt.want {
				t.Errorf("client = %q, %v; want %q", c.ClientID, err, tt.want)
			}
		})
	}
}

func TestCallerIdentity(t *testing.T) {
	tests := []struct {
		c    middleware.Caller
		want string
	}{
		{middleware.Caller{Subject: "ivr"}, "ivr"},
		{middleware.Caller{Subject: "ivr", ClientID: "ivr"}, "ivr"},
		{middleware.Caller{Subject: "agent-42", ClientID: "crm-desktop"}, "agent-42 (crm-desktop)"},
	}
	for _, tt := range tests {
		if got := tt.c.Identity(); got != tt.want {
			t.Errorf("Identity(%+v) = %q; want %q", tt.c, got, tt.want)
		}
	}
}

// agent_id binds a token to one agent whatever JSON type the identity provider gives
// it (CXone's agent ids are numbers): a number is that agent; a value that names no
// agent refuses the token instead of leaving it unbound, which would let it act on
// every agent.
func TestAgentIDClaim(t *testing.T) {
	a := newAuth(t, middleware.AuthConfig{HS256Secret: hsSecret})
	for _, tt := range []struct {
		name  string
		value any // nil: no claim
		agent string
		ok    bool
	}{
		{"none: a service token", nil, "", true},
		{"a string", "user@tenant", "user@tenant", true},
		{"a number", 1234567, "1234567", true},
		{"a large number", int64(9007199254740991), "9007199254740991", true},
		{"empty", "", "", false},
		{"a fraction", 12.5, "", false},
		{"a negative number", -4, "", false},
		{"a boolean", true, "", false},
		{"an array", []string{"a1", "a2"}, "", false},
		{"null", "null", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			claims := valid(nil)
			switch {
			case tt.value == "null":
				claims["agent_id"] = nil
			case tt.value != nil:
				claims["agent_id"] = tt.value
			}
			c, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodHS256, hsSecret, claims, nil))
			if (err == nil) != tt.ok || err == nil && c.AgentID != tt.agent {
				t.Errorf("agent_id %v: %+v, %v; want agent %q, accepted %v", tt.value, c, err, tt.agent, tt.ok)
			}
		})
	}
}

func TestAuthenticatorConfigurationErrors(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	// Each error says what is wrong, as the operator reads it at start.
	for _, tt := range []struct {
		name string
		cfg  middleware.AuthConfig
		want string
	}{
		{"no key source", middleware.AuthConfig{}, "no JWT key source configured"},
		{"not PEM", middleware.AuthConfig{PublicKeyPEM: []byte("hello")}, "JWT public key: no PEM block"},
		{"private key PEM", middleware.AuthConfig{PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})}, `unsupported PEM block "PRIVATE KEY"`},
		{"P-384 key", middleware.AuthConfig{PublicKeyPEM: pemOf(t, &p384.PublicKey)}, "must be on P-256"}, // only ES256 is accepted
		{"RSA key of 1024 bits", middleware.AuthConfig{PublicKeyPEM: pemOf(t, &rsa1024.PublicKey)}, "at least 2048 bits"},
		{"a good key, then a P-384 one", middleware.AuthConfig{PublicKeyPEM: append(pemOf(t, ed25519.PublicKey(make([]byte, ed25519.PublicKeySize))), pemOf(t, &p384.PublicKey)...)}, "(PEM block 2): an ECDSA key must be on P-256"},
	} {
		if _, err := middleware.NewAuthenticator(context.Background(), tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want an error saying %q", tt.name, err, tt.want)
		}
	}
}
