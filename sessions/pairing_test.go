package sessions_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// replica is one gateway's sessions service and sweeper, sharing Redis and CXone with
// the others.
type replica struct {
	svc  *sessions.Service
	reg  *prometheus.Registry
	stop context.CancelFunc
	done chan struct{}
}

type cluster struct {
	rdb      *redis.Client
	prefix   string
	sim      *testkit.Sim
	replicas []*replica
	cfg      sessions.Config
	sweep    sessions.SweeperConfig
}

func newCluster(t *testing.T, n int, tweak func(*sessions.Config, *sessions.SweeperConfig)) *cluster {
	t.Helper()
	rdb, prefix := testkit.Redis(t)
	c := &cluster{rdb: rdb, prefix: prefix, sim: testkit.NewSim(t),
		cfg:   sessions.Config{DefaultTTL: time.Minute, MaxTTL: time.Hour, UpstreamBudget: 2 * time.Second, RetryBackoff: 100 * time.Millisecond},
		sweep: sessions.SweeperConfig{Interval: 200 * time.Millisecond, Lease: 2 * time.Second, Log: zerolog.New(testkit.LogSink(t, io.Discard))}}
	if tweak != nil {
		tweak(&c.cfg, &c.sweep)
	}
	for range n {
		c.start(t)
	}
	t.Cleanup(func() {
		for _, r := range c.replicas {
			r.stop()
			<-r.done
		}
	})
	return c
}

// start adds a replica and runs its sweeper.
func (c *cluster) start(t *testing.T) *replica {
	up := c.sim.UpstreamConfig()
	up.Timeout = 500 * time.Millisecond
	cfg := c.cfg
	r := &replica{reg: prometheus.NewRegistry(), done: make(chan struct{})}
	cfg.Registerer = r.reg
	up.Registerer = r.reg
	r.svc = sessions.NewService(sessions.NewStore(c.rdb, c.prefix), upstream.New(up), cfg)
	ctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	go func() { r.svc.NewSweeper(c.sweep).Run(ctx); close(r.done) }()
	c.replicas = append(c.replicas, r)
	return r
}

// closed waits until the agent has no open session.
func (c *cluster) closed(t *testing.T, userID string, within time.Duration) {
	t.Helper()
	testkit.Eventually(t, within, userID+"'s session to close", func() bool {
		_, err := c.replicas[0].svc.Get(context.Background(), userID)
		return errors.Is(err, sessions.ErrNotMasked)
	})
}

func TestExpiryUnmasksOnceWithinTheSweepInterval(t *testing.T) {
	c := newCluster(t, 1, func(_ *sessions.Config, s *sessions.SweeperConfig) { s.Interval = time.Second })
	call := c.sim.StartCall("a", false, true)
	s, err := c.replicas[0].svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: ptr(2)})
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
		if _, err := r.svc.Mask(context.Background(), sessions.MaskInput{UserID: id, Caller: "ivr", TTLSeconds: ptr(1 + i%2)}); err != nil {
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
	s, err := svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: ptr(1)})
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
		return gathered(t, c.replicas[0].reg, "maskgate_session_events_total", "event", event)
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

// An unmask that keeps failing is given up after MASKGATE_UNMASK_GIVEUP: counted, no
// longer scheduled, left listed as unmasking for an operator, whose unmask closes it.
func TestFailingUnmaskIsGivenUpAndCounted(t *testing.T) {
	c := newCluster(t, 1, func(cfg *sessions.Config, _ *sessions.SweeperConfig) { cfg.UnmaskGiveUp = 500 * time.Millisecond })
	c.sim.StartCall("a", false, true)
	svc := c.replicas[0].svc
	if _, err := svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	c.sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusBadGateway})
	if _, err := svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	giveUps := func() float64 { return gathered(t, c.replicas[0].reg, "maskgate_unmask_giveups_total") }
	testkit.Eventually(t, 5*time.Second, "the give-up", func() bool { return giveUps() == 1 })
	if err := c.rdb.ZScore(context.Background(), "{"+c.prefix+"}:due", "a").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("a given-up session is still scheduled for the sweeper (%v)", err)
	}
	s, err := svc.Get(context.Background(), "a")
	if err != nil || s.State != sessions.StateUnmasking {
		t.Errorf("a given-up session = %+v, %v; want it still listed as unmasking", s, err)
	}
	// An operator's unmask of it, once CXone is well, closes it.
	c.sim.SetFaults(cxonesim.Faults{})
	if s, err := svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "ops"}); err != nil ||
		s.State != sessions.StateClosed || s.UnmaskedBy != "ops" {
		t.Errorf("unmask after the give-up = %+v, %v; want it closed by ops", s, err)
	}
}

