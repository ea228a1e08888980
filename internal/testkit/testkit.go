// Package testkit holds what maskgate's tests share: a real Redis connection with a
// key prefix of the test's own, the CXone simulator over real HTTP, and JWT minting.
package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// Canary starts every secret the tests make up (and the simulator's tokens start with
// "cxsim-at-"/"cxsim-rt-"), so that scripts/test can scan everything the gateways wrote
// during a whole test run for any of them.
const Canary = "canary-secret-"

// LogSink is where a gateway under test writes its log: also appended to the file
// MASKGATE_TEST_LOGS names, when set, for the scan at the end of the run.
func LogSink(t testing.TB, w io.Writer) io.Writer {
	path := os.Getenv("MASKGATE_TEST_LOGS")
	if path == "" {
		return w
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatalf("MASKGATE_TEST_LOGS: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return io.MultiWriter(w, f)
}

// RedisURL is the Redis the tests use: MASKGATE_TEST_REDIS_URL, or the local default.
func RedisURL() string {
	if u := os.Getenv("MASKGATE_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Redis connects to the test Redis and returns a key prefix no other test uses; the
// keys under it are deleted when the test ends. A test fails (never skips) when Redis
// is not there: .ci/run starts one.
func Redis(t testing.TB, hooks ...redis.Hook) (*redis.Client, string) {
	t.Helper()
	opts, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("MASKGATE_TEST_REDIS_URL: %v", err)
	}
	opts.Protocol = 2 // as maskgate's own client
	rdb := redis.NewClient(opts)
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("the tests need a real Redis at %s: %v", RedisURL(), err)
	}
	prefix := "mgtest-" + RandomHex(6)
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, "{"+prefix+"}*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	for _, h := range hooks {
		rdb.AddHook(h)
	}
	return rdb, prefix
}

// Keys returns the keys under prefix.
func Keys(t testing.TB, rdb *redis.Client, prefix string) []string {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), "{"+prefix+"}*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// Sim is a CXone simulator served over real HTTP on loopback.
type Sim struct {
	*cxonesim.Sim
	URL         string
	Credentials upstream.Credentials
}

// NewSim starts a simulator with fresh credentials; it stops when the test ends.
func NewSim(t testing.TB) *Sim { return NewSimServing(t, 0, nil) }

// NewSimServing is NewSim with a request log of at most maxRequests (0: all, as tests
// want) and, when wrap is not nil, served through wrap (to watch what reaches it).
func NewSimServing(t testing.TB, maxRequests int, wrap func(http.Handler) http.Handler) *Sim {
	t.Helper()
	creds := upstream.Credentials{
		ClientID:        "client id/with:specials",
		ClientSecret:    Canary + "client-secret-" + RandomHex(8),
		AccessKeyID:     "key-" + RandomHex(4),
		AccessKeySecret: Canary + "key-secret-" + RandomHex(8),
	}
	sim := cxonesim.New(cxonesim.Options{ClientID: creds.ClientID, ClientSecret: creds.ClientSecret,
		AccessKeyID: creds.AccessKeyID, AccessKeySecret: creds.AccessKeySecret, MaxRequests: maxRequests})
	var h http.Handler = sim
	if wrap != nil {
		h = wrap(sim)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &Sim{Sim: sim, URL: srv.URL, Credentials: creds}
}

// UpstreamConfig is a client configuration for the simulator, with API discovery and
// short timeouts and backoffs so that failure tests stay quick.
func (s *Sim) UpstreamConfig() upstream.Config {
	return upstream.Config{
		AuthURL:     s.URL + cxonesim.TokenPath,
		Credentials: s.Credentials,
		Timeout:     time.Second,
		MaxAttempts: 3,
		BaseBackoff: 10 * time.Millisecond,
		MaxBackoff:  50 * time.Millisecond,
		// The client's goroutines end this long after it is closed: the tests that
		// count goroutines must not wait for the production default.
		IdleTimeout: time.Second,
	}
}

// Token signs claims with method and key.
func Token(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	maps.Copy(tok.Header, header)
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Claims are valid claims for issuer and audience with the given scope, merged with extra.
func Claims(issuer, audience, scope string, extra jwt.MapClaims) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"iss": issuer, "aud": audience, "sub": "test-caller", "scope": scope,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// RandomHex returns 2n random hex characters.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Eventually polls cond every 10 ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// CommandHook is a redis.Hook that hands every single command to its function, with
// the next hook to call, and leaves dials and pipelines alone.
type CommandHook func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error

func (h CommandHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h CommandHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h CommandHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { return h(ctx, cmd, next) }
}

// CommandCounter is a redis.Hook that counts the commands a client sends, alone or in
// a pipeline, that Match accepts.
type CommandCounter struct {
	Match func(redis.Cmder) bool
	n     atomic.Int64
}

// N is how many commands were counted.
func (c *CommandCounter) N() int64 { return c.n.Load() }

func (c *CommandCounter) count(cmd redis.Cmder) {
	if c.Match(cmd) {
		c.n.Add(1)
	}
}

func (c *CommandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *CommandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.count(cmd); return next(ctx, cmd) }
}
func (c *CommandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.count(cmd)
		}
		return next(ctx, cmds)
	}
}

// LogBuffer collects log lines that several goroutines (a server, a sweeper, a child
// process's output) write while the test reads them.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// LogLines are the JSON lines a gateway logged, each as its fields; a line that is not
// JSON fails the test.
func LogLines(t testing.TB, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for l := range strings.Lines(logs) {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("a log line is not JSON: %q", l)
		}
		out = append(out, line)
	}
	return out
}
