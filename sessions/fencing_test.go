package sessions

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestLateOperationChangesNothing is an unmask whose lease passed before it could
// record CXone's answer (its replica paused, or Redis unreachable for a while), and
// whose agent a newer mask took over meanwhile. When it does record the answer, it
// changes nothing: its close does not end the newer session (the agent would stay
// masked with no session to unmask it), nor does its finish mark it unmasking.
func TestLateOperationChangesNothing(t *testing.T) {
	svc, _, _ := agentOnACall(t, Config{})
	ctx := context.Background()
	if _, err := svc.Mask(ctx, MaskInput{UserID: "a", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	late := uuid.NewString()
	if _, err := svc.store.beginUnmask(ctx, "a", "", "ivr", late, "fp", "", time.Millisecond, Rate{}); err != nil {
		t.Fatal(err)
	}
	newer, err := svc.Mask(ctx, MaskInput{UserID: "a", Caller: "crm"}) // once the lease has passed
	if err != nil || newer.State != StateMasked {
		t.Fatalf("mask after the unmask's lease = %+v, %v; want masked", newer, err)
	}

	if _, err := svc.store.close(ctx, "a", late, CloseUnmasked, "ivr", ""); !errors.Is(err, errStale) {
		t.Errorf("the late unmask's close = %v; want %v", err, errStale)
	}
	if err := svc.store.finish(ctx, "a", late, finishing{state: StateUnmasking, unmaskedBy: "ivr", retry: true, next: after(time.Second)}); !errors.Is(err, errStale) {
		t.Errorf("the late unmask's finish = %v; want %v", err, errStale)
	}
	got, err := svc.Get(ctx, "a")
	if err != nil || got.ID != newer.ID || got.State != StateMasked || got.UnmaskedBy != "" || !got.ExpiresAt.Equal(newer.ExpiresAt) {
		t.Errorf("the newer session after the late unmask ended = %+v, %v; want it as its mask left it: %+v", got, err, newer)
	}
}

// TestRequestForAnAgentLockedByADeadReplicaIsRefusedInTime is a request for an agent
// whose lock a replica that died holds: it waits no longer than its CXone budget, and
// is refused as the agent busy (503 with Retry-After), not held until its caller gives
// up. So is one identical to the dead replica's operation, which joins it to await its
// answer: no answer comes, and the lock's lease is no bound on the wait.
func TestRequestForAnAgentLockedByADeadReplicaIsRefusedInTime(t *testing.T) {
	for _, c := range []struct{ name, fp string }{
		{"another request's operation", "fp"},
		{"an identical request's operation", maskFingerprint(time.Hour, "payment")},
	} {
		t.Run(c.name, func(t *testing.T) {
			svc, sim, _ := agentOnACall(t, Config{}) // a TTL of an hour, as the fingerprint's
			in := MaskInput{UserID: "a", Caller: "ivr"}
			// A lease of a minute: the request's wait must end with its budget, not the lease.
			if _, err := svc.store.beginMask(context.Background(), in, uuid.NewString(), uuid.NewString(), c.fp, time.Hour, time.Minute, Rate{}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := svc.Mask(ctx, MaskInput{UserID: "a", Caller: "crm", Reason: "payment"})
			if !errors.Is(err, ErrAgentBusy) || ctx.Err() != nil {
				t.Errorf("mask of an agent a dead replica holds = %v (the caller's own deadline: %v); want %v once the CXone budget passed", err, ctx.Err(), ErrAgentBusy)
			}
			if n := sim.Count("mask", "a", 0); n != 0 {
				t.Errorf("masks sent to CXone = %d; want none while another operation holds the agent", n)
			}
		})
	}
}
