package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
)

// mustLoad is the configuration of environment e, which the test expects to be valid.
func mustLoad(t *testing.T, e map[string]string) config {
	t.Helper()
	cfg, err := loadConfig(environment(e))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestMissingConfigurationNamesEveryVariable(t *testing.T) {
	_, err := loadConfig(environment(nil))
	if _, ok := errors.AsType[*configError](err); !ok {
		t.Fatalf("loadConfig with nothing = %v; want a configError", err)
	}
	for _, name := range []string{"MASKGATE_REDIS_URL", "MASKGATE_JWT_ISSUER", "MASKGATE_JWT_AUDIENCE",
		"MASKGATE_JWT_HS256_SECRET(_FILE), MASKGATE_JWT_PUBLIC_KEY_FILE, MASKGATE_JWT_JWKS_URL",
		"CXONE_CLIENT_ID", "CXONE_CLIENT_SECRET", "CXONE_ACCESS_KEY_ID", "CXONE_ACCESS_KEY_SECRET"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("the error does not name %s:\n%s", name, err)
		}
	}
}

func TestInvalidConfiguration(t *testing.T) {
	dir := t.TempDir()
	empty, blanks := filepath.Join(dir, "empty"), filepath.Join(dir, "blanks")
	os.WriteFile(empty, nil, 0o600)
	os.WriteFile(blanks, []byte("  \n"), 0o600)
	tests := []struct {
		name string
		set  map[string]string
		want string
	}{
		{"address without a port", map[string]string{"MASKGATE_ADDR": "8080"}, "MASKGATE_ADDR must be host:port"},
		{"address with a named port", map[string]string{"MASKGATE_ADDR": ":http"}, "MASKGATE_ADDR must be host:port"},
		{"address with a port out of range", map[string]string{"MASKGATE_ADDR": ":65536"}, "MASKGATE_ADDR must be host:port"},
		{"profiler address without a port", map[string]string{"MASKGATE_DEBUG_ADDR": "localhost"}, "MASKGATE_DEBUG_ADDR must be host:port"},
		{"bad duration", map[string]string{"MASKGATE_MASK_TTL": "soon"}, "MASKGATE_MASK_TTL must be a duration"},
		{"negative duration", map[string]string{"CXONE_TIMEOUT": "-1s"}, "CXONE_TIMEOUT must be a duration of at least 1ms"},
		{"negative delay", map[string]string{"MASKGATE_SHUTDOWN_DELAY": "-1s"}, "MASKGATE_SHUTDOWN_DELAY must be a duration of at least 0s"},
		{"leeway of half an hour", map[string]string{"MASKGATE_JWT_LEEWAY": "30m"}, "MASKGATE_JWT_LEEWAY must be at most 5m0s"},
		{"negative leeway", map[string]string{"MASKGATE_JWT_LEEWAY": "-1s"}, "MASKGATE_JWT_LEEWAY must be a duration of at least 0s"},
		{"bad rate limit", map[string]string{"MASKGATE_RATE_LIMIT": "lots"}, "MASKGATE_RATE_LIMIT must be a whole number"},
		{"rate limit of nothing", map[string]string{"MASKGATE_RATE_LIMIT": "0"}, "MASKGATE_RATE_LIMIT must be a whole number from 1 to 1000000"},
		{"sweep concurrency above its bound", map[string]string{"MASKGATE_SWEEP_CONCURRENCY": "1025"}, "MASKGATE_SWEEP_CONCURRENCY must be a whole number from 1 to 1024"},
		{"CXone calls in flight above their bound", map[string]string{"CXONE_MAX_IN_FLIGHT": "4097"}, "CXONE_MAX_IN_FLIGHT must be a whole number from 1 to 4096"},
		{"no CXone call in flight", map[string]string{"CXONE_MAX_IN_FLIGHT": "0"}, "CXONE_MAX_IN_FLIGHT must be a whole number from 1 to 4096"},
		{"ttl above its max", map[string]string{"MASKGATE_MASK_TTL": "3h"}, "must not exceed MASKGATE_MASK_TTL_MAX"},
		{"ttl under a second", map[string]string{"MASKGATE_MASK_TTL": "500ms"}, "MASKGATE_MASK_TTL must be a duration of at least 1s"},
		{"ttl cap of nothing", map[string]string{"MASKGATE_MASK_TTL_MAX": "0s"}, "MASKGATE_MASK_TTL_MAX must be a duration of at least 1s"},
		{"two key sources", map[string]string{"MASKGATE_JWT_JWKS_URL": "https://idp/jwks"}, "exactly one of"},
		{"short HS256 secret", map[string]string{"MASKGATE_JWT_HS256_SECRET": "short"}, "at least 32 bytes"},
		{"HS256 secret a byte short", map[string]string{"MASKGATE_JWT_HS256_SECRET": strings.Repeat("s", 31)}, "MASKGATE_JWT_HS256_SECRET must be at least 32 bytes"},
		{"short previous HS256 secret", map[string]string{"MASKGATE_JWT_HS256_PREVIOUS_SECRET": "short"}, "MASKGATE_JWT_HS256_PREVIOUS_SECRET must be at least 32 bytes"},
		{"bad redis URL", map[string]string{"MASKGATE_REDIS_URL": "mysql://x"}, "MASKGATE_REDIS_URL must be"},
		{"blank redis URL", map[string]string{"MASKGATE_REDIS_URL": "   "}, "MASKGATE_REDIS_URL or MASKGATE_REDIS_URL_FILE is required"},
		{"missing redis URL file", map[string]string{"MASKGATE_REDIS_URL": "", "MASKGATE_REDIS_URL_FILE": filepath.Join(dir, "nope")}, "MASKGATE_REDIS_URL_FILE: no such file"},
		{"redis URL file of blanks", map[string]string{"MASKGATE_REDIS_URL": "", "MASKGATE_REDIS_URL_FILE": blanks}, "MASKGATE_REDIS_URL or MASKGATE_REDIS_URL_FILE is required"},
		{"redis read timeout turned off", map[string]string{"MASKGATE_REDIS_URL": "redis://:" + hsSecret + "@x:6379/0?read_timeout=0"}, "MASKGATE_REDIS_URL: read_timeout must be a positive duration"},
		{"sentinel commands without deadlines", map[string]string{"MASKGATE_REDIS_URL": "redis://:" + hsSecret + "@s1:26379/0?master_name=m&context_timeout_enabled=false"}, "MASKGATE_REDIS_URL: context_timeout_enabled must not be turned off"},
		{"bad auth URL", map[string]string{"CXONE_AUTH_URL": "ftp://x"}, "CXONE_AUTH_URL must be"},
		{"access key over plain HTTP", map[string]string{"CXONE_AUTH_URL": "http://cxone.niceincontact.com/auth/token"}, "CXONE_AUTH_URL must be https:// (plain http:// only to a loopback address"},
		{"CXone token over plain HTTP", map[string]string{"CXONE_API_BASE_URL": "http://10.0.0.7:8090"}, "CXONE_API_BASE_URL must be https://"},
		{"callers' keys over plain HTTP", map[string]string{"MASKGATE_JWT_HS256_SECRET": "", "MASKGATE_JWT_JWKS_URL": "http://idp.internal/jwks"}, "MASKGATE_JWT_JWKS_URL must be https://"},
		{"plain HTTP allowed maybe", map[string]string{"MASKGATE_ALLOW_PLAIN_HTTP": "maybe"}, "MASKGATE_ALLOW_PLAIN_HTTP must be true or false"},
		{"bad log level", map[string]string{"MASKGATE_LOG_LEVEL": "loud"}, "MASKGATE_LOG_LEVEL"},
		{"log level that drops the audit lines", map[string]string{"MASKGATE_LOG_LEVEL": "warn"}, "MASKGATE_LOG_LEVEL must be trace, debug or info"},
		{"logs switched off", map[string]string{"MASKGATE_LOG_LEVEL": "disabled"}, "MASKGATE_LOG_LEVEL must be trace, debug or info"},
		{"secret and its file", map[string]string{"CXONE_CLIENT_SECRET_FILE": empty}, "CXONE_CLIENT_SECRET and CXONE_CLIENT_SECRET_FILE are both set"},
		{"empty secret file", map[string]string{"CXONE_ACCESS_KEY_SECRET": "", "CXONE_ACCESS_KEY_SECRET_FILE": empty}, "names an empty file"},
		{"blank client secret", map[string]string{"CXONE_CLIENT_SECRET": " \t "}, "CXONE_CLIENT_SECRET or CXONE_CLIENT_SECRET_FILE is required"},
		{"access key secret file of blanks", map[string]string{"CXONE_ACCESS_KEY_SECRET": "", "CXONE_ACCESS_KEY_SECRET_FILE": blanks}, "CXONE_ACCESS_KEY_SECRET or CXONE_ACCESS_KEY_SECRET_FILE is required"},
		{"missing secret file", map[string]string{"CXONE_ACCESS_KEY_SECRET": "", "CXONE_ACCESS_KEY_SECRET_FILE": filepath.Join(dir, "nope")}, "no such file"},
		{"missing public key file", map[string]string{"MASKGATE_JWT_HS256_SECRET": "", "MASKGATE_JWT_PUBLIC_KEY_FILE": filepath.Join(dir, "nope")}, "MASKGATE_JWT_PUBLIC_KEY_FILE"},
		{"empty public key file", map[string]string{"MASKGATE_JWT_HS256_SECRET": "", "MASKGATE_JWT_PUBLIC_KEY_FILE": empty}, "MASKGATE_JWT_PUBLIC_KEY_FILE is empty"},
		{"key prefix with a hash tag", map[string]string{"MASKGATE_REDIS_KEY_PREFIX": "a{b}"}, "MASKGATE_REDIS_KEY_PREFIX must not contain"},
		{"key prefix with a closing brace", map[string]string{"MASKGATE_REDIS_KEY_PREFIX": "a}b"}, "MASKGATE_REDIS_KEY_PREFIX must not contain"},
		{"JWKS URL that is not HTTP", map[string]string{"MASKGATE_JWT_HS256_SECRET": "", "MASKGATE_JWT_JWKS_URL": "ldap://idp/jwks"}, "MASKGATE_JWT_JWKS_URL must be an http(s) URL"},
		{"bad API base URL", map[string]string{"CXONE_API_BASE_URL": "api.example.com"}, "CXONE_API_BASE_URL must be"},
		// Every API path is appended to it: CXone would answer every mask 404, read as
		// no active call.
		{"API base URL with a path", map[string]string{"CXONE_API_BASE_URL": "https://api-c32.incontact.com/inContactAPI"}, "CXONE_API_BASE_URL must be the API's scheme and host only"},
		{"API base URL with a query", map[string]string{"CXONE_API_BASE_URL": "https://api-na1.niceincontact.com?region=na1"}, "CXONE_API_BASE_URL must be the API's scheme and host only"},
		{"API base URL with a user", map[string]string{"CXONE_API_BASE_URL": "https://me@api-na1.niceincontact.com"}, "CXONE_API_BASE_URL must be the API's scheme and host only"},
		{"API base URL with an empty query", map[string]string{"CXONE_API_BASE_URL": "https://api-na1.niceincontact.com?"}, "CXONE_API_BASE_URL must be the API's scheme and host only"},
		{"API base URL with a fragment", map[string]string{"CXONE_API_BASE_URL": "https://api-na1.niceincontact.com#na1"}, "CXONE_API_BASE_URL must be the API's scheme and host only"},
		{"bad trusted proxy", map[string]string{"MASKGATE_TRUSTED_PROXIES": "10.0.0.0/8, lb.internal"}, `MASKGATE_TRUSTED_PROXIES: "lb.internal" is not`},
		{"bad trusted range", map[string]string{"MASKGATE_TRUSTED_PROXIES": "10.0.0.0/33"}, `MASKGATE_TRUSTED_PROXIES: "10.0.0.0/33" is not`},
		{"CORS origin with a path", map[string]string{"MASKGATE_CORS_ORIGINS": "https://crm.example.com/app"}, `MASKGATE_CORS_ORIGINS: "https://crm.example.com/app" is not an origin`},
		{"CORS origin without a scheme", map[string]string{"MASKGATE_CORS_ORIGINS": "crm.example.com"}, `MASKGATE_CORS_ORIGINS: "crm.example.com" is not an origin`},
		{"CORS origin with a user", map[string]string{"MASKGATE_CORS_ORIGINS": "https://me@crm.example.com"}, `MASKGATE_CORS_ORIGINS: "https://me@crm.example.com" is not an origin`},
	}
	sim := testkit.NewSim(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := env(sim, "p")
			maps.Copy(e, tt.set)
			_, err := loadConfig(environment(e))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("loadConfig = %v; want it to say %q", err, tt.want)
			}
			// One mistake, one line: a secret file that cannot be read is not also
			// called missing.
			if lines := strings.Split(err.Error(), "\n"); len(lines) != 2 {
				t.Errorf("loadConfig names %d problems; want only the one made:\n%v", len(lines)-1, err)
			}
			for _, s := range []string{hsSecret, sim.Credentials.ClientSecret, sim.Credentials.AccessKeySecret} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error shows a secret: %v", err)
				}
			}
		})
	}
}

