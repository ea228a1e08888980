package middleware

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
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

// verifyingKeys is a JWK set without the keys it may not verify tokens with
// (refusal): a key whose key_ops (RFC 7517 §4.3) leave out "verify", published for
// encrypting or for signing only, as keyfunc's use list leaves out one published
// "use":"enc" (a key that says neither still verifies); a key published with its
// private part; and one tokenKey refuses, too weak to trust (an identity provider's
// set is not checked as it loads, as a key file is). A token without a kid is checked
// against the keys left; one that names a key left out is refused, saying why.
type verifyingKeys struct{ jwkset.Storage }

func (s verifyingKeys) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	k, err := s.Storage.KeyRead(ctx, kid)
	if err == nil {
		if why := refusal(k); why != "" {
			return jwkset.JWK{}, fmt.Errorf("%w: %s", errUnusableKey, why)
		}
	}
	return k, err
}

// KeyReadAll is the keys a token without a kid is checked against: those that may
// verify, less the keys for encryption too (keyfunc leaves those out by their use or
// alg anyway). When the set holds keys but none of those, the token is refused saying
// so, as one that names a key left out is, rather than with golang-jwt's bare
// "unverifiable" for an empty set.
func (s verifyingKeys) KeyReadAll(ctx context.Context) ([]jwkset.JWK, error) {
	keys, err := s.Storage.KeyReadAll(ctx)
	published := len(keys)
	keys = slices.DeleteFunc(keys, func(k jwkset.JWK) bool { return refusal(k) != "" || forEncryption(k) })
	if err == nil && published > 0 && len(keys) == 0 {
		return nil, fmt.Errorf("%w: none of the JWK set's %d keys may verify tokens", errUnusableKey, published)
	}
	return keys, err
}

// refusal is why a JWK set's key may not verify tokens whatever its algorithm, or ""
// when it may.
func refusal(k jwkset.JWK) string {
	if ops := k.Marshal().KEYOPS; withoutVerify(ops) {
		return fmt.Sprintf("its key_ops are %v", ops)
	}
	if leaked(k) {
		return "the JWK set publishes its private part: whoever reads the set can sign any token with it"
	}
	if err := tokenKey(k.Key()); err != nil {
		return err.Error()
	}
	return ""
}

// leaked reports whether a JWK set holds a key's private part: the set is public, so
// whoever reads it can sign any token with the key.
func leaked(k jwkset.JWK) bool {
	_, private := k.Key().(crypto.Signer)
	return private
}

// withoutVerify reports whether a JWK's key_ops (RFC 7517 §4.3) leave out "verify";
// a JWK without key_ops may verify.
func withoutVerify(ops []jwkset.KEYOPS) bool {
	return len(ops) > 0 && !slices.Contains(ops, jwkset.KeyOpsVerify)
}

// forEncryption reports whether a JWK says its key is not for verifying signatures:
// "use":"enc" (RFC 7517 §4.2), key_ops without "verify", or an alg that is no
// signature algorithm (RSA-OAEP, ECDH-ES, A256KW: RFC 7518 §4).
func forEncryption(k jwkset.JWK) bool {
	m := k.Marshal()
	alg := m.ALG.String()
	return m.USE == jwkset.UseEnc || withoutVerify(m.KEYOPS) || alg != "" && !signatureAlg(alg)
}

// signatureAlg reports whether alg names a JWS signature algorithm (RFC 7518 §3, RFC
// 8037, RFC 8812), accepted here or not.
func signatureAlg(alg string) bool {
	switch alg {
	case "EdDSA", "Ed25519", "Ed448", "ES256K":
		return true
	}
	return len(alg) == 5 && slices.Contains([]string{"HS", "RS", "PS", "ES"}, alg[:2]) && slices.Contains([]string{"256", "384", "512"}, alg[2:])
}

// KeyProblem is a key of the JWKS that is not published for encryption, and still
// verifies no token.
type KeyProblem struct {
	KID     string
	Problem string
	Leaked  bool // the set publishes the key's private part
}

// KeyProblems lists the JWKS's keys that are not published for encryption and still
// verify no token: published with their private part, for an algorithm the gateway
// does not accept, RSA keys under minRSABits, ECDSA keys not on P-256, keys of a kind
// no accepted algorithm uses. Tokens signed with one are refused, which a provider
// that rotates to it turns into every caller refused: check-config and the start-up
// name them ahead.
func (a *Authenticator) KeyProblems(ctx context.Context) []KeyProblem {
	if a.jwks == nil {
		return nil
	}
	keys, err := a.jwks.KeyReadAll(ctx)
	if err != nil {
		return nil
	}
	var problems []KeyProblem
	for _, k := range keys {
		if forEncryption(k) {
			continue
		}
		p := KeyProblem{KID: k.Marshal().KID, Problem: refusal(k), Leaked: leaked(k)}
		if alg := k.Marshal().ALG.String(); p.Problem == "" && alg != "" && !slices.Contains(publicKeyMethods, alg) {
			p.Problem = "it is for " + alg + ", which the gateway does not accept (" + strings.Join(publicKeyMethods, ", ") + ")"
		}
		if p.Problem != "" {
			problems = append(problems, p)
		}
	}
	return problems
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
