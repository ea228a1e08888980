package sessions_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

func TestMaskOpensAMaskedSessionWithItsDeadline(t *testing.T) {
	f := newFixture(t)
	call := f.sim.StartCall("agent-1", false, true)
	before := time.Now()
	s, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "agent-1", Caller: "crm", Reason: "payment", TTLSeconds: new(300)})
	if err != nil {
		t.Fatal(err)
	}
	if s.State != sessions.StateMasked || s.ID == "" || s.MaskedBy != "crm" || s.Reason != "payment" {
		t.Errorf("session = %+v", s)
	}
	if d := s.ExpiresAt.Sub(s.MaskedAt); d != 300*time.Second {
		t.Errorf("deadline %s after maskedAt; want 300s", d)
	}
	if s.MaskedAt.Before(before.Add(-time.Second)) || s.MaskedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("maskedAt %s is not now", s.MaskedAt)
	}
	if c, _ := f.sim.Call(call.ID); !c.Masked {
		t.Error("CXone did not mask the call")
	}
	got, err := f.svc.Get(context.Background(), "agent-1")
	if err != nil || got != s {
		t.Errorf("Get = %+v, %v; want %+v", got, err, s)
	}
	var deadline float64
	deadline, err = f.rdb.ZScore(context.Background(), "{"+f.prefix+"}:due", "agent-1").Result()
	if err != nil || int64(deadline) != s.ExpiresAt.UnixMilli() {
		t.Errorf("deadline in the sorted set = %v, %v; want %d", deadline, err, s.ExpiresAt.UnixMilli())
	}
}

// A userId in a UUID's form is one agent however its letters are cased (RFC 9562:
// case-insensitive on input): a CRM that reads agents' ids from SQL Server, which
// shows them in upper case, and an IVR that has them from CXone in lower case must
// share one session, one lock and one deadline, and CXone gets the lower-case form
// it hands out. Other userIds are taken as they are spelt, numbers with their leading
// zeros.
func TestUUIDUserIDIsOneAgentInAnyCase(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const lower, upper = "11e9a5f0-8cf1-d3f0-9b0c-0242ac110003", "11E9A5F0-8CF1-D3F0-9B0C-0242AC110003"
	call := f.sim.StartCall(lower, false, true)
	s, err := f.svc.Mask(ctx, sessions.MaskInput{UserID: upper, Caller: "crm"})
	if err != nil || s.UserID != lower {
		t.Fatalf("Mask(%s) = %+v, %v; want a session of %s", upper, s, err, lower)
	}
	if c, _ := f.sim.Call(call.ID); !c.Masked {
		t.Fatal("CXone did not mask the call")
	}
	if got, err := f.svc.Get(ctx, "11e9A5F0-8cf1-D3F0-9b0c-0242ac110003"); err != nil || got.ID != s.ID {
		t.Errorf("Get in mixed case = %+v, %v; want session %s", got, err, s.ID)
	}
	u, err := f.svc.Unmask(ctx, sessions.UnmaskInput{UserID: lower, Caller: "ivr"})
	if err != nil || u.ID != s.ID || u.State != sessions.StateClosed {
		t.Fatalf("Unmask(%s) = %+v, %v; want session %s closed", lower, u, err, s.ID)
	}
	if c, _ := f.sim.Call(call.ID); c.Masked {
		t.Error("CXone still masks the call")
	}
	for _, r := range f.sim.Requests() {
		if r.UserID != lower {
			t.Errorf("CXone was asked to %s %q; want %q", r.Op, r.UserID, lower)
		}
	}
	if keys := f.stateKeys(t); len(keys) != 0 {
		t.Errorf("keys left after the unmask: %v", keys)
	}

	f.sim.StartCall("agent-7", false, true)
	if _, err := f.svc.Mask(ctx, sessions.MaskInput{UserID: "Agent-7", Caller: "crm"}); !errors.Is(err, sessions.ErrNoActiveCall) {
		t.Errorf("Mask(Agent-7) = %v; want CXone's no active call: only a UUID's case is folded", err)
	}
	f.sim.StartCall("42", false, true)
	if _, err := f.svc.Mask(ctx, sessions.MaskInput{UserID: "0042", Caller: "crm"}); !errors.Is(err, sessions.ErrNoActiveCall) {
		t.Errorf("Mask(0042) = %v; want CXone's no active call: a number's leading zeros are sent as given", err)
	}
}

