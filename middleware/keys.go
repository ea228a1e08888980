package middleware

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// PublicKeyCount is how many token-signing keys a public key file holds, read as the
// authenticator reads it (a certificate's chain is not counted).
func PublicKeyCount(data []byte) (int, error) {
	keys, err := parsePublicKeys(data)
	return len(keys), err
}

// parsePublicKeys reads the keys of a public key file: each PEM block is one, except a
// certificate that issued another certificate in the file, which is that one's chain
// and signs no tokens.
func parsePublicKeys(data []byte) ([]jwt.VerificationKey, error) {
	type block struct {
		key  any
		cert *x509.Certificate // nil for a bare key
	}
	var blocks []block
	for b, rest := pem.Decode(data); b != nil; b, rest = pem.Decode(rest) {
		key, cert, err := decodePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("JWT public key (PEM block %d): %w", len(blocks)+1, err)
		}
		blocks = append(blocks, block{key, cert})
	}
	if len(blocks) == 0 {
		return nil, errors.New("JWT public key: no PEM block")
	}
	issuedAnother := func(i int) bool {
		for j, o := range blocks {
			if j != i && blocks[i].cert != nil && o.cert != nil && o.cert.CheckSignatureFrom(blocks[i].cert) == nil {
				return true
			}
		}
		return false
	}
	var keys []jwt.VerificationKey
	for i, b := range blocks {
		if issuedAnother(i) {
			continue
		}
		if err := tokenKey(b.key); err != nil {
			return nil, fmt.Errorf("JWT public key (PEM block %d): %w", i+1, err)
		}
		keys = append(keys, b.key)
	}
	if len(keys) == 0 {
		return nil, errors.New("JWT public key: every certificate in the file issued another one; none signs tokens")
	}
	return keys, nil
}

// decodePublicKey reads a PEM public key: PKIX, PKCS#1 RSA, or a certificate's.
func decodePublicKey(b *pem.Block) (any, *x509.Certificate, error) {
	switch b.Type {
	case "PUBLIC KEY":
		key, err := x509.ParsePKIXPublicKey(b.Bytes)
		return key, nil, err
	case "RSA PUBLIC KEY":
		key, err := x509.ParsePKCS1PublicKey(b.Bytes)
		return key, nil, err
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, err
		}
		return cert.PublicKey, cert, nil
	}
	return nil, nil, fmt.Errorf("unsupported PEM block %q", b.Type)
}

// tokenKey checks that a key can verify one of the accepted algorithms.
func tokenKey(key any) error {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			// ES256 is the one ECDSA algorithm accepted: a key on another curve would
			// start, then refuse every token.
			return fmt.Errorf("an ECDSA key must be on P-256 (ES256), not %s", k.Curve.Params().Name)
		}
		return nil
	case *rsa.PublicKey, ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("unsupported key type %T", key)
}
