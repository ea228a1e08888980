package middleware_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/api"
	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/middleware"
)

// rsaKey is a new RSA key of bits.
func rsaKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jwks serves a JWK set whose keys the test can rotate, counting fetches.
type jwks struct {
	keys    atomic.Pointer[[]byte]
	fetches atomic.Int32
}

// set makes pub the set's only key, under kid, for RS256 signatures.
func (j *jwks) set(t testing.TB, kid string, pub any) {
	j.publish(t, publishedKey{pub, jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.AlgRS256, USE: jwkset.UseSig}})
}

// publishedKey is a public key and what its JWK says of it (kid, alg, use).
type publishedKey struct {
	pub  any
	meta jwkset.JWKMetadataOptions
}

// publish makes keys the set's keys.
func (j *jwks) publish(t testing.TB, keys ...publishedKey) {
	t.Helper()
	var set jwkset.JWKSMarshal
	for _, k := range keys {
		// Private: a private key is published with its private part, as a provider
		// that leaks one would (a public key is the same either way).
		jwk, err := jwkset.NewJWKFromKey(k.pub, jwkset.JWKOptions{Metadata: k.meta, Marshal: jwkset.JWKMarshalOptions{Private: true}})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	raw, _ := json.Marshal(set)
	j.keys.Store(&raw)
}

func (j *jwks) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	j.fetches.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(*j.keys.Load())
}

// newJWKSAuth serves a JWK set holding pub under kid, and returns an Authenticator
// that trusts it.
func newJWKSAuth(t testing.TB, kid string, pub any) (*middleware.Authenticator, *jwks) {
	t.Helper()
	set := &jwks{}
	set.set(t, kid, pub)
	srv := httptest.NewServer(set)
	t.Cleanup(srv.Close)
	return newAuth(t, middleware.AuthConfig{JWKSURL: srv.URL}), set
}

func TestJWKSRotatesOnUnknownKidAndRefusesUnknownKids(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	a, set := newJWKSAuth(t, "k1", &k1.PublicKey)
	if err := a.Ready(context.Background()); err != nil {
		t.Fatalf("Ready with the keys loaded: %v", err)
	}
	kid := func(k string) map[string]any { return map[string]any{"kid": k} }

	verified := testkit.Token(t, jwt.SigningMethodRS256, k1, valid(nil), kid("k1"))
	if _, err := a.Authenticate(verified); err != nil {
		t.Fatalf("token with kid k1: %v", err)
	}
	for name, tok := range jwtFailures(t, jwt.SigningMethodRS256, k1, k2, pemOf(t, &k1.PublicKey)) {
		if _, err := a.Authenticate(tok); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	// The identity provider rotates to k2: a token with the new kid triggers a refresh.
	set.set(t, "k2", &k2.PublicKey)
	testkit.Eventually(t, 15*time.Second, "the JWKS to be refetched for kid k2", func() bool {
		_, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodRS256, k2, valid(nil), kid("k2")))
		return err == nil
	})
	if _, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodRS256, k1, valid(nil), kid("k1"))); err == nil {
		t.Error("a token of the retired key k1 is still accepted")
	}
	if _, err := a.Authenticate(verified); err == nil {
		t.Error("the token verified under k1 before it was retired is still accepted")
	}
	fetches := set.fetches.Load()
	if _, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodRS256, k2, valid(nil), kid("nope"))); err == nil {
		t.Error("token with an unknown kid accepted")
	}
	if n := set.fetches.Load() - fetches; n > 0 {
		t.Errorf("an unknown kid right after a refresh fetched the JWKS %d more times; want it rate-limited", n)
	}
}

