package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/middleware"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream"
)

// checkFailed is a check-config run that found a problem: main exits 1.
type checkFailed struct{ n int }

func (e *checkFailed) Error() string { return fmt.Sprintf("%d check(s) failed", e.n) }

// checkConfig validates the configuration, reaches Redis, obtains a CXone token,
// resolves the API endpoint and loads the JWT keys, printing what it found and never
// a secret. Exit status: 0 all good, 1 a check failed, 2 the configuration is invalid.
func checkConfig(ctx context.Context, env environment, out io.Writer) error {
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "configuration: ok")
	if len(cfg.Ignored) > 0 {
		fmt.Fprintln(out, "configuration: WARNING:", ignoredNote(cfg.Ignored))
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	failed := 0
	report := func(what, found string, err error) {
		if err != nil {
			failed++
			// Not "cxone token: FAILED: cxone token: ...": the error may name the check.
			fmt.Fprintf(out, "%s: FAILED: %s\n", what, strings.TrimPrefix(err.Error(), what+": "))
			return
		}
		fmt.Fprintf(out, "%s: ok (%s)\n", what, found)
	}

	checkTLS(cfg.TLS, out, report)

	if note := cfg.Redis.transportWarning(); note != "" {
		fmt.Fprintln(out, "redis: WARNING:", note)
	}
	rdb := cfg.Redis.client()
	defer rdb.Close()
	err = rdb.Ping(ctx).Err()
	report("redis", cfg.Redis.describe(), err)
	if err == nil {
		checkEviction(ctx, sessions.NewStore(rdb, cfg.RedisKeyPrefix), out, report)
	}

	cxCfg := cfg.CXone
	cxCfg.Registerer = prometheus.NewRegistry()
	cx := upstream.New(cxCfg)
	endpoint, err := cx.Endpoint(ctx)
	how := "discovered from the token's tenant"
	if cfg.CXone.BaseURL != "" {
		how = "configured"
	}
	report("cxone token", "client "+cfg.CXone.Credentials.ClientID+", access key "+cfg.CXone.Credentials.AccessKeyID, err)
	if err == nil {
		report("cxone api endpoint", endpoint+", "+how, nil)
		switch note, err := notTheTenantsEndpoint(ctx, cx, cfg.CXone.BaseURL); {
		case err != nil:
			// Not a failure: the gateway uses the configured endpoint, and needs no
			// discovery; but nothing here has checked that it is the tenant's.
			fmt.Fprintln(out, "cxone api endpoint: WARNING: not compared with the endpoint the discovery document of the token's tenant names, which could not be read:", err)
		case note != "":
			fmt.Fprintln(out, "cxone api endpoint: WARNING:", note)
		}
	}

	auth := cfg.Auth
	auth.Log = zerolog.Nop()
	auth.PublicKeyFile = "" // loaded once: a check has no file to watch
	a, err := middleware.NewAuthenticator(ctx, auth)
	if err == nil {
		err = a.Ready(ctx)
	}
	report("jwt keys", keySource(cfg.Auth)+"; iss "+cfg.Auth.Issuer+", aud "+cfg.Auth.Audience, err)
	if a != nil {
		for _, p := range a.KeyProblems(ctx) {
			fmt.Fprintf(out, "jwt keys: WARNING: key %q verifies no token: %s\n", p.KID, p.Problem)
		}
	}

	if failed > 0 {
		return &checkFailed{failed}
	}
	return nil
}

// checkEviction reports Redis's maxmemory-policy (README, Redis): a policy that may
// evict open sessions fails the check; one that may evict Idempotency-Key records, or
// a Redis that will not say, is a warning.
func checkEviction(ctx context.Context, store *sessions.Store, out io.Writer, report func(what, found string, err error)) {
	policy, err := store.EvictionPolicy(ctx)
	if err != nil {
		fmt.Fprintf(out, "redis eviction: WARNING: Redis did not say its maxmemory-policy (%v); it must be noeviction\n", err)
		return
	}
	switch e := sessions.EvictionUnder(policy); e {
	case sessions.EvictsNothing:
		report("redis eviction", "maxmemory-policy "+policy, nil)
	case sessions.EvictsExpiring:
		fmt.Fprintf(out, "redis eviction: WARNING: maxmemory-policy %s may evict %s\n", policy, e)
	default:
		report("redis eviction", "", fmt.Errorf("maxmemory-policy %s may evict %s", policy, e))
	}
}

// checkTLS reports the API listener's certificate: the names it is for and when it
// expires; one not valid now fails the check.
func checkTLS(files tlsFiles, out io.Writer, report func(what, found string, err error)) {
	if !files.enabled() {
		fmt.Fprintln(out, "tls: off (plain HTTP: terminate TLS in front of maskgate)")
		return
	}
	_, cert, err := files.load()
	if err != nil {
		report("tls", "", err)
		return
	}
	report("tls", "certificate for "+certNames(cert)+", expires "+cert.Leaf.NotAfter.UTC().Format(time.RFC3339), validity(cert.Leaf, time.Now()))
}
