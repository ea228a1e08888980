package main

import (
	"strings"
	"testing"

	"github.com/maskgate/maskgate/internal/testkit"
)

// FuzzConfiguration feeds odd values to the settings that parse: the configuration is
// either valid or refused with a message that never shows a secret; never a panic.
func FuzzConfiguration(f *testing.F) {
	for _, s := range []string{"15m", "", "0", "-1s", "1e9h", "redis://x", "redis+cluster://a?addr=b", "redis://x?master_name=m",
		"rediss://u:p@h:1/99999999999", "redis://x?read_timeout=0", "redis://x?dial_timeout=5&protocol=3", "http://[::1", "50", "99999999999999999999", " ", "\x00"} {
		f.Add(s)
	}
	secrets := []string{testkit.Canary + "client", testkit.Canary + "key", testkit.Canary + "jwt-0123456789abcdef0123"}
	f.Fuzz(func(t *testing.T, v string) {
		for _, name := range []string{"MASKGATE_MASK_TTL", "MASKGATE_REDIS_URL", "MASKGATE_RATE_LIMIT", "CXONE_AUTH_URL",
			"MASKGATE_SWEEP_CONCURRENCY", "MASKGATE_SHUTDOWN_DELAY", "MASKGATE_LOG_LEVEL", "MASKGATE_JWT_JWKS_URL"} {
			e := map[string]string{
				"MASKGATE_REDIS_URL": "redis://127.0.0.1:6379/0", "MASKGATE_JWT_ISSUER": "i", "MASKGATE_JWT_AUDIENCE": "a",
				"MASKGATE_JWT_HS256_SECRET": secrets[2], "CXONE_CLIENT_ID": "c", "CXONE_CLIENT_SECRET": secrets[0],
				"CXONE_ACCESS_KEY_ID": "k", "CXONE_ACCESS_KEY_SECRET": secrets[1],
			}
			e[name] = v
			_, err := loadConfig(environment(e))
			if err == nil {
				continue
			}
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("%s=%q: the error shows a secret", name, v)
				}
			}
		}
	})
}