func TestDefaultTTLApplies(t *testing.T) {
	f := newFixture(t)
	f.sim.StartCall("a", false, true)
	s, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"})
	if err != nil {
		t.Fatal(err)
	}
	if d := s.ExpiresAt.Sub(s.MaskedAt); d != 15*time.Minute {
		t.Errorf("deadline %s after maskedAt; want the default 15m", d)
	}
}

func TestReMaskKeepsIdentityAndMovesTheDeadline(t *testing.T) {
	f := newFixture(t)
	f.sim.StartCall("a", false, true)
	first, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm", Reason: "payment", TTLSeconds: new(60)})
	if err != nil {
		t.Fatal(err)
	}
	// The agent joined a newer call: the re-mask must reach CXone again.
	newer := f.sim.StartCall("a", false, true)
	second, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: new(600)})
	if err != nil {
		t.Fatal(err)
	}
	if second.ID != first.ID || !second.MaskedAt.Equal(first.MaskedAt) || second.MaskedBy != "crm" || second.Reason != "payment" {
		t.Errorf("re-mask changed the session's identity: %+v -> %+v", first, second)
	}
	if !second.ExpiresAt.After(first.ExpiresAt) {
		t.Errorf("re-mask did not move the deadline: %s -> %s", first.ExpiresAt, second.ExpiresAt)
	}
	if c, _ := f.sim.Call(newer.ID); !c.Masked {
		t.Error("the re-mask was not sent to CXone: the newer call is recorded")
	}
	if n := f.sim.Count("mask", "a", 200); n != 2 {
		t.Errorf("masks sent = %d; want 2", n)
	}
	// A reason given replaces the one kept.
	third, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr", Reason: "refund", TTLSeconds: new(600)})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f.svc.Get(context.Background(), "a"); err != nil || third.Reason != "refund" || got.Reason != "refund" || got.ID != first.ID {
		t.Errorf("re-mask with a reason = %+v, then %+v, %v; want the same session with reason refund", third, got, err)
	}
}

func TestMaskRefusedByCXoneLeavesNoSession(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*testkit.Sim)
		want  error
	}{
		{"no active call", func(*testkit.Sim) {}, sessions.ErrNoActiveCall},
		{"internal call", func(s *testkit.Sim) { s.StartCall("a", true, true) }, sessions.ErrInternalCall},
		{"permission missing", func(s *testkit.Sim) {
			s.StartCall("a", false, true)
			s.SetFaults(cxonesim.Faults{DenyMasking: true})
		}, sessions.ErrUpstreamRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.setup(f.sim)
			_, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Mask = %v; want %v", err, tt.want)
			}
			if _, err := f.svc.Get(context.Background(), "a"); !errors.Is(err, sessions.ErrNotMasked) {
				t.Errorf("Get after a refused mask = %v; want ErrNotMasked", err)
			}
			if keys := f.stateKeys(t); len(keys) != 0 {
				t.Errorf("keys left behind: %v", keys)
			}
		})
	}
}

// A mask that never reached CXone's API (no token could be had, here) cannot have
// masked anything: like a refused one it leaves no session, so that no agent is
// listed as masking whom CXone was never asked to mask, while the caller hears that
// CXone is unavailable and may try again.
func TestMaskNeverSentToCXoneLeavesNoSession(t *testing.T) {
	f := newFixture(t)
	f.sim.StartCall("a", false, true)
	f.sim.SetFaults(cxonesim.Faults{TokenDown: true})
	var logs bytes.Buffer
	ctx := zerolog.New(&logs).WithContext(context.Background())
	if _, err := f.svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm"}); !errors.Is(err, sessions.ErrUpstreamUnavailable) {
		t.Fatalf("Mask = %v; want ErrUpstreamUnavailable", err)
	}
	if n := f.sim.Count("mask", "a", 0); n != 0 {
		t.Fatalf("masks CXone received = %d; want none", n)
	}
	if _, err := f.svc.Get(ctx, "a"); !errors.Is(err, sessions.ErrNotMasked) {
		t.Errorf("Get after a mask never sent = %v; want ErrNotMasked", err)
	}
	if keys := f.stateKeys(t); len(keys) != 0 {
		t.Errorf("keys left behind: %v", keys)
	}
	var audit []map[string]any
	for _, line := range testkit.LogLines(t, logs.String()) {
		if line["audit"] == true {
			audit = append(audit, line)
		}
	}
	if len(audit) != 1 || audit[0]["event"] != "mask_failed" || audit[0]["outcome"] != "not_sent" {
		t.Errorf("audit lines = %v; want one mask_failed with outcome not_sent", audit)
	}
}

