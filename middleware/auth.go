package middleware

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

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
		log := cfg.Log
		every := cmp.Or(cfg.JWKSRefreshEvery, 10*time.Second)
		kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
			Client:      jwksClient(cfg.HTTPClient),
			HTTPTimeout: 5 * time.Second,
			// An unknown kid refreshes the set (key rotation), at most once per `every`
			// so that tokens with made-up kids cannot hammer the identity provider.
			RefreshUnknownKID: rate.NewLimiter(rate.Every(every), 1),
			RateLimitWaitMax:  time.Second,
			// The fetched set is read before the keys given in code, of which there
			// are none: read after, every lookup first failed there, building an
			// error (about half a repeated token's time).
			PrioritizeHTTP: true,
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				if parsed, err := url.Parse(u); err == nil {
					u = parsed.Redacted() // a password in the URL is not logged
				}
				return func(_ context.Context, err error) {
					a.jwksFailure.Store(&err)
					log.Error().Err(err).Str("jwks_url", u).Msg("JWKS refresh failed")
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("JWKS: %w", err)
		}
		// The same set, but a key whose JWK says it is for encryption ("use":"enc",
		// RFC 7517 §4.2) or for operations other than verifying (key_ops, §4.3), one
		// the set publishes with its private part, and one too weak to trust verify
		// no token (verifyingKeys); one that says nothing of its use still does. The
		// Override above cannot say so.
		a.jwks = kf.Storage()
		kf, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: verifyingKeys{a.jwks}, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
		if err != nil {
			return nil, fmt.Errorf("JWKS: %w", err)
		}
		methods = publicKeyMethods
		a.keyfunc = kf.Keyfunc
		go a.watchKeys(ctx, every, log)
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

// Ready reports whether keys are loaded; only a JWKS can be without.
func (a *Authenticator) Ready(ctx context.Context) error {
	if a.jwks == nil {
		return nil
	}
	keys, err := a.jwks.KeyReadAll(ctx)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		if failure := a.jwksFailure.Load(); failure != nil {
			return fmt.Errorf("no JWKS keys loaded; the last fetch failed: %w", *failure)
		}
		return errors.New("no JWKS keys loaded")
	}
	// A set none of whose keys may verify a token refuses every caller: unready, so
	// that a rolling update onto it stops while the replicas before it serve. Asked as
	// a token without a kid asks, for each algorithm: the keys it would be checked
	// against (keyfunc leaves out those for another use or algorithm, verifyingKeys
	// those it may not use), so that the answer is what Authenticate would do.
	for _, alg := range publicKeyMethods {
		key, err := a.keyfunc(&jwt.Token{Header: map[string]any{"alg": alg}})
		if set, ok := key.(jwt.VerificationKeySet); err == nil && ok && len(set.Keys) > 0 {
			return nil
		}
	}
	return fmt.Errorf("none of the %d JWKS keys may verify tokens: each is for encryption (\"use\":\"enc\"), for operations other than \"verify\" (key_ops), for another algorithm than %s, "+
		"an RSA key under %d bits, an ECDSA key not on P-256, or published with its private part", len(keys), strings.Join(publicKeyMethods, ", "), minRSABits)
}

// jwksClient is client (nil: net/http's default) refusing a redirect from https to
// plain http: keys read over plain HTTP could be changed on the way, and every caller's
// token would be checked with them. MASKGATE_JWT_JWKS_URL must be https:// for that
// reason, and CXone's discovery refuses the same downgrade.
func jwksClient(client *http.Client) *http.Client {
	c := http.Client{}
	if client != nil {
		c = *client
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme == "http" && slices.ContainsFunc(via, func(r *http.Request) bool { return r.URL.Scheme == "https" }) {
			return fmt.Errorf("the JWKS redirected from https to plain http (%s): refused", req.URL.Redacted())
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 { // net/http's own limit, which a CheckRedirect replaces
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

// watchKeys fetches the JWKS again, every `every`, while no key that may verify tokens
// is loaded (Ready). keyfunc fetches it at start and then once an hour: a fetch that
// failed at start (the identity provider restarting with the gateway, a network not
// ready yet), or a set whose keys the gateway may not use (an RSA key too short, until
// the provider publishes a new one), would leave the gateway unready for that hour,
// since a readiness probe keeps away the callers whose tokens' kids would make keyfunc
// fetch it again. It also logs each key that verifies no token (KeyProblems) once,
// when the set first holds it: at start, or when the provider adds it, ahead of a
// rotation onto it (a key published with its private part as an error).
func (a *Authenticator) watchKeys(ctx context.Context, every time.Duration, log zerolog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	logged := map[KeyProblem]bool{}
	for {
		ready := a.Ready(ctx) == nil
		for _, p := range a.KeyProblems(ctx) {
			if logged[p] {
				continue
			}
			logged[p] = true
			ev := log.Warn()
			if p.Leaked {
				ev = log.Error()
			}
			ev.Str("kid", p.KID).Msg("a JWKS key verifies no token: " + p.Problem)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !ready {
			// A kid no key has makes keyfunc fetch the set, as a rotated key's token
			// does (its limiter allows one fetch per `every`, which this tick waited).
			_, _ = a.jwks.KeyRead(ctx, "maskgate: no key loaded yet")
		}
	}
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
