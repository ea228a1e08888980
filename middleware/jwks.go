package middleware

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// useJWKS makes the JWKS at cfg.JWKSURL the key source, fetched now and refreshed in
// the background until ctx ends.
func (a *Authenticator) useJWKS(ctx context.Context, cfg AuthConfig) error {
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
		return fmt.Errorf("JWKS: %w", err)
	}
	// The same set, but a key whose JWK says it is for encryption ("use":"enc",
	// RFC 7517 §4.2) or for operations other than verifying (key_ops, §4.3), one
	// the set publishes with its private part, and one too weak to trust verify
	// no token (verifyingKeys); one that says nothing of its use still does. The
	// Override above cannot say so.
	a.jwks = kf.Storage()
	kf, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: verifyingKeys{a.jwks}, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		return fmt.Errorf("JWKS: %w", err)
	}
	a.keyfunc = kf.Keyfunc
	go a.watchKeys(ctx, every, log)
	return nil
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
