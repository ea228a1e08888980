package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/middleware"
	"github.com/maskgate/maskgate/upstream"
)

// checkFailed is a check-config run that found a problem: main exits 1.
type checkFailed struct{ n int }

func (e *checkFailed) Error() string { return fmt.Sprintf("%d check(s) failed", e.n) }

// checkConfig validates the configuration, reaches Redis, obtains a CXone token,
// resolves the API endpoint and loads the JWT keys, printing what it found and never
// a secret. Exit status: 0 all good, 1 a check failed, 2 the configuration is invalid.
func checkConfig(ctx context.Context, getenv func(string) string, out io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "configuration: ok")
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	failed := 0
	report := func(what, found string, err error) {
		if err != nil {
			failed++
			fmt.Fprintf(out, "%s: FAILED: %v\n", what, err)
			return
		}
		fmt.Fprintf(out, "%s: ok (%s)\n", what, found)
	}

	rdb := cfg.Redis.client()
	defer rdb.Close()
	report("redis", cfg.Redis.describe(), rdb.Ping(ctx).Err())

	cxCfg := cfg.CXone
	cxCfg.Registerer = prometheus.NewRegistry()
	endpoint, err := upstream.New(cxCfg).Endpoint(ctx)
	how := "discovered from the token's tenant"
	if cfg.CXone.BaseURL != "" {
		how = "configured"
	}
	report("cxone token", "client "+cfg.CXone.Credentials.ClientID+", access key "+cfg.CXone.Credentials.AccessKeyID, err)
	if err == nil {
		report("cxone api endpoint", endpoint+", "+how, nil)
	}

	auth := cfg.Auth
	auth.Log = zerolog.Nop()
	a, err := middleware.NewAuthenticator(ctx, auth)
	if err == nil {
		err = a.Ready(ctx)
	}
	report("jwt keys", keySource(cfg.Auth)+"; iss "+cfg.Auth.Issuer+", aud "+cfg.Auth.Audience, err)

	if failed > 0 {
		return &checkFailed{failed}
	}
	return nil
}

func keySource(a middleware.AuthConfig) string {
	switch {
	case len(a.HS256Secret) > 0:
		return "HS256 shared secret"
	case len(a.PublicKeyPEM) > 0:
		return "public key file"
	default:
		return "JWKS " + a.JWKSURL
	}
}
