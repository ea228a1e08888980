package sessions_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

func TestUnmaskClosesTheSession(t *testing.T) {
	f := newFixture(t)
	call := f.sim.StartCall("a", false, true)
	opened, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"})
	if err != nil {
		t.Fatal(err)
	}
	closed, err := f.svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "ivr", SessionID: new(opened.ID)})
	if err != nil {
		t.Fatal(err)
	}
	if closed.State != sessions.StateClosed || closed.CloseReason != sessions.CloseUnmasked || closed.UnmaskedBy != "ivr" ||
		closed.ID != opened.ID || closed.UnmaskedAt.Before(closed.MaskedAt) {
		t.Errorf("closed session = %+v", closed)
	}
	if c, _ := f.sim.Call(call.ID); c.Masked {
		t.Error("CXone still masks the call")
	}
	if keys := f.stateKeys(t); len(keys) != 0 {
		t.Errorf("a closed session left keys behind: %v", keys)
	}
}

func TestUnmaskOfAnEndedCallClosesAsCallEnded(t *testing.T) {
	f := newFixture(t)
	call := f.sim.StartCall("a", false, true)
	if _, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	f.sim.EndCall(call.ID)
	closed, err := f.svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm"})
	if err != nil || closed.CloseReason != sessions.CloseCallEnded {
		t.Fatalf("Unmask = %+v, %v; want closed as call_ended", closed, err)
	}
}

func TestUnmaskWithoutOpenSessionSendsNothing(t *testing.T) {
	f := newFixture(t)
	f.sim.StartCall("a", false, true)
	_, err := f.svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm"})
	if !errors.Is(err, sessions.ErrNotMasked) {
		t.Fatalf("Unmask = %v; want ErrNotMasked", err)
	}
	if n := f.sim.Count("unmask", "", 0); n != 0 {
		t.Errorf("%d unmasks reached CXone; want none", n)
	}
}

func TestUnmaskOfAnotherSessionIsAMismatchAndSendsNothing(t *testing.T) {
	f := newFixture(t)
	f.sim.StartCall("a", false, true)
	var logs bytes.Buffer
	ctx := zerolog.New(&logs).WithContext(context.Background())
	opened, err := f.svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Unmask(ctx, sessions.UnmaskInput{UserID: "a", Caller: "ivr", SessionID: new("an-older-session")})
	if !errors.Is(err, sessions.ErrSessionMismatch) {
		t.Fatalf("Unmask = %v; want ErrSessionMismatch", err)
	}
	if n := f.sim.Count("unmask", "", 0); n != 0 {
		t.Errorf("%d unmasks reached CXone; want none", n)
	}
	if s, _ := f.svc.Get(context.Background(), "a"); s != opened {
		t.Errorf("the mismatch changed the session: %+v -> %+v", opened, s)
	}
	// The audit trail says which session stayed open and which one the caller named.
	var rejected map[string]any
	for _, line := range testkit.LogLines(t, logs.String()) {
		if line["event"] == "rejected" {
			rejected = line
		}
	}
	if rejected["session_id"] != opened.ID || rejected["requested_session_id"] != "an-older-session" ||
		rejected["caller"] != "ivr" || rejected["outcome"] != "mismatch" {
		t.Errorf("rejected audit line = %v; want session %s kept, an-older-session requested by ivr, outcome mismatch", rejected, opened.ID)
	}
}

// A sessionId names its session in any case, as the UUID it is: a CRM that keeps it
// in a SQL Server uniqueidentifier column reads it back in upper case, and must not
// meet a 409 that leaves the agent masked. Another session's id stays a mismatch.
func TestUnmaskNamesItsSessionInAnyCase(t *testing.T) {
	f := newFixture(t)
	f.sim.StartCall("a", false, true)
	ctx := context.Background()
	opened, err := f.svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm"})
	if err != nil {
		t.Fatal(err)
	}
	other := strings.ToUpper(uuid.NewString())
	if _, err := f.svc.Unmask(ctx, sessions.UnmaskInput{UserID: "a", Caller: "crm", SessionID: &other}); !errors.Is(err, sessions.ErrSessionMismatch) {
		t.Fatalf("Unmask naming another session = %v; want ErrSessionMismatch", err)
	}
	upper := strings.ToUpper(opened.ID)
	closed, err := f.svc.Unmask(ctx, sessions.UnmaskInput{UserID: "a", Caller: "crm", SessionID: &upper})
	if err != nil || closed.ID != opened.ID || closed.State != sessions.StateClosed {
		t.Fatalf("Unmask naming %s = %+v, %v; want session %s closed", upper, closed, err, opened.ID)
	}
	if n := f.sim.Count("unmask", "a", 200); n != 1 {
		t.Errorf("%d unmasks done by CXone; want 1", n)
	}
}

// An unmask CXone does not carry out for a while — it fails, or does not answer in
// time — is accepted and left unmasking for the sweeper to retry: never an error.
func TestUnmaskDuringTransientFailureStaysUnmasking(t *testing.T) {
	for name, fault := range map[string]func(*testkit.Sim){
		"outage": func(s *testkit.Sim) {
			s.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable})
		},
		"no answer": func(s *testkit.Sim) { s.SetHang("a", true) },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.sim.StartCall("a", false, true)
			if _, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"}); err != nil {
				t.Fatal(err)
			}
			fault(f.sim)
			s, err := f.svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm"})
			if err != nil || s.State != sessions.StateUnmasking || !s.Pending() {
				t.Fatalf("Unmask while CXone fails = %+v, %v; want accepted, unmasking", s, err)
			}
			if got, _ := f.svc.Get(context.Background(), "a"); got.State != sessions.StateUnmasking {
				t.Errorf("stored state = %s; want unmasking", got.State)
			}
			f.sim.SetHang("a", false)
		})
	}
}