// namesInREADME are the names pattern's first group finds in the README between the
// first after and the until that follows it.
func namesInREADME(t *testing.T, after, until, pattern string) map[string]bool {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, found := strings.Cut(string(readme), after)
	section, _, _ = strings.Cut(section, until)
	if !found {
		t.Fatalf("README has no %q", after)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(pattern).FindAllStringSubmatch(section, -1) {
		names[m[1]] = true
	}
	return names
}

// TestConfigurationTableNamesEveryVariable: README's Configuration table documents every
// variable maskgate reads (a secret's _FILE variant beside its name), and no other.
func TestConfigurationTableNamesEveryVariable(t *testing.T) {
	documented := namesInREADME(t, "\n## Configuration\n", "\n### ", "`([A-Z][A-Z0-9_]+)`")
	asked := map[string]bool{}
	_, _ = readConfig(func(name string) string { asked[name] = true; return "" })
	for name := range asked {
		if !documented[name] && !documented[strings.TrimSuffix(name, "_FILE")] {
			t.Errorf("maskgate reads %s, which README's Configuration table does not name", name)
		}
	}
	for name := range documented {
		if (strings.HasPrefix(name, "MASKGATE_") || strings.HasPrefix(name, "CXONE_")) && !asked[name] {
			t.Errorf("README's Configuration table names %s, which maskgate does not read", name)
		}
	}
	if len(asked) < 30 {
		t.Fatalf("loadConfig read only %d variables; the recording is broken", len(asked))
	}
}

// Plain http:// carries the CXone secrets and tokens, and callers' keys, unencrypted:
// it is accepted to a loopback address (a simulator, a sidecar that adds TLS) and to
// another host only when MASKGATE_ALLOW_PLAIN_HTTP says so (docker-compose's simulator).
func TestPlainHTTPOnlyToLoopbackUnlessAllowed(t *testing.T) {
	sim := testkit.NewSim(t)
	for _, tt := range []struct {
		set  map[string]string
		fine bool
	}{
		{map[string]string{"CXONE_AUTH_URL": "http://127.0.0.1:8090/auth/token", "CXONE_API_BASE_URL": "http://[::1]:8090"}, true},
		{map[string]string{"CXONE_AUTH_URL": "http://localhost:8090/auth/token", "CXONE_API_BASE_URL": "http://LocalHost:8090"}, true},
		{map[string]string{"CXONE_AUTH_URL": "https://cxone.niceincontact.com/auth/token", "CXONE_API_BASE_URL": "https://api-na1.niceincontact.com"}, true},
		{map[string]string{"CXONE_API_BASE_URL": "https://api-na1.niceincontact.com:443/"}, true},
		{map[string]string{"CXONE_AUTH_URL": "http://cxone-sim:8090/auth/token"}, false},
		{map[string]string{"CXONE_AUTH_URL": "http://localhost.example.com/auth/token"}, false},
		{map[string]string{"CXONE_AUTH_URL": "http://cxone-sim:8090/auth/token", "MASKGATE_ALLOW_PLAIN_HTTP": "true"}, true},
		{map[string]string{"MASKGATE_JWT_HS256_SECRET": "", "MASKGATE_JWT_JWKS_URL": "http://idp:8080/jwks", "MASKGATE_ALLOW_PLAIN_HTTP": "true"}, true},
		{map[string]string{"CXONE_API_BASE_URL": "http://api-na1.niceincontact.com", "MASKGATE_ALLOW_PLAIN_HTTP": "false"}, false},
	} {
		e := env(sim, "p")
		maps.Copy(e, tt.set)
		_, err := loadConfig(environment(e))
		if fine := err == nil; fine != tt.fine {
			t.Errorf("%v: loadConfig = %v; want it to pass: %v", tt.set, err, tt.fine)
		}
	}
}

func TestTrustedProxies(t *testing.T) {
	e := env(testkit.NewSim(t), "p")
	e["MASKGATE_TRUSTED_PROXIES"] = " 10.0.0.0/8, 192.168.1.7 ,2001:db8::1/32,fd00::7"
	cfg := mustLoad(t, e)
	var got []string
	for _, p := range cfg.TrustedProxies {
		got = append(got, p.String())
	}
	if want := []string{"10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32", "fd00::7/128"}; !slices.Equal(got, want) {
		t.Errorf("trusted proxies = %v; want %v", got, want)
	}
}

// The origin forms README names for MASKGATE_CORS_ORIGINS are taken as given.
func TestCORSOrigins(t *testing.T) {
	e := env(testkit.NewSim(t), "p")
	e["MASKGATE_CORS_ORIGINS"] = " https://crm.example.com, https://*.example.com ,http://localhost:3000,*"
	cfg := mustLoad(t, e)
	if want := []string{"https://crm.example.com", "https://*.example.com", "http://localhost:3000", "*"}; !slices.Equal(cfg.CORSOrigins, want) {
		t.Errorf("CORS origins = %v; want %v", cfg.CORSOrigins, want)
	}
}

func TestSecretsAreReadFromFiles(t *testing.T) {
	sim := testkit.NewSim(t)
	dir := t.TempDir()
	e := env(sim, "p")
	// The HS256 secret's file was saved on Windows, and the Redis URL's file is named
	// with a line end after it, as a YAML block scalar (|) leaves one.
	for name, end := range map[string]string{"CXONE_CLIENT_SECRET": "\n", "CXONE_ACCESS_KEY_SECRET": "\n", "MASKGATE_JWT_HS256_SECRET": "\r\n", "MASKGATE_REDIS_URL": "\n"} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(e[name]+end), 0o600); err != nil {
			t.Fatal(err)
		}
		e[name+"_FILE"], e[name] = path, ""
	}
	e["MASKGATE_REDIS_URL_FILE"] += "\n"
	cfg := mustLoad(t, e)
	if cfg.CXone.Credentials.ClientSecret != sim.Credentials.ClientSecret ||
		cfg.CXone.Credentials.AccessKeySecret != sim.Credentials.AccessKeySecret || string(cfg.Auth.HS256Secret) != hsSecret ||
		cfg.Redis.describe() != mustParseRedisURL(t, testkit.RedisURL()).describe() {
		t.Error("secrets read from files differ from the files' contents (less the line's end)")
	}
}

