package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
)

// brokenOutput is a standard output that refuses every write while broken is set, as a
// full disk under a file redirect or a log collector that went away does.
type brokenOutput struct {
	w      io.Writer
	broken atomic.Bool
}

func (b *brokenOutput) Write(p []byte) (int, error) {
	if b.broken.Load() {
		return 0, errors.New("no space left on device")
	}
	return b.w.Write(p)
}

// TestLostLogLinesAreCounted: when standard output refuses the access and audit lines,
// the requests are still answered, and /metrics counts every line lost, so that the
// hole in the audit trail shows where the log cannot show it.
func TestLostLogLinesAreCounted(t *testing.T) {
	_, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	out := &brokenOutput{}
	s := startWriting(t, nil, env(sim, prefix), func(w io.Writer) io.Writer { out.w = w; return out })
	lost := func() int {
		for line := range strings.Lines(s.call(t, "GET", "/metrics", "", "").body) {
			if v, ok := strings.CutPrefix(line, "maskgate_log_lines_lost_total "); ok {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
		}
		t.Fatal("/metrics has no maskgate_log_lines_lost_total")
		return 0
	}
	if n := lost(); n != 0 {
		t.Fatalf("lines lost before the output broke = %d; want 0", n)
	}
	sim.StartCall("l1", false, true)
	out.broken.Store(true)
	a := s.call(t, "POST", "/v1/agents/l1/mask", "", "") // its audit and access lines are lost
	out.broken.Store(false)
	if a.status != http.StatusOK {
		t.Fatalf("mask with the output broken = %d %s; want it answered", a.status, a.body)
	}
	// The mask's audit and access lines at least (a line of the gateway's own may have
	// fallen in the same moment); the scrape's own access line comes after it.
	if n := lost(); n < 2 {
		t.Errorf("lines lost = %d; want the mask's audit line and its access line at least", n)
	}
}

// go-redis's own lines (main hands them to redisLog) are JSON lines at warn, with
// component go-redis, instead of plain text on stderr that a collector reading JSON
// cannot parse.
func TestRedisLogLinesAreJSON(t *testing.T) {
	var out bytes.Buffer
	redisLog{zerolog.New(&out)}.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 5, errors.New("connect: connection refused"))
	var line map[string]any
	if err := json.Unmarshal(out.Bytes(), &line); err != nil || line["level"] != "warn" || line["component"] != "go-redis" ||
		line["message"] != "redis: connection pool: failed to dial after 5 attempts: connect: connection refused" {
		t.Errorf("go-redis's line came out as %q (%v)", out.String(), err)
	}
}
