package upstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

func TestMaskAndUnmaskReachTheAgentsLatestCall(t *testing.T) {
	sim := testkit.NewSim(t)
	older := sim.StartCall("42", false, true)
	latest := sim.StartCall("42", false, true)
	c := upstream.New(sim.UpstreamConfig())

	res, err := c.Mask(context.Background(), "42")
	if err != nil || res.Status != http.StatusOK || res.Accepted() {
		t.Fatalf("Mask = %+v, %v; want 200", res, err)
	}
	if got, _ := sim.Call(latest.ID); !got.Masked {
		t.Error("the latest joined call is not masked")
	}
	if got, _ := sim.Call(older.ID); got.Masked {
		t.Error("an older call was masked")
	}
	if _, err := c.Unmask(context.Background(), "42"); err != nil {
		t.Fatalf("Unmask: %v", err)
	}
	if got, _ := sim.Call(latest.ID); got.Masked || len(got.MaskedSpans()) != 1 {
		t.Errorf("after unmask: masked=%v spans=%v; want unmasked with one masked span", got.Masked, got.MaskedSpans())
	}
}

func TestAnswersMapToErrors(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(*testkit.Sim)
		want     error
		status   int
		requests int // mask requests the simulator saw
	}{
		{"no active call", func(*testkit.Sim) {}, upstream.ErrNoActiveCall, 404, 1},
		{"internal call", func(s *testkit.Sim) { s.StartCall("7", true, true) }, upstream.ErrInternalCall, 422, 1},
		{"persistent 503", func(s *testkit.Sim) {
			s.StartCall("7", false, true)
			s.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: 503})
		}, upstream.ErrUnavailable, 503, 3},
		{"persistent 500", func(s *testkit.Sim) {
			s.StartCall("7", false, true)
			s.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: 500})
		}, upstream.ErrUnavailable, 500, 3},
		{"persistent 504", func(s *testkit.Sim) {
			s.StartCall("7", false, true)
			s.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: 504})
		}, upstream.ErrTimeout, 504, 3},
		{"locked beyond the attempts", func(s *testkit.Sim) {
			s.StartCall("7", false, true)
			s.SetBehaviour("7", 10, 0)
		}, upstream.ErrUnavailable, 425, 3},
		{"undocumented 400", func(s *testkit.Sim) {
			s.StartCall("7", false, true)
			s.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: 400})
		}, upstream.ErrRefused, 400, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := testkit.NewSim(t)
			tt.setup(sim)
			_, err := upstream.New(sim.UpstreamConfig()).Mask(context.Background(), "7")
			var ue *upstream.Error
			if !errors.Is(err, tt.want) || !errors.As(err, &ue) || ue.Status != tt.status {
				t.Fatalf("Mask = %v; want %v with status %d", err, tt.want, tt.status)
			}
			if n := sim.Count("mask", "7", 0); n != tt.requests {
				t.Errorf("mask requests = %d; want %d", n, tt.requests)
			}
		})
	}
}

// A recording status whose 200 carries no status document is not believed, and not
// asked for again: the same would come.
func TestUndecodableRecordingStatusIsRefused(t *testing.T) {
	var asked atomic.Int32
	sim := simIntercepting(t, func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/get-recording-status") {
			return false
		}
		asked.Add(1)
		writeJSON(w, http.StatusOK, `["not", "a", "status"]`)
		return true
	})
	_, err := upstream.New(sim.UpstreamConfig()).RecordingStatus(context.Background(), "7")
	if !errors.Is(err, upstream.ErrRefused) || !strings.Contains(err.Error(), "undecodable") {
		t.Fatalf("RecordingStatus = %v; want ErrRefused, undecodable answer", err)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("recording status asked %d times; want 1", n)
	}
}

func TestLockedAgentIsRetriedUntilCXoneAccepts(t *testing.T) {
	sim := testkit.NewSim(t)
	sim.StartCall("7", false, true)
	sim.SetBehaviour("7", 2, 0)
	res, err := upstream.New(sim.UpstreamConfig()).Mask(context.Background(), "7")
	if err != nil || res.Status != 200 || res.Attempts != 3 {
		t.Fatalf("Mask = %+v, %v; want 200 on the third attempt", res, err)
	}
}

func TestAsyncAnswerIsAccepted(t *testing.T) {
	sim := testkit.NewSim(t)
	call := sim.StartCall("7", false, true)
	sim.SetBehaviour("7", 0, 50*time.Millisecond)
	res, err := upstream.New(sim.UpstreamConfig()).Mask(context.Background(), "7")
	if err != nil || !res.Accepted() {
		t.Fatalf("Mask = %+v, %v; want 202", res, err)
	}
	testkit.Eventually(t, 2*time.Second, "the simulator to finish the mask", func() bool {
		c, _ := sim.Call(call.ID)
		return c.Masked
	})
}

func TestHungCXoneTimesOutPerAttempt(t *testing.T) {
	sim := testkit.NewSim(t)
	sim.StartCall("7", false, true)
	cfg := sim.UpstreamConfig()
	cfg.Timeout = 100 * time.Millisecond
	cfg.MaxAttempts = 2
	c := upstream.New(cfg)
	if err := c.Ready(context.Background()); err != nil { // token first: the hang is for the API only
		t.Fatal(err)
	}
	sim.SetFaults(cxonesim.Faults{Hang: true})
	_, err := c.Mask(context.Background(), "7")
	var ue *upstream.Error
	if !errors.Is(err, upstream.ErrTimeout) || !errors.As(err, &ue) || ue.Attempts != 2 {
		t.Fatalf("Mask = %v; want ErrTimeout after 2 attempts", err)
	}
}

