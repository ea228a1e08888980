package sessions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// TestCrashAfterWriteAheadStillUnmasks is a replica that died right after writing a
// mask ahead, while CXone masked: nothing finishes its operation. Once the dead
// replica's lock lease passes and the deadline is due, another replica's sweeper
// unmasks the agent.
func TestCrashAfterWriteAheadStillUnmasks(t *testing.T) {
	rdb, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	call := sim.StartCall("a", false, true)
	cx := upstream.New(sim.UpstreamConfig())
	svc := NewService(NewStore(rdb, prefix), cx, Config{DefaultTTL: time.Second, MaxTTL: time.Hour, UpstreamBudget: 200 * time.Millisecond})

	// The dying replica: the write-ahead, then CXone's mask, then nothing.
	in := MaskInput{UserID: "a", Caller: "ivr"}
	if _, err := svc.store.beginMask(context.Background(), in, uuid.NewString(), uuid.NewString(), "fp", time.Second, svc.lease(), Rate{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cx.Mask(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	s, err := svc.Get(context.Background(), "a")
	if err != nil || s.State != StateMasking {
		t.Fatalf("after the crash: %+v, %v; want the written-ahead session, masking", s, err)
	}

	sweepUntilClosed(t, svc, "a")
	unmasked(t, sim, call.ID, 1)
}

// TestCrashDuringUnmaskIsFinishedAfterTheLease is a replica that died right after
// marking a session "unmasking", before it asked CXone: the agent must not stay masked
// until the mask's deadline (an hour here). Once the dead replica's lease passes,
// another replica's sweeper carries out the unmask its caller asked for.
func TestCrashDuringUnmaskIsFinishedAfterTheLease(t *testing.T) {
	svc, sim, call := agentOnACall(t, Config{})
	ctx := context.Background()
	opened, err := svc.Mask(ctx, MaskInput{UserID: "a", Caller: "crm"})
	if err != nil {
		t.Fatal(err)
	}

	// The dying replica: the unmask written ahead, then nothing.
	if _, err := svc.store.beginUnmask(ctx, "a", "", "ivr", uuid.NewString(), "fp", "", svc.lease(), Rate{}); err != nil {
		t.Fatal(err)
	}
	// From the write-ahead on, the unmask is pending (maskgate_unmasks_pending).
	if n, err := svc.store.unmaskingCount(ctx); err != nil || n != 1 {
		t.Errorf("unmasks not finished = %d, %v; want 1", n, err)
	}
	unmaskedAs(t, sweepUntilClosed(t, svc, "a"), opened.ID, "ivr")
	unmasked(t, sim, call.ID, 1)
}

// TestCrashDuringUnmaskOfAMaskNotYetCarriedOut is TestCrashDuringUnmaskIsFinishedAfterTheLease
// with a mask CXone accepted (202) and had not yet carried out when the unmask began:
// the sweeper must carry out the unmask, not check the mask's outcome. Checking it
// would find the call not masked yet and close the session, and the mask CXone then
// carries out would stay with nothing to unmask it.
func TestCrashDuringUnmaskOfAMaskNotYetCarriedOut(t *testing.T) {
	svc, sim, call := agentOnACall(t, Config{RetryBackoff: 100 * time.Millisecond})
	ctx := context.Background()
	sim.SetBehaviour("a", 0, time.Second) // 202s, carried out a second later
	if s, err := svc.Mask(ctx, MaskInput{UserID: "a", Caller: "crm"}); err != nil || s.State != StateMasking {
		t.Fatalf("Mask = %+v, %v; want it accepted, masking", s, err)
	}

	// The dying replica: the unmask written ahead, then nothing.
	if _, err := svc.store.beginUnmask(ctx, "a", "", "ivr", uuid.NewString(), "fp", "", svc.lease(), Rate{}); err != nil {
		t.Fatal(err)
	}
	sweepUntilClosed(t, svc, "a")
	testkit.Eventually(t, 5*time.Second, "CXone to carry out the mask it accepted", func() bool {
		c, _ := sim.Call(call.ID)
		return slices.ContainsFunc(c.Timeline, func(e cxonesim.Event) bool { return e.Kind == "masked" })
	})
	if c, _ := sim.Call(call.ID); c.Masked {
		t.Errorf("the session closed and the call is masked: %+v", c.Timeline)
	}
}

// TestCrashAfterASupersedingWriteAheadKeepsTheTrailWhole is a replica that died right
// after writing ahead a mask that replaced a session whose unmask was pending, before
// any audit line could say so. The lines another replica's sweeper writes of the new
// session name the one it replaced, so that the audit trail, read after a loss of
// Redis's data, does not list the replaced session once the new one has closed.
func TestCrashAfterASupersedingWriteAheadKeepsTheTrailWhole(t *testing.T) {
	svc, sim, call := agentOnACall(t, Config{})
	var logs testkit.LogBuffer
	ctx := zerolog.New(&logs).WithContext(context.Background())
	old, err := svc.Mask(ctx, MaskInput{UserID: "a", Caller: "crm"})
	if err != nil {
		t.Fatal(err)
	}
	sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable})
	if s, err := svc.Unmask(ctx, UnmaskInput{UserID: "a", Caller: "crm"}); err != nil || s.State != StateUnmasking {
		t.Fatalf("unmask during an outage = %+v, %v; want it pending", s, err)
	}
	sim.SetFaults(cxonesim.Faults{})

	// The dying replica: a mask written ahead over the pending unmask, then nothing.
	if _, err := svc.store.beginMask(ctx, MaskInput{UserID: "a", Caller: "ivr"}, uuid.NewString(), uuid.NewString(), "fp", time.Second, svc.lease(), Rate{}); err != nil {
		t.Fatal(err)
	}
	swept := sweepUntilClosed(t, svc, "a")
	if open, err := OpenInTrail(strings.NewReader(logs.String() + swept)); err != nil || len(open) != 0 {
		t.Errorf("the trail leaves %+v open (%v); want nothing, %s replaced and its replacement expired:\n%s%s", open, err, old.ID, logs.String(), swept)
	}
	if c, _ := sim.Call(call.ID); c.Masked {
		t.Error("the call is still masked")
	}
}

// TestReMaskThatMaskedNothingKeepsTheSessionItRefreshes is a replica that died right
// after writing ahead a mask that replaced a session whose unmask was pending (A), so
// that the new session (B) still keeps A; then a re-mask of B that CXone refuses. Only
// the mask that replaced A may put it back when it masked nothing: B's own mask may
// have masked the call (and a re-mask a caller saw succeed may have come between, one
// whose replica died before it could record CXone's answer), so B stays open with its
// deadline, and A's unmask, sent at once, would undo it. B's later lines still name A,
// so that once B closes the audit trail leaves neither open.
func TestReMaskThatMaskedNothingKeepsTheSessionItRefreshes(t *testing.T) {
	svc, sim, call := agentOnACall(t, Config{})
	var logs testkit.LogBuffer
	ctx := zerolog.New(&logs).WithContext(context.Background())
	if _, err := svc.Mask(ctx, MaskInput{UserID: "a", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable})
	if s, err := svc.Unmask(ctx, UnmaskInput{UserID: "a", Caller: "crm"}); err != nil || s.State != StateUnmasking {
		t.Fatalf("unmask during an outage = %+v, %v; want it pending", s, err)
	}
	sim.SetFaults(cxonesim.Faults{})

	// The dying replica: a mask written ahead over the pending unmask, then nothing.
	b, err := svc.store.beginMask(ctx, MaskInput{UserID: "a", Caller: "ivr"}, uuid.NewString(), uuid.NewString(), "fp", time.Hour, svc.lease(), Rate{})
	if err != nil || b.outcome != "superseded" {
		t.Fatalf("beginMask = %+v, %v; want it to supersede the pending unmask", b, err)
	}
	unmasks := sim.Count("unmask", "a", 0)
	sim.SetFaults(cxonesim.Faults{DenyMasking: true})
	testkit.Eventually(t, 5*time.Second, "the dead replica's lease to end", func() bool {
		_, err = svc.Mask(ctx, MaskInput{UserID: "a", Caller: "ivr"})
		return !errors.Is(err, ErrAgentBusy)
	})
	if !errors.Is(err, ErrUpstreamRefused) {
		t.Fatalf("re-mask = %v; want ErrUpstreamRefused", err)
	}
	if s, err := svc.Get(ctx, "a"); err != nil || s.ID != b.session.ID || s.State != StateMasking {
		t.Errorf("after the refused re-mask the agent's session = %+v, %v; want %s, masking", s, err, b.session.ID)
	}
	if n := sim.Count("unmask", "a", 0); n != unmasks {
		t.Errorf("unmasks sent = %d; want still %d", n, unmasks)
	}

	sim.SetFaults(cxonesim.Faults{})
	if s, err := svc.Unmask(ctx, UnmaskInput{UserID: "a", Caller: "crm"}); err != nil || s.State != StateClosed {
		t.Fatalf("Unmask = %+v, %v; want B closed", s, err)
	}
	if c, _ := sim.Call(call.ID); c.Masked {
		t.Error("the call is still masked")
	}
	if open, err := OpenInTrail(strings.NewReader(logs.String())); err != nil || len(open) != 0 {
		t.Errorf("the trail leaves %+v open (%v); want nothing:\n%s", open, err, logs.String())
	}
}

// agentOnACall is a Service on the test Redis and a simulator in which agent "a" is on
// a call: cfg with masks an hour long, and a CXone budget of 200 ms unless cfg sets one.
func agentOnACall(t *testing.T, cfg Config) (*Service, *testkit.Sim, cxonesim.Call) {
	rdb, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	cfg.DefaultTTL, cfg.MaxTTL = time.Hour, time.Hour
	if cfg.UpstreamBudget == 0 {
		cfg.UpstreamBudget = 200 * time.Millisecond
	}
	return NewService(NewStore(rdb, prefix), upstream.New(sim.UpstreamConfig()), cfg), sim, sim.StartCall("a", false, true)
}

// sweepUntilClosed runs a sweeper of svc until the agent's session is closed, and
// returns what it logged.
func sweepUntilClosed(t *testing.T, svc *Service, userID string) string {
	t.Helper()
	var log bytes.Buffer
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.NewSweeper(SweeperConfig{Interval: 50 * time.Millisecond, Lease: time.Second, Log: zerolog.New(&log)}).Run(ctx)
	}()
	testkit.Eventually(t, 15*time.Second, "the sweeper to close the session", func() bool {
		_, err := svc.Get(context.Background(), userID)
		return errors.Is(err, ErrNotMasked)
	})
	stop()
	<-done
	return log.String()
}

