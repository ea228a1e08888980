package testkit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// The helpers decide whether many tests pass: a helper that waits without failing, or
// reads past a line it should refuse, would let those tests pass on nothing. These
// tests hold each to its doc comment.

// fatalRecorder is a testing.TB whose Fatal ends the goroutine, as a test's does, and
// records the message instead of failing the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fatalRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

// fatalOf runs fn with a fatalRecorder and returns what it failed with ("": nothing).
func fatalOf(t *testing.T, fn func(tb testing.TB)) string {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); fn(r) }()
	<-done
	return r.msg
}

func TestEventuallyReturnsOnceItsConditionHolds(t *testing.T) {
	calls := 0
	msg := fatalOf(t, func(tb testing.TB) {
		Eventually(tb, time.Minute, "the third look", func() bool { calls++; return calls == 3 })
	})
	if msg != "" || calls != 3 {
		t.Errorf("Eventually failed with %q after %d looks; want success on the third", msg, calls)
	}
}

func TestEventuallyFailsWhenItsTimeRunsOut(t *testing.T) {
	calls := 0
	msg := fatalOf(t, func(tb testing.TB) {
		Eventually(tb, 50*time.Millisecond, "what never comes", func() bool { calls++; return false })
	})
	if msg != "timed out after 50ms waiting for what never comes" {
		t.Errorf("Eventually failed with %q", msg)
	}
	if calls < 2 {
		t.Errorf("Eventually looked %d times in 50ms; it should poll", calls)
	}
}

func TestLogLinesAreEachLinesFields(t *testing.T) {
	var lines []map[string]any
	msg := fatalOf(t, func(tb testing.TB) { lines = LogLines(tb, "{\"a\":1}\n{\"b\":\"x\"}\n") })
	if msg != "" || len(lines) != 2 || lines[0]["a"] != 1.0 || lines[1]["b"] != "x" {
		t.Errorf("LogLines = %v (failed with %q)", lines, msg)
	}
	for _, logs := range []string{"{\"a\":1}\nstarting up\n", "{\"a\":1}\n{\"b\":"} {
		if msg := fatalOf(t, func(tb testing.TB) { LogLines(tb, logs) }); !strings.Contains(msg, "a log line is not JSON") {
			t.Errorf("LogLines(%q) failed with %q; want the line refused", logs, msg)
		}
	}
}

func TestLogSinkAppendsToTheRunsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs")
	if err := os.WriteFile(path, []byte("an earlier test's line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MASKGATE_TEST_LOGS", path)
	var buf LogBuffer
	t.Run("gateway", func(t *testing.T) { fmt.Fprintln(LogSink(t, &buf), `{"msg":"listening"}`) })
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "an earlier test's line\n{\"msg\":\"listening\"}\n" || buf.String() != "{\"msg\":\"listening\"}\n" {
		t.Errorf("the run's file holds %q and the test's writer %q", got, buf.String())
	}
}

