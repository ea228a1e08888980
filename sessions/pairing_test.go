package sessions_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

func TestExpiryUnmasksOnceWithinTheSweepInterval(t *testing.T) {
	c := newCluster(t, 1, func(_ *sessions.Config, s *sessions.SweeperConfig) { s.Interval = time.Second })
	call := c.sim.StartCall("a", false, true)
	s, err := c.replicas[0].svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: new(2)})
	if err != nil {
		t.Fatal(err)
	}
	c.closed(t, "a", 5*time.Second)
	var sent time.Time
	for _, r := range c.sim.Requests() {
		if r.Op == "unmask" {
			sent = r.At
		}
	}
	if n := c.sim.Count("unmask", "a", 0); n != 1 {
		t.Fatalf("unmasks sent = %d; want exactly 1", n)
	}
	if lag := sent.Sub(s.ExpiresAt); lag < 0 || lag > time.Second+300*time.Millisecond {
		t.Errorf("expiry unmask sent %s after the deadline; want within the 1s sweep interval", lag)
	}
	got, _ := c.sim.Call(call.ID)
	if got.Masked || len(got.MaskedSpans()) != 1 {
		t.Errorf("call after expiry: masked=%v spans=%v", got.Masked, got.MaskedSpans())
	}
}

func TestThreeReplicasSendEachExpiryOnce(t *testing.T) {
	c := newCluster(t, 3, nil)
	const agents = 60
	for i := range agents {
		id := fmt.Sprintf("agent-%d", i)
		c.sim.StartCall(id, false, true)
		r := c.replicas[i%3]
		if _, err := r.svc.Mask(context.Background(), sessions.MaskInput{UserID: id, Caller: "ivr", TTLSeconds: new(1 + i%2)}); err != nil {
			t.Fatal(err)
		}
	}
	// Every replica sees every session.
	for _, r := range c.replicas {
		page, err := r.svc.List(context.Background(), "", 1000)
		if err != nil || len(page.Sessions) != agents {
			t.Fatalf("a replica lists %d sessions, %v; want %d", len(page.Sessions), err, agents)
		}
	}
	testkit.Eventually(t, 10*time.Second, "every session to expire", func() bool {
		page, _ := c.replicas[0].svc.List(context.Background(), "", 1000)
		return len(page.Sessions) == 0
	})
	for i := range agents {
		id := fmt.Sprintf("agent-%d", i)
		if n := c.sim.Count("unmask", id, 0); n != 1 {
			t.Errorf("%s: %d unmasks sent; want exactly 1", id, n)
		}
	}
}

// An unmask CXone does not do is retried by the sweeper until it does: after an outage
// (the caller is told 202, accepted) and after a refusal (the caller hears it: README,
// "Unmask refused definitively"); the session stays unmasking meanwhile.
func TestUnmaskDuringAnOutageIsRetriedUntilCXoneRecovers(t *testing.T) {
	for _, tt := range []struct {
		name   string
		faults cxonesim.Faults
		err    error // what the caller of Unmask gets
		status int   // CXone's answer to the unmasks that fail
	}{
		{"outage", cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable}, nil, http.StatusServiceUnavailable},
		{"refused", cxonesim.Faults{DenyMasking: true}, sessions.ErrUpstreamRefused, http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, 2, nil)
			call := c.sim.StartCall("a", false, true)
			svc := c.replicas[0].svc
			if _, err := svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"}); err != nil {
				t.Fatal(err)
			}
			c.sim.SetFaults(tt.faults)
			s, err := svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm"})
			if !errors.Is(err, tt.err) || err == nil && s.State != sessions.StateUnmasking {
				t.Fatalf("Unmask = %+v, %v; want %v", s, err, tt.err)
			}
			if s, err := svc.Get(context.Background(), "a"); err != nil || s.State != sessions.StateUnmasking {
				t.Fatalf("session after the failed unmask = %+v, %v; want unmasking", s, err)
			}
			testkit.Eventually(t, 5*time.Second, "the sweeper to retry", func() bool { return c.sim.Count("unmask", "a", tt.status) >= 6 })
			c.sim.SetFaults(cxonesim.Faults{})
			c.closed(t, "a", 5*time.Second)
			if n := c.sim.Count("unmask", "a", 200); n != 1 {
				t.Errorf("successful unmasks = %d; want 1", n)
			}
			if got, _ := c.sim.Call(call.ID); got.Masked {
				t.Error("the call is still masked")
			}
		})
	}
}

