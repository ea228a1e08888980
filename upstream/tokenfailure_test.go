package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// A token endpoint (or discovery document) that fails or refuses: what the error says,
// and never a secret; a failure asked again within the request's attempts, a refusal
// not; and while it fails, the endpoint not asked again by every request.

func TestTokenFailures(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*upstream.Config, *testkit.Sim)
		want   error
		words  string
	}{
		{"wrong client secret", func(c *upstream.Config, _ *testkit.Sim) { c.Credentials.ClientSecret = "nope-not-it" }, upstream.ErrRefused, "invalid_client"},
		{"wrong access key secret", func(c *upstream.Config, _ *testkit.Sim) { c.Credentials.AccessKeySecret = "nope-not-it" }, upstream.ErrRefused, "invalid_grant"},
		{"token endpoint down", func(_ *upstream.Config, s *testkit.Sim) { s.SetFaults(cxonesim.Faults{TokenDown: true}) }, upstream.ErrUnavailable, "503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := testkit.NewSim(t)
			cfg := sim.UpstreamConfig()
			tt.mutate(&cfg, sim)
			err := upstream.New(cfg).Ready(context.Background())
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.words) {
				t.Fatalf("Ready = %v; want %v mentioning %q", err, tt.want, tt.words)
			}
			for _, secret := range []string{cfg.Credentials.ClientSecret, cfg.Credentials.AccessKeySecret, sim.Credentials.ClientSecret, sim.Credentials.AccessKeySecret} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error %q shows a secret", err)
				}
			}
		})
	}
}

// A token endpoint or a discovery document that fails once, as CXone's API can, is
// asked again within the request's attempts (README, CXone calls per request).
func TestATransientTokenOrDiscoveryFailureIsRetried(t *testing.T) {
	for _, path := range []string{cxonesim.TokenPath, cxonesim.DiscoveryPath} {
		t.Run(path, func(t *testing.T) {
			var asked atomic.Int32
			sim := simIntercepting(t, func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != path || asked.Add(1) > 1 {
					return false
				}
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return true
			})
			call := sim.StartCall("7", false, true)
			if _, err := upstream.New(sim.UpstreamConfig()).Mask(context.Background(), "7"); err != nil {
				t.Fatalf("Mask = %v; want it to succeed on a second attempt", err)
			}
			if n := asked.Load(); n != 2 {
				t.Errorf("%s asked %d times; want 2", path, n)
			}
			if got, _ := sim.Call(call.ID); !got.Masked {
				t.Error("the call is not masked")
			}
		})
	}
}

// A token request the endpoint refuses (an OAuth error) is not asked again within the
// request: the same credentials would be refused again.
func TestARefusedTokenIsNotAskedAgain(t *testing.T) {
	var asked atomic.Int32
	sim := simIntercepting(t, func(_ http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == cxonesim.TokenPath {
			asked.Add(1)
		}
		return false
	})
	cfg := sim.UpstreamConfig()
	cfg.Credentials.AccessKeySecret = "nope-not-it"
	if _, err := upstream.New(cfg).Mask(context.Background(), "7"); !errors.Is(err, upstream.ErrRefused) {
		t.Fatalf("Mask = %v; want ErrRefused", err)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("token requests = %d; want 1", n)
	}
}

// tokenEndpoint is a simulator whose token endpoint counts the requests it gets and
// answers them with failing's status instead, while that is not 0 (a 429 asking to
// wait 5 s).
func tokenEndpoint(t *testing.T) (sim *testkit.Sim, asked, failing *atomic.Int32) {
	asked, failing = new(atomic.Int32), new(atomic.Int32)
	sim = simIntercepting(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != cxonesim.TokenPath {
			return false
		}
		asked.Add(1)
		switch failing.Load() {
		case 0:
			return false
		case http.StatusUnauthorized:
			writeJSON(w, http.StatusUnauthorized, `{"error":"invalid_grant","error_description":"access key revoked"}`)
		case http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "5")
			writeJSON(w, http.StatusTooManyRequests, `{"error":"slow_down"}`)
		default:
			writeJSON(w, int(failing.Load()), `{"error":"temporarily_unavailable"}`)
		}
		return true
	})
	sim.StartCall("7", false, true)
	return sim, asked, failing
}

