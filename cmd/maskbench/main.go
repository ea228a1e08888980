// Command maskbench measures maskgate against a plain reverse proxy doing the same
// forward: nginx with proxy_pass and upstream keepalive, mapping
// /v1/agents/{userId}/mask to CXone's mask path. It starts, on this machine, its own
// Redis, the CXone simulator (no artificial latency) and maskgate as separate
// processes, and nginx with a generated configuration, then drives both with the same
// load: POST mask with a valid HS256 JWT over rotating agents at fixed concurrency, in
// alternating rounds, and at a fixed rate. See docs/PERFORMANCE.md.
//
// With -floor it measures a third target too, gofloor (cmd/maskbench/gofloor): the floor
// of maskgate's stack, which tells what maskgate's own work costs.
//
//	go run ./cmd/maskbench [-rounds 4] [-duration 10s] [-conns 32] [-agents 5000] [-rate 2000] [-profile DIR] [-maskgate-env NAME=value]... [-floor]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "maskbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("maskbench", flag.ContinueOnError)
	var o options
	fs.IntVar(&o.rounds, "rounds", 4, "alternating rounds, maskgate then nginx (4: A B A B; with -floor, 6: A F B A F B)")
	fs.DurationVar(&o.duration, "duration", 10e9, "length of one round")
	fs.IntVar(&o.conns, "conns", 32, "concurrent connections")
	fs.IntVar(&o.agents, "agents", 5000, "agents the masks rotate over")
	fs.IntVar(&o.rate, "rate", 2000, "requests per second of the fixed-rate run (0: none)")
	fs.StringVar(&o.nginx, "nginx", "nginx", "the nginx binary")
	fs.Func("maskgate-env", "`NAME=value` added to maskgate's environment (repeatable), e.g. GOGC=200 to compare a runtime setting", func(kv string) error {
		if !strings.Contains(kv, "=") {
			return fmt.Errorf("%q is not NAME=value", kv)
		}
		o.maskgateEnv = append(o.maskgateEnv, kv)
		return nil
	})
	fs.StringVar(&o.profile, "profile", "", "after the rounds, profile maskgate under the same load for one round and write cpu.pprof and allocs.pprof to this directory, and trace one more fixed-rate round into trace.out")
	fs.BoolVar(&o.floor, "floor", false, "add a third target, gofloor: the same forward and two Redis round trips in Go with maskgate's libraries, and nothing else")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.check(fs.NArg()); err != nil {
		return err
	}
	env, err := setUp(ctx, o)
	if err != nil {
		return err
	}
	defer env.tearDown()
	return env.measure(ctx, out)
}

// check refuses options that would measure something else than the figures say,
// before anything is started.
func (o options) check(args int) error {
	switch {
	case args > 0:
		return fmt.Errorf("it takes no arguments (%d given): -rounds, -duration and the rest are flags", args)
	case o.rounds < 2 || o.floor && o.rounds < 3:
		return errors.New("-rounds must give each target a round: at least 2, or 3 with -floor")
	case o.duration < time.Second:
		return errors.New("-duration must be at least 1s")
	case o.conns < 1 || o.rate < 0:
		return errors.New("-conns must be at least 1, and -rate 0 or more")
	case o.agents < o.conns:
		// Each connection masks its own agents in turn: with fewer agents than
		// connections, two requests for one agent would be in flight together and
		// join each other, and maskgate would be measured doing less.
		return fmt.Errorf("-agents must be at least -conns (%d)", o.conns)
	}
	return nil
}
