package middleware

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/sessions"
)

// AuthConfig says how callers' JWTs are checked (design §4). Exactly one key source:
// HS256Secret, PublicKeyPEM or JWKSURL.
type AuthConfig struct {
	Issuer      string
	Audience    string
	Leeway      time.Duration
	HS256Secret []byte
	// HS256PreviousSecret is accepted beside HS256Secret while callers move to it.
	HS256PreviousSecret []byte
	// PublicKeyPEM holds one or more public keys: a token passes with any of them, so
	// that the identity provider's next key can be trusted before it signs with it.
	PublicKeyPEM []byte
	// PublicKeyFile, when set, is the file PublicKeyPEM was read from: it is read again
	// every PublicKeyReload (default 30 s), and the keys it holds then are trusted.
	PublicKeyFile   string
	PublicKeyReload time.Duration
	JWKSURL         string
	// JWKSRefreshEvery is how often the JWKS is fetched at most outside its hourly
	// refresh: for a token with an unknown kid, or while no key is loaded. Default 10 s.
	JWKSRefreshEvery time.Duration
	HTTPClient       *http.Client   // for the JWKS; default net/http's (never following https to http)
	Log              zerolog.Logger // JWKS refresh failures, public key file reloads
}

// publicKeyMethods are the algorithms accepted with public keys and JWKS: never HS*,
// so that a token signed with a public key as an HMAC secret is refused.
var publicKeyMethods = []string{"RS256", "PS256", "ES256", "EdDSA"}

// Authenticator verifies callers' JWTs.
type Authenticator struct {
	parser  *jwt.Parser
	keyfunc jwt.Keyfunc
	jwks    jwkset.Storage // the JWKS as fetched; nil unless the key source is a JWKS
	leeway  time.Duration

	verified     sync.Map // raw token → verifiedToken
	verifiedSize atomic.Int64

	jwksFailure atomic.Pointer[error] // the JWKS's last failed fetch, for Ready to say why
}

// maxVerified bounds the verified tokens kept; when it is reached they are all
// dropped and verified again as they come.
const maxVerified = 10_000

// verifiedToken is a token whose signature and claims were checked: while its key is
// still the one the key source gives for its header and it has not expired, the same
// bytes would pass again, so they are not checked again. A signature check costs 4-6 µs
// with HS256 and 29-80 µs with RS256, PS256, ES256 or EdDSA (on different days).
type verifiedToken struct {
	caller Caller
	header map[string]any // kid and alg, to look its key up again
	key    any
	until  time.Time // exp plus the leeway
}

// NewAuthenticator builds an Authenticator; ctx ends the JWKS refresh goroutine.
func NewAuthenticator(ctx context.Context, cfg AuthConfig) (*Authenticator, error) {
	a := &Authenticator{}
	var methods []string
	switch {
	case len(cfg.HS256Secret) > 0:
		keys := []jwt.VerificationKey{cfg.HS256Secret}
		if len(cfg.HS256PreviousSecret) > 0 {
			keys = append(keys, cfg.HS256PreviousSecret)
		}
		methods = []string{"HS256"}
		a.keyfunc = staticKeys(keys)
	case len(cfg.PublicKeyPEM) > 0:
		keys, err := parsePublicKeys(cfg.PublicKeyPEM)
		if err != nil {
			return nil, err
		}
		methods = publicKeyMethods
		kf := staticKeys(keys)
		a.keyfunc = kf
		if cfg.PublicKeyFile != "" {
			f := &keyFile{path: cfg.PublicKeyFile, seen: cfg.PublicKeyPEM, log: cfg.Log}
			f.current.Store(&kf)
			a.keyfunc = f.keyfunc
			go f.watch(ctx, cmp.Or(cfg.PublicKeyReload, 30*time.Second))
		}
	case cfg.JWKSURL != "":
		if err := a.useJWKS(ctx, cfg); err != nil {
			return nil, err
		}
		methods = publicKeyMethods
	default:
		return nil, errors.New("no JWT key source configured")
	}
	a.leeway = cfg.Leeway
	a.parser = jwt.NewParser(
		jwt.WithValidMethods(methods),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
	)
	return a, nil
}

// errCriticalExtension refuses a token whose header lists extensions its recipient
// must understand ("crit", RFC 7515 §4.1.11): the gateway understands none, and a
// token that relies on one (a constraint on where or how it may be used, say) would
// otherwise pass without it.
var errCriticalExtension = errors.New("token has critical header extensions (crit), which the gateway does not support")

