package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
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
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	str := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	required := func(name string) string {
		v := str(name, "")
		if v == "" {
			bad("%s is required", name)
		}
		return v
	}
	durationFrom := func(name string, def, least time.Duration) time.Duration {
		v := str(name, "")
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < least {
			bad("%s must be a duration of at least %s, such as 15m or 30s", name, least)
			return def
		}
		return d
	}
	duration := func(name string, def time.Duration) time.Duration { return durationFrom(name, def, time.Millisecond) }
	secret := func(name string) string {
		v, err := readSecret(getenv, name)
		if err != nil {
			problems = append(problems, err)
		}
		return v
	}

	// An address that cannot be listened on is a configuration error (exit 2), found by
	// check-config, rather than a failure to listen.
	address := func(name, def string) string {
		v := str(name, def)
		if v == "" {
			return v
		}
		_, port, err := net.SplitHostPort(v)
		if _, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil {
			bad("%s must be host:port with a port number, such as :8080 or 127.0.0.1:8080", name)
		}
		return v
	}

	c := config{
		Addr:           address("MASKGATE_ADDR", ":8080"),
		DebugAddr:      address("MASKGATE_DEBUG_ADDR", ""),
		RedisKeyPrefix: str("MASKGATE_REDIS_KEY_PREFIX", "maskgate"),
		// At least the shortest ttlSeconds a caller may ask for: a mask of 500ms would
		// be unmasked before anyone could take a card number under it.
		MaskTTL:       durationFrom("MASKGATE_MASK_TTL", 15*time.Minute, time.Second),
		MaskTTLMax:    durationFrom("MASKGATE_MASK_TTL_MAX", 2*time.Hour, time.Second),
		SweepInterval: duration("MASKGATE_SWEEP_INTERVAL", time.Second),
		UnmaskGiveUp:  duration("MASKGATE_UNMASK_GIVEUP", time.Hour),
		ShutdownDelay: durationFrom("MASKGATE_SHUTDOWN_DELAY", 0, 0),
		DrainTimeout:  duration("MASKGATE_DRAIN_TIMEOUT", 25*time.Second),
	}
	c.TLS = tlsFiles{cert: str("MASKGATE_TLS_CERT_FILE", ""), key: str("MASKGATE_TLS_KEY_FILE", "")}
	switch {
	case (c.TLS.cert == "") != (c.TLS.key == ""):
		bad("MASKGATE_TLS_CERT_FILE and MASKGATE_TLS_KEY_FILE must be set together")
	case c.TLS.enabled():
		if _, _, err := c.TLS.load(); err != nil {
			bad("MASKGATE_TLS_CERT_FILE and MASKGATE_TLS_KEY_FILE: %v", err)
		}
	}
	number := func(name string, def, lo, hi int) int {
		v := str(name, "")
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			bad("%s must be a whole number from %d to %d", name, lo, hi)
			return def
		}
		return n
	}
	c.SweepWorkers = number("MASKGATE_SWEEP_CONCURRENCY", 16, 1, 1024)
	c.RateLimit = number("MASKGATE_RATE_LIMIT", 50, 1, 1_000_000)
	if c.MaskTTL > c.MaskTTLMax {
		bad("MASKGATE_MASK_TTL (%s) must not exceed MASKGATE_MASK_TTL_MAX (%s)", c.MaskTTL, c.MaskTTLMax)
	}
	if strings.ContainsAny(c.RedisKeyPrefix, "{}") {
		bad("MASKGATE_REDIS_KEY_PREFIX must not contain { or }")
	}
	// The URL may hold Redis's password: it may come from a file, as the other secrets do.
	before := len(problems)
	redisURL := strings.TrimSpace(secret("MASKGATE_REDIS_URL"))
	if redisURL == "" && len(problems) == before { // else the file's problem is named
		bad("MASKGATE_REDIS_URL or MASKGATE_REDIS_URL_FILE is required")
	}
	if redisURL != "" {
		rc, err := parseRedisURL(redisURL)
		var refused errRedisOption
		switch {
		case errors.As(err, &refused):
			bad("MASKGATE_REDIS_URL: %s", refused)
		case err != nil:
			// The URL may hold a password: neither it nor go-redis's words about it are echoed.
			bad("MASKGATE_REDIS_URL must be a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL (Sentinel: ?master_name=)")
		}
		c.Redis = rc
	}
	for entry := range strings.SplitSeq(str("MASKGATE_TRUSTED_PROXIES", ""), ",") {
		if entry = strings.TrimSpace(entry); entry == "" {
			continue
		}
		p, err := parsePrefix(entry)
		if err != nil {
			bad("MASKGATE_TRUSTED_PROXIES: %q is not an IP address or a CIDR range such as 10.0.0.0/8", entry)
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}
	for origin := range strings.SplitSeq(str("MASKGATE_CORS_ORIGINS", ""), ",") {
		if origin = strings.TrimSpace(origin); origin == "" {
			continue
		}
		if origin != "*" && !isOrigin(origin) {
			bad("MASKGATE_CORS_ORIGINS: %q is not an origin such as https://crm.example.com (or *)", origin)
			continue
		}
		c.CORSOrigins = append(c.CORSOrigins, origin)
	}
	// The access and audit lines are info: a level above it would drop the audit trail
	// (design §5) without a word, so none is accepted.
	level, err := zerolog.ParseLevel(str("MASKGATE_LOG_LEVEL", "info"))
	if err != nil || level > zerolog.InfoLevel {
		bad("MASKGATE_LOG_LEVEL must be trace, debug or info: the access and audit lines are info, and the audit trail must keep every one")
		level = zerolog.InfoLevel
	}
	c.LogLevel = level

	c.Auth = middleware.AuthConfig{
		Issuer:      required("MASKGATE_JWT_ISSUER"),
		Audience:    required("MASKGATE_JWT_AUDIENCE"),
		Leeway:      durationFrom("MASKGATE_JWT_LEEWAY", 30*time.Second, 0),
		HS256Secret: []byte(secret("MASKGATE_JWT_HS256_SECRET")),
		// The secret callers are moving away from, accepted too until they have (README,
		// Rotating keys and secrets).
		HS256PreviousSecret: []byte(secret("MASKGATE_JWT_HS256_PREVIOUS_SECRET")),
		JWKSURL:             str("MASKGATE_JWT_JWKS_URL", ""),
	}
	if path := str("MASKGATE_JWT_PUBLIC_KEY_FILE", ""); path != "" {
		pemBytes, err := os.ReadFile(path)
		if err != nil {
			bad("MASKGATE_JWT_PUBLIC_KEY_FILE: %v", errors.Unwrap(err))
		}
		c.Auth.PublicKeyPEM, c.Auth.PublicKeyFile = pemBytes, path
		if len(pemBytes) == 0 && err == nil {
			bad("MASKGATE_JWT_PUBLIC_KEY_FILE is empty")
		}
	}
	sources := 0
	for _, set := range []bool{len(c.Auth.HS256Secret) > 0, str("MASKGATE_JWT_PUBLIC_KEY_FILE", "") != "", c.Auth.JWKSURL != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		bad("exactly one of MASKGATE_JWT_HS256_SECRET(_FILE), MASKGATE_JWT_PUBLIC_KEY_FILE, MASKGATE_JWT_JWKS_URL must be set (found %d)", sources)
	}
	if len(c.Auth.HS256Secret) > 0 && len(c.Auth.HS256Secret) < 32 {
		bad("MASKGATE_JWT_HS256_SECRET must be at least 32 bytes")
	}
	switch previous := c.Auth.HS256PreviousSecret; {
	case len(previous) > 0 && len(c.Auth.HS256Secret) == 0:
		bad("MASKGATE_JWT_HS256_PREVIOUS_SECRET is accepted beside MASKGATE_JWT_HS256_SECRET only; set that too")
	case len(previous) > 0 && len(previous) < 32:
		bad("MASKGATE_JWT_HS256_PREVIOUS_SECRET must be at least 32 bytes")
	}
	if c.Auth.Leeway > maxLeeway {
		// A typo such as 30m for 30s would let every expired token pass for half an hour.
		bad("MASKGATE_JWT_LEEWAY must be at most %s: it is how long after exp a token still passes", maxLeeway)
	}
	if c.Auth.JWKSURL != "" && !upstream.IsHTTPURL(c.Auth.JWKSURL) {
		bad("MASKGATE_JWT_JWKS_URL must be an http(s) URL")
	}
	c.AllowPlainHTTP, err = strconv.ParseBool(str("MASKGATE_ALLOW_PLAIN_HTTP", "false"))
	if err != nil {
		bad("MASKGATE_ALLOW_PLAIN_HTTP must be true or false")
	}
	// A URL that would carry a secret, or bring callers' keys, in the clear over a
	// network: one letter dropped from https:// would send the CXone access key so.
	encrypted := func(name, value, what string) {
		if !c.AllowPlainHTTP && plainHTTPOverANetwork(value) {
			bad("%s must be https:// (plain http:// only to a loopback address, or with MASKGATE_ALLOW_PLAIN_HTTP=true for a simulator): %s would cross the network unencrypted", name, what)
		}
	}
	encrypted("MASKGATE_JWT_JWKS_URL", c.Auth.JWKSURL, "the keys that callers' tokens are checked with")

	c.CXone = upstream.Config{
		AuthURL:     str("CXONE_AUTH_URL", "https://cxone.niceincontact.com/auth/token"),
		BaseURL:     str("CXONE_API_BASE_URL", ""),
		Timeout:     duration("CXONE_TIMEOUT", 5*time.Second),
		MaxInFlight: number("CXONE_MAX_IN_FLIGHT", 64, 1, 4096),
		Credentials: upstream.Credentials{
			ClientID:        required("CXONE_CLIENT_ID"),
			ClientSecret:    secret("CXONE_CLIENT_SECRET"),
			AccessKeyID:     required("CXONE_ACCESS_KEY_ID"),
			AccessKeySecret: secret("CXONE_ACCESS_KEY_SECRET"),
		},
	}
	if c.CXone.Credentials.ClientSecret == "" && !hasSecret(getenv, "CXONE_CLIENT_SECRET") {
		bad("CXONE_CLIENT_SECRET or CXONE_CLIENT_SECRET_FILE is required")
	}
	if c.CXone.Credentials.AccessKeySecret == "" && !hasSecret(getenv, "CXONE_ACCESS_KEY_SECRET") {
		bad("CXONE_ACCESS_KEY_SECRET or CXONE_ACCESS_KEY_SECRET_FILE is required")
	}
	if !upstream.IsHTTPURL(c.CXone.AuthURL) {
		bad("CXONE_AUTH_URL must be an http(s) URL")
	}
	if c.CXone.BaseURL != "" && !upstream.IsHTTPURL(c.CXone.BaseURL) {
		bad("CXONE_API_BASE_URL must be an http(s) URL")
	} else if c.CXone.BaseURL != "" && !isOrigin(strings.TrimSuffix(c.CXone.BaseURL, "/")) {
		// The API's paths are appended to it: a path of its own (an older API's
		// /inContactAPI, say) or a query would make CXone answer every mask 404, which
		// the gateway can only take for "no active call", and a caller for nothing to
		// mask, with the agent on a call and recorded.
		bad("CXONE_API_BASE_URL must be the API's scheme and host only, such as https://api-na1.niceincontact.com: no path, query or user")
	}
	encrypted("CXONE_AUTH_URL", c.CXone.AuthURL, "the CXone access key and client secret")
	encrypted("CXONE_API_BASE_URL", c.CXone.BaseURL, "the CXone token")
	if len(problems) > 0 {
		return config{}, &configError{errors.Join(problems...)}
	}
	return c, nil
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

// readSecret reads NAME, or the file NAME_FILE names (trailing newline trimmed, as
// container secrets have one). Both set is a mistake. Errors never show the value.
func readSecret(getenv func(string) string, name string) (string, error) {
	value, path := getenv(name), strings.TrimSpace(getenv(name+"_FILE"))
	switch {
	case value != "" && path != "":
		return "", fmt.Errorf("%s and %s_FILE are both set; set one", name, name)
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%s_FILE: %v", name, errors.Unwrap(err))
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return "", fmt.Errorf("%s_FILE names an empty file", name)
		}
		return s, nil
	}
	return value, nil
}

// hasSecret reports whether NAME or NAME_FILE is set at all (a problem with either is
// reported by readSecret).
func hasSecret(getenv func(string) string, name string) bool {
	return getenv(name) != "" || strings.TrimSpace(getenv(name+"_FILE")) != ""
}