// A JWK set may hold keys that are not for verifying these tokens: an encryption key
// ("use":"enc", or key_ops without "verify"), a key whose "alg" names another
// algorithm (RFC 7517 §4.2–§4.4), an RSA key under 2048 bits (RFC 7518 §3.3), or one
// published with its private part. A token signed with one is refused, with its kid or
// without one: a token without a kid is checked against the keys of the set that may
// verify it, not against them all. Keys that name neither a use nor an alg (many
// identity providers leave both out) verify any token.
func TestJWKSKeysVerifyOnlyWhatTheyMay(t *testing.T) {
	key := func(bits int) *rsa.PrivateKey { return rsaKey(t, bits) }
	signing, plain, encryption, oaep, pss, short := key(2048), key(2048), key(2048), key(2048), key(2048), key(1024)
	verifying, encrypting, signingOnly, leaked := key(2048), key(2048), key(2048), key(2048)
	set := &jwks{}
	set.publish(t,
		publishedKey{&signing.PublicKey, jwkset.JWKMetadataOptions{KID: "signing", ALG: jwkset.AlgRS256, USE: jwkset.UseSig}},
		publishedKey{&plain.PublicKey, jwkset.JWKMetadataOptions{KID: "plain"}},
		publishedKey{&encryption.PublicKey, jwkset.JWKMetadataOptions{KID: "encryption", USE: jwkset.UseEnc}},
		publishedKey{&oaep.PublicKey, jwkset.JWKMetadataOptions{KID: "oaep", ALG: jwkset.AlgRSAOAEP256}},
		publishedKey{&pss.PublicKey, jwkset.JWKMetadataOptions{KID: "pss", ALG: jwkset.AlgPS256, USE: jwkset.UseSig}},
		publishedKey{&short.PublicKey, jwkset.JWKMetadataOptions{KID: "short", ALG: jwkset.AlgRS256, USE: jwkset.UseSig}},
		publishedKey{&verifying.PublicKey, jwkset.JWKMetadataOptions{KID: "verifying", KEYOPS: []jwkset.KEYOPS{jwkset.KeyOpsVerify}}},
		publishedKey{&encrypting.PublicKey, jwkset.JWKMetadataOptions{KID: "encrypting", KEYOPS: []jwkset.KEYOPS{jwkset.KeyOpsEncrypt, jwkset.KeyOpsWrapKey}}},
		publishedKey{&signingOnly.PublicKey, jwkset.JWKMetadataOptions{KID: "signingOnly", KEYOPS: []jwkset.KEYOPS{jwkset.KeyOpsSign}}},
		publishedKey{leaked, jwkset.JWKMetadataOptions{KID: "leaked", ALG: jwkset.AlgRS256, USE: jwkset.UseSig}},
	)
	srv := httptest.NewServer(set)
	t.Cleanup(srv.Close)
	a := newAuth(t, middleware.AuthConfig{JWKSURL: srv.URL})
	if err := a.Ready(context.Background()); err != nil {
		t.Fatalf("Ready with the keys loaded: %v", err)
	}
	keys := map[string]*rsa.PrivateKey{"signing": signing, "plain": plain, "encryption": encryption, "oaep": oaep, "pss": pss, "short": short,
		"verifying": verifying, "encrypting": encrypting, "signingOnly": signingOnly, "leaked": leaked}
	for _, c := range []struct {
		kid    string // of the key that signs
		method jwt.SigningMethod
		passes bool
	}{
		{"signing", jwt.SigningMethodRS256, true},
		{"plain", jwt.SigningMethodRS256, true},
		{"pss", jwt.SigningMethodPS256, true},
		{"encryption", jwt.SigningMethodRS256, false},
		{"oaep", jwt.SigningMethodRS256, false},
		{"pss", jwt.SigningMethodRS256, false},
		{"short", jwt.SigningMethodRS256, false},
		{"verifying", jwt.SigningMethodRS256, true},
		{"encrypting", jwt.SigningMethodRS256, false},
		{"signingOnly", jwt.SigningMethodRS256, false},
		{"leaked", jwt.SigningMethodRS256, false}, // anyone who read the set could have signed it
	} {
		for _, header := range []map[string]any{{"kid": c.kid}, nil} {
			_, err := a.Authenticate(testkit.Token(t, c.method, keys[c.kid], valid(nil), header))
			if passes := err == nil; passes != c.passes {
				t.Errorf("%s token signed with key %q, header %v: passes %v (%v), want %v",
					c.method.Alg(), c.kid, header, passes, err, c.passes)
			}
		}
	}
	// The caller of a token whose key is too weak is told so, not only "unverifiable".
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/v1/masks", nil)
	r = r.WithContext(context.WithValue(r.Context(), api.BearerAuthScopes, []string{}))
	r.Header.Set("Authorization", "Bearer "+testkit.Token(t, jwt.SigningMethodRS256, short, valid(nil), map[string]any{"kid": "short"}))
	middleware.Authorize(a)(http.NotFoundHandler()).ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "RSA keys need 2048 bits") {
		t.Errorf("a token of the 1024-bit key = %d %s; want 401 saying the key is too weak", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	r.Header.Set("Authorization", "Bearer "+testkit.Token(t, jwt.SigningMethodRS256, encrypting, valid(nil), map[string]any{"kid": "encrypting"}))
	middleware.Authorize(a)(http.NotFoundHandler()).ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `key_ops must allow \"verify\"`) {
		t.Errorf("a token of the key for encrypting = %d %s; want 401 saying its key_ops do not allow verifying", w.Code, w.Body)
	}
}