// gathered sums a counter or gauge, over the series whose label (when given) matches.
func gathered(t *testing.T, reg *prometheus.Registry, name string, label ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(label); i += 2 {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == label[i] && lp.GetValue() != label[i+1] {
						continue series
					}
				}
			}
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return total
}

func TestAcceptedMaskAndUnmaskAreConfirmed(t *testing.T) {
	c := newCluster(t, 1, nil)
	call := c.sim.StartCall("a", false, true)
	c.sim.SetBehaviour("a", 0, 300*time.Millisecond)
	svc := c.replicas[0].svc
	s, err := svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"})
	if err != nil || s.State != sessions.StateMasking {
		t.Fatalf("Mask = %+v, %v; want masking", s, err)
	}
	testkit.Eventually(t, 5*time.Second, "the mask to be confirmed", func() bool {
		s, _ := svc.Get(context.Background(), "a")
		return s.State == sessions.StateMasked
	})
	s, err = svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm"})
	if err != nil || s.State != sessions.StateUnmasking {
		t.Fatalf("Unmask = %+v, %v; want unmasking", s, err)
	}
	c.closed(t, "a", 5*time.Second)
	if got, _ := c.sim.Call(call.ID); got.Masked {
		t.Error("the call is still masked")
	}
	if n := c.sim.Count("unmask", "a", 0); n != 1 {
		t.Errorf("unmasks sent = %d; want 1 (confirmed, not resent)", n)
	}
}

// A 202 that CXone does not carry out within the confirmation window (design §3.6): a
// mask stays "masking", and its deadline still unmasks the call; an unmask is sent
// again. A call that ends meanwhile closes the session without an unmask.
func TestAcceptedOperationsNotConfirmedInTime(t *testing.T) {
	window := func(cfg *sessions.Config, _ *sessions.SweeperConfig) { cfg.ConfirmWindow = 1500 * time.Millisecond }
	ctx := context.Background()
	events := func(c *cluster, event string) float64 {
		return gathered(t, c.replicas[0].reg, "maskgate_session_events_total", "event", event)
	}

	t.Run("mask", func(t *testing.T) {
		c := newCluster(t, 1, window)
		call := c.sim.StartCall("a", false, true)
		c.sim.SetBehaviour("a", 0, 4500*time.Millisecond) // done well after the window
		svc := c.replicas[0].svc
		if s, err := svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm", TTLSeconds: ptr(6)}); err != nil || s.State != sessions.StateMasking {
			t.Fatalf("Mask = %+v, %v; want masking", s, err)
		}
		testkit.Eventually(t, 5*time.Second, "the mask to go unconfirmed", func() bool { return events(c, "mask_unconfirmed") == 1 })
		if s, err := svc.Get(ctx, "a"); err != nil || s.State != sessions.StateMasking {
			t.Errorf("after the window: %+v, %v; want still masking (CXone's outcome unknown)", s, err)
		}
		c.sim.SetBehaviour("a", 0, 0)
		c.closed(t, "a", 7*time.Second) // at its deadline
		if got, _ := c.sim.Call(call.ID); got.Masked || len(got.MaskedSpans()) != 1 {
			t.Errorf("call masked=%v spans=%v; want unmasked at the deadline, after one masked span", got.Masked, got.MaskedSpans())
		}
		// The sweeper counts its event after it closes the session.
		testkit.Eventually(t, 5*time.Second, "one expired event", func() bool { return events(c, "expired") == 1 })
	})

	t.Run("unmask", func(t *testing.T) {
		c := newCluster(t, 1, window)
		call := c.sim.StartCall("a", false, true)
		svc := c.replicas[0].svc
		if _, err := svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm"}); err != nil {
			t.Fatal(err)
		}
		c.sim.SetBehaviour("a", 0, time.Hour) // accepted, never done
		if s, err := svc.Unmask(ctx, sessions.UnmaskInput{UserID: "a", Caller: "crm"}); err != nil || s.State != sessions.StateUnmasking {
			t.Fatalf("Unmask = %+v, %v; want unmasking", s, err)
		}
		testkit.Eventually(t, 5*time.Second, "the unmask to go unconfirmed", func() bool { return events(c, "unmask_unconfirmed") == 1 })
		c.sim.EndCall(call.ID) // the pending unmask is never carried out; the call ends instead
		c.closed(t, "a", 5*time.Second)
		if n := c.sim.Count("unmask", "a", 0); n < 2 {
			t.Errorf("unmasks sent = %d; want the unconfirmed one sent again", n)
		}
	})

	t.Run("call ended", func(t *testing.T) {
		c := newCluster(t, 1, window)
		call := c.sim.StartCall("a", false, true)
		c.sim.SetBehaviour("a", 0, time.Hour)
		svc := c.replicas[0].svc
		if _, err := svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm"}); err != nil {
			t.Fatal(err)
		}
		c.sim.EndCall(call.ID)
		c.closed(t, "a", 5*time.Second)
		testkit.Eventually(t, 5*time.Second, "one call_ended event", func() bool { return events(c, "call_ended") == 1 })
		if n := c.sim.Count("unmask", "a", 0); n != 0 {
			t.Errorf("unmasks sent = %d; want none for a call that ended", n)
		}
	})
}

