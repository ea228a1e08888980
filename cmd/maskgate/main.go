// Command maskgate is the gateway in front of NICE CXone's Multi-ACD mask and unmask
// APIs. Configuration comes from the environment (see README); `maskgate -local` runs
// it with no configuration against an embedded Redis and CXone simulator.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/sessions"
)

func main() {
	// zerolog only offers this setting globally.
	zerolog.TimeFieldFormat = sessions.TimeFormat
	// go-redis has one logger for the whole process (so it is set here, not in run,
	// which tests start many times over): JSON lines on stdout like the gateway's own,
	// through the same logWriter, so that a line of go-redis's lost is counted too.
	stdout := &logWriter{w: os.Stdout}
	redis.SetLogger(&redisLog{log: zerolog.New(stdout).With().Timestamp().Str("service", "maskgate").Logger()})
	env := processEnvironment()
	tuneGC(env)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], env, stdout, os.Stderr); err != nil {
		var ue *usageError
		if !errors.As(err, &ue) || !ue.said {
			fmt.Fprintln(os.Stderr, "maskgate:", err)
		}
		var ce *configError
		if errors.As(err, &ce) || ue != nil {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a command line maskgate cannot take: main exits 2, as for a
// configuration that cannot run, and says what is wrong unless flag has said it
// already (said), with the usage.
type usageError struct {
	err  error
	said bool
}

func (e *usageError) Error() string { return e.err.Error() }

// gcPercent is maskgate's GOGC unless the environment sets one. Its live heap is a few
// MiB, so with Go's default of 100 it collects about every 150 requests under load, and
// on shared cores each collection costs far more than its share of a CPU profile shows.
// maskbench measured, in alternated runs: at 400 less CPU per request than at 100 (0.14
// against 0.17-0.19 ms); at 800 no more CPU saved but about 1 ms less p99 than at 400 at
// a fixed 2,000 requests/s; peak resident memory 28, 46 and 68 MiB (docs/PERFORMANCE.md,
// item 5, and the runs in docs/PERFORMANCE-HISTORY.md).
const gcPercent = 800

// tuneGC sets the garbage collector's target to gcPercent unless the operator chose one
// with GOGC. GOMEMLIMIT, when set, still bounds the heap either way.
func tuneGC(env environment) {
	if env["GOGC"] == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// subcommands are what maskgate does instead of serving, when the first argument
// names one: check-config (the configuration and what it points at), healthcheck (the
// local /readyz, for containers), dev-token (a token signed with the configured HS256
// secret), audit-open (the sessions an audit trail leaves open), version. args are the
// arguments after the subcommand's name.
var subcommands = []struct {
	name     string
	withArgs bool // takes arguments; the others refuse any
	run      func(ctx context.Context, args []string, env environment, stdout io.Writer) error
}{
	{"check-config", false, func(ctx context.Context, _ []string, env environment, stdout io.Writer) error {
		return checkConfig(ctx, env, stdout)
	}},
	{"healthcheck", false, func(ctx context.Context, _ []string, env environment, _ io.Writer) error {
		return healthcheck(ctx, env)
	}},
	{"dev-token", false, func(_ context.Context, _ []string, env environment, stdout io.Writer) error {
		return devToken(env, stdout)
	}},
	{"audit-open", true, func(_ context.Context, args []string, _ environment, stdout io.Writer) error {
		return auditOpen(args, stdout)
	}},
	{"version", false, func(_ context.Context, _ []string, _ environment, stdout io.Writer) error {
		return printVersion(stdout)
	}},
}

// run is the whole program: it returns when ctx ends (after a graceful shutdown) or
// when the server cannot start, unless args name one of the subcommands.
func run(ctx context.Context, args []string, env environment, stdout, stderr io.Writer) error {
	for _, sub := range subcommands {
		if len(args) > 0 && args[0] == sub.name {
			if len(args) > 1 && !sub.withArgs {
				// Not ignored: `dev-token -agent 1001` would print a token of every
				// scope. Not repeated either: one may be a secret in the wrong place.
				return &usageError{err: fmt.Errorf("%s takes no arguments (%d given): its settings come from the environment", sub.name, len(args)-1)}
			}
			return sub.run(ctx, args[1:], env, stdout)
		}
	}
	fs := flag.NewFlagSet("maskgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	local := fs.Bool("local", false, "run with an embedded Redis and CXone simulator, for trying maskgate out (not for production)")
	fs.Usage = func() {
		names := make([]string, len(subcommands))
		for i, sub := range subcommands {
			names[i] = sub.name
		}
		fmt.Fprintf(stderr, "usage: maskgate [-local]         serve (configured by the environment: README, Configuration)\n"+
			"       maskgate %s\n", strings.Join(names, " | "))
		fs.PrintDefaults()
	}
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		return nil
	case err != nil:
		return &usageError{err: err, said: true}
	case fs.Arg(0) == "help" && fs.NArg() == 1:
		fs.Usage()
		return nil
	case fs.NArg() > 0:
		fs.Usage()
		return &usageError{err: fmt.Errorf("unknown command %q", fs.Arg(0))}
	}
	var (
		cfg   config
		err   error
		greet func(io.Writer, string) // -local's dev token and curls, once it listens
	)
	if *local {
		lm, err := startLocal(env)
		if err != nil {
			return err
		}
		defer lm.stop()
		cfg, greet = lm.cfg, lm.greet
	} else if cfg, err = loadConfig(env); err != nil {
		return err
	}
	logs, ok := stdout.(*logWriter) // main's, which go-redis's lines also go through
	if !ok {
		logs = &logWriter{w: stdout}
	}
	log := zerolog.New(logs).Level(cfg.LogLevel).With().Timestamp().Str("service", "maskgate").Logger()
	if *local {
		log.Warn().Msg("LOCAL MODE: embedded miniredis and CXone simulator, dev JWT secret; NOT FOR PRODUCTION")
	}
	logConfiguration(log, cfg)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		if *local { // someone trying maskgate out, on 8080 unless told otherwise
			return fmt.Errorf("listen on %s: %w (MASKGATE_ADDR=:8081 picks another port)", cfg.Addr, err)
		}
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	app, err := newApp(ctx, cfg, log, logs)
	if err != nil {
		ln.Close()
		return err
	}
	defer app.close()
	srv := newServer(cfg, app.handler)
	serve := func() error { return srv.Serve(ln) }
	if app.tls != nil {
		srv.TLSConfig = app.tls
		serve = func() error { return srv.ServeTLS(ln, "", "") }
	}
	if cfg.DebugAddr != "" {
		stopDebug, err := serveDebug(cfg.DebugAddr, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopDebug()
	}
	served := make(chan error, 1)
	go func() { served <- serve() }()
	sweepCtx, stopSweeper := context.WithCancel(context.WithoutCancel(ctx))
	swept := make(chan struct{})
	go func() { app.sweeper.Run(sweepCtx); close(swept) }()
	if greet != nil {
		greet(stderr, ln.Addr().String())
	}
	log.Info().Str("addr", ln.Addr().String()).Bool("tls", app.tls != nil).Str("version", buildVersion()).Msg("listening")
	if !*local { // miniredis evicts nothing
		go reportEvictionPolicy(sweepCtx, app.store, cfg.Redis.roundTrip(), log)
	}
	go reportTenantEndpoint(sweepCtx, app.cx, cfg.CXone.BaseURL, 30*time.Second, log)

	select {
	case err := <-served:
		stopSweeper()
		<-swept
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Unready at once, so that load balancers stop sending; then, after the configured
	// delay, stop listening and let the requests in flight finish.
	app.draining.Store(true)
	log.Info().Dur("delay", cfg.ShutdownDelay).Msg("shutting down: /readyz answers 503")
	time.Sleep(cfg.ShutdownDelay)
	log.Info().Msg("draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.DrainTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	stopSweeper() // hands the claims it holds to the other replicas
	<-swept
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info().Msg("stopped")
	return nil
}
