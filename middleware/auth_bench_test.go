package middleware_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/middleware"
)

// BenchmarkAuthenticate is one JWT verification per algorithm maskgate accepts (and
// RS256 with a JWKS, whose key a token names by kid), and the same token once it has
// been verified.
func BenchmarkAuthenticate(b *testing.B) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, bc := range []struct {
		name   string
		cfg    middleware.AuthConfig
		method jwt.SigningMethod
		key    any
		header map[string]any // the token's, besides alg and typ
	}{
		{"HS256", middleware.AuthConfig{HS256Secret: hsSecret}, jwt.SigningMethodHS256, hsSecret, nil},
		{"RS256", middleware.AuthConfig{PublicKeyPEM: pemOf(b, &rsaKey.PublicKey)}, jwt.SigningMethodRS256, rsaKey, nil},
		{"PS256", middleware.AuthConfig{PublicKeyPEM: pemOf(b, &rsaKey.PublicKey)}, jwt.SigningMethodPS256, rsaKey, nil},
		{"ES256", middleware.AuthConfig{PublicKeyPEM: pemOf(b, &ecKey.PublicKey)}, jwt.SigningMethodES256, ecKey, nil},
		{"EdDSA", middleware.AuthConfig{PublicKeyPEM: pemOf(b, edPub)}, jwt.SigningMethodEdDSA, edKey, nil},
		{"JWKS-RS256", middleware.AuthConfig{}, jwt.SigningMethodRS256, rsaKey, map[string]any{"kid": "k1"}},
	} {
		var a *middleware.Authenticator
		if bc.header != nil {
			a, _ = newJWKSAuth(b, "k1", &rsaKey.PublicKey)
		} else {
			a = newAuth(b, bc.cfg)
		}
		tok := testkit.Token(b, bc.method, bc.key, valid(nil), bc.header)
		// verify: the signature and claims checked, as for a token seen for the first time.
		b.Run(bc.name+"/verify", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a.Forget()
				if _, err := a.Authenticate(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		// again: the same token once more, as a caller sends it with every request.
		b.Run(bc.name+"/again", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Authenticate(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
