package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/api"
	"github.com/maskgate/maskgate/handlers"
)

// healthcheck asks the local gateway's /readyz, for container health checks (the
// image has no shell or curl): nil when it answers 200. It reads the gateway's own
// configuration, so that it asks the port and the scheme the gateway listens on. It
// leaves CXone's check out, as the Kubernetes example's readiness probe does: an
// unhealthy container is restarted or replaced by Docker Swarm and ECS, which cannot
// mend CXone, and CXone failing would fail every replica's check at once, while the
// gateway still accepts unmasks and answers reads.
func healthcheck(ctx context.Context, env environment) error {
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	// Where the gateway listens (loadConfig checked that the address splits): loopback
	// when it listens on every address, else the one address it listens on.
	host, port, _ := net.SplitHostPort(cfg.Addr)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	// Longer than /readyz bounds its checks, so that a slow one is answered, and named.
	ctx, cancel := context.WithTimeout(ctx, handlers.ReadyTimeout+time.Second)
	defer cancel()
	scheme, client := "http", http.DefaultClient
	if cfg.TLS.enabled() {
		// The certificate names the service, not the address asked, and nothing is sent
		// that needs protecting: only the answer's status is read.
		scheme, client = "https", &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		}}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, port)+"/readyz?exclude="+string(api.ReadyCheckCXone), nil)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		checks, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("readyz answered %d: %s", resp.StatusCode, bytes.TrimSpace(checks))
	}
	return nil
}

// devToken prints a one-hour token with every scope, signed with the configured HS256
// secret, for trying a gateway out (docker compose). It needs the secret, so it gives
// nobody anything they could not sign themselves.
func devToken(env environment, out io.Writer) error {
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	if len(cfg.Auth.HS256Secret) == 0 {
		return &configError{errors.New("dev-token needs MASKGATE_JWT_HS256_SECRET(_FILE)")}
	}
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": cfg.Auth.Issuer, "aud": cfg.Auth.Audience, "sub": "dev-token",
		"scope": "recordings:mask recordings:unmask recordings:read",
		"iat":   now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}).SignedString(cfg.Auth.HS256Secret)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, tok)
	return nil
}