func TestMaskWithUnknownOutcomeKeepsTheSessionOpen(t *testing.T) {
	for _, fault := range []cxonesim.Faults{{Hang: true}, {ErrorRate: 1, ErrorStatus: 503}} {
		t.Run(fmt.Sprintf("%+v", fault), func(t *testing.T) {
			f := newFixture(t)
			f.sim.StartCall("a", false, true)
			f.sim.SetFaults(fault)
			_, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm", TTLSeconds: new(60)})
			if !errors.Is(err, sessions.ErrUpstreamTimeout) && !errors.Is(err, sessions.ErrUpstreamUnavailable) {
				t.Fatalf("Mask = %v; want a timeout or unavailable", err)
			}
			s, err := f.svc.Get(context.Background(), "a")
			if err != nil || s.State != sessions.StateMasking || s.ExpiresAt.IsZero() {
				t.Errorf("session after an unknown outcome = %+v, %v; want it masking with its deadline", s, err)
			}
		})
	}
}

func TestAcceptedMaskStaysMasking(t *testing.T) {
	f := newFixture(t)
	f.sim.StartCall("a", false, true)
	f.sim.SetBehaviour("a", 0, time.Second)
	s, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"})
	if err != nil || s.State != sessions.StateMasking || !s.Pending() {
		t.Fatalf("Mask with CXone's 202 = %+v, %v; want masking", s, err)
	}
}

// Finish answers "ok" and no record: the caller answers with the session it locked as
// finish left it. Every such answer must be what is stored.
func TestAnswersAfterFinishAreWhatIsStored(t *testing.T) {
	f := newFixture(t)
	f.sim.StartCall("a", false, true)
	ctx := context.Background()
	stored := func(step string, answered sessions.Session) {
		t.Helper()
		if got, err := f.svc.Get(ctx, "a"); err != nil || got != answered {
			t.Errorf("%s answered %+v; stored %+v, %v", step, answered, got, err)
		}
	}
	s, err := f.svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm", Reason: "payment"})
	if err != nil || s.State != sessions.StateMasked {
		t.Fatalf("Mask = %+v, %v", s, err)
	}
	stored("mask", s)
	f.sim.SetBehaviour("a", 0, time.Hour) // 202s from now on, not confirmed during the test
	if s, err = f.svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "ivr", Reason: "refund"}); err != nil || s.State != sessions.StateMasking {
		t.Fatalf("re-mask answered 202 = %+v, %v", s, err)
	}
	stored("re-mask answered 202", s)
	if s, err = f.svc.Unmask(ctx, sessions.UnmaskInput{UserID: "a", Caller: "ivr"}); err != nil || s.State != sessions.StateUnmasking || s.UnmaskedBy != "ivr" {
		t.Fatalf("unmask answered 202 = %+v, %v", s, err)
	}
	stored("unmask answered 202", s)
}

