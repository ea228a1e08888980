package upstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

func TestOneTokenServesConcurrentRequests(t *testing.T) {
	sim := testkit.NewSim(t)
	sim.StartCall("7", false, true)
	c := upstream.New(sim.UpstreamConfig())
	var wg sync.WaitGroup
	var failures atomic.Int32
	for range 50 {
		wg.Go(func() {
			if _, err := c.Mask(context.Background(), "7"); err != nil {
				failures.Add(1)
			}
		})
	}
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of 50 masks failed", failures.Load())
	}
	if n := sim.TokensIssued(); n != 1 {
		t.Errorf("token requests = %d for 50 concurrent calls; want 1 (no stampede)", n)
	}
}

// clockedClient is a client of sim whose clock stands still until the returned func
// moves it to d after the start; configure, when given, changes its configuration.
func clockedClient(sim *testkit.Sim, configure ...func(*upstream.Config)) (*upstream.Client, func(d time.Duration)) {
	var now atomic.Pointer[time.Time]
	start := time.Now()
	now.Store(&start)
	cfg := sim.UpstreamConfig()
	cfg.Now = func() time.Time { return *now.Load() }
	for _, f := range configure {
		f(&cfg)
	}
	return upstream.New(cfg), func(d time.Duration) {
		later := start.Add(d)
		now.Store(&later)
	}
}

// maskLater masks agent 7 on a new client whose clock it controls, then again after d
// on that clock: two masks across a token's life.
func maskLater(t *testing.T, sim *testkit.Sim, d time.Duration) {
	t.Helper()
	sim.StartCall("7", false, true)
	c, at := clockedClient(sim)
	if _, err := c.Mask(context.Background(), "7"); err != nil {
		t.Fatal(err)
	}
	at(d)
	if _, err := c.Mask(context.Background(), "7"); err != nil {
		t.Fatal(err)
	}
}

func TestTokenIsRenewedBeforeExpiryWithoutBlocking(t *testing.T) {
	sim := testkit.NewSim(t)
	// The simulator's tokens live one hour: 58m30s later the token is within the
	// two-minute renewal margin but still valid.
	maskLater(t, sim, 58*time.Minute+30*time.Second)
	testkit.Eventually(t, 5*time.Second, "a background renewal", func() bool { return sim.TokensIssued() == 2 })
	if n := sim.Count("mask", "7", http.StatusUnauthorized); n != 0 {
		t.Errorf("%d masks were refused with 401; a renewal must not let any request fail", n)
	}
}

func TestExpiredTokenIsReplacedBeforeTheRequest(t *testing.T) {
	sim := testkit.NewSim(t)
	maskLater(t, sim, 2*time.Hour)
	if n := sim.TokensIssued(); n != 2 {
		t.Errorf("tokens issued = %d; want 2", n)
	}
}

func TestRevokedTokenIsRefreshedOnceAndTheRequestRetried(t *testing.T) {
	sim := testkit.NewSim(t)
	sim.StartCall("7", false, true)
	c := upstream.New(sim.UpstreamConfig())
	if _, err := c.Mask(context.Background(), "7"); err != nil {
		t.Fatal(err)
	}
	sim.RevokeTokens()
	res, err := c.Unmask(context.Background(), "7")
	if err != nil || res.Status != http.StatusOK {
		t.Fatalf("Unmask after revocation = %+v, %v; want 200 after one refresh", res, err)
	}
	if n := sim.TokensIssued(); n != 2 {
		t.Errorf("tokens issued = %d; want 2", n)
	}
	if n := sim.Count("unmask", "7", http.StatusUnauthorized); n != 1 {
		t.Errorf("401 answers = %d; want 1", n)
	}
}

func TestPermissionRefusedAfterOneRefreshIsErrRefused(t *testing.T) {
	sim := testkit.NewSim(t)
	sim.StartCall("7", false, true)
	sim.SetFaults(cxonesim.Faults{DenyMasking: true})
	c := upstream.New(sim.UpstreamConfig())
	_, err := c.Mask(context.Background(), "7")
	var ue *upstream.Error
	if !errors.Is(err, upstream.ErrRefused) || !errors.As(err, &ue) || ue.Status != http.StatusForbidden {
		t.Fatalf("Mask = %v; want ErrRefused with status 403", err)
	}
	if n := sim.Count("mask", "7", 0); n != 2 {
		t.Errorf("mask requests = %d; want 2 (one, then one after a token refresh)", n)
	}
}

