package main

import (
	"errors"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/middleware"
	"github.com/maskgate/maskgate/upstream"
)

// config is maskgate's configuration (design §6), parsed once from the environment.
type config struct {
	Addr           string
	TLS            tlsFiles // the API listener's certificate; empty: plain HTTP
	DebugAddr      string   // net/http/pprof; empty: off
	Redis          redisConfig
	RedisKeyPrefix string
	Auth           middleware.AuthConfig
	MaskTTL        time.Duration
	MaskTTLMax     time.Duration
	SweepInterval  time.Duration
	SweepWorkers   int
	UnmaskGiveUp   time.Duration
	RateLimit      int
	ShutdownDelay  time.Duration
	DrainTimeout   time.Duration
	LogLevel       zerolog.Level
	TrustedProxies []netip.Prefix // whose X-Forwarded-For names the client
	CORSOrigins    []string       // web origins allowed to call from a browser
	AllowPlainHTTP bool           // CXone and the JWKS over plain HTTP to other hosts than loopback
	Ignored        []string       // variables named like settings that maskgate does not have
	CXone          upstream.Config
}

// requestBudget is how long one request may spend on CXone, retries included: three
// attempts' worth (15 s by default).
func (c config) requestBudget() time.Duration { return 3 * c.CXone.Timeout }

// longestRequest is the longest a request may run: up to its budget waiting for
// another operation on the agent, then its own budget on CXone.
func (c config) longestRequest() time.Duration { return 2 * c.requestBudget() }

// maxLeeway bounds MASKGATE_JWT_LEEWAY: clock skew between an identity provider and
// maskgate is seconds, not minutes.
const maxLeeway = 5 * time.Minute

// configError is a configuration that cannot run: main exits 2.
type configError struct{ err error }

