package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
	lost := func() float64 { return s.metric(t, "maskgate_log_lines_lost_total") }
	if n := lost(); n != 0 {
		t.Fatalf("lines lost before the output broke = %v; want 0", n)
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
		t.Errorf("lines lost = %v; want the mask's audit line and its access line at least", n)
	}
}

// go-redis's lines go through the logWriter that main hands run as standard output
// (main sets go-redis's one logger for the process): run writes through that same
// writer, so a go-redis line that standard output refuses is counted with the
// gateway's own.
func TestLostRedisClientLinesAreCounted(t *testing.T) {
	_, prefix := testkit.Redis(t)
	out := &brokenOutput{}
	var stdout *logWriter
	s := startWriting(t, nil, env(testkit.NewSim(t), prefix), func(w io.Writer) io.Writer {
		out.w = w
		stdout = &logWriter{w: out}
		return stdout
	})
	redisLines := &redisLog{log: zerolog.New(stdout)} // as main makes it
	lost := s.metric(t, "maskgate_log_lines_lost_total")
	out.broken.Store(true)
	redisLines.Printf(context.Background(), "sentinel: new master=%q addr=%q", "mymaster", "10.0.0.7:6379")
	out.broken.Store(false)
	if n := s.metric(t, "maskgate_log_lines_lost_total"); n < lost+1 {
		t.Errorf("lines lost = %v, then %v after a go-redis line was refused; want it counted", lost, n)
	}
}

// go-redis's own lines (here, a pool that cannot dial) come out of the real main as
// JSON lines on stdout at warn, with component go-redis, instead of the plain text on
// stderr that a collector reading JSON cannot parse.
func TestRedisClientsOwnLinesAreJSON(t *testing.T) {
	_, prefix := testkit.Redis(t)
	e := env(testkit.NewSim(t), prefix)
	e["MASKGATE_REDIS_URL"] = "redis://127.0.0.1:" + strconv.Itoa(testkit.FreePort(t)) + "/0"
	p := spawn(t, e)
	testkit.Eventually(t, 20*time.Second, "go-redis's line about the pool that cannot dial", func() bool {
		for _, l := range testkit.LogLines(t, p.out.String()) {
			if msg, _ := l["message"].(string); l["component"] == "go-redis" && l["level"] == "warn" &&
				l["service"] == "maskgate" && strings.Contains(msg, "dial") {
				return true
			}
		}
		return false
	})
}

// go-redis repeats a line for every connection its pool fails to dial, several times a
// second while Redis is down: each kind of line (its format) is written once per
// redisLogEvery, and another kind (a Sentinel's switch) still gets through.
func TestRedisClientsRepeatedLinesAreWrittenOnce(t *testing.T) {
	var logs testkit.LogBuffer
	l := &redisLog{log: zerolog.New(&logs)}
	for range 5 {
		l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 5, errors.New("connection refused"))
	}
	l.Printf(context.Background(), "sentinel: new master=%q addr=%q", "mymaster", "10.0.0.7:6379")
	lines := testkit.LogLines(t, logs.String())
	if len(lines) != 2 || !strings.Contains(lines[0]["message"].(string), "failed to dial") || !strings.Contains(lines[1]["message"].(string), "new master") {
		t.Errorf("lines = %v; want the dial failure once, then the new master", lines)
	}
}
