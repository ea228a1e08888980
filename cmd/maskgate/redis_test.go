package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
)

// Reading MASKGATE_REDIS_URL: its forms, its options, and the warnings it may call for.

func mustParseRedisURL(t *testing.T, raw string) redisConfig {
	t.Helper()
	c, err := parseRedisURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	return c
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
