package sessions_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

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
		return testkit.Gathered(t, c.replicas[0].reg, "maskgate_session_events_total", "event", event)
	}

	t.Run("mask", func(t *testing.T) {
		c := newCluster(t, 1, window)
		call := c.sim.StartCall("a", false, true)
		c.sim.SetBehaviour("a", 0, 4500*time.Millisecond) // done well after the window
		svc := c.replicas[0].svc
		if s, err := svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm", TTLSeconds: new(6)}); err != nil || s.State != sessions.StateMasking {
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

// An unmask that CXone accepts each time it is sent but never carries out is a failed
// unmask like any other: counted, with how long it has been failing, and given up after
// MASKGATE_UNMASK_GIVEUP with an audit error, instead of being sent again for ever
// without a word.
func TestUnmaskThatCXoneAcceptsButNeverCarriesOutIsGivenUp(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 1, func(cfg *sessions.Config, _ *sessions.SweeperConfig) {
		cfg.ConfirmWindow = 300 * time.Millisecond
		cfg.UnmaskGiveUp = 2 * time.Second
	})
	call := c.sim.StartCall("a", false, true)
	svc := c.replicas[0].svc
	if _, err := svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	c.sim.SetLose("a", true)
	if s, err := svc.Unmask(ctx, sessions.UnmaskInput{UserID: "a", Caller: "crm"}); err != nil || s.State != sessions.StateUnmasking {
		t.Fatalf("Unmask = %+v, %v; want unmasking", s, err)
	}
	reg := c.replicas[0].reg
	testkit.Eventually(t, 20*time.Second, "the unmask to be given up", func() bool {
		return testkit.Gathered(t, reg, "maskgate_unmask_giveups_total") == 1
	})
	failures := testkit.Gathered(t, reg, "maskgate_unmask_failures_total")
	if h := histogram(t, reg, "maskgate_unmask_failing_for_seconds"); failures < 2 || float64(h.GetSampleCount()) != failures || h.GetSampleSum() < 2 {
		t.Errorf("%v failures, %d observed over %.2f s; want each unconfirmed unmask counted, the last after the give-up time",
			failures, h.GetSampleCount(), h.GetSampleSum())
	}
	if s, err := svc.Get(ctx, "a"); err != nil || s.State != sessions.StateUnmasking {
		t.Errorf("the given-up session = %+v, %v; want it listed as unmasking for an operator", s, err)
	}
	if got, _ := c.sim.Call(call.ID); !got.Masked {
		t.Error("the simulator unmasked the call; the test needs a CXone that loses unmasks")
	}
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
		if n := testkit.Gathered(t, c.replicas[0].reg, "maskgate_session_events_total", "event", "mask_failed"); n != 1 {
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