// The keys of a JWKS that verify no token although they are not published for
// encryption are named, ahead of a rotation onto one of them: by KeyProblems (which
// check-config prints) and in the log once the set loads, a key published with its
// private part as an error. Keys for encryption are not problems.
func TestJWKSKeysThatVerifyNoTokenAreNamed(t *testing.T) {
	key := func(bits int) *rsa.PrivateKey { return rsaKey(t, bits) }
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	published := []publishedKey{
		{&key(2048).PublicKey, jwkset.JWKMetadataOptions{KID: "good", ALG: jwkset.AlgRS256}},
		{&key(2048).PublicKey, jwkset.JWKMetadataOptions{KID: "enc", USE: jwkset.UseEnc}},
		{&key(2048).PublicKey, jwkset.JWKMetadataOptions{KID: "wrap", KEYOPS: []jwkset.KEYOPS{jwkset.KeyOpsWrapKey}}},
		{&key(2048).PublicKey, jwkset.JWKMetadataOptions{KID: "oaep", ALG: jwkset.AlgRSAOAEP256}}, // for encryption by its alg
		{key(2048), jwkset.JWKMetadataOptions{KID: "leaked"}},
		{&key(2048).PublicKey, jwkset.JWKMetadataOptions{KID: "rs512", ALG: jwkset.AlgRS512}},
		{&key(1024).PublicKey, jwkset.JWKMetadataOptions{KID: "short"}},
		{&p384.PublicKey, jwkset.JWKMetadataOptions{KID: "p384"}},
	}
	set := &jwks{}
	set.publish(t, published...)
	srv := httptest.NewServer(set)
	t.Cleanup(srv.Close)
	var logs testkit.LogBuffer
	a := newAuth(t, middleware.AuthConfig{JWKSURL: srv.URL, Log: zerolog.New(&logs), JWKSRefreshEvery: 50 * time.Millisecond})
	want := map[string]middleware.KeyProblem{
		"leaked": {KID: "leaked", Problem: "the JWK set publishes its private part: whoever reads the set can sign any token with it", Leaked: true},
		"rs512":  {KID: "rs512", Problem: "it is for RS512, which the gateway does not accept (RS256, PS256, ES256, EdDSA)"},
		"short":  {KID: "short", Problem: "an RSA key must have at least 2048 bits (RFC 7518 §3.3), not 1024"},
		"p384":   {KID: "p384", Problem: "an ECDSA key must be on P-256 (ES256), not P-384"},
	}
	got := map[string]middleware.KeyProblem{}
	for _, p := range a.KeyProblems(context.Background()) {
		got[p.KID] = p
	}
	if !maps.Equal(got, want) {
		t.Errorf("KeyProblems = %v\nwant %v", got, want)
	}
	// Logged once each, and a key the provider adds later is logged when the set is
	// fetched again (here for a token naming it), ahead of a rotation onto it.
	checkLog := func(wantLevels map[string]string) {
		t.Helper()
		testkit.Eventually(t, 10*time.Second, "the problems to be logged", func() bool { return strings.Count(logs.String(), "\n") >= len(wantLevels) })
		levels := map[string]string{}
		for _, l := range testkit.LogLines(t, logs.String()) {
			kid, _ := l["kid"].(string)
			if _, again := levels[kid]; again || l["message"] != "a JWKS key verifies no token: "+want[kid].Problem {
				t.Errorf("logged %v", l)
			}
			levels[kid], _ = l["level"].(string)
		}
		if !maps.Equal(levels, wantLevels) {
			t.Errorf("logged the keys at levels %v; want %v\n%s", levels, wantLevels, logs.String())
		}
	}
	checkLog(map[string]string{"leaked": "error", "rs512": "warn", "short": "warn", "p384": "warn"})
	set.publish(t, append(published, publishedKey{&key(2048).PublicKey, jwkset.JWKMetadataOptions{KID: "ps512", ALG: jwkset.AlgPS512}})...)
	want["ps512"] = middleware.KeyProblem{KID: "ps512", Problem: "it is for PS512, which the gateway does not accept (RS256, PS256, ES256, EdDSA)"}
	_, _ = a.Authenticate(testkit.Token(t, jwt.SigningMethodRS256, key(2048), valid(nil), map[string]any{"kid": "ps512"}))
	checkLog(map[string]string{"leaked": "error", "rs512": "warn", "short": "warn", "p384": "warn", "ps512": "warn"})
}

