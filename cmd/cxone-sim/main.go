// Command cxone-sim runs the CXone simulator of package cxonesim as its own process,
// for docker-compose, load tests and trying maskgate against something CXone-shaped.
// Its control API is described in the README.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/maskgate/maskgate/upstream/cxonesim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "cxone-sim:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("cxone-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	tokenTTL := fs.Duration("token-ttl", time.Hour, "lifetime of issued access tokens")
	requestLog := fs.Int("request-log", 100_000, "how many answered requests GET /sim/requests keeps (the latest)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		// `cxone-sim 127.0.0.1:9000` would otherwise listen on the default address.
		return fmt.Errorf("it takes no arguments (%d given): -addr sets the listen address", fs.NArg())
	}
	if *tokenTTL < time.Second {
		// The token's expires_in counts whole seconds: under one, it would say 0,
		// and a token that lives no time is refused.
		return errors.New("-token-ttl must be at least 1s")
	}
	opts := cxonesim.Options{
		ClientID:        getenv("CXONE_CLIENT_ID"),
		ClientSecret:    getenv("CXONE_CLIENT_SECRET"),
		AccessKeyID:     getenv("CXONE_ACCESS_KEY_ID"),
		AccessKeySecret: getenv("CXONE_ACCESS_KEY_SECRET"),
		TokenTTL:        *tokenTTL,
		MaxRequests:     *requestLog,
	}
	if opts.MaxRequests < 1 {
		return errors.New("-request-log must be at least 1")
	}
	if opts.ClientID == "" || opts.ClientSecret == "" || opts.AccessKeyID == "" || opts.AccessKeySecret == "" {
		return errors.New("set CXONE_CLIENT_ID, CXONE_CLIENT_SECRET, CXONE_ACCESS_KEY_ID and CXONE_ACCESS_KEY_SECRET: the credentials it accepts")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: cxonesim.New(opts), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(stderr, "cxone-sim listening on http://%s (token endpoint %s)\n", ln.Addr(), cxonesim.TokenPath)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
