package middleware_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/middleware"
)

// A certificate file with its chain after it (as identity providers hand out a signing
// certificate) trusts the signing certificate only: the certificate authority's key,
// which signs certificates and not tokens, does not pass tokens, and its key type need
// not be one tokens use.
func TestPublicKeyFileWithACertificateChainTrustsTheLeafOnly(t *testing.T) {
	certPEM := func(t *testing.T, tmpl, parent *x509.Certificate, pub, signer any) []byte {
		t.Helper()
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	leaf, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaCA, _ := rsa.GenerateKey(rand.Reader, 2048)
	p384CA, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for name, ca := range map[string]crypto.Signer{"RSA authority": rsaCA, "P-384 authority": p384CA} {
		t.Run(name, func(t *testing.T) {
			caPEM := certPEM(t, caTmpl, caTmpl, ca.Public(), ca)
			caCert, _ := x509.ParseCertificate(func() []byte { b, _ := pem.Decode(caPEM); return b.Bytes }())
			file := append(certPEM(t, leafTmpl, caCert, &leaf.PublicKey, ca), caPEM...)
			a := newAuth(t, middleware.AuthConfig{PublicKeyPEM: file})
			if _, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodRS256, leaf, valid(nil), nil)); err != nil {
				t.Errorf("a token of the signing certificate's key: %v", err)
			}
			if rsaKey, ok := ca.(*rsa.PrivateKey); ok {
				if _, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodRS256, rsaKey, valid(nil), nil)); err == nil {
					t.Error("a token of the certificate authority's key passed")
				}
			}
		})
	}
	// Two authorities that certified each other leave no signing certificate: the file
	// is refused at start, rather than loaded to refuse every token.
	file := append(certPEM(t, caTmpl, caTmpl, &leaf.PublicKey, rsaCA), certPEM(t, caTmpl, caTmpl, &rsaCA.PublicKey, leaf)...)
	_, err := middleware.NewAuthenticator(t.Context(), middleware.AuthConfig{Issuer: issuer, Audience: audience, PublicKeyPEM: file})
	if err == nil || !strings.Contains(err.Error(), "none signs tokens") {
		t.Errorf("a file of two certificates that issued each other: %v; want it refused", err)
	}
}

// A public key file may hold the key as PKIX, as PKCS#1 (RSA) or inside a certificate,
// the forms identity providers hand out; each verifies the tokens of its private key.
func TestPublicKeyFileForms(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	// What openssl req -x509 makes by default: a self-signed authority (CA:TRUE). The
	// one certificate it issued is itself: it is the key, not a chain.
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	selfCA, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	forms := map[string][]byte{
		"PKIX":                                pemOf(t, &key.PublicKey),
		"PKCS#1":                              pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)}),
		"certificate":                         pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}),
		"self-signed authority's certificate": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: selfCA}),
	}
	for name, file := range forms {
		t.Run(name, func(t *testing.T) {
			a := newAuth(t, middleware.AuthConfig{PublicKeyPEM: file})
			if _, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodRS256, key, valid(nil), nil)); err != nil {
				t.Errorf("a token of the key: %v", err)
			}
			other, _ := rsa.GenerateKey(rand.Reader, 2048)
			if _, err := a.Authenticate(testkit.Token(t, jwt.SigningMethodRS256, other, valid(nil), nil)); err == nil {
				t.Error("a token of another key was accepted")
			}
		})
	}
	if _, err := middleware.NewAuthenticator(context.Background(), middleware.AuthConfig{Issuer: issuer, Audience: audience,
		PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: []byte{1, 2, 3}})}); err == nil {
		t.Error("a broken PKCS#1 key: no error")
	}
}

// TestPublicKeyFileIsReadAgainWhenItChanges: a key appended to the file is trusted, and
// a key taken out of it refused, tokens verified and remembered before included, with
// no restart; a file that does not load (half written) keeps the keys in use and says
// so.
func TestPublicKeyFileIsReadAgainWhenItChanges(t *testing.T) {
	oldKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	newKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	path := filepath.Join(t.TempDir(), "keys.pem")
	write := func(data []byte) {
		t.Helper()
		// As Kubernetes updates a mounted Secret: the new file replaces the old at once.
		if err := os.WriteFile(path+".new", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
	}
	first := pemOf(t, &oldKey.PublicKey)
	write(first)
	logs := &testkit.LogBuffer{}
	a, err := middleware.NewAuthenticator(t.Context(), middleware.AuthConfig{Issuer: issuer, Audience: audience,
		PublicKeyPEM: first, PublicKeyFile: path, PublicKeyReload: 20 * time.Millisecond, Log: zerolog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	oldToken := testkit.Token(t, jwt.SigningMethodRS256, oldKey, valid(nil), nil)
	newToken := testkit.Token(t, jwt.SigningMethodRS256, newKey, valid(nil), nil)
	passes := func(token string) bool { _, err := a.Authenticate(token); return err == nil }
	if !passes(oldToken) || passes(newToken) {
		t.Fatal("at start, want the file's key trusted and no other")
	}

	write(append(pemOf(t, &oldKey.PublicKey), pemOf(t, &newKey.PublicKey)...))
	testkit.Eventually(t, 5*time.Second, "the appended key to be trusted", func() bool { return passes(newToken) })
	if !passes(oldToken) {
		t.Error("the key already in the file was refused once the next one was appended")
	}

	write([]byte("-----BEGIN PUBLIC KEY-----\nhalf written"))
	testkit.Eventually(t, 5*time.Second, "the file that does not load to be logged", func() bool {
		return strings.Contains(logs.String(), "JWT public key file changed but does not load; still trusting the keys in use")
	})
	if !passes(oldToken) || !passes(newToken) {
		t.Error("a file that does not load changed the keys trusted")
	}

	write(pemOf(t, &newKey.PublicKey))
	testkit.Eventually(t, 5*time.Second, "the retired key's token to be refused", func() bool { return !passes(oldToken) })
	if !passes(newToken) {
		t.Error("the key left in the file was refused")
	}
	if !strings.Contains(logs.String(), `"keys":1`) {
		t.Errorf("no line says the file was reloaded with one key: %s", logs.String())
	}
}