// unmasked checks that CXone unmasked the call, with unmasks 200 answers in all to the
// agent's unmasks, and that its timeline is started, masked, unmasked: nothing undone.
func unmasked(t *testing.T, sim *testkit.Sim, callID string, unmasks int) {
	t.Helper()
	c, _ := sim.Call(callID)
	if n := sim.Count("unmask", c.UserID, http.StatusOK); n != unmasks {
		t.Errorf("unmasks = %d; want %d", n, unmasks)
	}
	if c.Masked || len(c.Timeline) != 3 {
		t.Errorf("call = %+v; want started, masked, unmasked", c)
	}
}

// unmaskedAs checks that log has the audit line of session id's unmask by caller.
func unmaskedAs(t *testing.T, log, id, caller string) {
	t.Helper()
	line := auditLine(t, log, "unmasked")
	if line["session_id"] != id || line["caller"] != caller || line["outcome"] != "done" || line["error"] != nil {
		t.Errorf("audit line = %v; want session %s unmasked by %s", line, id, caller)
	}
}

// auditLine is the last audit line of event in log.
func auditLine(t *testing.T, log, event string) map[string]any {
	t.Helper()
	var found map[string]any
	for _, line := range testkit.LogLines(t, log) {
		if line["audit"] == true && line["event"] == event {
			found = line
		}
	}
	if found == nil {
		t.Fatalf("no %q audit line in:\n%s", event, log)
	}
	return found
}