// A JWK set whose keys are all for algorithms the gateway does not accept (RS512 here)
// refuses every caller as well: the keys pass every check of the key itself, so the set
// is only unready because no token algorithm the gateway accepts finds one.
func TestJWKSOfKeysForAnotherAlgorithmIsNotReady(t *testing.T) {
	set := &jwks{}
	set.publish(t, publishedKey{&rsaKey(t, 2048).PublicKey, jwkset.JWKMetadataOptions{KID: "rs512", ALG: jwkset.AlgRS512}})
	srv := httptest.NewServer(set)
	t.Cleanup(srv.Close)
	a := newAuth(t, middleware.AuthConfig{JWKSURL: srv.URL})
	if err := a.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "none of the 1 JWKS keys may verify tokens") {
		t.Errorf("Ready with an RS512 key alone = %v; want not ready, saying no key may verify", err)
	}
}

// A JWK set none of whose keys may verify tokens (too short, for encryption by its
// use or its key_ops, for another algorithm, published with its private part) refuses
// every caller: the replica is not ready, and says why, so that a rolling update onto
// it (or check-config) stops there while the replicas before it serve; and it is
// fetched again until a usable key loads, at start or after.
func TestJWKSWithoutAKeyThatMayVerifyIsNotReady(t *testing.T) {
	short, encryption := rsaKey(t, 1024), rsaKey(t, 2048)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := &jwks{}
	set.publish(t,
		publishedKey{&short.PublicKey, jwkset.JWKMetadataOptions{KID: "short", ALG: jwkset.AlgRS256, USE: jwkset.UseSig}},
		publishedKey{&encryption.PublicKey, jwkset.JWKMetadataOptions{KID: "encryption", USE: jwkset.UseEnc}},
		publishedKey{&encryption.PublicKey, jwkset.JWKMetadataOptions{KID: "oaep", ALG: jwkset.AlgRSAOAEP256}},
		publishedKey{&p384.PublicKey, jwkset.JWKMetadataOptions{KID: "p384"}},
		publishedKey{&encryption.PublicKey, jwkset.JWKMetadataOptions{KID: "encrypting", KEYOPS: []jwkset.KEYOPS{jwkset.KeyOpsEncrypt}}},
		publishedKey{encryption, jwkset.JWKMetadataOptions{KID: "leaked"}},
	)
	srv := httptest.NewServer(set)
	t.Cleanup(srv.Close)
	a := newAuth(t, middleware.AuthConfig{JWKSURL: srv.URL, JWKSRefreshEvery: 50 * time.Millisecond})
	err = a.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "none of the 6 JWKS keys may verify tokens") {
		t.Fatalf("Ready with a 1024-bit key, three encryption keys, a P-384 key and a private key = %v; want not ready, saying no key may verify", err)
	}
	// A token without a kid, checked against every key of the set, is told why none
	// may verify it, as a token naming its key is (not only "unverifiable").
	for _, key := range []*rsa.PrivateKey{short, encryption} {
		token := testkit.Token(t, jwt.SigningMethodRS256, key, valid(nil), nil)
		if _, err := a.Authenticate(token); err == nil || !strings.Contains(err.Error(), "none of the JWK set's 6 keys may verify tokens") {
			t.Errorf("a token without a kid, when no key of the set may verify = %v; want refused, saying so", err)
		}
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/v1/masks", nil)
		r = r.WithContext(context.WithValue(r.Context(), api.BearerAuthScopes, []string{}))
		r.Header.Set("Authorization", "Bearer "+token)
		middleware.Authorize(a)(http.NotFoundHandler()).ServeHTTP(w, r)
		if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "RSA keys need 2048 bits") {
			t.Errorf("a token without a kid, when no key of the set may verify = %d %s; want 401 saying which keys the gateway trusts", w.Code, w.Body)
		}
	}
	// The provider publishes a key that may: the set is fetched again, as while no key
	// was loaded, without a token to ask for it (no caller reaches an unready replica).
	good, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set.publish(t,
		publishedKey{&short.PublicKey, jwkset.JWKMetadataOptions{KID: "short", ALG: jwkset.AlgRS256, USE: jwkset.UseSig}},
		publishedKey{&good.PublicKey, jwkset.JWKMetadataOptions{KID: "good"}},
	)
	testkit.Eventually(t, 10*time.Second, "the good key to load", func() bool { return a.Ready(context.Background()) == nil })
	if _, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodRS256, good, valid(nil), map[string]any{"kid": "good"})); err != nil {
		t.Errorf("a token of the good key: %v", err)
	}

	// Later the provider's set loses its usable key (a botched rotation), and a token
	// naming a new kid makes the gateway fetch it: unready; then, once the provider
	// publishes a good key again, ready without another token, as at start.
	set.publish(t, publishedKey{&short.PublicKey, jwkset.JWKMetadataOptions{KID: "short", ALG: jwkset.AlgRS256, USE: jwkset.UseSig}})
	_, _ = a.Authenticate(testkit.Token(t, jwt.SigningMethodRS256, good, valid(nil), map[string]any{"kid": "next"}))
	testkit.Eventually(t, 10*time.Second, "the set without a usable key to load", func() bool { return a.Ready(context.Background()) != nil })
	set.publish(t, publishedKey{&good.PublicKey, jwkset.JWKMetadataOptions{KID: "good"}})
	testkit.Eventually(t, 10*time.Second, "the good key to load again", func() bool { return a.Ready(context.Background()) == nil })
}

