package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/middleware"
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
	var ce *configError
	if !errors.As(err, &ce) {
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
			for k, v := range tt.set {
				e[k] = v
			}
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

// A variable named like a setting that maskgate does not have is most likely a
// misspelt one, whose default is in force instead: it is named, and the Kubernetes
// service links of a Service called maskgate (or cxone) are not.
func TestMisspeltSettingsAreNamed(t *testing.T) {
	e := env(testkit.NewSim(t), "p")
	maps.Copy(e, map[string]string{"MASKGATE_UNMASK_GIVE_UP": "4h", "CXONE_TIMEOUTS": "", "MASKGATE_CACHE": "x",
		"MASKGATE_SERVICE_HOST": "10.0.0.9", "MASKGATE_SERVICE_PORT": "8080", "MASKGATE_SERVICE_PORT_HTTP": "8080",
		"MASKGATE_PORT": "tcp://10.0.0.9:8080", "MASKGATE_PORT_8080_TCP": "tcp://10.0.0.9:8080",
		"MASKGATE_PORT_8080_TCP_PROTO": "tcp", "MASKGATE_PORT_8080_TCP_PORT": "8080", "MASKGATE_PORT_8080_TCP_ADDR": "10.0.0.9",
		"CXONE_SIM_SERVICE_HOST": "10.0.0.8", "REDIS_PASSWORD": "not maskgate's",
		"MASKGATE_PORTS": "8080"}) // like a Service's variable, but none of them
	cfg := mustLoad(t, e)
	if want := []string{"CXONE_TIMEOUTS", "MASKGATE_CACHE", "MASKGATE_PORTS", "MASKGATE_UNMASK_GIVE_UP"}; !slices.Equal(cfg.Ignored, want) {
		t.Errorf("ignored = %v; want %v", cfg.Ignored, want)
	}
	if cfg.UnmaskGiveUp != time.Hour {
		t.Errorf("unmask give-up = %s; want the default", cfg.UnmaskGiveUp)
	}
	// Every variable maskgate reads (README's table names them all), set, is none of them.
	_, _ = readConfig(func(name string) string {
		if _, set := e[name]; !set {
			e[name] = ""
		}
		return ""
	})
	if len(e) < 40 {
		t.Fatalf("only %d variables set; the recording of those read is broken", len(e))
	}
	if cfg := mustLoad(t, e); len(cfg.Ignored) != 4 {
		t.Errorf("with every documented variable set too, ignored = %v", cfg.Ignored)
	}
	// When a setting is missing, the misspelling may be what it was meant to be.
	delete(e, "MASKGATE_REDIS_URL")
	e["MASKGATE_REDIS_ULR"] = "redis://127.0.0.1:6379"
	_, err := loadConfig(environment(e))
	if err == nil || !strings.Contains(err.Error(), "MASKGATE_REDIS_URL or MASKGATE_REDIS_URL_FILE is required") ||
		!strings.Contains(err.Error(), "not maskgate settings, ignored (misspelt?): CXONE_TIMEOUTS, MASKGATE_CACHE, MASKGATE_PORTS, MASKGATE_REDIS_ULR, MASKGATE_UNMASK_GIVE_UP") {
		t.Errorf("loadConfig = %v; want the missing setting and the misspelt ones named", err)
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

func mustParseRedisURL(t *testing.T, raw string) redisConfig {
	t.Helper()
	c, err := parseRedisURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSecretsAreReadFromFiles(t *testing.T) {
	sim := testkit.NewSim(t)
	dir := t.TempDir()
	e := env(sim, "p")
	// The HS256 secret's file was saved on Windows.
	for name, end := range map[string]string{"CXONE_CLIENT_SECRET": "\n", "CXONE_ACCESS_KEY_SECRET": "\n", "MASKGATE_JWT_HS256_SECRET": "\r\n", "MASKGATE_REDIS_URL": "\n"} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(e[name]+end), 0o600); err != nil {
			t.Fatal(err)
		}
		e[name+"_FILE"], e[name] = path, ""
	}
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

func TestRedisURLForms(t *testing.T) {
	tests := []struct {
		url, want string
	}{
		{"redis://127.0.0.1:6379/2", "127.0.0.1:6379 db 2"},
		{"rediss://user:pw@redis.internal:6380/0", "redis.internal:6380 db 0, TLS"},
		{"redis://:pw@s1:26379/0?master_name=mymaster&addr=s2:26379&addr=s3:26379", `sentinel master "mymaster" via s1:26379,s2:26379,s3:26379 db 0`},
		{"redis+cluster://n1:7000?addr=n2:7001&addr=n3:7002", "cluster seeds n1:7000,n2:7001,n3:7002"},
		{"rediss+cluster://:pw@n1:7000", "cluster seeds n1:7000, TLS"},
		{"rediss://:pw@r:6380/0?skip_verify=true", "r:6380 db 0, TLS without checking Redis's certificate (skip_verify)"},
		{"rediss://:pw@r:6380/1?read_timeout=3s&dial_timeout=2s", "r:6380 db 1, TLS, read_timeout=3s"},
		{"redis://:pw@s1:26379/0?master_name=m&write_timeout=1500ms", `sentinel master "m" via s1:26379 db 0, write_timeout=1.5s`},
	}
	for _, tt := range tests {
		c, err := parseRedisURL(tt.url)
		if err != nil {
			t.Errorf("%s: %v", tt.url, err)
			continue
		}
		if got := c.describe(); got != tt.want {
			t.Errorf("%s describes as %q; want %q", tt.url, got, tt.want)
		}
		if strings.Contains(c.describe(), "pw") {
			t.Errorf("%s: description shows the password", tt.url)
		}
	}
	for _, bad := range []string{"mysql://x", "redis://x?bogus_option=1", "redis+cluster://x?master_name=m"} {
		if _, err := parseRedisURL(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TLS to Redis without a check of its certificate (go-redis's skip_verify=true) is as
// open to whoever sits between them as plain TCP: named at start-up and by check-config.
func TestRedisTLSWithoutACertificateCheckIsNamed(t *testing.T) {
	for url, warned := range map[string]bool{
		"rediss://:pw@redis.internal:6380/0?skip_verify=true":                      true,
		"rediss://:pw@127.0.0.1:26379/0?master_name=m&addr=s2:26379&skip_verify=1": true,
		"rediss://:pw@redis.internal:6380/0?skip_verify=false":                     false,
		"rediss://:pw@redis.internal:6380/0":                                       false,
	} {
		c, err := parseRedisURL(url)
		if err != nil {
			t.Errorf("%s: %v", url, err)
			continue
		}
		if note := c.transportWarning(); strings.Contains(note, "turns off the check of Redis's TLS certificate") != warned {
			t.Errorf("%s: warning %q; want one about the certificate: %v", url, note, warned)
		}
	}
}

// A Redis password sent over plain TCP to another machine is named (start-up warning,
// check-config): redis:// with a password, not rediss://, to a host not loopback.
func TestRedisPasswordInTheClearIsNamed(t *testing.T) {
	for url, want := range map[string]string{
		"redis://:pw@redis.internal:6379/0":                                 "redis.internal:6379",
		"redis://user:pw@10.0.0.5:6379/0":                                   "10.0.0.5:6379",
		"redis://:pw@127.0.0.1:6379/0":                                      "",
		"redis://:pw@localhost:6379/0":                                      "",
		"redis://:pw@[::1]:6379/0":                                          "",
		"rediss://:pw@redis.internal:6380/0":                                "",
		"redis://redis.internal:6379/0":                                     "",
		"redis://:pw@127.0.0.1:26379/0?master_name=m&addr=s2:26379":         "s2:26379",
		"redis://127.0.0.1:26379/0?master_name=m&password=pw&addr=s2:26379": "s2:26379",
		"redis+cluster://:pw@n1:7000?addr=n2:7001":                          "n1:7000",
		"rediss+cluster://:pw@n1:7000":                                      "",
	} {
		c, err := parseRedisURL(url)
		if err != nil {
			t.Errorf("%s: %v", url, err)
			continue
		}
		if got := c.passwordInTheClear(); got != want || (want == "") != (c.transportWarning() == "") {
			t.Errorf("%s: password in the clear to %q; want %q", url, got, want)
		}
	}
	e := env(testkit.NewSim(t), "p")
	e["MASKGATE_REDIS_URL"] = "redis://:" + testkit.Canary + "redis-pw@redis.internal:6379/0"
	var logs bytes.Buffer
	logConfiguration(zerolog.New(&logs), mustLoad(t, e))
	if !strings.Contains(logs.String(), `"level":"warn","message":"MASKGATE_REDIS_URL sends Redis's password to redis.internal:6379 unencrypted`) ||
		strings.Contains(logs.String(), testkit.Canary) {
		t.Errorf("start-up lines = %s; want the warning, without the password", logs.String())
	}
}

// TestRedisURLOptions: the timeouts maskgate gives Redis are defaults that a URL's own
// query parameters override, in every topology; a timeout turned off is refused, since
// a Redis that stops answering would then hold requests without end, and so is RESP3.
func TestRedisURLOptions(t *testing.T) {
	type options struct {
		dial, read, write time.Duration
		protocol          int
		contextTimeout    bool
	}
	of := func(c redisConfig) options {
		switch {
		case c.cluster != nil:
			o := c.cluster
			return options{o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.Protocol, o.ContextTimeoutEnabled}
		case c.failover != nil:
			o := c.failover
			return options{o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.Protocol, o.ContextTimeoutEnabled}
		default:
			o := c.single
			return options{o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.Protocol, o.ContextTimeoutEnabled}
		}
	}
	for _, tt := range []struct {
		url  string
		want options
	}{
		{"redis://127.0.0.1:6379/0", options{2 * time.Second, time.Second, time.Second, 2, true}},
		{"redis://127.0.0.1:6379/0?dial_timeout=5&read_timeout=3s&protocol=2", options{5 * time.Second, 3 * time.Second, time.Second, 2, true}},
		{"redis://s1:26379/0?master_name=m&write_timeout=1500ms", options{2 * time.Second, time.Second, 1500 * time.Millisecond, 2, true}},
		{"redis://s1:26379/0?master_name=m&context_timeout_enabled=true", options{2 * time.Second, time.Second, time.Second, 2, true}},
		{"redis+cluster://n1:7000?read_timeout=4s", options{2 * time.Second, 4 * time.Second, time.Second, 2, true}},
	} {
		c, err := parseRedisURL(tt.url)
		if err != nil {
			t.Errorf("%s: %v", tt.url, err)
			continue
		}
		if got := of(c); got != tt.want {
			t.Errorf("%s gives %+v; want %+v", tt.url, got, tt.want)
		}
		if got, want := c.roundTrip(), tt.want.dial+tt.want.read+tt.want.write; got != want {
			t.Errorf("%s: a command on a new connection may take %s; want %s", tt.url, got, want)
		}
	}
	for _, bad := range []string{"redis://x?read_timeout=0", "redis://x?dial_timeout=-1s", "rediss://x?write_timeout=-1",
		"redis://s1:26379/0?master_name=m&read_timeout=0s", "redis+cluster://n1:7000?dial_timeout=0", "redis://x?protocol=3"} {
		var refused errRedisOption
		if _, err := parseRedisURL(bad); !errors.As(err, &refused) {
			t.Errorf("%s: %v; want the option refused", bad, err)
		}
	}
}

// TestConfigurationIsLoggedAtStartUp: the gateway records what it runs with, for the
// audit trail, and no secret of it.
func TestConfigurationIsLoggedAtStartUp(t *testing.T) {
	_, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	e := env(sim, prefix)
	e["MASKGATE_MASK_TTL"], e["MASKGATE_TRUSTED_PROXIES"] = "5m", "10.0.0.0/8"
	e["MASKGATE_ALLOW_PLAIN_HTTP"] = "true" // said, and warned of
	e["MASKGATE_MASK_TTL_MAXIMUM"] = "3h"   // warned of: not a setting
	s := start(t, nil, e)
	want := map[string]any{"message": "configuration", "redis_key_prefix": prefix, "jwt_keys": "HS256 shared secret",
		"jwt_issuer": "https://idp.test", "mask_ttl": "5m0s", "mask_ttl_max": "2h0m0s", "rate_limit": float64(100000),
		"cxone_api": "discovered from the token's tenant", "cxone_access_key_id": sim.Credentials.AccessKeyID,
		"cxone_client_id": sim.Credentials.ClientID, "trusted_proxies": float64(1), "allow_plain_http": true,
		"jwt_audience": "maskgate", "sweep_interval": "1s", "unmask_giveup": "1h0m0s", "cxone_timeout": "5s",
		"cxone_auth_url": e["CXONE_AUTH_URL"]}
	var found map[string]any
	warned, misspelt := false, false
	for _, l := range s.startup {
		if l["message"] == "configuration" {
			found = l
		}
		msg, _ := l["message"].(string)
		if l["level"] == "warn" && strings.HasPrefix(msg, "MASKGATE_ALLOW_PLAIN_HTTP=true:") {
			warned = true
		}
		if l["level"] == "warn" && strings.Contains(msg, "not maskgate settings") && fmt.Sprint(l["ignored"]) == "[MASKGATE_MASK_TTL_MAXIMUM]" {
			misspelt = true
		}
	}
	if !matches(found, want) {
		t.Fatalf("start-up lines %v; want one with %v", s.startup, want)
	}
	if !warned {
		t.Errorf("start-up lines %v; want a warning that plain HTTP is allowed", s.startup)
	}
	if !misspelt {
		t.Errorf("start-up lines %v; want a warning naming MASKGATE_MASK_TTL_MAXIMUM", s.startup)
	}
	raw, _ := json.Marshal(found)
	for _, secret := range []string{hsSecret, sim.Credentials.ClientSecret, sim.Credentials.AccessKeySecret} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the configuration line shows a secret: %s", raw)
		}
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

// The JWKS URL is shown where the key source is (check-config, the configuration line),
// but not a password it may carry.
func TestKeySourceHidesAJWKSPassword(t *testing.T) {
	got := keySource(middleware.AuthConfig{JWKSURL: "https://jwks-reader:" + hsSecret + "@idp.example/jwks"})
	if strings.Contains(got, hsSecret) || !strings.Contains(got, "https://jwks-reader:xxxxx@idp.example/jwks") {
		t.Errorf("key source %q", got)
	}
}

// TestUsage: -h and help list the subcommands and exit 0; an argument that names none
// is a usage error (exit 2), not a gateway started without it, and not called a
// configuration error: nothing is wrong with the environment.
func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}} {
		var out strings.Builder
		if err := run(context.Background(), args, environment(nil), &out, &out); err != nil ||
			!strings.Contains(out.String(), "maskgate check-config | healthcheck | dev-token | audit-open | version") {
			t.Errorf("%v = %v:\n%s", args, err, out.String())
		}
	}
	for args, want := range map[string]string{
		"chek-config": "usage: maskgate [-local]",
		"help me":     "usage: maskgate [-local]",
		"-locale":     "flag provided but not defined: -locale\nusage: maskgate [-local]",
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = []string{"MASKGATE_RUN_MAIN=1", "MASKGATE_ARGS=" + args}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("maskgate %s: exit = %v; want status 2\n%s", args, err, out)
		}
		if !strings.HasPrefix(string(out), want) || strings.Contains(string(out), "invalid configuration") ||
			strings.Count(string(out), strings.Fields(args)[0]) != 1 {
			t.Errorf("maskgate %s printed\n%s\nwant %q first, what is wrong once, and no configuration error", args, out, want)
		}
	}
}

// A subcommand that takes no arguments refuses any (exit 2) rather than ignoring it:
// `dev-token -agent 1001` would otherwise print a token of every scope, bound to no
// agent, to someone who asked for one agent's. The arguments are not repeated (one may
// be a secret typed in the wrong place).
func TestSubcommandsRefuseArgumentsTheyDoNotTake(t *testing.T) {
	e := environment{"MASKGATE_REDIS_URL": "redis://127.0.0.1:6379", "MASKGATE_JWT_ISSUER": "i", "MASKGATE_JWT_AUDIENCE": "a",
		"MASKGATE_JWT_HS256_SECRET": strings.Repeat("s", 32), "CXONE_CLIENT_ID": "c", "CXONE_CLIENT_SECRET": "cs",
		"CXONE_ACCESS_KEY_ID": "k", "CXONE_ACCESS_KEY_SECRET": "ks"}
	for _, args := range [][]string{{"dev-token", "-agent", "1001"}, {"check-config", "-h"}, {"healthcheck", "hunter2"}, {"version", "x"}} {
		var out, errOut strings.Builder
		err := run(context.Background(), args, e, &out, &errOut)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), args[0]+" takes no arguments") {
			t.Errorf("%v = %v; want a usage error", args, err)
		}
		if out.Len() > 0 || strings.Contains(err.Error()+errOut.String(), args[len(args)-1]) {
			t.Errorf("%v printed %q, %q, %v; want nothing but the error, which does not repeat the arguments", args, out.String(), errOut.String(), err)
		}
	}
}

// A variable set twice in the process's environment (os/exec keeps the last, a shell's
// env or a container runtime may pass both) has the value os.Getenv reads, its first:
// maskgate, run as dev-token, signs with the first of two secrets.
func TestASettingSetTwiceHasItsFirstValue(t *testing.T) {
	first, second := hsSecret, testkit.Canary+"jwt-hs256-the-second-of-two"
	e := env(testkit.NewSim(t), "p")
	delete(e, "MASKGATE_JWT_HS256_SECRET")
	environ := []string{"MASKGATE_RUN_MAIN=1", "MASKGATE_ARGS=dev-token", "MASKGATE_JWT_HS256_SECRET=" + first}
	for name, value := range e {
		environ = append(environ, name+"="+value)
	}
	environ = append(environ, "MASKGATE_JWT_HS256_SECRET="+second)
	// os.StartProcess passes the environment as it is; os/exec would drop the first.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := os.StartProcess(os.Args[0], []string{os.Args[0], "-test.run=^$"}, &os.ProcAttr{Env: environ, Files: []*os.File{nil, w, w}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	r.Close()
	if state, err := p.Wait(); err != nil || !state.Success() {
		t.Fatalf("dev-token: %v %v\n%s", state, err, out)
	}
	token := strings.TrimSpace(string(out))
	if _, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return []byte(first), nil }); err != nil {
		t.Errorf("dev-token with the secret set twice signed %q, which the first does not verify: %v", token, err)
	}
}

// The process's environment is read as os.Getenv reads it, a value with = in it whole.
func TestProcessEnvironmentIsWhatGetenvReads(t *testing.T) {
	t.Setenv("MASKGATE_ENV_TEST", "redis://u:p=q@h:6379/0?a=b")
	e := processEnvironment()
	if len(e) == 0 || e["MASKGATE_ENV_TEST"] != "redis://u:p=q@h:6379/0?a=b" {
		t.Fatalf("processEnvironment has %d variables, MASKGATE_ENV_TEST %q", len(e), e["MASKGATE_ENV_TEST"])
	}
	for name, value := range e {
		if os.Getenv(name) != value {
			t.Errorf("%s is %q; os.Getenv reads %q", name, value, os.Getenv(name))
		}
	}
}