// An expiry whose unmask CXone fails is retried as an expiry: the session stays
// unmasking, by the gateway, through the outage, and once CXone is back it closes as
// expired, audited and counted once as an expiry, not as a caller's unmask.
func TestExpiryUnmaskIsRetriedAsAnExpiry(t *testing.T) {
	var swept testkit.LogBuffer
	c := newCluster(t, 1, func(_ *sessions.Config, s *sessions.SweeperConfig) { s.Log = zerolog.New(&swept) })
	call := c.sim.StartCall("a", false, true)
	svc := c.replicas[0].svc
	ctx := context.Background()
	s, err := svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: new(1)})
	if err != nil {
		t.Fatal(err)
	}
	c.sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable})
	var during sessions.Session
	testkit.Eventually(t, 5*time.Second, "the expiry's unmask to fail", func() bool {
		during, err = svc.Get(ctx, "a")
		return err == nil && during.State == sessions.StateUnmasking
	})
	if during.UnmaskedBy != "maskgate" {
		t.Errorf("session during the outage = %+v; want unmasking by maskgate", during)
	}
	testkit.Eventually(t, 5*time.Second, "the sweeper to retry", func() bool {
		return c.sim.Count("unmask", "a", http.StatusServiceUnavailable) >= 6
	})
	c.sim.SetFaults(cxonesim.Faults{})
	c.closed(t, "a", 5*time.Second)
	if got, _ := c.sim.Call(call.ID); got.Masked {
		t.Error("the call is still masked")
	}
	events := func(event string) float64 {
		return testkit.Gathered(t, c.replicas[0].reg, "maskgate_session_events_total", "event", event)
	}
	// The sweeper counts and writes its closing line after it closes the session.
	testkit.Eventually(t, 5*time.Second, "one expired event", func() bool { return events("expired") == 1 })
	if n := events("unmasked"); n != 0 {
		t.Errorf("unmasked events = %v; want 0: the gateway's expiry is no caller's unmask", n)
	}
	var closing []map[string]any
	for _, line := range testkit.LogLines(t, swept.String()) {
		if line["event"] == "expired" && line["outcome"] == "done" {
			closing = append(closing, line)
		}
	}
	if len(closing) != 1 || closing[0]["session_id"] != s.ID || closing[0]["caller"] != "maskgate" || closing[0]["upstream_status"] != float64(200) {
		t.Errorf("expired lines = %v; want one, of session %s closed by maskgate on CXone's 200", closing, s.ID)
	}
}

// A forced unmask (the gateway lost its record while CXone still masks the call) that
// CXone does not carry out at once goes on as any unmask: its session, listed as
// unmasking, is retried through an outage and a 202 is confirmed, then it closes, and
// the sweeper's audit line that closes it says it was forced.
func TestForcedUnmaskIsRetriedAndConfirmed(t *testing.T) {
	for _, tt := range []struct {
		name   string
		setup  func(*testkit.Sim)
		heal   func(*testkit.Sim)
		closed string // the audit event of the sweeper's that closes the session
	}{
		{"outage", func(s *testkit.Sim) {
			s.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable})
		},
			func(s *testkit.Sim) { s.SetFaults(cxonesim.Faults{}) }, "unmasked"},
		// CXone carries the unmask out a second after its 202: the session is still
		// there to list before the sweeper confirms it.
		{"accepted", func(s *testkit.Sim) { s.SetBehaviour("a", 0, time.Second) }, func(*testkit.Sim) {}, "unmask_confirmed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var swept testkit.LogBuffer
			c := newCluster(t, 1, func(_ *sessions.Config, s *sessions.SweeperConfig) { s.Log = zerolog.New(&swept) })
			call := c.sim.StartCall("a", false, true)
			ctx := context.Background()
			if _, err := upstream.New(c.sim.UpstreamConfig()).Mask(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			tt.setup(c.sim)
			svc := c.replicas[0].svc
			s, err := svc.Unmask(ctx, sessions.UnmaskInput{UserID: "a", Caller: "ops", Force: true})
			if err != nil || s.State != sessions.StateUnmasking || !s.Forced || s.ID == "" || s.UnmaskedBy != "ops" {
				t.Fatalf("forced Unmask = %+v, %v; want unmasking, forced, by ops", s, err)
			}
			if page, err := svc.List(ctx, "", 10); err != nil || len(page.Sessions) != 1 || page.Sessions[0] != s {
				t.Errorf("List = %+v, %v; want the forced session %+v", page, err, s)
			}
			tt.heal(c.sim)
			c.closed(t, "a", 5*time.Second)
			if got, _ := c.sim.Call(call.ID); got.Masked {
				t.Error("the call is still masked")
			}
			if n := c.sim.Count("unmask", "a", http.StatusOK) + c.sim.Count("unmask", "a", http.StatusAccepted); n != 1 {
				t.Errorf("unmasks CXone took = %d; want 1", n)
			}
			// The sweeper writes its line after it closes the session: wait for it.
			var closing []map[string]any
			testkit.Eventually(t, 5*time.Second, "the sweeper's "+tt.closed+" line", func() bool {
				closing = closing[:0]
				for _, line := range testkit.LogLines(t, swept.String()) {
					if line["event"] == tt.closed {
						closing = append(closing, line)
					}
				}
				return len(closing) > 0
			})
			if len(closing) != 1 {
				t.Errorf("the sweeper wrote %d %s lines; want 1:\n%s", len(closing), tt.closed, swept.String())
			}
			if line := closing[0]; line["forced"] != true || line["session_id"] != s.ID || line["outcome"] != "done" {
				t.Errorf("the sweeper's %s line = %v; want it done, forced, of session %s", tt.closed, line, s.ID)
			}
		})
	}
}

