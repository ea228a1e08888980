package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// profileRound drives maskgate for one more round while its profiler records CPU and
// allocations, and writes both to the -profile directory for `go tool pprof`; with a
// fixed rate, then one more fixed-rate round while the runtime records an execution
// trace, which shows what the latency's tail waits for (`go tool trace -pprof=sched`).
func (b *bench) profileRound(ctx context.Context, out io.Writer) error {
	if err := os.MkdirAll(b.o.profile, 0o755); err != nil {
		return err
	}
	secs := max(1, int(b.o.duration.Seconds()))
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, p := range []struct{ endpoint, file string }{{"profile", "cpu.pprof"}, {"allocs", "allocs.pprof"}} {
		wg.Go(func() { errs[i] = b.fetchProfile(p.endpoint, secs, filepath.Join(b.o.profile, p.file)) })
	}
	b.closedLoop(ctx, b.maskgateURL, time.Duration(secs)*time.Second)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(out, "profiles of one more maskgate round: go tool pprof -top %s/cpu.pprof (and allocs.pprof)\n", b.o.profile)
	if b.o.rate == 0 {
		return nil
	}
	var err error
	wg.Go(func() { err = b.fetchProfile("trace", secs, filepath.Join(b.o.profile, "trace.out")) })
	r := b.fixedRate(ctx, b.maskgateURL, b.o.rate, time.Duration(secs)*time.Second)
	wg.Wait()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "execution trace of one more fixed-rate round (p50 %s p99 %s errors %d): go tool trace -pprof=sched %s/trace.out\n",
		ms(r.pct(.5)), ms(r.pct(.99)), r.errors, b.o.profile)
	return nil
}

// fetchProfile saves maskgate's named profile over the next secs seconds.
func (b *bench) fetchProfile(name string, secs int, path string) error {
	resp, err := http.Get(b.debugURL + "/debug/pprof/" + name + "?seconds=" + strconv.Itoa(secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("maskgate's %s profile: %s", name, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