// A JWKS that could not be fetched at start is fetched again until it loads, not an
// hour later (keyfunc's refresh): no caller's token comes to make keyfunc fetch it
// while a readiness probe keeps the callers away. Once loaded, it is not fetched again
// for that.
func TestJWKSDownAtStartIsFetchedAgainUntilItLoads(t *testing.T) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	set := &jwks{}
	set.set(t, "k1", &k.PublicKey)
	var down atomic.Bool
	down.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		set.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	const every = 50 * time.Millisecond
	a := newAuth(t, middleware.AuthConfig{JWKSURL: srv.URL, JWKSRefreshEvery: every})
	if err := a.Ready(context.Background()); err == nil {
		t.Fatal("Ready with the JWKS down = nil")
	}
	down.Store(false)
	testkit.Eventually(t, 10*time.Second, "the keys to load", func() bool { return a.Ready(context.Background()) == nil })
	if _, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodRS256, k, valid(nil), map[string]any{"kid": "k1"})); err != nil {
		t.Errorf("a token once the keys loaded: %v", err)
	}
	fetches := set.fetches.Load()
	time.Sleep(20 * every) // an absence: nothing to poll for
	if n := set.fetches.Load() - fetches; n != 0 {
		t.Errorf("the JWKS was fetched %d more times once loaded; want 0", n)
	}
}