// TestForcedUnmaskHoldsTheAgentsLock is an operator's forced unmask (the gateway lost
// its record while CXone still masks the call) that a caller's mask crosses: the mask
// waits for it and then masks. Without the lock, CXone would get the mask and then the
// unmask, and the agent would be recorded while the gateway says it is masked.
func TestForcedUnmaskHoldsTheAgentsLock(t *testing.T) {
	begins := &testkit.CommandCounter{Match: func(cmd redis.Cmder) bool {
		a := cmd.Args()
		return len(a) > 1 && a[0] == "evalsha" && a[1] == maskBeginScript.Hash()
	}}
	rdb, prefix := testkit.Redis(t, begins)
	sim := testkit.NewSim(t)
	call := sim.StartCall("a", false, true)
	cx := &heldUnmask{CXone: upstream.New(sim.UpstreamConfig()), entered: make(chan struct{}), release: make(chan struct{})}
	svc := NewService(NewStore(rdb, prefix), cx, Config{DefaultTTL: time.Hour, MaxTTL: time.Hour, UpstreamBudget: 5 * time.Second})
	ctx := context.Background()
	if _, err := cx.Mask(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	forced := make(chan error, 1)
	go func() {
		s, err := svc.Unmask(ctx, UnmaskInput{UserID: "a", Caller: "ops", Force: true})
		if err == nil && (s.State != StateClosed || !s.Forced) {
			err = fmt.Errorf("forced unmask = %+v; want closed, forced", s)
		}
		forced <- err
	}()
	<-cx.entered // the forced unmask is on its way to CXone
	masked := make(chan error, 1)
	go func() {
		s, err := svc.Mask(ctx, MaskInput{UserID: "a", Caller: "crm"})
		if err == nil && (s.State != StateMasked || s.Forced) {
			err = fmt.Errorf("mask = %+v; want masked", s)
		}
		masked <- err
	}()
	// A mask begins again only after it was told that the agent is busy.
	testkit.Eventually(t, 5*time.Second, "the mask to wait for the forced unmask", func() bool { return begins.N() >= 2 })
	if n := sim.Count("mask", "a", 0); n != 1 {
		t.Fatalf("masks sent to CXone while the forced unmask held the agent = %d; want only the one before it", n)
	}
	close(cx.release)
	if err := <-forced; err != nil {
		t.Fatal(err)
	}
	if err := <-masked; err != nil {
		t.Fatal(err)
	}
	if c, _ := sim.Call(call.ID); !c.Masked {
		t.Errorf("call = %+v; want masked: the forced unmask undid the mask that crossed it", c)
	}
}

// heldUnmask is CXone whose first unmask waits for release, once it has said so on
// entered.
type heldUnmask struct {
	CXone
	entered, release chan struct{}
	once             sync.Once
}

func (h *heldUnmask) Unmask(ctx context.Context, userID string) (upstream.Result, error) {
	h.once.Do(func() {
		close(h.entered)
		<-h.release
	})
	return h.CXone.Unmask(ctx, userID)
}