// A key that lacks the masking permission gets 403 with every token: each request
// may force a token refresh, as above, but not each of a stream of them, or every
// refused request would cost CXone's token endpoint a token request. After a forced
// refresh the next one waits a second; meanwhile a 401 or 403 on the current token is
// CXone's answer (one request each).
func TestForcedTokenRefreshesAreSpacedOut(t *testing.T) {
	sim, asked, _ := tokenEndpoint(t)
	sim.SetFaults(cxonesim.Faults{DenyMasking: true})
	c, at := clockedClient(sim)
	for range 20 {
		if _, err := c.Mask(context.Background(), "7"); !errors.Is(err, upstream.ErrRefused) {
			t.Fatalf("Mask = %v; want ErrRefused", err)
		}
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("token requests for 20 refused masks = %d; want 2, the first token and one forced refresh", n)
	}
	if n := sim.Count("mask", "7", 0); n != 21 {
		t.Errorf("masks sent = %d; want 21: two for the first request, one for each after", n)
	}
	at(time.Second)
	if _, err := c.Mask(context.Background(), "7"); !errors.Is(err, upstream.ErrRefused) {
		t.Fatalf("Mask = %v; want ErrRefused", err)
	}
	if n := asked.Load(); n != 3 {
		t.Errorf("token requests once the gap has passed = %d; want 3, one more forced refresh", n)
	}
	sim.SetFaults(cxonesim.Faults{}) // the permission granted again
	if _, err := c.Mask(context.Background(), "7"); err != nil {
		t.Fatalf("Mask once the permission is back = %v", err)
	}
}

// A refresh answer may leave out the id_token (OpenID Connect makes it optional) and the
// refresh token (RFC 6749 §6): what it leaves out stays as the first answer gave it, so
// that the API can still be discovered from the tenant, and the next renewal is still a
// refresh. Here discovery fails until the first token has expired, and the token that
// replaces it comes from such a refresh.
func TestARefreshAnswerWithoutIDTokenKeepsTheTenant(t *testing.T) {
	var discovering atomic.Bool
	var refreshes atomic.Int32
	sim := testkit.NewSimServing(t, 0, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.URL.Path == cxonesim.DiscoveryPath && !discovering.Load():
				w.WriteHeader(http.StatusServiceUnavailable)
			case r.URL.Path == cxonesim.TokenPath && r.FormValue("grant_type") == "refresh_token":
				refreshes.Add(1)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				var ans map[string]any
				_ = json.Unmarshal(rec.Body.Bytes(), &ans)
				delete(ans, "id_token")
				delete(ans, "refresh_token")
				body, _ := json.Marshal(ans)
				writeJSON(w, rec.Code, string(body))
			default:
				h.ServeHTTP(w, r)
			}
		})
	})
	sim.StartCall("7", false, true)
	c, at := clockedClient(sim)
	if _, err := c.Mask(context.Background(), "7"); !errors.Is(err, upstream.ErrUnavailable) {
		t.Fatalf("Mask while discovery fails = %v; want ErrUnavailable", err)
	}
	at(2 * time.Hour)
	discovering.Store(true)
	if _, err := c.Mask(context.Background(), "7"); err != nil {
		t.Fatalf("Mask with a refreshed token once discovery answers = %v", err)
	}
	at(4 * time.Hour)
	if _, err := c.Mask(context.Background(), "7"); err != nil {
		t.Fatalf("Mask after the refreshed token expired = %v", err)
	}
	if n := refreshes.Load(); n != 2 {
		t.Errorf("refreshes = %d; want 2: each expired token replaced with the refresh token the first answer gave", n)
	}
}

// A refresh the token endpoint refuses (the refresh token expired or was revoked) falls
// back to the access key: the same endpoint answers, only that grant is refused. A
// refresh that fails because the endpoint is down does not (TestAFailingRenewalIsNotRetriedByEveryRequest).
func TestARefusedRefreshFallsBackToTheAccessKey(t *testing.T) {
	var grants []string
	var mu sync.Mutex
	sim := simIntercepting(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != cxonesim.TokenPath {
			return false
		}
		grant := r.FormValue("grant_type")
		mu.Lock()
		grants = append(grants, grant)
		mu.Unlock()
		if grant != "refresh_token" {
			return false
		}
		writeJSON(w, http.StatusBadRequest, `{"error":"invalid_grant","error_description":"refresh token expired"}`)
		return true
	})
	sim.StartCall("7", false, true)
	c, at := clockedClient(sim)
	if _, err := c.Mask(context.Background(), "7"); err != nil {
		t.Fatal(err)
	}
	at(2 * time.Hour) // the token has expired
	if _, err := c.Mask(context.Background(), "7"); err != nil {
		t.Fatalf("Mask after the refused refresh = %v; want a token from the access key", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"password", "refresh_token", "password"}; !slices.Equal(grants, want) {
		t.Errorf("token requests = %v; want %v", grants, want)
	}
}