func TestCallerThatGoesAwayIsNotRetried(t *testing.T) {
	sim := testkit.NewSim(t)
	sim.StartCall("7", false, true)
	c := upstream.New(sim.UpstreamConfig())
	if err := c.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	sim.SetFaults(cxonesim.Faults{Hang: true})
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(zerolog.New(&logs).WithContext(context.Background()))
	time.AfterFunc(100*time.Millisecond, cancel) // the caller hangs up during the first attempt
	_, err := c.Mask(ctx, "7")
	var ue *upstream.Error
	if !errors.Is(err, context.Canceled) || !errors.As(err, &ue) || ue.Attempts != 1 {
		t.Fatalf("Mask = %v; want the caller's cancellation after 1 attempt", err)
	}
	if strings.Contains(logs.String(), "retrying") {
		t.Errorf("a request whose caller has gone was logged as retried:\n%s", logs.String())
	}
}

func TestUnreachableCXoneIsUnavailable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens there any more
	c := upstream.New(upstream.Config{AuthURL: srv.URL + "/auth/token", BaseURL: srv.URL, MaxAttempts: 1})
	_, err := c.Mask(context.Background(), "7")
	if !errors.Is(err, upstream.ErrUnavailable) {
		t.Fatalf("Mask = %v; want ErrUnavailable", err)
	}
}

func TestInFlightRequestsAreBounded(t *testing.T) {
	sim := testkit.NewSim(t)
	cfg := sim.UpstreamConfig()
	cfg.MaxInFlight = 3
	c := upstream.New(cfg)
	if err := c.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	sim.SetFaults(cxonesim.Faults{LatencyMs: 100})
	var peak atomic.Int32
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if h := int32(sim.Held()); h > peak.Load() {
				peak.Store(h)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	for i := range 12 {
		id := fmt.Sprint(i)
		sim.StartCall(id, false, true)
		wg.Go(func() { c.Mask(context.Background(), id) })
	}
	wg.Wait()
	close(done)
	if p := peak.Load(); p != 3 {
		t.Errorf("peak CXone requests in flight = %d; want the bound, 3", p)
	}
	if n := sim.Count("mask", "", 200); n != 12 {
		t.Errorf("masks done = %d; want all 12, queued behind the bound", n)
	}
}

// simIntercepting is a simulator whose requests go through intercept first: it answers
// one itself and returns true, or returns false to let the simulator answer.
func simIntercepting(t *testing.T, intercept func(http.ResponseWriter, *http.Request) bool) *testkit.Sim {
	return testkit.NewSimServing(t, 0, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !intercept(w, r) {
				h.ServeHTTP(w, r)
			}
		})
	})
}

// writeJSON answers status with a JSON body.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

// A failed operation says whether any of its requests went to CXone's API: one that
// never did (no token, no free slot) cannot have been carried out, and its caller may
// forget it (sessions removes a mask's write-ahead record then).
func TestAFailureSaysWhetherAnythingWentToCXone(t *testing.T) {
	tests := []struct {
		name    string
		fail    func(*testkit.Sim, *upstream.Client) error
		notSent bool
	}{
		{"no token", func(s *testkit.Sim, c *upstream.Client) error {
			s.SetFaults(cxonesim.Faults{TokenDown: true})
			_, err := c.Mask(context.Background(), "7")
			return err
		}, true},
		{"the API unavailable", func(s *testkit.Sim, c *upstream.Client) error {
			s.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: 503})
			_, err := c.Mask(context.Background(), "7")
			return err
		}, false},
		{"refused, then no new token", func(s *testkit.Sim, c *upstream.Client) error {
			if err := c.Ready(context.Background()); err != nil {
				return err
			}
			s.RevokeTokens() // a 401, then a token request that fails
			s.SetFaults(cxonesim.Faults{TokenDown: true})
			_, err := c.Mask(context.Background(), "7")
			return err
		}, false},
		{"no free slot", func(s *testkit.Sim, c *upstream.Client) error {
			s.StartCall("8", false, true)
			s.SetHang("8", true)
			go c.Mask(context.Background(), "8") // holds the only slot until its timeout
			testkit.Eventually(t, 5*time.Second, "the slot to be taken", func() bool { return s.Held() == 1 })
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			_, err := c.Mask(ctx, "7")
			return err
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := testkit.NewSim(t)
			sim.StartCall("7", false, true)
			cfg := sim.UpstreamConfig()
			cfg.MaxInFlight = 1
			err := tt.fail(sim, upstream.New(cfg))
			if err == nil {
				t.Fatal("Mask succeeded; want a failure")
			}
			if got := errors.Is(err, upstream.ErrNotSent); got != tt.notSent {
				t.Errorf("Mask = %v: ErrNotSent %v; want %v", err, got, tt.notSent)
			}
			if sent := sim.Count("mask", "7", 0) > 0; sent == tt.notSent {
				t.Errorf("the simulator got a mask: %v; the error says not sent: %v", sent, tt.notSent)
			}
		})
	}
}