// The public key file is handed to the authenticator by its path too, which it reads
// again as it changes (middleware TestPublicKeyFileIsReadAgainWhenItChanges).
func TestPublicKeyFileIsWatchedByItsPath(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	key := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(path, key, 0o600); err != nil {
		t.Fatal(err)
	}
	e := env(testkit.NewSim(t), "p")
	e["MASKGATE_JWT_HS256_SECRET"], e["MASKGATE_JWT_PUBLIC_KEY_FILE"] = "", path
	if cfg := mustLoad(t, e); cfg.Auth.PublicKeyFile != path || string(cfg.Auth.PublicKeyPEM) != string(key) {
		t.Errorf("the authenticator gets file %q and %d bytes; want %q and its key", cfg.Auth.PublicKeyFile, len(cfg.Auth.PublicKeyPEM), path)
	}
}

func TestInvalidConfigurationExits2(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{"MASKGATE_RUN_MAIN=1", "MASKGATE_REDIS_URL=redis://127.0.0.1:6379"}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit = %v; want status 2\n%s", err, out)
	}
	lines := strings.Count(string(out), "is required")
	if lines < 6 || !strings.Contains(string(out), "MASKGATE_JWT_ISSUER is required\n") {
		t.Errorf("want one line per missing variable, got:\n%s", out)
	}
}