// A re-mask is sent to CXone again (design §3.3); when CXone answers it has no call for
// the agent, the masked call has ended and the session closes; when it refuses the
// re-mask, the open session, and the mask CXone holds, stay as they were.
func TestReMaskThatCXoneDoesNotCarryOut(t *testing.T) {
	ctx := context.Background()
	remask := func(t *testing.T) (*cluster, cxonesim.Call, sessions.Session) {
		c := newCluster(t, 1, nil)
		call := c.sim.StartCall("a", false, true)
		s, err := c.replicas[0].svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm"})
		if err != nil || s.State != sessions.StateMasked {
			t.Fatalf("Mask = %+v, %v; want masked", s, err)
		}
		return c, call, s
	}

	t.Run("no active call", func(t *testing.T) {
		c, call, _ := remask(t)
		c.sim.EndCall(call.ID)
		if _, err := c.replicas[0].svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm"}); !errors.Is(err, sessions.ErrNoActiveCall) {
			t.Fatalf("re-mask = %v; want ErrNoActiveCall", err)
		}
		if _, err := c.replicas[0].svc.Get(ctx, "a"); !errors.Is(err, sessions.ErrNotMasked) {
			t.Errorf("Get after the call ended = %v; want ErrNotMasked (closed as call_ended)", err)
		}
		if n := gathered(t, c.replicas[0].reg, "maskgate_session_events_total", "event", "mask_failed"); n != 1 {
			t.Errorf("mask_failed events = %v; want 1", n)
		}
		if n := c.sim.Count("unmask", "a", 0); n != 0 {
			t.Errorf("unmasks sent = %d; want none for a call that ended", n)
		}
	})

	for _, refusal := range []struct {
		name  string
		apply func(*cluster) (undo func())
		want  error
	}{
		{"refused", func(c *cluster) func() {
			c.sim.SetFaults(cxonesim.Faults{DenyMasking: true})
			return func() { c.sim.SetFaults(cxonesim.Faults{}) }
		}, sessions.ErrUpstreamRefused},
		{"internal call", func(c *cluster) func() {
			internal := c.sim.StartCall("a", true, true) // the agent's latest call now
			return func() { c.sim.EndCall(internal.ID) }
		}, sessions.ErrInternalCall},
	} {
		t.Run(refusal.name, func(t *testing.T) {
			c, call, first := remask(t)
			undo := refusal.apply(c)
			if _, err := c.replicas[0].svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm"}); !errors.Is(err, refusal.want) {
				t.Fatalf("re-mask = %v; want %v", err, refusal.want)
			}
			s, err := c.replicas[0].svc.Get(ctx, "a")
			if err != nil || s.ID != first.ID || s.State != sessions.StateMasked {
				t.Fatalf("after the refused re-mask: %+v, %v; want session %s still masked", s, err, first.ID)
			}
			if got, _ := c.sim.Call(call.ID); !got.Masked {
				t.Error("the call CXone masked was unmasked by a refused re-mask")
			}
			undo()
			if _, err := c.replicas[0].svc.Unmask(ctx, sessions.UnmaskInput{UserID: "a", Caller: "crm"}); err != nil {
				t.Fatalf("Unmask = %v", err)
			}
			if got, _ := c.sim.Call(call.ID); got.Masked {
				t.Error("the call is still masked after the unmask")
			}
		})
	}
}

// A request that joined an operation gets its refusal too, across replicas: identical
// masks of an agent with no call reach CXone once and all hear "no active call".
func TestJoinedRequestsGetTheOperationsRefusal(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.sim.SetFaults(cxonesim.Faults{LatencyMs: 300})
	const n = 10
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := c.replicas[i%2].svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, sessions.ErrNoActiveCall) {
			t.Errorf("Mask = %v; want ErrNoActiveCall for every caller", err)
		}
	}
	if sent := c.sim.Count("mask", "a", 0); sent != 1 {
		t.Errorf("masks sent = %d; want 1 for %d identical requests", sent, n)
	}
	if _, err := c.replicas[0].svc.Get(context.Background(), "a"); !errors.Is(err, sessions.ErrNotMasked) {
		t.Errorf("Get = %v; want no session after the refusal", err)
	}
}

