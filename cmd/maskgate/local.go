package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// localSupplies are the settings -local supplies itself, whatever the environment
// says: its listener on loopback, plain HTTP, no profiler; its Redis, callers' key and
// CXone simulator.
var localSupplies = []string{"MASKGATE_ADDR", "MASKGATE_TLS_CERT_FILE", "MASKGATE_TLS_KEY_FILE", "MASKGATE_DEBUG_ADDR",
	"MASKGATE_REDIS_URL", "MASKGATE_REDIS_URL_FILE", "MASKGATE_JWT_ISSUER", "MASKGATE_JWT_AUDIENCE",
	"MASKGATE_JWT_HS256_SECRET", "MASKGATE_JWT_HS256_SECRET_FILE", "MASKGATE_JWT_HS256_PREVIOUS_SECRET",
	"MASKGATE_JWT_HS256_PREVIOUS_SECRET_FILE", "MASKGATE_JWT_PUBLIC_KEY_FILE", "MASKGATE_JWT_JWKS_URL",
	"MASKGATE_ALLOW_PLAIN_HTTP", "CXONE_AUTH_URL", "CXONE_API_BASE_URL", "CXONE_CLIENT_ID", "CXONE_CLIENT_SECRET",
	"CXONE_CLIENT_SECRET_FILE", "CXONE_ACCESS_KEY_ID", "CXONE_ACCESS_KEY_SECRET", "CXONE_ACCESS_KEY_SECRET_FILE"}

// localAgents have an active, recorded call in the embedded simulator from the start.
var localAgents = []string{"1001", "1002", "1003"}

// localMode is what maskgate -local runs with.
type localMode struct {
	cfg config
	// greet tells the user, once maskgate listens on addr, what it runs on and how to
	// call it: a dev token and ready-to-paste curls to that address.
	greet func(out io.Writer, addr string)
	stop  func() // stops the embedded Redis and simulator
}

// startLocal starts what -local needs — miniredis, the CXone simulator on loopback, a
// random dev JWT secret — and returns the configuration that uses them. miniredis is
// for trying maskgate out only.
func startLocal(env environment) (localMode, error) {
	addr := "127.0.0.1:8080"
	if v := env["MASKGATE_ADDR"]; v != "" {
		_, port, err := net.SplitHostPort(v)
		if err != nil {
			return localMode{}, &configError{fmt.Errorf("MASKGATE_ADDR must be host:port")}
		}
		addr = net.JoinHostPort("127.0.0.1", port) // -local never listens beyond loopback
	}
	mr, err := miniredis.Run()
	if err != nil {
		return localMode{}, fmt.Errorf("local: miniredis: %w", err)
	}
	creds := upstream.Credentials{ClientID: "local-client", ClientSecret: randomHex(16), AccessKeyID: "local-key", AccessKeySecret: randomHex(16)}
	sim := cxonesim.New(cxonesim.Options{ClientID: creds.ClientID, ClientSecret: creds.ClientSecret,
		AccessKeyID: creds.AccessKeyID, AccessKeySecret: creds.AccessKeySecret})
	for _, a := range localAgents {
		sim.StartCall(a, false, true)
	}
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		mr.Close()
		return localMode{}, fmt.Errorf("local: simulator: %w", err)
	}
	simSrv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = simSrv.Serve(simLn) }()
	simURL := "http://" + simLn.Addr().String()

	// The configuration is read as a deployment's is, from the environment, so that
	// -local runs with the same defaults and Redis client options, and honours the
	// environment's settings (MASKGATE_MASK_TTL=30s to see an expiry soon), but for
	// those it supplies itself.
	secret := randomHex(32)
	local, supplied := maps.Clone(env), []string(nil)
	for _, name := range localSupplies {
		if local[name] != "" && name != "MASKGATE_ADDR" {
			supplied = append(supplied, name)
		}
		delete(local, name)
	}
	maps.Copy(local, environment{
		"MASKGATE_ADDR":             addr,
		"MASKGATE_REDIS_URL":        "redis://" + mr.Addr(),
		"MASKGATE_JWT_ISSUER":       "maskgate-local",
		"MASKGATE_JWT_AUDIENCE":     "maskgate-local",
		"MASKGATE_JWT_HS256_SECRET": secret,
		"CXONE_AUTH_URL":            simURL + cxonesim.TokenPath,
		"CXONE_CLIENT_ID":           creds.ClientID,
		"CXONE_CLIENT_SECRET":       creds.ClientSecret,
		"CXONE_ACCESS_KEY_ID":       creds.AccessKeyID,
		"CXONE_ACCESS_KEY_SECRET":   creds.AccessKeySecret,
	})
	stop := func() {
		_ = simSrv.Close()
		mr.Close()
	}
	cfg, err := loadConfig(local)
	if err != nil {
		stop()
		return localMode{}, err
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "maskgate-local", "aud": "maskgate-local", "sub": "local-dev",
		"scope": "recordings:mask recordings:unmask recordings:read",
		"iat":   time.Now().Unix(), "exp": time.Now().Add(12 * time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		stop()
		return localMode{}, err
	}
	greet := func(out io.Writer, addr string) {
		fmt.Fprintf(out, `
  maskgate -local: NOT FOR PRODUCTION (embedded miniredis, CXone simulator at %[1]s, dev JWT secret)
  agents with an active call: %[2]v   (add one: curl -X POST %[1]s/sim/agents/1234/calls)

  export TOKEN=%[3]s
  curl -s -X POST -H "Authorization: Bearer $TOKEN" -d '{"reason":"payment","ttlSeconds":300}' http://%[4]s/v1/agents/1001/mask
  curl -s -H "Authorization: Bearer $TOKEN" 'http://%[4]s/v1/agents/1001/mask?verify=true'
  curl -s -H "Authorization: Bearer $TOKEN" http://%[4]s/v1/masks
  curl -s -X POST -H "Authorization: Bearer $TOKEN" http://%[4]s/v1/agents/1001/unmask

`, simURL, localAgents, token, addr)
		if len(supplied) > 0 {
			fmt.Fprintf(out, "  ignored, -local supplies its own: %s\n\n", strings.Join(supplied, ", "))
		}
	}
	// miniredis expires keys only when told time passed.
	done := make(chan struct{})
	go func() {
		expiry := time.NewTicker(time.Second)
		defer expiry.Stop()
		for {
			select {
			case <-expiry.C:
				mr.FastForward(time.Second)
			case <-done:
				return
			}
		}
	}()
	return localMode{cfg: cfg, greet: greet, stop: func() { close(done); stop() }}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
