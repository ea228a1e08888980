package middleware_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/middleware"
	"github.com/maskgate/maskgate/sessions"
)

// FuzzBearerToken: whatever arrives as a token is refused unless it is one this
// gateway's key signed; never a panic.
func FuzzBearerToken(f *testing.F) {
	a := newAuth(f, middleware.AuthConfig{HS256Secret: hsSecret})
	good := testkit.Token(f, jwt.SigningMethodHS256, hsSecret, valid(nil), nil)
	for _, s := range []string{good, "", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", good + "x", strings.ToUpper(good), "...."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := a.Authenticate(tok)
		if err == nil && tok != good && c.Subject != "test-caller" {
			t.Fatalf("accepted a token that was not signed here: %q", tok)
		}
	})
}

// FuzzClaims signs fuzzed claim payloads with the right key: whatever the claims, a
// token is accepted only when iss, aud, exp and sub are right, and its scopes are what
// its scope/scp claims say.
func FuzzClaims(f *testing.F) {
	for _, s := range []string{`{}`, `{"iss":"https://idp.example","aud":"maskgate","sub":"x","exp":9999999999}`,
		`{"iss":"https://idp.example","aud":["maskgate"],"sub":"x","exp":9999999999,"scp":["a",1,null]}`,
		`{"exp":"soon"}`, `{"aud":5}`, `{"scp":{"a":1}}`, `[]`, `null`} {
		f.Add(s)
	}
	a := newAuth(f, middleware.AuthConfig{HS256Secret: hsSecret})
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	f.Fuzz(func(t *testing.T, payload string) {
		unsigned := header + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
		sig, err := jwt.SigningMethodHS256.Sign(unsigned, hsSecret)
		if err != nil {
			t.Fatal(err)
		}
		signed := unsigned + "." + base64.RawURLEncoding.EncodeToString(sig)
		c, err := a.Authenticate(signed)
		if err != nil {
			return
		}
		if c.Subject == "" {
			t.Fatalf("accepted claims %s without a subject", payload)
		}
		claims := jwt.MapClaims{}
		if _, _, err := jwt.NewParser().ParseUnverified(signed, claims); err != nil {
			t.Fatalf("accepted claims %s that do not parse", payload)
		}
		if iss, _ := claims.GetIssuer(); iss != issuer {
			t.Fatalf("accepted claims %s for issuer %q", payload, iss)
		}
		if exp, err := claims.GetExpirationTime(); err != nil || exp == nil || exp.Before(time.Now().Add(-time.Minute)) {
			t.Fatalf("accepted claims %s without a valid exp", payload)
		}
	})
}

// replays is an in-memory IdempotencyStore.
type replays struct {
	mu sync.Mutex
	m  map[string]*sessions.Replay
}

func (r *replays) ReserveIdempotency(_ context.Context, caller, key, fp string, _ time.Duration) (*sessions.Replay, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.m[caller+key]; ok {
		return old, nil
	}
	r.m[caller+key] = &sessions.Replay{Fingerprint: fp}
	return nil, nil
}

func (r *replays) CompleteIdempotency(_ context.Context, caller, key string, rp sessions.Replay, _ time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rp.Done = true
	r.m[caller+key] = &rp
	return nil
}

func (r *replays) ReleaseIdempotency(_ context.Context, caller, key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, caller+key)
	return nil
}

