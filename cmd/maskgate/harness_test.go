package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// The harness of this package's tests: maskgate started in-process with an environment,
// called over HTTP, its log lines and metrics read.

// TestMain lets a test run the real main in a child process (to see its exit status).
func TestMain(m *testing.M) {
	if os.Getenv("MASKGATE_RUN_MAIN") == "1" {
		os.Args = append([]string{"maskgate"}, strings.Fields(os.Getenv("MASKGATE_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const hsSecret = testkit.Canary + "jwt-hs256-0123456789abcdef"

// env is a complete, valid configuration for sim and the test Redis.
func env(sim *testkit.Sim, prefix string) map[string]string {
	return map[string]string{
		"MASKGATE_ADDR":             "127.0.0.1:0",
		"MASKGATE_REDIS_URL":        testkit.RedisURL(),
		"MASKGATE_REDIS_KEY_PREFIX": prefix,
		"MASKGATE_RATE_LIMIT":       "100000",
		"MASKGATE_JWT_ISSUER":       "https://idp.test",
		"MASKGATE_JWT_AUDIENCE":     "maskgate",
		"MASKGATE_JWT_HS256_SECRET": hsSecret,
		"CXONE_AUTH_URL":            sim.URL + cxonesim.TokenPath,
		"CXONE_CLIENT_ID":           sim.Credentials.ClientID,
		"CXONE_CLIENT_SECRET":       sim.Credentials.ClientSecret,
		"CXONE_ACCESS_KEY_ID":       sim.Credentials.AccessKeyID,
		"CXONE_ACCESS_KEY_SECRET":   sim.Credentials.AccessKeySecret,
	}
}

// callerToken is a caller's JWT with scope, as the configuration env makes trusts.
func callerToken(t *testing.T, scope string) string {
	return testkit.Token(t, jwt.SigningMethodHS256, []byte(hsSecret), testkit.Claims("https://idp.test", "maskgate", scope, nil), nil)
}

// started runs maskgate in the background and returns its address once it listens.
type started struct {
	addr    string
	version string             // as its "listening" line says
	tls     bool               // as its "listening" line says
	env     map[string]string  // its environment
	https   *http.Client       // set when it serves TLS: trusts its certificate
	cancel  context.CancelFunc // what SIGTERM does
	wait    func() error       // run's result, once it returned
	stderr  *strings.Builder

	startup []map[string]any // the log lines before "listening"

	mu    sync.Mutex
	lines []map[string]any // the log lines after "listening"
}

// logLine waits for the first log line after "listening" whose message is msg.
func (s *started) logLine(t *testing.T, msg string) map[string]any {
	t.Helper()
	return s.logLineWith(t, msg, nil)
}

// logLineWith waits for the first log line after "listening" whose message is msg and
// whose fields include these.
func (s *started) logLineWith(t *testing.T, msg string, fields map[string]any) map[string]any {
	t.Helper()
	var found map[string]any
	testkit.Eventually(t, 20*time.Second, fmt.Sprintf("log line %q with %v", msg, fields), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, l := range s.lines {
			if l["message"] == msg && matches(l, fields) {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

func matches(line, fields map[string]any) bool {
	for k, v := range fields {
		if line[k] != v {
			return false
		}
	}
	return true
}

// start runs maskgate with args and the environment e until the test ends.
func start(t *testing.T, args []string, e map[string]string) *started {
	t.Helper()
	return startWriting(t, args, e, func(w io.Writer) io.Writer { return w })
}

// startWriting is start with the gateway's standard output passed through out.
func startWriting(t *testing.T, args []string, e map[string]string, out func(io.Writer) io.Writer) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	s := &started{env: e, cancel: cancel, wait: sync.OnceValue(func() error { return <-done }), stderr: &strings.Builder{}}
	go func() {
		done <- run(ctx, args, environment(e), out(testkit.LogSink(t, pw)), testkit.LogSink(t, s.stderr))
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	for lines.Scan() {
		var entry struct {
			Message, Addr, Version string
			TLS                    bool
		}
		_ = json.Unmarshal(lines.Bytes(), &entry)
		if entry.Message == "listening" {
			s.addr, s.version, s.tls = entry.Addr, entry.Version, entry.TLS
			break
		}
		var line map[string]any
		if json.Unmarshal(lines.Bytes(), &line) == nil {
			s.startup = append(s.startup, line)
		}
	}
	if s.addr == "" {
		cancel()
		t.Fatalf("maskgate did not start: %v %s", s.wait(), s.stderr)
	}
	go func() {
		for lines.Scan() {
			var l map[string]any
			if json.Unmarshal(lines.Bytes(), &l) == nil {
				s.mu.Lock()
				s.lines = append(s.lines, l)
				s.mu.Unlock()
			}
		}
		io.Copy(io.Discard, pr) // a line too long for the scanner
	}()
	t.Cleanup(func() {
		cancel()
		_ = s.wait()
	})
	return s
}

// onRedis starts a gateway on the Redis at url (keys under prefix), its sweeper ticking
// every 200 ms.
func onRedis(t *testing.T, sim *testkit.Sim, url, prefix string) *started {
	t.Helper()
	e := env(sim, prefix)
	e["MASKGATE_REDIS_URL"] = url
	e["MASKGATE_SWEEP_INTERVAL"] = "200ms"
	return start(t, nil, e)
}

// answer is what the gateway answered.
type answer struct {
	status int
	header http.Header
	body   string
	proto  string // HTTP/1.1 or HTTP/2.0
}

// code is the problem code of an error answer ("" for any other).
func (a answer) code() string {
	var p struct{ Code string }
	_ = json.Unmarshal([]byte(a.body), &p)
	return p.Code
}

// call sends a request with a token of every caller scope, and with an Idempotency-Key
// unless idemKey is "".
func (s *started) call(t *testing.T, method, path, body, idemKey string) answer {
	t.Helper()
	a, err := s.send(t, method, path, body, idemKey)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// metric is the value /metrics gives the unlabelled metric name.
func (s *started) metric(t *testing.T, name string) float64 {
	t.Helper()
	for line := range strings.Lines(s.call(t, "GET", "/metrics", "", "").body) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// send is call that returns a failure to get an answer instead of ending the test.
func (s *started) send(t *testing.T, method, path, body, idemKey string) (answer, error) {
	base, client := "http://"+s.addr, http.DefaultClient
	if s.https != nil {
		base, client = "https://"+s.addr, s.https
	}
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+callerToken(t, "recordings:mask recordings:unmask recordings:read"))
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b), resp.Proto}, nil
}

func post(t *testing.T, url, token string) (*http.Response, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	return http.DefaultClient.Do(req)
}