// TestConcurrentIdenticalOperationsCoalesce: identical masks, then identical unmasks,
// sent at once through two replicas reach CXone once and all get that one answer; the
// answer kept for them is the only result record, and an operation nobody joined keeps
// none.
func TestConcurrentIdenticalOperationsCoalesce(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.sim.StartCall("a", false, true)
	ctx := context.Background()
	results := func() int {
		keys, err := c.rdb.Keys(ctx, "{"+c.prefix+"}:result:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	// Alone: nobody joins, nothing is kept for joiners.
	if _, err := c.replicas[0].svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: ptr(60)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.replicas[0].svc.Unmask(ctx, sessions.UnmaskInput{UserID: "a", Caller: "ivr"}); err != nil {
		t.Fatal(err)
	}
	if n := results(); n != 0 {
		t.Errorf("%d result records after operations nobody joined; want 0", n)
	}

	c.sim.SetFaults(cxonesim.Faults{LatencyMs: 300})
	for _, op := range []string{"mask", "unmask"} {
		const n = 50
		answers := make(chan sessions.Session, n)
		var failed atomic.Int32
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				svc := c.replicas[i%2].svc
				var s sessions.Session
				var err error
				if op == "mask" {
					s, err = svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: ptr(60)})
				} else {
					s, err = svc.Unmask(ctx, sessions.UnmaskInput{UserID: "a", Caller: "ivr"})
				}
				if err != nil {
					failed.Add(1)
					return
				}
				answers <- s
			})
		}
		wg.Wait()
		close(answers)
		if failed.Load() != 0 {
			t.Fatalf("%d of %d %ss failed", failed.Load(), n, op)
		}
		var first sessions.Session
		for s := range answers {
			if first.ID == "" {
				first = s
			}
			if s.ID != first.ID || s.State != first.State {
				t.Fatalf("%ss answered different sessions: %+v and %+v", op, first, s)
			}
		}
		if sent := c.sim.Count(op, "a", 0); sent != 2 {
			t.Errorf("%ss sent to CXone = %d for one alone and %d identical concurrent requests; want 2", op, sent, n)
		}
	}
	if n := results(); n != 2 {
		t.Errorf("%d result records after two joined operations; want 2", n)
	}
}

func TestOppositeOperationsRunOneAfterTheOther(t *testing.T) {
	c := newCluster(t, 2, nil)
	call := c.sim.StartCall("a", false, true)
	c.sim.SetFaults(cxonesim.Faults{LatencyMs: 20})
	peak := peakHeld(c.sim)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			r := c.replicas[i%2].svc
			if i%2 == 0 {
				r.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: ptr(30 + i)})
			} else {
				r.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "ivr"})
			}
		})
	}
	wg.Wait()
	// One operation at a time: the gateway's record agrees with CXone's.
	got, _ := c.sim.Call(call.ID)
	s, err := c.replicas[0].svc.Get(context.Background(), "a")
	open := err == nil
	if open != got.Masked {
		t.Errorf("gateway open session = %v (%+v) but CXone masked = %v", open, s, got.Masked)
	}
	if open && s.State != sessions.StateMasked {
		t.Errorf("final session state = %s; want masked", s.State)
	}
	if p := peak(); p != 1 {
		t.Errorf("%d CXone operations on the agent were in flight at once; want 1 at a time", p)
	}
}

// TestClaimOfAStoppedReplicaIsFinishedByAnother stops a replica while its expiry unmask
// hangs in CXone: another replica finishes the expiry. (A replica killed with -9 while
// holding a claim is cmd/maskgate's TestKilledReplicasSessionsExpireOnTheSurvivor.)
func TestClaimOfAStoppedReplicaIsFinishedByAnother(t *testing.T) {
	c := newCluster(t, 0, func(_ *sessions.Config, s *sessions.SweeperConfig) { s.Lease = time.Second })
	call := c.sim.StartCall("a", false, true)
	r := c.start(t)
	if _, err := r.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: ptr(1)}); err != nil {
		t.Fatal(err)
	}
	c.sim.SetFaults(cxonesim.Faults{Hang: true}) // the first replica's expiry unmask hangs...
	testkit.Eventually(t, 5*time.Second, "the first replica to claim the expiry", func() bool { return c.sim.Held() == 1 })
	r.stop() // ...and the replica stops while holding the claim
	c.sim.SetFaults(cxonesim.Faults{})
	c.start(t)
	c.closed(t, "a", 10*time.Second)
	if got, _ := c.sim.Call(call.ID); got.Masked {
		t.Error("the call stayed masked")
	}
}

