package middleware_test

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/middleware"
)

// A token already verified is not parsed and checked again: the second request with it
// allocates a fraction of what the first did.
func TestVerifiedTokenIsNotCheckedAgain(t *testing.T) {
	tok := testkit.Token(t, jwt.SigningMethodHS256, hsSecret, valid(nil), nil)
	first := testing.AllocsPerRun(1, func() {
		if _, err := newAuth(t, middleware.AuthConfig{HS256Secret: hsSecret}).Authenticate(tok); err != nil {
			t.Fatal(err)
		}
	})
	a := newAuth(t, middleware.AuthConfig{HS256Secret: hsSecret})
	want, err := a.Authenticate(tok)
	if err != nil {
		t.Fatal(err)
	}
	again := testing.AllocsPerRun(100, func() {
		got, err := a.Authenticate(tok)
		if err != nil || got.Subject != want.Subject || !got.HasScope("recordings:mask") {
			t.Fatalf("the same token again: %+v, %v; want %+v", got, err, want)
		}
	})
	if again > first/4 {
		t.Errorf("the same token again allocated %.0f times; the first check %.0f: it was checked again", again, first)
	}
}

// The cache never extends a token's life: once exp (plus the leeway) has passed, the
// token is refused as expired, as it would be without the cache.
func TestVerifiedTokenIsRefusedOnceExpired(t *testing.T) {
	a := newAuth(t, middleware.AuthConfig{HS256Secret: hsSecret, Leeway: time.Nanosecond})
	tok := testkit.Token(t, jwt.SigningMethodHS256, hsSecret, valid(jwt.MapClaims{"exp": time.Now().Add(time.Second).Unix()}), nil)
	if _, err := a.Authenticate(tok); err != nil {
		t.Fatalf("token valid for up to a second: %v", err)
	}
	testkit.Eventually(t, 5*time.Second, "the verified token to expire", func() bool {
		_, err := a.Authenticate(tok)
		return errors.Is(err, jwt.ErrTokenExpired)
	})
}

// Only the exact bytes verified are remembered: another signature on the same header
// and claims is checked, and refused.
func TestTamperedCopyOfAVerifiedTokenIsRefused(t *testing.T) {
	a := newAuth(t, middleware.AuthConfig{HS256Secret: hsSecret})
	claims := valid(nil)
	tok := testkit.Token(t, jwt.SigningMethodHS256, hsSecret, claims, nil)
	if _, err := a.Authenticate(tok); err != nil {
		t.Fatal(err)
	}
	forged := testkit.Token(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-00"), claims, nil)
	if _, err := a.Authenticate(forged); !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		t.Fatalf("the same claims under another key after the genuine token was verified: %v; want a bad signature", err)
	}
}

// Many distinct valid tokens do not grow the cache past its bound.
func TestVerifiedTokensAreBounded(t *testing.T) {
	a := newAuth(t, middleware.AuthConfig{HS256Secret: hsSecret})
	for i := range middleware.MaxVerified + 100 {
		tok := testkit.Token(t, jwt.SigningMethodHS256, hsSecret, valid(jwt.MapClaims{"jti": strconv.Itoa(i)}), nil)
		if _, err := a.Authenticate(tok); err != nil {
			t.Fatal(err)
		}
		if n := a.Verified(); n > middleware.MaxVerified {
			t.Fatalf("%d verified tokens kept; the bound is %d", n, middleware.MaxVerified)
		}
	}
	if n := a.Verified(); n < 100 {
		t.Errorf("%d verified tokens kept after %d: the cache does not fill again once emptied", n, middleware.MaxVerified+100)
	}
}

// A JWKS token without a kid is checked against every key of the set: it is remembered
// with that set, and passes again unchecked only while the identity provider serves the
// same set, so that the token of a retired key is refused at once.
func TestJWKSTokenWithoutKidPassesAgainOnlyWithTheSameSet(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	a, set := newJWKSAuth(t, "k1", &k1.PublicKey)
	tok := testkit.Token(t, jwt.SigningMethodRS256, k1, valid(nil), nil)
	if _, err := a.Authenticate(tok); err != nil {
		t.Fatalf("token without kid against the set: %v", err)
	}
	again := testing.AllocsPerRun(10, func() {
		if _, err := a.Authenticate(tok); err != nil {
			t.Fatal(err)
		}
	})
	if again >= 20 || a.Verified() != 1 {
		t.Errorf("the token again: %.0f allocations, %d tokens kept; want it kept and not checked in full (dozens)", again, a.Verified())
	}

	// The identity provider retires k1 for k2: a token with k2's kid refreshes the set.
	set.set(t, "k2", &k2.PublicKey)
	testkit.Eventually(t, 15*time.Second, "the JWKS to be refetched for kid k2", func() bool {
		_, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodRS256, k2, valid(nil), map[string]any{"kid": "k2"}))
		return err == nil
	})
	if _, err := a.Authenticate(tok); err == nil {
		t.Error("the token without kid, remembered under the set that held k1, is still accepted once k1 is retired")
	}
}
