package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/api"
	"github.com/maskgate/maskgate/handlers"
	"github.com/maskgate/maskgate/middleware"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream"
)

// app is the wired gateway.
type app struct {
	handler  http.Handler
	tls      *tls.Config // nil: plain HTTP
	sweeper  *sessions.Sweeper
	store    *sessions.Store
	cx       *upstream.Client
	draining *atomic.Bool // set on SIGTERM: /readyz answers 503
	close    func()
}

// maxHeaderBytes bounds a request's headers: a caller's JWT is a few KiB, and Go's
// default of 1 MiB per request lets idle clients hold memory for nothing.
const maxHeaderBytes = 64 << 10

// newServer is the API's HTTP server. A request may wait up to its budget for another
// operation on the agent and then spend its own budget on CXone: the answer must be
// allowed to go out after both (40 s by default), or an operation that happened would
// reach its caller as a dropped connection.
func newServer(c config, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      c.longestRequest() + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// newApp wires the gateway from its configuration: Redis, the CXone client, the
// authenticator, the session service, its sweeper and the HTTP server; log writes to
// logs.
func newApp(ctx context.Context, cfg config, log zerolog.Logger, logs *logWriter) (*app, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoCollector(),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "maskgate_log_lines_lost_total",
			Help: "Log lines, audit lines among them, that standard output refused.",
		}, func() float64 { return float64(logs.lost.Load()) }))
	var tlsConfig *tls.Config
	if cfg.TLS.enabled() {
		cert, err := newServingCert(cfg.TLS, log, reg)
		if err != nil {
			return nil, &configError{err}
		}
		tlsConfig = cert.config()
	}

	rdb := cfg.Redis.client()

	actx, cancelAuth := context.WithCancel(context.WithoutCancel(ctx))
	cfg.Auth.Log = log
	auth, err := middleware.NewAuthenticator(actx, cfg.Auth)
	if err != nil {
		cancelAuth()
		rdb.Close()
		return nil, &configError{err}
	}
	cxCfg := cfg.CXone
	cxCfg.Registerer = reg
	cx := upstream.New(cxCfg)
	store := sessions.NewStore(rdb, cfg.RedisKeyPrefix)
	svc := sessions.NewService(store, cx, sessions.Config{
		DefaultTTL:     cfg.MaskTTL,
		MaxTTL:         cfg.MaskTTLMax,
		UpstreamBudget: cfg.requestBudget(),
		UnmaskGiveUp:   cfg.UnmaskGiveUp,
		// A quarter of the CXone slots at most for callers' ?verify=true.
		MaxVerifying: max(1, cfg.CXone.MaxInFlight/4),
		Registerer:   reg,
	})
	sweeper := svc.NewSweeper(sessions.SweeperConfig{
		Interval:    cfg.SweepInterval,
		Concurrency: cfg.SweepWorkers,
		// A claim must outlast one CXone attempt; a dead replica's claims wait this long.
		Lease: 2 * cfg.CXone.Timeout,
		Log:   log.With().Str("component", "sweeper").Logger(),
	})
	draining := &atomic.Bool{}
	h := handlers.NewServer(handlers.Deps{
		Log:            log,
		Sessions:       svc,
		Replays:        store,
		Rates:          store,
		Limit:          cfg.RateLimit,
		TrustedProxies: cfg.TrustedProxies,
		CORSOrigins:    cfg.CORSOrigins,
		LongestRequest: cfg.longestRequest(),
		Auth:           auth,
		Registry:       reg,
		Checks: []handlers.Check{
			{Name: string(api.ReadyCheckRedis), Fn: svc.Ready},
			{Name: string(api.ReadyCheckCXone), Fn: cx.Ready},
			{Name: string(api.ReadyCheckJWTKeys), Fn: auth.Ready},
			{Name: string(api.ReadyCheckShutdown), Fn: func(context.Context) error {
				if draining.Load() {
					return errors.New("shutting down")
				}
				return nil
			}},
		},
	})
	return &app{handler: h, tls: tlsConfig, sweeper: sweeper, store: store, cx: cx, draining: draining, close: func() { cancelAuth(); cx.Close(); rdb.Close() }}, nil
}

// serveDebug serves Go's profiler on its own listener, away from the API and its auth.
func serveDebug(addr string, log zerolog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (MASKGATE_DEBUG_ADDR): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		// It has no authentication: whoever reaches it reads maskgate's internals and
		// can keep its CPU busy profiling.
		log.Warn().Str("addr", ln.Addr().String()).Msg("profiler listening beyond loopback: anyone who reaches it can read maskgate's internals; bind MASKGATE_DEBUG_ADDR to 127.0.0.1")
	} else {
		log.Info().Str("addr", ln.Addr().String()).Msg("profiler listening")
	}
	return func() { srv.Close() }, nil
}