func TestRedisDeletesItsKeysWhenTheTestEnds(t *testing.T) {
	var prefix string
	t.Run("user", func(t *testing.T) {
		var rdb *redis.Client
		rdb, prefix = Redis(t)
		for _, k := range []string{"{" + prefix + "}:a", "{" + prefix + "}:b"} {
			if err := rdb.Set(context.Background(), k, "1", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if keys := Keys(t, rdb, prefix); len(keys) != 2 {
			t.Errorf("Keys = %v, want the two set", keys)
		}
	})
	rdb, other := Redis(t)
	if other == prefix || !strings.HasPrefix(prefix, "mgtest-") {
		t.Errorf("prefixes %q and %q: want two of their own", prefix, other)
	}
	if keys := Keys(t, rdb, prefix); len(keys) != 0 {
		t.Errorf("the ended test's keys are still there: %v", keys)
	}
}

// The tests use the Redis the environment names (.ci/run starts one on another port when
// 6379 is taken), and a test with no Redis there fails: a skip would let a run on a
// machine without one pass having tested nothing.
func TestRedisFailsWithoutTheOneTheEnvironmentNames(t *testing.T) {
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", FreePort(t))
	t.Setenv("MASKGATE_TEST_REDIS_URL", url)
	msg := fatalOf(t, func(tb testing.TB) { Redis(tb) })
	if want := "the tests need a real Redis at " + url + ": "; !strings.HasPrefix(msg, want) {
		t.Errorf("Redis with none at %s failed with %q; want %q and the error", url, msg, want)
	}
}

// The secret scan at the end of scripts/test finds what the tests made up only
// because every secret begins with Canary and the simulator's tokens with cxsim-.
func TestSimCredentialsAndTokensAreMarkedForTheSecretScan(t *testing.T) {
	sim := NewSim(t)
	if c := sim.Credentials; !strings.HasPrefix(c.ClientSecret, Canary) || !strings.HasPrefix(c.AccessKeySecret, Canary) {
		t.Errorf("the simulator's secrets are not marked: %+v", c)
	}
	form := url.Values{"grant_type": {"password"}, "username": {sim.Credentials.AccessKeyID}, "password": {sim.Credentials.AccessKeySecret}}
	req, _ := http.NewRequest(http.MethodPost, sim.URL+cxonesim.TokenPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(sim.Credentials.ClientID), url.QueryEscape(sim.Credentials.ClientSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.AccessToken, "cxsim-at-") || !strings.HasPrefix(tok.RefreshToken, "cxsim-rt-") {
		t.Errorf("%s: the simulator's tokens are not marked: %+v", resp.Status, tok)
	}
}

func TestClaimsMergesAndDeletes(t *testing.T) {
	c := Claims("the-issuer", "the-audience", "a b", map[string]any{"sub": "app", "exp": nil, "agent_id": "7"})
	if c["iss"] != "the-issuer" || c["aud"] != "the-audience" || c["scope"] != "a b" || c["sub"] != "app" || c["agent_id"] != "7" {
		t.Errorf("Claims = %v", c)
	}
	if _, ok := c["exp"]; ok {
		t.Errorf("a nil extra did not delete exp: %v", c)
	}
	if iat := c["iat"].(int64); iat > time.Now().Unix() || iat < time.Now().Add(-time.Minute).Unix() {
		t.Errorf("iat %d is not now", iat)
	}
}

func TestCommandCounterCountsCommandsAloneAndPipelined(t *testing.T) {
	counter := &CommandCounter{Match: func(c redis.Cmder) bool { return c.Name() == "get" }}
	rdb, prefix := Redis(t, counter)
	ctx := context.Background()
	k := "{" + prefix + "}:k"
	rdb.Get(ctx, k)
	rdb.Set(ctx, k, "1", 0)
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, k)
		p.Get(ctx, k)
		p.Set(ctx, k, "2", 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := counter.N(); n != 3 {
		t.Errorf("counted %d GETs, want 3: one alone, two pipelined", n)
	}
}

func TestGatheredSumsTheMatchingSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	answers := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "answers_total"}, []string{"code", "route"})
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{Name: "in_flight"})
	reg.MustRegister(answers, inFlight)
	answers.WithLabelValues("200", "mask").Add(2)
	answers.WithLabelValues("500", "mask").Add(3)
	answers.WithLabelValues("500", "unmask").Add(5)
	inFlight.Set(4)
	for _, c := range []struct {
		name  string
		label []string
		want  float64
	}{
		{"answers_total", nil, 10},
		{"answers_total", []string{"code", "500"}, 8},
		{"answers_total", []string{"code", "500", "route", "mask"}, 3},
		{"answers_total", []string{"code", "404"}, 0},
		{"answers_total", []string{"status", "500"}, 0}, // a label it does not have
		{"in_flight", nil, 4},
		{"absent_total", nil, 0},
	} {
		if got := Gathered(t, reg, c.name, c.label...); got != c.want {
			t.Errorf("Gathered(%s, %v) = %v, want %v", c.name, c.label, got, c.want)
		}
	}
}
