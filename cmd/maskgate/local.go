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
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/middleware"
	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// localAgents have an active, recorded call in the embedded simulator from the start.
var localAgents = []string{"1001", "1002", "1003"}

// localConfig starts what -local needs — miniredis, the CXone simulator on loopback, a
// random dev JWT secret — and returns the configuration that uses them. It prints a
// ready-to-paste curl with a dev token. miniredis is for trying maskgate out only.
func localConfig(getenv func(string) string, out io.Writer) (config, func(), error) {
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

	addr := "127.0.0.1:8080"
	if v := getenv("MASKGATE_ADDR"); v != "" {
		_, port, err := net.SplitHostPort(v)
		if err != nil {
			return config{}, nil, &configError{fmt.Errorf("MASKGATE_ADDR must be host:port")}
		}
		addr = net.JoinHostPort("127.0.0.1", port) // -local never listens beyond loopback
	}
	secret := []byte(randomHex(32))
	cfg := config{
		Addr:           addr,
		Redis:          redisConfig{single: &redis.Options{Addr: mr.Addr()}},
		RedisKeyPrefix: "maskgate",
		MaskTTL:        15 * time.Minute,
		MaskTTLMax:     2 * time.Hour,
		SweepInterval:  time.Second,
		SweepWorkers:   16,
		RateLimit:      50,
		DrainTimeout:   25 * time.Second,
		UnmaskGiveUp:   time.Hour,
		LogLevel:       zerolog.InfoLevel,
		Auth: middleware.AuthConfig{Issuer: "maskgate-local", Audience: "maskgate-local",
			Leeway: 30 * time.Second, HS256Secret: secret},
		CXone: upstream.Config{AuthURL: simURL + cxonesim.TokenPath, Credentials: creds, Timeout: 5 * time.Second},
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "maskgate-local", "aud": "maskgate-local", "sub": "local-dev",
		"scope": "recordings:mask recordings:unmask recordings:read",
		"iat":   time.Now().Unix(), "exp": time.Now().Add(12 * time.Hour).Unix(),
	}).SignedString(secret)
	if err != nil {
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
	stop := func() {
		expiry.Stop()
		_ = simSrv.Close()
		mr.Close()
	}
	return cfg, stop, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