func (e *configError) Error() string { return "invalid configuration:\n" + e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// loadConfig reads the configuration from env and names every problem, one per line,
// and the variables of env it ignored.
func loadConfig(env environment) (config, error) {
	read := map[string]bool{}
	c, err := readConfig(func(name string) string {
		read[name] = true
		return env[name]
	})
	c.Ignored = ignored(env, read)
	var ce *configError
	if errors.As(err, &ce) && len(c.Ignored) > 0 {
		// Perhaps what a missing setting was meant to be.
		ce.err = errors.Join(ce.err, errors.New(ignoredNote(c.Ignored)))
	}
	return c, err
}

// readConfig reads the configuration through getenv.
func readConfig(getenv func(string) string) (config, error) {
	s := &settings{getenv: getenv}
	c := config{
		Addr:           s.address("MASKGATE_ADDR", ":8080"),
		DebugAddr:      s.address("MASKGATE_DEBUG_ADDR", ""),
		RedisKeyPrefix: s.str("MASKGATE_REDIS_KEY_PREFIX", "maskgate"),
		// At least the shortest ttlSeconds a caller may ask for: a mask of 500ms would
		// be unmasked before anyone could take a card number under it.
		MaskTTL:       s.durationAtLeast("MASKGATE_MASK_TTL", 15*time.Minute, time.Second),
		MaskTTLMax:    s.durationAtLeast("MASKGATE_MASK_TTL_MAX", 2*time.Hour, time.Second),
		SweepInterval: s.duration("MASKGATE_SWEEP_INTERVAL", time.Second),
		UnmaskGiveUp:  s.duration("MASKGATE_UNMASK_GIVEUP", time.Hour),
		ShutdownDelay: s.durationAtLeast("MASKGATE_SHUTDOWN_DELAY", 0, 0),
		DrainTimeout:  s.duration("MASKGATE_DRAIN_TIMEOUT", 25*time.Second),
	}
	c.TLS = s.tlsFiles()
	c.SweepWorkers = s.number("MASKGATE_SWEEP_CONCURRENCY", 16, 1, 1024)
	c.RateLimit = s.number("MASKGATE_RATE_LIMIT", 50, 1, 1_000_000)
	if c.MaskTTL > c.MaskTTLMax {
		s.bad("MASKGATE_MASK_TTL (%s) must not exceed MASKGATE_MASK_TTL_MAX (%s)", c.MaskTTL, c.MaskTTLMax)
	}
	if strings.ContainsAny(c.RedisKeyPrefix, "{}") {
		s.bad("MASKGATE_REDIS_KEY_PREFIX must not contain { or }")
	}
	c.Redis = s.redis()
	c.TrustedProxies = s.trustedProxies()
	c.CORSOrigins = s.corsOrigins()
	c.LogLevel = s.logLevel()
	c.Auth = s.auth()
	c.AllowPlainHTTP = s.boolean("MASKGATE_ALLOW_PLAIN_HTTP", false)
	s.encrypted(c.AllowPlainHTTP, "MASKGATE_JWT_JWKS_URL", c.Auth.JWKSURL, "the keys that callers' tokens are checked with")
	c.CXone = s.cxone()
	s.encrypted(c.AllowPlainHTTP, "CXONE_AUTH_URL", c.CXone.AuthURL, "the CXone access key and client secret")
	s.encrypted(c.AllowPlainHTTP, "CXONE_API_BASE_URL", c.CXone.BaseURL, "the CXone token")
	if len(s.problems) > 0 {
		return config{}, &configError{errors.Join(s.problems...)}
	}
	return c, nil
}

// tlsFiles reads the API listener's certificate and key, and loads them to check them.
func (s *settings) tlsFiles() tlsFiles {
	t := tlsFiles{cert: s.str("MASKGATE_TLS_CERT_FILE", ""), key: s.str("MASKGATE_TLS_KEY_FILE", "")}
	switch {
	case (t.cert == "") != (t.key == ""):
		s.bad("MASKGATE_TLS_CERT_FILE and MASKGATE_TLS_KEY_FILE must be set together")
	case t.enabled():
		if _, _, err := t.load(); err != nil {
			s.bad("MASKGATE_TLS_CERT_FILE and MASKGATE_TLS_KEY_FILE: %v", err)
		}
	}
	return t
}

// redis reads MASKGATE_REDIS_URL, which may hold Redis's password: it may come from a
// file, as the other secrets do.
func (s *settings) redis() redisConfig {
	redisURL := strings.TrimSpace(s.requiredSecret("MASKGATE_REDIS_URL"))
	if redisURL == "" {
		return redisConfig{}
	}
	rc, err := parseRedisURL(redisURL)
	var refused errRedisOption
	switch {
	case errors.As(err, &refused):
		s.bad("MASKGATE_REDIS_URL: %s", refused)
	case err != nil:
		// The URL may hold a password: neither it nor go-redis's words about it are echoed.
		s.bad("MASKGATE_REDIS_URL must be a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL (Sentinel: ?master_name=)")
	}
	return rc
}

// trustedProxies reads MASKGATE_TRUSTED_PROXIES: the proxies whose X-Forwarded-For
// names the client.
func (s *settings) trustedProxies() []netip.Prefix {
	var proxies []netip.Prefix
	s.list("MASKGATE_TRUSTED_PROXIES", func(entry string) {
		p, err := parsePrefix(entry)
		if err != nil {
			s.bad("MASKGATE_TRUSTED_PROXIES: %q is not an IP address or a CIDR range such as 10.0.0.0/8", entry)
			return
		}
		proxies = append(proxies, p)
	})
	return proxies
}

// corsOrigins reads MASKGATE_CORS_ORIGINS: the web origins allowed to call from a
// browser.
func (s *settings) corsOrigins() []string {
	var origins []string
	s.list("MASKGATE_CORS_ORIGINS", func(origin string) {
		if origin != "*" && !isOrigin(origin) {
			s.bad("MASKGATE_CORS_ORIGINS: %q is not an origin such as https://crm.example.com (or *)", origin)
			return
		}
		origins = append(origins, origin)
	})
	return origins
}

// logLevel reads MASKGATE_LOG_LEVEL. The access and audit lines are info: a level above
// it would drop the audit trail (design §5) without a word, so none is accepted.
func (s *settings) logLevel() zerolog.Level {
	level, err := zerolog.ParseLevel(s.str("MASKGATE_LOG_LEVEL", "info"))
	if err != nil || level > zerolog.InfoLevel {
		s.bad("MASKGATE_LOG_LEVEL must be trace, debug or info: the access and audit lines are info, and the audit trail must keep every one")
		return zerolog.InfoLevel
	}
	return level
}

// auth reads how callers' tokens are checked: exactly one key source.
func (s *settings) auth() middleware.AuthConfig {
	a := middleware.AuthConfig{
		Issuer:      s.required("MASKGATE_JWT_ISSUER"),
		Audience:    s.required("MASKGATE_JWT_AUDIENCE"),
		Leeway:      s.durationAtLeast("MASKGATE_JWT_LEEWAY", 30*time.Second, 0),
		HS256Secret: []byte(s.secret("MASKGATE_JWT_HS256_SECRET")),
		// The secret callers are moving away from, accepted too until they have (README,
		// Rotating keys and secrets).
		HS256PreviousSecret: []byte(s.secret("MASKGATE_JWT_HS256_PREVIOUS_SECRET")),
		JWKSURL:             s.str("MASKGATE_JWT_JWKS_URL", ""),
	}
	if path := s.str("MASKGATE_JWT_PUBLIC_KEY_FILE", ""); path != "" {
		pemBytes, err := os.ReadFile(path)
		if err != nil {
			s.bad("MASKGATE_JWT_PUBLIC_KEY_FILE: %v", errors.Unwrap(err))
		}
		a.PublicKeyPEM, a.PublicKeyFile = pemBytes, path
		if len(pemBytes) == 0 && err == nil {
			s.bad("MASKGATE_JWT_PUBLIC_KEY_FILE is empty")
		}
	}
	sources := 0
	for _, set := range []bool{len(a.HS256Secret) > 0, a.PublicKeyFile != "", a.JWKSURL != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		s.bad("exactly one of MASKGATE_JWT_HS256_SECRET(_FILE), MASKGATE_JWT_PUBLIC_KEY_FILE, MASKGATE_JWT_JWKS_URL must be set (found %d)", sources)
	}
	if len(a.HS256Secret) > 0 && len(a.HS256Secret) < 32 {
		s.bad("MASKGATE_JWT_HS256_SECRET must be at least 32 bytes")
	}
	switch previous := a.HS256PreviousSecret; {
	case len(previous) > 0 && len(a.HS256Secret) == 0:
		s.bad("MASKGATE_JWT_HS256_PREVIOUS_SECRET is accepted beside MASKGATE_JWT_HS256_SECRET only; set that too")
	case len(previous) > 0 && len(previous) < 32:
		s.bad("MASKGATE_JWT_HS256_PREVIOUS_SECRET must be at least 32 bytes")
	}
	if a.Leeway > maxLeeway {
		// A typo such as 30m for 30s would let every expired token pass for half an hour.
		s.bad("MASKGATE_JWT_LEEWAY must be at most %s: it is how long after exp a token still passes", maxLeeway)
	}
	if a.JWKSURL != "" && !upstream.IsHTTPURL(a.JWKSURL) {
		s.bad("MASKGATE_JWT_JWKS_URL must be an http(s) URL")
	}
	return a
}

// cxone reads where CXone is and the credentials maskgate calls it with.
func (s *settings) cxone() upstream.Config {
	c := upstream.Config{
		AuthURL:     s.str("CXONE_AUTH_URL", "https://cxone.niceincontact.com/auth/token"),
		BaseURL:     s.str("CXONE_API_BASE_URL", ""),
		Timeout:     s.duration("CXONE_TIMEOUT", 5*time.Second),
		MaxInFlight: s.number("CXONE_MAX_IN_FLIGHT", 64, 1, 4096),
		Credentials: upstream.Credentials{
			ClientID:        s.required("CXONE_CLIENT_ID"),
			ClientSecret:    s.requiredSecret("CXONE_CLIENT_SECRET"),
			AccessKeyID:     s.required("CXONE_ACCESS_KEY_ID"),
			AccessKeySecret: s.requiredSecret("CXONE_ACCESS_KEY_SECRET"),
		},
	}
	if !upstream.IsHTTPURL(c.AuthURL) {
		s.bad("CXONE_AUTH_URL must be an http(s) URL")
	}
	if c.BaseURL != "" && !upstream.IsHTTPURL(c.BaseURL) {
		s.bad("CXONE_API_BASE_URL must be an http(s) URL")
	} else if c.BaseURL != "" && !isOrigin(strings.TrimSuffix(c.BaseURL, "/")) {
		// The API's paths are appended to it: a path of its own (an older API's
		// /inContactAPI, say) or a query would make CXone answer every mask 404, which
		// the gateway can only take for "no active call", and a caller for nothing to
		// mask, with the agent on a call and recorded.
		s.bad("CXONE_API_BASE_URL must be the API's scheme and host only, such as https://api-na1.niceincontact.com: no path, query or user")
	}
	return c
}

// encrypted notes a URL that would carry a secret, or bring callers' keys, in the clear
// over a network, unless plain HTTP is allowed: one letter dropped from https:// would
// send the CXone access key so.
func (s *settings) encrypted(allowPlainHTTP bool, name, value, what string) {
	if !allowPlainHTTP && plainHTTPOverANetwork(value) {
		s.bad("%s must be https:// (plain http:// only to a loopback address, or with MASKGATE_ALLOW_PLAIN_HTTP=true for a simulator): %s would cross the network unencrypted", name, what)
	}
}

// isOrigin reports whether s is an http(s) URL of nothing but a scheme, a host and
// maybe a port: what a browser sends as a page's origin, and what CXone's API paths
// are appended to.
func isOrigin(s string) bool {
	u, err := url.Parse(s)
	return err == nil && upstream.IsHTTPURL(s) && u.Path == "" && u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" && u.User == nil
}

// plainHTTPOverANetwork reports whether s is an http:// URL to a host other than a
// loopback address: what it sends can be read, and what it answers changed, on the way.
func plainHTTPOverANetwork(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "http" && !loopbackHost(u.Hostname())
}

// loopbackHost reports whether host (a name or an address, without a port) is this
// machine's loopback: what is sent there does not cross a network.
func loopbackHost(host string) bool {
	addr, err := netip.ParseAddr(host)
	return strings.EqualFold(host, "localhost") || err == nil && addr.IsLoopback()
}

// parsePrefix reads a CIDR range, or one address as the range of itself.
func parsePrefix(s string) (netip.Prefix, error) {
	if addr, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(addr, addr.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	return p.Masked(), err
}
