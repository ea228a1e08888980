package middleware

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
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

// minRSABits is the shortest RSA key trusted to sign tokens: RFC 7518 §3.3 and §3.5
// require 2048 bits for RS256 and PS256 (and PCI DSS's strong cryptography, 112 bits
// of security, is 2048-bit RSA). A 1024-bit key can be factored by whoever spends
// enough, and would then sign any token.
const minRSABits = 2048

// errUnusableKey is a JWKS key that may not verify tokens (verifyingKeys).
var errUnusableKey = fmt.Errorf("the token's key is not one the gateway trusts (RSA keys need %d bits or more, ECDSA keys P-256, a JWK's key_ops must allow \"verify\", and a JWK set must not publish a private key)", minRSABits)

// tokenKey checks that a key can verify one of the accepted algorithms, and is strong
// enough to be trusted with it.
func tokenKey(key any) error {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			// ES256 is the one ECDSA algorithm accepted: a key on another curve would
			// start, then refuse every token.
			return fmt.Errorf("an ECDSA key must be on P-256 (ES256), not %s", k.Curve.Params().Name)
		}
		return nil
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSABits {
			return fmt.Errorf("an RSA key must have at least %d bits (RFC 7518 §3.3), not %d", minRSABits, bits)
		}
		return nil
	case ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("unsupported key type %T", key)
}

// keyFile is a public key file read again as it changes, so that a key the identity
// provider adds is trusted, and one it retires refused, without a restart (a verified
// token is checked again when its key set changes: Authenticate).
type keyFile struct {
	path    string
	log     zerolog.Logger
	current atomic.Pointer[jwt.Keyfunc]
	seen    []byte // the file when it last loaded (watch's goroutine only)
	failed  string // the last failure logged, so that each is logged once
}

func (f *keyFile) keyfunc(t *jwt.Token) (any, error) { return (*f.current.Load())(t) }

// watch reloads the file every interval until ctx ends.
func (f *keyFile) watch(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f.reload()
		}
	}
}

// reload reads the file and, when it changed and loads, trusts the keys it holds now. A
// file that does not load (half written, or broken) is logged once and the keys in use
// are kept; once the file loads or is back to the keys in use, a breakage is news again.
func (f *keyFile) reload() {
	data, err := os.ReadFile(f.path)
	if err == nil && bytes.Equal(data, f.seen) {
		f.failed = ""
		return
	}
	var keys []jwt.VerificationKey
	if err == nil {
		keys, err = parsePublicKeys(data)
	}
	if err != nil {
		if msg := err.Error(); msg != f.failed {
			f.failed = msg
			f.log.Error().Err(err).Str("file", f.path).Msg("JWT public key file changed but does not load; still trusting the keys in use")
		}
		return
	}
	f.seen, f.failed = data, ""
	kf := staticKeys(keys)
	f.current.Store(&kf)
	f.log.Info().Int("keys", len(keys)).Str("file", f.path).Msg("JWT public key file reloaded")
}