// A leeway of 0s checks exp, nbf and iat to the second; the bound is 5m.
func TestJWTLeewayMayBeZeroAndUpTo5m(t *testing.T) {
	e := env(testkit.NewSim(t), "p")
	for value, want := range map[string]time.Duration{"0s": 0, "5m": 5 * time.Minute} {
		e["MASKGATE_JWT_LEEWAY"] = value
		if got := mustLoad(t, e).Auth.Leeway; got != want {
			t.Errorf("MASKGATE_JWT_LEEWAY=%s gives %s", value, got)
		}
	}
}

// TestSettingsAtTheirBoundsAreTaken: the bounds that TestInvalidConfiguration's errors
// name are inclusive, and a value with spaces around it (pasted into a manifest) is
// the value.
func TestSettingsAtTheirBoundsAreTaken(t *testing.T) {
	sim := testkit.NewSim(t)
	for _, tt := range []struct {
		set   map[string]string
		check func(config) bool
	}{
		{map[string]string{"MASKGATE_MASK_TTL": "2h", "MASKGATE_MASK_TTL_MAX": "2h"}, func(c config) bool { return c.MaskTTL == 2*time.Hour }},
		{map[string]string{"MASKGATE_MASK_TTL": "1s", "MASKGATE_MASK_TTL_MAX": "1s"}, func(c config) bool { return c.MaskTTLMax == time.Second }},
		{map[string]string{"MASKGATE_RATE_LIMIT": "1", "MASKGATE_SWEEP_CONCURRENCY": "1"}, func(c config) bool { return c.RateLimit == 1 && c.SweepWorkers == 1 }},
		{map[string]string{"MASKGATE_RATE_LIMIT": "1000000", "MASKGATE_SWEEP_CONCURRENCY": "1024"}, func(c config) bool { return c.RateLimit == 1_000_000 && c.SweepWorkers == 1024 }},
		{map[string]string{"CXONE_MAX_IN_FLIGHT": "1"}, func(c config) bool { return c.CXone.MaxInFlight == 1 }},
		{map[string]string{"CXONE_MAX_IN_FLIGHT": "4096"}, func(c config) bool { return c.CXone.MaxInFlight == 4096 }},
		{map[string]string{"MASKGATE_JWT_HS256_SECRET": strings.Repeat("s", 32)}, func(c config) bool { return len(c.Auth.HS256Secret) == 32 }},
		{map[string]string{"MASKGATE_ADDR": "127.0.0.1:65535"}, func(c config) bool { return c.Addr == "127.0.0.1:65535" }},
		{map[string]string{"MASKGATE_RATE_LIMIT": " 20 ", "CXONE_TIMEOUT": "\t2s\n"}, func(c config) bool { return c.RateLimit == 20 && c.CXone.Timeout == 2*time.Second }},
	} {
		e := env(sim, "p")
		maps.Copy(e, tt.set)
		cfg, err := loadConfig(environment(e))
		if err != nil || !tt.check(cfg) {
			t.Errorf("%q: loadConfig = %v; want it taken as given", tt.set, err)
		}
	}
}