// A token endpoint that fails is not asked again by every request that needs a token,
// nor by each of their attempts: under load, a revoked access key or an outage of
// CXone's authentication would otherwise send it a token request for every request of
// the gateway's, and a flood of refused password grants can get a key locked. After a
// transient failure the next token request waits as long as a request's retry would
// at least (half of the backoff, doubling while the failures go on); after a refusal
// 30 s, since the same credentials are refused until someone changes them at CXone.
// A Retry-After of CXone's holds it back as long as it asks. Meanwhile every request
// gets the failure at once. The client's clock stands still
// until the test moves it, so only the holds decide.
func TestAFailingTokenEndpointIsNotAskedByEveryRequest(t *testing.T) {
	tests := []struct {
		name        string
		status      int32
		want        error
		first, next time.Duration // how long the first failure holds the next token request back, and the second
		held        float64       // attempts of the 20 masks held back (3 attempts each while the failure may pass)
	}{
		{"refused", http.StatusUnauthorized, upstream.ErrRefused, 30 * time.Second, 30 * time.Second, 19},
		{"down", http.StatusServiceUnavailable, upstream.ErrUnavailable, 2 * time.Millisecond, 4 * time.Millisecond, 59},
		{"asking to wait", http.StatusTooManyRequests, upstream.ErrUnavailable, 5 * time.Second, 5 * time.Second, 19},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, asked, failing := tokenEndpoint(t)
			failing.Store(tt.status)
			reg := prometheus.NewRegistry()
			c, at := clockedClient(sim, func(c *upstream.Config) {
				c.BaseBackoff, c.MaxBackoff, c.Registerer = 4*time.Millisecond, time.Second, reg
			})
			mask := func(want error) {
				t.Helper()
				// A budget shorter than the Retry-After: the request answers at once.
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				if _, err := c.Mask(ctx, "7"); !errors.Is(err, want) {
					t.Fatalf("Mask = %v; want %v", err, want)
				}
			}
			for range 20 {
				mask(tt.want)
			}
			if n := asked.Load(); n != 1 {
				t.Fatalf("token requests for 20 masks = %d; want 1", n)
			}
			if n := testkit.Gathered(t, reg, "maskgate_cxone_held_back_total", "reason", "token"); n != tt.held {
				t.Errorf("maskgate_cxone_held_back_total{reason=token} = %v; want %v", n, tt.held)
			}
			at(tt.first - time.Millisecond)
			mask(tt.want)
			at(tt.first)
			mask(tt.want)
			if n := asked.Load(); n != 2 {
				t.Fatalf("token requests once the first hold ended = %d; want 2", n)
			}
			at(tt.first + tt.next - time.Millisecond)
			mask(tt.want)
			if n := asked.Load(); n != 2 {
				t.Fatalf("token requests before the second hold ended = %d; want 2", n)
			}
			failing.Store(0)
			at(tt.first + tt.next)
			mask(nil)
			if n := asked.Load(); n != 3 {
				t.Fatalf("token requests once the token endpoint answers = %d; want 3", n)
			}
		})
	}
}

// A background renewal that fails is not started again by every request that still
// uses the current token: the next renewal waits as a failed token request's does.
func TestAFailingRenewalIsNotRetriedByEveryRequest(t *testing.T) {
	sim, asked, failing := tokenEndpoint(t)
	reg := prometheus.NewRegistry()
	c, at := clockedClient(sim, func(cfg *upstream.Config) { cfg.Registerer = reg })
	if _, err := c.Mask(context.Background(), "7"); err != nil {
		t.Fatal(err)
	}
	failing.Store(http.StatusServiceUnavailable)
	at(58*time.Minute + 30*time.Second) // within the renewal margin, the token still valid
	if _, err := c.Mask(context.Background(), "7"); err != nil {
		t.Fatal(err)
	}
	// The renewal's answer read, not only its request sent: a request after the expiry
	// below would otherwise join that renewal still in flight, and ask nothing itself.
	testkit.Eventually(t, 5*time.Second, "a background renewal, failed", func() bool {
		return testkit.Gathered(t, reg, "maskgate_cxone_token_requests_total", "status", "503") == 1
	})
	if n := asked.Load(); n != 2 {
		t.Fatalf("token requests = %d; want 2: the first, and the renewal", n)
	}
	for range 10 {
		if _, err := c.Mask(context.Background(), "7"); err != nil {
			t.Fatalf("Mask with the current token while its renewal fails = %v", err)
		}
	}
	// Once the token expired, a request waits for a token request of its own, and by
	// then every token request started before it has been answered.
	at(time.Hour)
	if _, err := c.Mask(context.Background(), "7"); !errors.Is(err, upstream.ErrUnavailable) {
		t.Fatalf("Mask after expiry with the token endpoint down = %v; want ErrUnavailable", err)
	}
	if n := asked.Load(); n != 3 {
		t.Errorf("token requests = %d; want 3: the first, one renewal while the token was valid, one after it expired", n)
	}
}
