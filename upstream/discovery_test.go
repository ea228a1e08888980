package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

func TestDiscoveryFindsTheTenantsEndpoint(t *testing.T) {
	sim := testkit.NewSim(t)
	sim.StartCall("7", false, true)
	cfg := sim.UpstreamConfig()
	cfg.BaseURL = ""
	if _, err := upstream.New(cfg).Mask(context.Background(), "7"); err != nil {
		t.Fatalf("Mask through discovery: %v", err)
	}
}

// The API endpoint is discovered once per process, however many requests need it at
// once (README, Discovery).
func TestDiscoveryIsFetchedOnce(t *testing.T) {
	var discoveries atomic.Int32
	sim := simIntercepting(t, func(_ http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == cxonesim.DiscoveryPath {
			discoveries.Add(1)
		}
		return false
	})
	sim.StartCall("7", false, true)
	c := upstream.New(sim.UpstreamConfig())
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := c.Mask(context.Background(), "7"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := c.Mask(context.Background(), "7"); err != nil {
		t.Fatal(err)
	}
	if n := discoveries.Load(); n != 1 {
		t.Errorf("discovery fetched %d times for 21 masks; want 1", n)
	}
}

// A caller that stops waiting for the discovery does not end it: it goes on for the
// others (a readiness probe with a short timeout starts it, and the next probe finds
// the endpoint), bounded by CXONE_TIMEOUT alone.
func TestDiscoveryOutlivesTheCallerThatStartedIt(t *testing.T) {
	var discoveries atomic.Int32
	held := make(chan struct{})
	sim := simIntercepting(t, func(_ http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == cxonesim.DiscoveryPath {
			discoveries.Add(1)
			<-held
		}
		return false
	})
	c := upstream.New(sim.UpstreamConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Ready(ctx); err == nil {
		t.Fatal("Ready answered while the discovery was held")
	}
	close(held)
	testkit.Eventually(t, 5*time.Second, "the endpoint to be found", func() bool { return c.Ready(context.Background()) == nil })
	if n := discoveries.Load(); n != 1 {
		t.Errorf("discovery fetched %d times; want 1, which the first caller started and the next found done", n)
	}
}

// A discovery that fails leaves the mask unsent, and holds the next discovery back for
// a while (as a failed token request does: TestAFailingTokenEndpointIsNotAskedByEveryRequest);
// the first request after that asks again. Only a failure that may pass is tried again
// within the request.
func TestDiscoveryFailures(t *testing.T) {
	answer := func(status int, body string) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) { writeJSON(w, status, body) }
	}
	tests := []struct {
		name   string
		answer func(http.ResponseWriter)
		want   error
		asked  int32 // discovery requests of the failing mask
	}{
		{"not found", answer(http.StatusNotFound, `{}`), upstream.ErrRefused, 1},
		{"not JSON", answer(http.StatusOK, `<html>`), upstream.ErrRefused, 1},
		{"no api_endpoint", answer(http.StatusOK, `{"area":"na1"}`), upstream.ErrRefused, 1},
		{"api_endpoint not HTTP", answer(http.StatusOK, `{"api_endpoint":"ftp://api.example"}`), upstream.ErrRefused, 1},
		{"unavailable", answer(http.StatusServiceUnavailable, ``), upstream.ErrUnavailable, 3}, // UpstreamConfig's MaxAttempts
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var failing atomic.Bool
			failing.Store(true)
			var asked atomic.Int32
			sim := simIntercepting(t, func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != cxonesim.DiscoveryPath {
					return false
				}
				asked.Add(1)
				if !failing.Load() {
					return false
				}
				tt.answer(w)
				return true
			})
			call := sim.StartCall("7", false, true)
			// The client's clock runs, and jumps when the hold is to end.
			var ahead atomic.Int64
			cfg := sim.UpstreamConfig()
			cfg.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
			reg := prometheus.NewRegistry()
			cfg.Registerer = reg
			c := upstream.New(cfg)
			if _, err := c.Mask(context.Background(), "7"); !errors.Is(err, tt.want) {
				t.Fatalf("Mask = %v; want %v", err, tt.want)
			}
			if n := asked.Load(); n != tt.asked {
				t.Errorf("discovery asked %d times; want %d", n, tt.asked)
			}
			if got, _ := sim.Call(call.ID); got.Masked {
				t.Fatal("the call was masked although no endpoint was found")
			}
			failing.Store(false)
			if tt.want == upstream.ErrRefused {
				if _, err := c.Mask(context.Background(), "7"); !errors.Is(err, tt.want) {
					t.Fatalf("Mask at once = %v; want the refusal again, without asking", err)
				}
				if n := asked.Load(); n != tt.asked {
					t.Errorf("discovery asked %d times; want still %d", n, tt.asked)
				}
				if n := testkit.Gathered(t, reg, "maskgate_cxone_held_back_total", "reason", "discovery"); n != 1 {
					t.Errorf("maskgate_cxone_held_back_total{reason=discovery} = %v; want 1", n)
				}
			}
			ahead.Store(int64(time.Minute))
			if _, err := c.Mask(context.Background(), "7"); err != nil {
				t.Fatalf("Mask once discovery answers = %v; want the endpoint found now", err)
			}
			if got, _ := sim.Call(call.ID); !got.Masked {
				t.Error("the call is not masked")
			}
		})
	}
}

// Without a tenant in the token there is nothing to discover: the error says what to set.
func TestATokenWithoutTenantAsksForTheBaseURL(t *testing.T) {
	var discoveries atomic.Int32
	sim := simIntercepting(t, func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		case cxonesim.TokenPath:
			writeJSON(w, http.StatusOK, `{"access_token":"at","token_type":"bearer","expires_in":3600}`)
			return true
		case cxonesim.DiscoveryPath:
			discoveries.Add(1)
		}
		return false
	})
	_, err := upstream.New(sim.UpstreamConfig()).Mask(context.Background(), "7")
	if !errors.Is(err, upstream.ErrRefused) || !strings.Contains(err.Error(), "CXONE_API_BASE_URL") {
		t.Fatalf("Mask = %v; want ErrRefused naming CXONE_API_BASE_URL", err)
	}
	if n := discoveries.Load(); n != 0 {
		t.Errorf("discovery asked %d times without a tenant; want 0", n)
	}
}
