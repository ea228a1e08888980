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
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

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
	forms := map[string][]byte{
		"PKIX":        pemOf(t, &key.PublicKey),
		"PKCS#1":      pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)}),
		"certificate": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}),
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