// A JWKS served over https may redirect, but not to plain http, where its keys could be
// changed on the way: the keys are then not loaded, and Ready says why.
func TestJWKSRedirectToPlainHTTPIsRefused(t *testing.T) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	set := &jwks{}
	set.set(t, "k1", &k.PublicKey)
	plain := httptest.NewServer(set)
	t.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved": // to the same keys over https
			http.Redirect(w, r, "/jwks", http.StatusFound)
		case "/downgraded":
			http.Redirect(w, r, plain.URL+"/jwks", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			set.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(secure.Close)
	moved := newAuth(t, middleware.AuthConfig{JWKSURL: secure.URL + "/moved", HTTPClient: secure.Client()})
	if err := moved.Ready(context.Background()); err != nil {
		t.Errorf("Ready after a redirect from https to https = %v; want the keys loaded", err)
	}
	fetches := set.fetches.Load()
	downgraded := newAuth(t, middleware.AuthConfig{JWKSURL: secure.URL + "/downgraded", HTTPClient: secure.Client()})
	if err := downgraded.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "redirected from https to plain http") {
		t.Errorf("Ready after a redirect from https to plain http = %v; want the keys refused", err)
	}
	if n := set.fetches.Load() - fetches; n != 0 {
		t.Errorf("the keys were fetched over plain http %d times", n)
	}
	// net/http's limit of 10 redirects, which a CheckRedirect of one's own replaces, holds.
	looping := newAuth(t, middleware.AuthConfig{JWKSURL: secure.URL + "/loop", HTTPClient: secure.Client()})
	if err := looping.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "stopped after 10 redirects") {
		t.Errorf("Ready after endless redirects = %v; want them stopped after 10", err)
	}
}

// A JWKS that cannot be fetched is not ready, and Ready says why (what /readyz and
// check-config show): here, the identity provider's 404.
func TestJWKSUnreachableIsNotReady(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	a := newAuth(t, middleware.AuthConfig{JWKSURL: srv.URL + "/jwks.json"})
	if err := a.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("Ready with the JWKS answering 404 = %v; want not ready, saying 404", err)
	}
}

// A JWKS URL may carry a password (basic authentication to the identity provider): a
// failed refresh is logged with the URL, never with the password, and Ready's reason
// (which /readyz shows to anyone) does not show it either, also when the error names
// the URL (a connection refused).
func TestJWKSRefreshFailureDoesNotLogThePassword(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	t.Cleanup(down.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	password := testkit.Canary + "jwks-password"
	for _, srv := range []*httptest.Server{down, closed} {
		var logs testkit.LogBuffer
		a := newAuth(t, middleware.AuthConfig{JWKSURL: strings.Replace(srv.URL, "http://", "http://reader:"+password+"@", 1), Log: zerolog.New(&logs)})
		testkit.Eventually(t, 10*time.Second, "the failed refresh to be logged", func() bool { return strings.Contains(logs.String(), "JWKS refresh failed") })
		if strings.Contains(logs.String(), password) || !strings.Contains(logs.String(), "reader:xxxxx@") {
			t.Errorf("the refresh failure was logged as %s", logs.String())
		}
		if err := a.Ready(context.Background()); err == nil || strings.Contains(err.Error(), password) {
			t.Errorf("Ready = %v; want not ready, without the password", err)
		}
	}
}