// An unmask that keeps failing is pending, not given up, until its give-up:
// maskgate_unmasks_given_up names agents CXone may still mask for good, and an operator
// must not be sent after every unmask that is merely being retried.
func TestFailingUnmaskIsNotCountedAsGivenUpBeforeItIs(t *testing.T) {
	c := newCluster(t, 1, func(cfg *sessions.Config, _ *sessions.SweeperConfig) {
		cfg.RetryMax = 100 * time.Millisecond // retried often; given up only after the default hour
	})
	c.sim.StartCall("a", false, true)
	svc := c.replicas[0].svc
	if _, err := svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	c.sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusBadGateway})
	if _, err := svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	gauge := func(name string) float64 { return testkit.Gathered(t, c.replicas[0].reg, name) }
	testkit.Eventually(t, 10*time.Second, "three failures", func() bool { return gauge("maskgate_unmask_failures_total") >= 3 })
	if n, p := gauge("maskgate_unmasks_given_up"), gauge("maskgate_unmasks_pending"); n != 0 || p != 1 {
		t.Errorf("maskgate_unmasks_given_up = %v, maskgate_unmasks_pending = %v while the unmask is retried; want 0 and 1", n, p)
	}
}

// An unmask that keeps failing is given up after MASKGATE_UNMASK_GIVEUP from its first
// failure, however short the waits between its attempts: counted, no longer scheduled,
// left listed as unmasking for an operator, whose unmask closes it; a caller's unmask
// and an expiry alike. Until then it counts as pending, and once given up as given up,
// on every replica's /metrics.
func TestFailingUnmaskIsGivenUpAndCounted(t *testing.T) {
	const giveUp = time.Second
	for name, ttl := range map[string]int{"the caller's unmask": 3600, "an expiry": 1} {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, 1, func(cfg *sessions.Config, _ *sessions.SweeperConfig) {
				cfg.UnmaskGiveUp, cfg.RetryMax = giveUp, 200*time.Millisecond // no one wait reaches the give-up
			})
			c.sim.StartCall("a", false, true)
			svc := c.replicas[0].svc
			if _, err := svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm", TTLSeconds: &ttl}); err != nil {
				t.Fatal(err)
			}
			c.sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusBadGateway})
			if ttl > 1 {
				if _, err := svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm"}); err != nil {
					t.Fatal(err)
				}
			}
			gauge := func(name string) float64 { return testkit.Gathered(t, c.replicas[0].reg, name) }
			testkit.Eventually(t, 5*time.Second, "the first failure", func() bool { return gauge("maskgate_unmask_failures_total") >= 1 })
			if n := gauge("maskgate_unmasks_pending"); n != 1 {
				t.Errorf("maskgate_unmasks_pending = %v with a failing unmask; want 1", n)
			}
			testkit.Eventually(t, 5*time.Second, "the give-up", func() bool { return gauge("maskgate_unmask_giveups_total") == 1 })
			// Each failure is observed with how long the unmask had been failing: the first at
			// 0, the one given up at least the give-up's time.
			failingFor := histogram(t, c.replicas[0].reg, "maskgate_unmask_failing_for_seconds")
			if failures := gauge("maskgate_unmask_failures_total"); float64(failingFor.GetSampleCount()) != failures ||
				failures < 2 || failingFor.GetSampleSum() < giveUp.Seconds() {
				t.Errorf("%d failures observed over %.3f s in all; want each of the %v failures, the last after at least %s",
					failingFor.GetSampleCount(), failingFor.GetSampleSum(), failures, giveUp)
			}
			if err := c.rdb.ZScore(context.Background(), c.key("due"), "a").Err(); !errors.Is(err, redis.Nil) {
				t.Errorf("a given-up session is still scheduled for the sweeper (%v)", err)
			}
			s, err := svc.Get(context.Background(), "a")
			if err != nil || s.State != sessions.StateUnmasking {
				t.Errorf("a given-up session = %+v, %v; want it still listed as unmasking", s, err)
			}
			// The gauge says so until the session closes.
			if n := gauge("maskgate_unmasks_given_up"); n != 1 {
				t.Errorf("maskgate_unmasks_given_up = %v with a given-up session open; want 1", n)
			}
			// An operator's unmask of it, once CXone is well, closes it.
			c.sim.SetFaults(cxonesim.Faults{})
			if s, err := svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "ops"}); err != nil ||
				s.State != sessions.StateClosed || s.UnmaskedBy != "ops" {
				t.Errorf("unmask after the give-up = %+v, %v; want it closed by ops", s, err)
			}
			if n, p := gauge("maskgate_unmasks_given_up"), gauge("maskgate_unmasks_pending"); n != 0 || p != 0 {
				t.Errorf("maskgate_unmasks_given_up = %v, maskgate_unmasks_pending = %v once the operator's unmask closed it; want 0", n, p)
			}
		})
	}
}