// peakHeld samples how many CXone requests the simulator holds at once until the
// returned function is called, which answers the peak.
func peakHeld(sim *testkit.Sim) func() int {
	var peak atomic.Int32
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if h := int32(sim.Held()); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() int { close(stop); <-done; return int(peak.Load()) }
}

func TestBurstOfExpiriesIsWorkedOffSteadily(t *testing.T) {
	c := newCluster(t, 1, func(_ *sessions.Config, s *sessions.SweeperConfig) { s.Concurrency = 4 })
	c.sim.SetFaults(cxonesim.Faults{LatencyMs: 20})
	const agents = 200
	var wg sync.WaitGroup
	for i := range agents {
		id := fmt.Sprintf("b-%d", i)
		c.sim.StartCall(id, false, true)
		wg.Go(func() {
			c.replicas[0].svc.Mask(context.Background(), sessions.MaskInput{UserID: id, Caller: "ivr", TTLSeconds: ptr(1)})
		})
	}
	wg.Wait()
	peak := peakHeld(c.sim)
	testkit.Eventually(t, 20*time.Second, "every session to expire", func() bool {
		page, _ := c.replicas[0].svc.List(context.Background(), "", 1000)
		return len(page.Sessions) == 0
	})
	if p := peak(); p > 4 {
		t.Errorf("%d CXone calls in flight at once; the sweeper's bound is 4", p)
	}
	if n := c.sim.Count("unmask", "", 0); n != agents {
		t.Errorf("unmasks sent = %d; want %d", n, agents)
	}
}

func TestStoppingReplicaHandsItsClaimsOverAtOnce(t *testing.T) {
	c := newCluster(t, 0, func(_ *sessions.Config, s *sessions.SweeperConfig) { s.Lease = 20 * time.Second })
	call := c.sim.StartCall("a", false, true)
	first := c.start(t)
	if _, err := first.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: ptr(1)}); err != nil {
		t.Fatal(err)
	}
	c.sim.SetFaults(cxonesim.Faults{Hang: true})
	testkit.Eventually(t, 5*time.Second, "the first replica to claim the expiry", func() bool { return c.sim.Held() == 1 })
	first.stop()
	<-first.done // it returns only once its claims are released
	c.sim.SetFaults(cxonesim.Faults{})
	c.start(t)
	// Well within the 20 s lease: the claim was handed over, not left to time out.
	c.closed(t, "a", 5*time.Second)
	if got, _ := c.sim.Call(call.ID); got.Masked {
		t.Error("the call is still masked")
	}
}

// TestSkewedReplicaClocksAgree runs two replicas whose clocks are 30 s behind and 30 s
// ahead: deadlines, leases and retries are Redis's time, so masks still expire within
// the sweep interval, identical masks still coalesce, and nothing waits on a clock.
func TestSkewedReplicaClocksAgree(t *testing.T) {
	c := newCluster(t, 0, nil)
	for _, skew := range []time.Duration{-30 * time.Second, 30 * time.Second} {
		c.cfg.Now = func() time.Time { return time.Now().Add(skew) }
		c.start(t)
	}
	call := c.sim.StartCall("a", false, true)
	c.sim.SetFaults(cxonesim.Faults{LatencyMs: 200})
	var wg sync.WaitGroup
	ids := make([]string, 10)
	for i := range ids {
		wg.Go(func() {
			s, err := c.replicas[i%2].svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: ptr(1)})
			if err != nil {
				t.Errorf("mask on a skewed replica: %v", err)
			}
			ids[i] = s.ID
		})
	}
	wg.Wait()
	if n := c.sim.Count("mask", "a", 0); n != 1 {
		t.Errorf("masks sent = %d across skewed replicas; want 1 (coalesced)", n)
	}
	c.sim.SetFaults(cxonesim.Faults{})
	s, _ := c.replicas[0].svc.Get(context.Background(), "a")
	c.closed(t, "a", 5*time.Second)
	var sent time.Time
	for _, r := range c.sim.Requests() {
		if r.Op == "unmask" {
			sent = r.At
		}
	}
	if lag := sent.Sub(s.ExpiresAt); lag > c.sweep.Interval+500*time.Millisecond {
		t.Errorf("expiry sent %s after the deadline by replicas 30 s off; want within the sweep interval", lag)
	}
	if got, _ := c.sim.Call(call.ID); got.Masked {
		t.Error("the call is still masked")
	}
}