// Authenticate verifies a bearer token and returns its caller; a token it verified
// before passes again while its key and its expiry still allow it.
func (a *Authenticator) Authenticate(tokenString string) (Caller, error) {
	if v, ok := a.verified.Load(tokenString); ok {
		v := v.(*verifiedToken)
		if key, err := a.keyfunc(&jwt.Token{Header: v.header}); err == nil && sameKey(key, v.key) && time.Now().Before(v.until) {
			return v.caller, nil
		}
		if a.verified.CompareAndDelete(tokenString, v) {
			a.verifiedSize.Add(-1)
		}
	}
	c := jwt.MapClaims{}
	var key any
	keyOf := func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			return nil, errCriticalExtension
		}
		k, err := a.keyfunc(t)
		key = k
		return k, err
	}
	token, err := a.parser.ParseWithClaims(tokenString, c, keyOf)
	if err != nil {
		return Caller{}, err
	}
	caller, err := callerOf(c)
	if err != nil {
		return Caller{}, err
	}
	a.remember(tokenString, token, key, caller)
	return caller, nil
}

// remember keeps a verified token with the key it was checked against: one key, or a
// set (a JWKS token without a kid, a static source holding several keys), which must
// then still be the same set for the token to pass again unchecked.
func (a *Authenticator) remember(raw string, token *jwt.Token, key any, caller Caller) {
	exp, err := token.Claims.GetExpirationTime()
	if comparable := sameKey(key, key); err != nil || exp == nil || !comparable {
		return
	}
	caller.Scopes = slices.Clip(caller.Scopes) // shared by every request with the token: an append copies
	header := map[string]any{"alg": token.Header["alg"]}
	if kid, ok := token.Header["kid"]; ok {
		header["kid"] = kid
	}
	if a.verifiedSize.Add(1) > maxVerified {
		a.verified.Clear()
		a.verifiedSize.Store(1)
	}
	if _, loaded := a.verified.LoadOrStore(raw, &verifiedToken{caller: caller, header: header, key: key, until: exp.Add(a.leeway)}); loaded {
		a.verifiedSize.Add(-1)
	}
}

// staticKeys is the keyfunc of a fixed set of keys: the key, or the set that
// golang-jwt tries in turn when there are several (a key rotation under way).
func staticKeys(keys []jwt.VerificationKey) jwt.Keyfunc {
	var key any = jwt.VerificationKeySet{Keys: keys}
	if len(keys) == 1 {
		key = keys[0]
	}
	return func(*jwt.Token) (any, error) { return key, nil }
}

// sameKey reports whether two verification keys, or sets of them, are the same.
func sameKey(a, b any) bool {
	switch a := a.(type) {
	case []byte:
		b, ok := b.([]byte)
		return ok && bytes.Equal(a, b)
	case *rsa.PublicKey, *ecdsa.PublicKey:
		// The same pointer, as a key source hands out the key it holds until it loads
		// new ones: Equal would copy the numbers out of both to compare them (two
		// allocations and most of a repeated RS256 token's time).
		return a == b || a.(interface{ Equal(crypto.PublicKey) bool }).Equal(b)
	case interface{ Equal(crypto.PublicKey) bool }:
		return a.Equal(b)
	case jwt.VerificationKeySet:
		b, ok := b.(jwt.VerificationKeySet)
		return ok && slices.EqualFunc(a.Keys, b.Keys, func(x, y jwt.VerificationKey) bool { return sameKey(x, y) })
	}
	return false
}

// callerOf reads the caller from verified claims. Claims are read by their exact names
// (RFC 7519: claim names are case-sensitive), which is why they are a map:
// encoding/json would fill a struct's "exp" from an "eXp".
func callerOf(c jwt.MapClaims) (Caller, error) {
	str := func(name string) string { s, _ := c[name].(string); return s }
	caller := Caller{Subject: str("sub"), ClientID: str("azp"), Scopes: append(scopesOf(c["scope"]), scopesOf(c["scp"])...)}
	if caller.Subject == "" {
		return Caller{}, errors.New("token has no sub claim")
	}
	agent, err := agentOf(c)
	if err != nil {
		return Caller{}, err
	}
	caller.AgentID = agent
	if caller.ClientID == "" {
		caller.ClientID = str("client_id")
	}
	return caller, nil
}

// agentOf reads the agent_id claim: a string (spelt as the gateway keeps a userId), or
// a whole number as identity providers write CXone's numeric agent ids. "" without the claim (a service token). Any other
// value is an error, not "": a token meant for one agent must never pass as unbound.
func agentOf(c jwt.MapClaims) (string, error) {
	v, ok := c["agent_id"]
	if !ok {
		return "", nil
	}
	switch v := v.(type) {
	case string:
		if v != "" {
			return sessions.CanonicalUserID(v), nil
		}
	case float64: // encoding/json's number
		if v >= 0 && v <= 1<<53 && v == math.Trunc(v) {
			return strconv.FormatInt(int64(v), 10), nil
		}
	}
	return "", errors.New("token has an agent_id that is no agent's id")
}
