package handlers_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/handlers"
	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/middleware"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream"
)

// instantCXone answers every mask and unmask 200 at once, in process: the benchmark
// measures the gateway, not the network to CXone.
type instantCXone struct{}

func (instantCXone) Mask(context.Context, string) (upstream.Result, error) {
	return upstream.Result{Status: 200}, nil
}
func (instantCXone) Unmask(context.Context, string) (upstream.Result, error) {
	return upstream.Result{Status: 200}, nil
}
func (instantCXone) RecordingStatus(context.Context, string) (upstream.RecordingStatus, error) {
	return upstream.RecordingStatus{}, nil
}

// BenchmarkMaskHandler is one POST mask through the whole server in process: request
// id, access log (to io.Discard), JWT, rate limit, decoding, the Redis transitions on
// the real Redis, the audit line and the answer.
func BenchmarkMaskHandler(b *testing.B) {
	rdb, prefix := testkit.Redis(b)
	store := sessions.NewStore(rdb, prefix)
	reg := prometheus.NewRegistry()
	svc := sessions.NewService(store, instantCXone{}, sessions.Config{DefaultTTL: time.Minute, MaxTTL: time.Hour, Registerer: reg})
	auth, err := middleware.NewAuthenticator(context.Background(), middleware.AuthConfig{Issuer: issuer, Audience: audience, HS256Secret: secret})
	if err != nil {
		b.Fatal(err)
	}
	h := handlers.NewServer(handlers.Deps{Log: zerolog.New(io.Discard), Sessions: svc, Replays: store, Rates: store,
		Limit: 1 << 30, Auth: auth, Registry: reg})
	tok := "Bearer " + testkit.Token(b, jwt.SigningMethodHS256, secret, testkit.Claims(issuer, audience, "recordings:mask", nil), nil)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		req := httptest.NewRequest(http.MethodPost, "/v1/agents/bench-"+strconv.Itoa(i%5000)+"/mask", strings.NewReader(`{"ttlSeconds":60}`))
		req.Header.Set("Authorization", tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
