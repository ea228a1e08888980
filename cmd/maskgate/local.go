package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// localAgents have an active, recorded call in the embedded simulator from the start.
var localAgents = []string{"1001", "1002", "1003"}

// localConfig starts what -local needs — miniredis, the CXone simulator on loopback, a
// random dev JWT secret — and returns the configuration that uses them. It prints a
// ready-to-paste curl with a dev token. miniredis is for trying maskgate out only.
func localConfig(env environment, out io.Writer) (config, func(), error) {
	addr := "127.0.0.1:8080"
	if v := env.get("MASKGATE_ADDR"); v != "" {
		_, port, err := net.SplitHostPort(v)
		if err != nil {
			return config{}, nil, &configError{fmt.Errorf("MASKGATE_ADDR must be host:port")}
		}
		addr = net.JoinHostPort("127.0.0.1", port) // -local never listens beyond loopback
	}
	mr, err := miniredis.Run()
	if err != nil {
		return config{}, nil, fmt.Errorf("local: miniredis: %w", err)
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
		return config{}, nil, fmt.Errorf("local: simulator: %w", err)
	}
	simSrv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = simSrv.Serve(simLn) }()
	simURL := "http://" + simLn.Addr().String()

	secret := randomHex(32)
	// The configuration is read as a deployment's is, from an environment, so that
	// -local runs with the same defaults and the same Redis client options.
	local := environment{
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
	}
	stop := func() {
		_ = simSrv.Close()
		mr.Close()
	}
	cfg, err := loadConfig(local)
	if err != nil {
		stop()
		return config{}, nil, err
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "maskgate-local", "aud": "maskgate-local", "sub": "local-dev",
		"scope": "recordings:mask recordings:unmask recordings:read",
		"iat":   time.Now().Unix(), "exp": time.Now().Add(12 * time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		stop()
		return config{}, nil, err
	}
	fmt.Fprintf(out, `
  maskgate -local: NOT FOR PRODUCTION (embedded miniredis, CXone simulator at %[1]s, dev JWT secret)
  agents with an active call: %[2]v   (add one: curl -X POST %[1]s/sim/agents/1234/calls)

  export TOKEN=%[3]s
  curl -s -X POST -H "Authorization: Bearer $TOKEN" -d '{"reason":"payment","ttlSeconds":300}' http://%[4]s/v1/agents/1001/mask
  curl -s -H "Authorization: Bearer $TOKEN" 'http://%[4]s/v1/agents/1001/mask?verify=true'
  curl -s -H "Authorization: Bearer $TOKEN" http://%[4]s/v1/masks
  curl -s -X POST -H "Authorization: Bearer $TOKEN" http://%[4]s/v1/agents/1001/unmask

`, simURL, localAgents, token, addr)
	// miniredis expires keys only when told time passed.
	expiry := time.NewTicker(time.Second)
	go func() {
		for range expiry.C {
			mr.FastForward(time.Second)
		}
	}()
	return cfg, func() { expiry.Stop(); stop() }, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