func TestMaskSupersedesAPendingUnmask(t *testing.T) {
	f := newFixture(t)
	f.sim.StartCall("a", false, true)
	var logs bytes.Buffer
	ctx := zerolog.New(&logs).WithContext(context.Background())
	old, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"})
	if err != nil {
		t.Fatal(err)
	}
	f.sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable})
	if _, err := f.svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	f.sim.SetFaults(cxonesim.Faults{})
	fresh, err := f.svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm"})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.ID == old.ID || fresh.State != sessions.StateMasked {
		t.Errorf("mask over a pending unmask = %+v; want a new, masked session", fresh)
	}
	// The audit trail says which session the new one replaced.
	if lines := testkit.LogLines(t, logs.String()); len(lines) != 1 || lines[0]["event"] != "masked" ||
		lines[0]["session_id"] != fresh.ID || lines[0]["superseded_session_id"] != old.ID {
		t.Errorf("audit lines = %v; want one, of %s masked, superseding %s", lines, fresh.ID, old.ID)
	}
	// The old session's pending unmask can no longer close the new one.
	if _, err := f.svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm", SessionID: new(old.ID)}); !errors.Is(err, sessions.ErrSessionMismatch) {
		t.Errorf("unmask naming the superseded session = %v; want ErrSessionMismatch", err)
	}
}

// TestRefusedMaskLeavesTheUnmaskItSupersededGoingOn: a mask over a session whose unmask
// is still pending replaces that session as it begins. When CXone then refuses the mask
// outright, the agent's earlier call may still be masked (its unmask never went
// through), so that unmask must go on until CXone carries it out: here once the agent
// leaves the internal call that made CXone refuse both, or once the key gets its
// permission back.
func TestRefusedMaskLeavesTheUnmaskItSupersededGoingOn(t *testing.T) {
	for _, tt := range []struct {
		name      string
		refuse    func(c *cluster) (lift func())
		unmaskErr error // what the caller of the unmask hears
		want      error // and of the mask
		outcome   string
	}{
		{"internal call", func(c *cluster) func() {
			internal := c.sim.StartCall("a", true, true) // the agent's latest call: CXone answers 422
			return func() { c.sim.EndCall(internal.ID) }
		}, sessions.ErrInternalCall, sessions.ErrInternalCall, "rejected"},
		{"permission lost", func(c *cluster) func() {
			c.sim.SetFaults(cxonesim.Faults{DenyMasking: true}) // 403, also after a new token
			return func() { c.sim.SetFaults(cxonesim.Faults{}) }
		}, sessions.ErrUpstreamRefused, sessions.ErrUpstreamRefused, "rejected"},
		{"no token to be had", func(c *cluster) func() {
			// The unmask meets a 401 and no new token (it stays pending); the mask
			// never goes out.
			c.sim.RevokeTokens()
			c.sim.SetFaults(cxonesim.Faults{TokenDown: true})
			return func() { c.sim.SetFaults(cxonesim.Faults{}) }
		}, nil, sessions.ErrUpstreamUnavailable, "not_sent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, 1, nil)
			var logs bytes.Buffer
			svc, ctx := c.replicas[0].svc, zerolog.New(&logs).WithContext(context.Background())
			call := c.sim.StartCall("a", false, true)
			old, err := svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm"})
			if err != nil {
				t.Fatal(err)
			}
			lift := tt.refuse(c)
			if _, err := svc.Unmask(ctx, sessions.UnmaskInput{UserID: "a", Caller: "crm"}); !errors.Is(err, tt.unmaskErr) {
				t.Fatalf("Unmask = %v; want %v", err, tt.unmaskErr)
			}
			if _, err := svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "ivr"}); !errors.Is(err, tt.want) {
				t.Fatalf("Mask = %v; want %v", err, tt.want)
			}
			if s, err := svc.Get(ctx, "a"); err != nil || s.ID != old.ID || s.State != sessions.StateUnmasking || s.UnmaskedBy != "crm" {
				t.Fatalf("after the refused mask the agent's session = %+v, %v; want %s back, its unmask by crm pending", s, err, old.ID)
			}
			var failed map[string]any
			for _, line := range testkit.LogLines(t, logs.String()) {
				if line["event"] == "mask_failed" {
					failed = line
				}
			}
			if failed["superseded_session_id"] != old.ID || failed["outcome"] != tt.outcome {
				t.Errorf("the refused mask's audit line = %v; want it to name %s, superseded", failed, old.ID)
			}
			lift()
			c.closed(t, "a", 10*time.Second)
			if got, _ := c.sim.Call(call.ID); got.Masked {
				t.Error("the earlier call is still masked")
			}
		})
	}
}
