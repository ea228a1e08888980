package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPercentilesAndRate: a round's percentiles are read off its sorted latencies at
// their rank, and its rate is its requests over its elapsed time.
func TestPercentilesAndRate(t *testing.T) {
	var r result
	for i := 1; i <= 1000; i++ {
		r.latencies = append(r.latencies, time.Duration(i)*time.Millisecond)
	}
	r.requests, r.elapsed = 1000, 4*time.Second
	for p, want := range map[float64]time.Duration{.5: 501 * time.Millisecond, .99: 991 * time.Millisecond, .999: time.Second} {
		if got := r.pct(p); got != want {
			t.Errorf("pct(%v) = %v, want %v", p, got, want)
		}
	}
	if got := r.rps(); got != 250 {
		t.Errorf("rps = %v, want 250", got)
	}
	if got := (result{}).pct(.99); got != 0 {
		t.Errorf("pct of no latencies = %v, want 0", got)
	}
}

// agentServer stands in for a target: it answers each POST mask as told by status,
// after hold, and records which agents it was asked for, how many at once, and on how
// many connections.
type agentServer struct {
	t      *testing.T
	hold   time.Duration
	status func(agent string) int

	mu                sync.Mutex
	inFlight, asked   map[string]int
	overlaps, conns   int
	badHeaders, total int
}

func newAgentServer(t *testing.T, hold time.Duration, status func(string) int) (*agentServer, string) {
	s := &agentServer{t: t, hold: hold, status: status, inFlight: map[string]int{}, asked: map[string]int{}}
	srv := httptest.NewUnstartedServer(s)
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func (s *agentServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	agent, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v1/agents/"), "/mask")
	body := make([]byte, 64)
	n, _ := r.Body.Read(body)
	s.mu.Lock()
	s.total++
	if !ok || r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer the-token" ||
		r.Header.Get("Content-Type") != "application/json" || string(body[:n]) != `{"ttlSeconds":600}` {
		s.badHeaders++
	}
	s.asked[agent]++
	if s.inFlight[agent]++; s.inFlight[agent] > 1 {
		s.overlaps++
	}
	s.mu.Unlock()
	time.Sleep(s.hold) // a target's work, so that requests overlap
	s.mu.Lock()
	s.inFlight[agent]--
	s.mu.Unlock()
	w.WriteHeader(s.status(agent))
}

func ok200(string) int { return http.StatusOK }

// TestClosedLoopNeverSendsOneAgentTwiceAtOnce: each worker masks its own agents on its
// own connection, so no two requests for one agent are ever in flight together (they
// would join each other in maskgate), and a status other than 200 is an error.
func TestClosedLoopNeverSendsOneAgentTwiceAtOnce(t *testing.T) {
	srv, url := newAgentServer(t, 2*time.Millisecond, func(agent string) int {
		if agent == "bench-7" {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	b := &bench{o: options{conns: 8, agents: 20}, token: "the-token"}
	res := b.closedLoop(context.Background(), url, 300*time.Millisecond)

	srv.mu.Lock()
	defer srv.mu.Unlock()
	if res.requests != srv.total || res.requests < 20 {
		t.Errorf("counted %d requests; the server saw %d (want at least one per agent)", res.requests, srv.total)
	}
	if res.errors != srv.asked["bench-7"] || res.errors == 0 {
		t.Errorf("counted %d errors; the server refused %d", res.errors, srv.asked["bench-7"])
	}
	if srv.overlaps != 0 {
		t.Errorf("%d requests found their agent already in flight", srv.overlaps)
	}
	if srv.conns > 8 {
		t.Errorf("8 workers opened %d connections, want one each", srv.conns)
	}
	if srv.badHeaders != 0 {
		t.Errorf("%d requests were not a POST mask with the token and a JSON body", srv.badHeaders)
	}
	if len(srv.asked) != 20 {
		t.Errorf("masked %d agents, want all 20: %v", len(srv.asked), srv.asked)
	}
	for i := 1; i < len(res.latencies); i++ {
		if res.latencies[i] < res.latencies[i-1] {
			t.Fatal("latencies are not sorted")
		}
	}
	if res.pct(0) < 2*time.Millisecond {
		t.Errorf("fastest request took %v; the server held each for 2ms", res.pct(0))
	}
}

// TestFixedRateSendsItsRateWhateverTheAnswers: the fixed rate sends rate × duration
// requests, rotating over the agents, and times each from when it was due, so a slow
// target cannot slow the load down and hide its own delay.
func TestFixedRateSendsItsRateWhateverTheAnswers(t *testing.T) {
	srv, url := newAgentServer(t, 30*time.Millisecond, ok200)
	b := &bench{o: options{agents: 40}, token: "the-token"}
	res := b.fixedRate(context.Background(), url, 200, time.Second)

	srv.mu.Lock()
	defer srv.mu.Unlock()
	if res.requests != 200 || srv.total != 200 || res.errors != 0 {
		t.Errorf("sent %d requests (server saw %d, %d errors); want 200 at 200/s for 1s", res.requests, srv.total, res.errors)
	}
	for i := range 40 {
		if n := srv.asked[agent(i)]; n != 5 {
			t.Errorf("%s masked %d times, want 5", agent(i), n)
		}
	}
	if res.pct(0) < 30*time.Millisecond {
		t.Errorf("fastest request took %v; the server held each for 30ms", res.pct(0))
	}
}