// FuzzIdempotencyKey: any header value and body gets a 4xx, or runs the request once
// and replays its answer to a repeat; never a panic or a 5xx.
func FuzzIdempotencyKey(f *testing.F) {
	for _, s := range []string{"k", "", strings.Repeat("k", 255), strings.Repeat("k", 256), "tab\tkey", "ünïcode", "\x00"} {
		f.Add(s, []byte(`{"ttlSeconds":5}`))
	}
	f.Fuzz(func(t *testing.T, key string, body []byte) {
		runs := 0
		h := middleware.Idempotency(&replays{m: map[string]*sessions.Replay{}}, time.Minute)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runs++
			w.WriteHeader(http.StatusOK)
		}))
		send := func() *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodPost, "/v1/agents/a/mask", strings.NewReader(string(body)))
			req.Header["Idempotency-Key"] = []string{key}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			return w
		}
		first, second := send(), send()
		if first.Code >= 500 || second.Code >= 500 {
			t.Fatalf("key %q: %d then %d", key, first.Code, second.Code)
		}
		if key != "" && first.Code == http.StatusOK && (runs != 1 || second.Header().Get("Idempotent-Replayed") != "true") {
			t.Fatalf("key %q: the request ran %d times; want once and a replay", key, runs)
		}
	})
}

// FuzzJWKS: whatever the identity provider serves as its JWK set, the gateway neither
// panics (loading it, judging its keys, answering readiness) nor passes a token that
// none of its keys signed: one of another RSA key, with the set's kid or without, or an
// HS256 token whose secret is a symmetric ("oct") key of the set, which the public key
// algorithms never take.
func FuzzJWKS(f *testing.F) {
	published, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	oct := []byte("a secret shared in the key set, 32+ bytes long")
	seed := func(pub any, meta jwkset.JWKMetadataOptions) string {
		// Private: an oct key is its secret, which must be marshaled to be published.
		jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: meta, Marshal: jwkset.JWKMarshalOptions{Private: true}})
		if err != nil {
			f.Fatal(err)
		}
		raw, _ := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
		return string(raw)
	}
	for _, s := range []string{
		seed(&published.PublicKey, jwkset.JWKMetadataOptions{KID: "k1", ALG: jwkset.AlgRS256, USE: jwkset.UseSig}),
		seed(&published.PublicKey, jwkset.JWKMetadataOptions{KID: "k1", KEYOPS: []jwkset.KEYOPS{jwkset.KeyOpsVerify}}),
		seed(&ec.PublicKey, jwkset.JWKMetadataOptions{KID: "k1", USE: jwkset.UseEnc}),
		seed(oct, jwkset.JWKMetadataOptions{KID: "k1"}),
		`{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"EC","kid":"k1","crv":"P-521","x":"AA","y":"AA"}]}`,
		`{"keys":[{"kty":"OKP","kid":"k1","crv":"Ed25519","x":""}]}`,
		`{"keys":[{"kty":"RSA","kid":"k1","key_ops":["verify","bogus"]}]}`,
		`{"keys":[]}`, `{"keys":null}`, `{}`, `[]`, `not json`,
	} {
		f.Add([]byte(s))
	}
	var set atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*set.Load())
	}))
	f.Cleanup(srv.Close)
	forged := []string{
		testkit.Token(f, jwt.SigningMethodRS256, other, valid(nil), nil),
		testkit.Token(f, jwt.SigningMethodRS256, other, valid(nil), map[string]any{"kid": "k1"}),
		testkit.Token(f, jwt.SigningMethodHS256, oct, valid(nil), map[string]any{"kid": "k1"}),
		testkit.Token(f, jwt.SigningMethodHS256, oct, valid(nil), nil),
	}
	f.Fuzz(func(t *testing.T, served []byte) {
		set.Store(&served)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel() // ends the set's refreshes
		// Refetched at once for a kid the set lacks, rather than after keyfunc's wait of
		// up to a second for its limiter, which would leave a few executions a second.
		a, err := middleware.NewAuthenticator(ctx, middleware.AuthConfig{JWKSURL: srv.URL, Issuer: issuer, Audience: audience,
			Leeway: 30 * time.Second, JWKSRefreshEvery: time.Millisecond})
		if err != nil {
			return
		}
		_ = a.Ready(ctx)
		for _, tok := range forged {
			if _, err := a.Authenticate(tok); err == nil {
				t.Fatalf("a forged token passed (another RSA key's, or HS256 with the set's oct key), with the set %q", served)
			}
		}
	})
}
