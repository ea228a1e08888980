package sessions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

type fixture struct {
	svc    *sessions.Service
	sim    *testkit.Sim
	rdb    *redis.Client
	prefix string
}

func newFixture(t *testing.T, hooks ...redis.Hook) *fixture {
	t.Helper()
	rdb, prefix := testkit.Redis(t, hooks...)
	sim := testkit.NewSim(t)
	cfg := sim.UpstreamConfig()
	cfg.Timeout = 200 * time.Millisecond
	svc := sessions.NewService(sessions.NewStore(rdb, prefix), upstream.New(cfg), sessions.Config{
		DefaultTTL: 15 * time.Minute, MaxTTL: 2 * time.Hour,
	})
	return &fixture{svc: svc, sim: sim, rdb: rdb, prefix: prefix}
}

func ptr[T any](v T) *T { return &v }

// stateKeys are the keys that hold sessions: all but operations' answers, which
// expire by themselves.
func (f *fixture) stateKeys(t *testing.T) []string {
	var out []string
	for _, k := range testkit.Keys(t, f.rdb, f.prefix) {
		if !strings.Contains(k, ":result:") {
			out = append(out, k)
		}
	}
	return out
}

func TestMaskOpensAMaskedSessionWithItsDeadline(t *testing.T) {
	f := newFixture(t)
	call := f.sim.StartCall("agent-1", false, true)
	before := time.Now()
	s, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "agent-1", Caller: "crm", Reason: "payment", TTLSeconds: ptr(300)})
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
	first, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm", Reason: "payment", TTLSeconds: ptr(60)})
	if err != nil {
		t.Fatal(err)
	}
	// The agent joined a newer call: the re-mask must reach CXone again.
	newer := f.sim.StartCall("a", false, true)
	second, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: ptr(600)})
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

func TestMaskWithUnknownOutcomeKeepsTheSessionOpen(t *testing.T) {
	for _, fault := range []cxonesim.Faults{{Hang: true}, {ErrorRate: 1, ErrorStatus: 503}} {
		t.Run(fmt.Sprintf("%+v", fault), func(t *testing.T) {
			f := newFixture(t)
			f.sim.StartCall("a", false, true)
			f.sim.SetFaults(fault)
			_, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm", TTLSeconds: ptr(60)})
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

// cancelAfterNextScript cancels a caller's context as soon as the next session
// script has run: the caller goes away right after the write-ahead.
type cancelAfterNextScript struct {
	cancel atomic.Pointer[context.CancelFunc]
}

func (h *cancelAfterNextScript) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *cancelAfterNextScript) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *cancelAfterNextScript) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if cancel := h.cancel.Swap(nil); cancel != nil && cmds[0].Name() == "evalsha" {
			(*cancel)()
		}
		return err
	}
}

func TestOperationBegunRunsToItsEndWhenItsCallerGoesAway(t *testing.T) {
	hook := &cancelAfterNextScript{}
	f := newFixture(t, hook)
	f.sim.StartCall("a", false, true)
	f.sim.StartCall("warm", false, true)
	// Redis loads the scripts first, so that the next one sent is the mask's begin itself.
	if _, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "warm", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hook.cancel.Store(&cancel)
	s, err := f.svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm", TTLSeconds: ptr(60)})
	if err != nil || s.State != sessions.StateMasked || f.sim.Count("mask", "a", http.StatusOK) != 1 {
		t.Fatalf("Mask whose caller went away after the write-ahead = %+v, %v (%d masks at CXone); want it masked all the same",
			s, err, f.sim.Count("mask", "a", 0))
	}
	// And its lock is released: a lock left behind would hold the next request for the
	// whole CXone budget (15 s) and then refuse it as agent_busy.
	if s, err := f.svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm"}); err != nil || s.State != sessions.StateClosed {
		t.Fatalf("the next Unmask = %+v, %v; want the session closed", s, err)
	}
}

func TestJoinedRequestGetsCXonesAnswerWhenTheFirstCallerGoesAway(t *testing.T) {
	f := newFixture(t)
	f.sim.StartCall("a", false, true)
	f.sim.SetFaults(cxonesim.Faults{Hang: true}) // until both requests are in
	in := sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: ptr(60)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, _ = f.svc.Mask(ctx, in) }()
	bg, session := context.Background(), "{"+f.prefix+"}:session:a"
	testkit.Eventually(t, 5*time.Second, "the first mask to hold the agent", func() bool { return f.rdb.HExists(bg, session, "opId").Val() })
	type answer struct {
		s   sessions.Session
		err error
	}
	joined := make(chan answer, 1)
	go func() {
		s, err := f.svc.Mask(bg, in)
		joined <- answer{s, err}
	}()
	testkit.Eventually(t, 5*time.Second, "the second mask to join the first", func() bool { return f.rdb.HExists(bg, session, "opJoined").Val() })
	cancel() // the first caller hangs up while its mask waits for CXone
	f.sim.SetFaults(cxonesim.Faults{})
	a := <-joined
	if a.err != nil || a.s.State != sessions.StateMasked {
		t.Fatalf("the request that joined got %+v, %v; want CXone's answer: masked", a.s, a.err)
	}
	if stored, err := f.svc.Get(bg, "a"); err != nil || stored != a.s {
		t.Errorf("the request that joined got %+v; stored %+v, %v", a.s, stored, err)
	}
	if n := f.sim.Count("mask", "a", 0); n != 1 {
		t.Errorf("CXone answered %d masks; want the one both requests shared", n)
	}
}

func TestRequestWhoseCallerHungUpBeforeItBeganIsAuditedAsSuch(t *testing.T) {
	f := newFixture(t)
	f.sim.StartCall("a", false, true)
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(zerolog.New(&logs).WithContext(context.Background()))
	cancel()
	if _, err := f.svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Mask of a caller that hung up = %v; want context.Canceled", err)
	}
	var line struct{ Event, Outcome string }
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil || line.Event != "rejected" || line.Outcome != "caller_gone" {
		t.Errorf("audit line %q (%v); want event rejected, outcome caller_gone, not a store failure", logs.String(), err)
	}
	if keys := f.stateKeys(t); len(keys) != 0 || f.sim.Count("mask", "a", 0) != 0 {
		t.Errorf("a request whose caller had hung up left keys %v and %d masks at CXone; want nothing", keys, f.sim.Count("mask", "a", 0))
	}
}

// pollsHeld holds every read of an operation's answer until its reader stops waiting,
// so that a joiner that hangs up does so during a poll.
var pollsHeld = testkit.CommandHook(func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
	if key, _ := cmd.Args()[len(cmd.Args())-1].(string); cmd.Name() == "get" && strings.Contains(key, ":result:") {
		<-ctx.Done()
		cmd.SetErr(ctx.Err())
		return ctx.Err()
	}
	return next(ctx, cmd)
})

func TestCallerThatStopsWaitingForABusyAgentIsAuditedAsSuch(t *testing.T) {
	rate := sessions.Rate{Caller: "ivr", PerSecond: 100}
	mask := func(ctx context.Context, svc *sessions.Service) error {
		_, err := svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "ivr", Rate: rate})
		return err
	}
	for _, tc := range []struct {
		name  string
		wait  func(ctx context.Context, svc *sessions.Service) error
		hooks []redis.Hook
	}{
		{"opposite, waiting for the lock", func(ctx context.Context, svc *sessions.Service) error {
			_, err := svc.Unmask(ctx, sessions.UnmaskInput{UserID: "a", Caller: "ivr", Rate: rate})
			return err
		}, nil},
		// A joiner polls for the answer and waits between polls: it ends the same
		// whether it hangs up during a wait (nearly always, without the hook) or a poll.
		{"identical, waiting for the answer", mask, nil},
		{"identical, hanging up during a poll", mask, []redis.Hook{pollsHeld}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.hooks...)
			f.sim.StartCall("a", false, true)
			f.sim.SetFaults(cxonesim.Faults{Hang: true}) // a mask holds the agent meanwhile
			defer f.sim.SetFaults(cxonesim.Faults{})
			bg := context.Background()
			go func() { _, _ = f.svc.Mask(bg, sessions.MaskInput{UserID: "a", Caller: "crm"}) }()
			testkit.Eventually(t, 5*time.Second, "the mask to hold the agent", func() bool {
				return f.rdb.HExists(bg, "{"+f.prefix+"}:session:a", "opId").Val()
			})
			var logs bytes.Buffer
			ctx, cancel := context.WithCancel(zerolog.New(&logs).WithContext(bg))
			defer cancel()
			gaveUp := make(chan error, 1)
			go func() { gaveUp <- tc.wait(ctx, f.svc) }()
			// Its begin script counts its rate: once counted, the request waits.
			testkit.Eventually(t, 5*time.Second, "the request to wait for the mask", func() bool {
				return slices.ContainsFunc(testkit.Keys(t, f.rdb, f.prefix), func(k string) bool { return strings.Contains(k, ":rate:") })
			})
			cancel()
			if err := <-gaveUp; !errors.Is(err, context.Canceled) {
				t.Fatalf("request whose caller stopped waiting = %v; want context.Canceled", err)
			}
			var line struct{ Event, Outcome string }
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil || line.Event != "rejected" || line.Outcome != "caller_gone" {
				t.Errorf("audit line %q (%v); want event rejected, outcome caller_gone", logs.String(), err)
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

func TestUnmaskClosesTheSession(t *testing.T) {
	f := newFixture(t)
	call := f.sim.StartCall("a", false, true)
	opened, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"})
	if err != nil {
		t.Fatal(err)
	}
	closed, err := f.svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "ivr", SessionID: ptr(opened.ID)})
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
	opened, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm", SessionID: ptr("an-older-session")})
	if !errors.Is(err, sessions.ErrSessionMismatch) {
		t.Fatalf("Unmask = %v; want ErrSessionMismatch", err)
	}
	if n := f.sim.Count("unmask", "", 0); n != 0 {
		t.Errorf("%d unmasks reached CXone; want none", n)
	}
	if s, _ := f.svc.Get(context.Background(), "a"); s != opened {
		t.Errorf("the mismatch changed the session: %+v -> %+v", opened, s)
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

func TestMaskSupersedesAPendingUnmask(t *testing.T) {
	f := newFixture(t)
	f.sim.StartCall("a", false, true)
	old, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"})
	if err != nil {
		t.Fatal(err)
	}
	f.sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable})
	if _, err := f.svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	f.sim.SetFaults(cxonesim.Faults{})
	fresh, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.ID == old.ID || fresh.State != sessions.StateMasked {
		t.Errorf("mask over a pending unmask = %+v; want a new, masked session", fresh)
	}
	// The old session's pending unmask can no longer close the new one.
	if _, err := f.svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm", SessionID: ptr(old.ID)}); !errors.Is(err, sessions.ErrSessionMismatch) {
		t.Errorf("unmask naming the superseded session = %v; want ErrSessionMismatch", err)
	}
}

func TestRedisDownMeansCXoneIsNeverCalled(t *testing.T) {
	sim := testkit.NewSim(t)
	sim.StartCall("a", false, true)
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer dead.Close()
	svc := sessions.NewService(sessions.NewStore(dead, "x"), upstream.New(sim.UpstreamConfig()), sessions.Config{DefaultTTL: time.Minute, MaxTTL: time.Hour})
	if _, err := svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"}); !errors.Is(err, sessions.ErrStoreUnavailable) {
		t.Fatalf("Mask = %v; want ErrStoreUnavailable", err)
	}
	if _, err := svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", Caller: "crm"}); !errors.Is(err, sessions.ErrStoreUnavailable) {
		t.Fatalf("Unmask = %v; want ErrStoreUnavailable", err)
	}
	if n := len(sim.Requests()); n != 0 {
		t.Errorf("%d requests reached CXone with Redis down; want none (write-ahead)", n)
	}
}

func TestInvalidInputIsRefusedBeforeRedisAndCXone(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		in   sessions.MaskInput
		want error
	}{
		{"empty user id", sessions.MaskInput{UserID: ""}, sessions.ErrInvalidUserID},
		{"user id with a slash", sessions.MaskInput{UserID: "a/b"}, sessions.ErrInvalidUserID},
		{"user id with a space", sessions.MaskInput{UserID: "a b"}, sessions.ErrInvalidUserID},
		{"user id with a brace", sessions.MaskInput{UserID: "{x}"}, sessions.ErrInvalidUserID},
		{"user id of 129 characters", sessions.MaskInput{UserID: strings.Repeat("a", 129)}, sessions.ErrInvalidUserID},
		{"reason of 201 characters", sessions.MaskInput{UserID: "a", Reason: strings.Repeat("é", 201)}, sessions.ErrInvalidInput},
		{"reason with a card number", sessions.MaskInput{UserID: "a", Reason: "card 4111111111111111 exp 12/29"}, sessions.ErrInvalidInput},
		{"reason with a spaced card number", sessions.MaskInput{UserID: "a", Reason: "4111 1111 1111 1111"}, sessions.ErrInvalidInput},
		{"reason with a dashed card number", sessions.MaskInput{UserID: "a", Reason: "pan:5500-0000-0000-0004."}, sessions.ErrInvalidInput},
		{"reason with a 15-digit card number", sessions.MaskInput{UserID: "a", Reason: "amex 378282246310005"}, sessions.ErrInvalidInput},
		{"reason with a card number and its expiry", sessions.MaskInput{UserID: "a", Reason: "4111 1111 1111 1111 12/29"}, sessions.ErrInvalidInput},
		{"reason with a card number after other digits", sessions.MaskInput{UserID: "a", Reason: "ref 77-5500 0000 0000 0004"}, sessions.ErrInvalidInput},
		{"ttl 0", sessions.MaskInput{UserID: "a", TTLSeconds: ptr(0)}, sessions.ErrInvalidInput},
		{"ttl negative", sessions.MaskInput{UserID: "a", TTLSeconds: ptr(-5)}, sessions.ErrInvalidInput},
		{"ttl over the maximum", sessions.MaskInput{UserID: "a", TTLSeconds: ptr(7201)}, sessions.ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.svc.Mask(context.Background(), tt.in); !errors.Is(err, tt.want) {
				t.Errorf("Mask = %v; want %v", err, tt.want)
			}
		})
	}
	if _, err := f.svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "a", SessionID: ptr("")}); !errors.Is(err, sessions.ErrInvalidInput) {
		t.Errorf("Unmask with an empty sessionId = %v; want ErrInvalidInput", err)
	}
	if keys := f.stateKeys(t); len(keys) != 0 {
		t.Errorf("invalid input reached Redis: %v", keys)
	}
	if n := len(f.sim.Requests()); n != 0 {
		t.Errorf("invalid input reached CXone %d times", n)
	}
	for _, ok := range []string{"1234567", "a", strings.Repeat("z", 128), "11111111-2222-3333-4444-555555555555", "x.y_z:w@v-u"} {
		if !sessions.ValidUserID(ok) {
			t.Errorf("ValidUserID(%q) = false", ok)
		}
	}
}

// A reason is free text that goes to Redis and into the audit trail: it may hold
// numbers, but not a card number, which a PCI environment must never store.
func TestReasonMayHoldNumbersButNotACardNumber(t *testing.T) {
	for _, reason := range []string{
		"payment",
		"order 4111111111111112",   // 16 digits, Luhn fails
		"ticket 123456789012",      // 12 digits
		"ref 41111111111111111111", // 20 digits: no card number
		"call 2026-11-26 10:00, case 1234-5678, 3 items", // digits in groups
	} {
		if err := (sessions.MaskInput{UserID: "a", Reason: reason}).Validate(time.Hour); err != nil {
			t.Errorf("reason %q refused: %v", reason, err)
		}
	}
	err := (sessions.MaskInput{UserID: "a", Reason: "4111111111111111"}).Validate(time.Hour)
	if !errors.Is(err, sessions.ErrInvalidInput) || strings.Contains(err.Error(), "4111") {
		t.Errorf("a card number as reason: %v; want ErrInvalidInput, without the number", err)
	}
}

func TestListPagesThroughOpenSessionsInOrder(t *testing.T) {
	f := newFixture(t)
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("agent-%02d", i)
		want = append(want, id)
		f.sim.StartCall(id, false, true)
		if _, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: id, Caller: "crm"}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	cursor, pages := "", 0
	for {
		page, err := f.svc.List(context.Background(), cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, s := range page.Sessions {
			got = append(got, s.UserID)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if pages != 3 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%d pages with %v; want 3 pages with %v", pages, got, want)
	}
	if _, err := f.svc.List(context.Background(), "!!not-a-cursor", 10); !errors.Is(err, sessions.ErrInvalidCursor) {
		t.Errorf("List with a bad cursor = %v; want ErrInvalidCursor", err)
	}
	// Closed sessions leave the list at once.
	if _, err := f.svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "agent-00", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	page, _ := f.svc.List(context.Background(), "", 1000)
	if len(page.Sessions) != 24 || page.Sessions[0].UserID != "agent-01" || page.Next != "" {
		t.Errorf("after closing agent-00: %d sessions starting at %s, next %q", len(page.Sessions), page.Sessions[0].UserID, page.Next)
	}
}

func TestVerifyAddsCXonesRecordingStatus(t *testing.T) {
	f := newFixture(t)
	call := f.sim.StartCall("a", false, true)
	if _, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	_, rec, err := f.svc.Verify(context.Background(), "a")
	if err != nil || !rec.ActiveCall || rec.Status.StatusReason != "Mask" || rec.Status.ContactID != call.ID {
		t.Fatalf("Verify = %+v, %v; want CXone reporting the mask", rec, err)
	}
	f.sim.EndCall(call.ID)
	_, rec, err = f.svc.Verify(context.Background(), "a")
	if err != nil || rec.ActiveCall {
		t.Errorf("Verify after the call ended = %+v, %v; want no active call", rec, err)
	}
}

// A session that closes between the list's two reads (the userIds, then their
// sessions) is left out of the page, and the page still says whether more follow: the
// sessions after it are on the next page, not lost.
func TestListDoesNotEndAtASessionThatClosedWhileListed(t *testing.T) {
	closes := &closeOnRead{}
	f := newFixture(t, closes)
	for _, id := range []string{"a", "b", "c", "d"} {
		f.sim.StartCall(id, false, true)
		if _, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: id, Caller: "crm"}); err != nil {
			t.Fatal(err)
		}
	}
	closes.rdb, closes.key = f.rdb, "{"+f.prefix+"}:session:b"
	closes.armed.Store(true)
	var got []string
	for cursor, pages := "", 0; pages < 5; pages++ {
		page, err := f.svc.List(context.Background(), cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Sessions {
			got = append(got, s.UserID)
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if strings.Join(got, ",") != "a,c,d" {
		t.Errorf("listed %v; want a, c and d (b closed while its page was read)", got)
	}
}

// closeOnRead is a redis.Hook that, once armed, deletes the session at key just before
// the next pipeline of session reads runs: a close that lands between a list's two reads.
type closeOnRead struct {
	rdb   *redis.Client
	key   string
	armed atomic.Bool
}

func (c *closeOnRead) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (c *closeOnRead) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *closeOnRead) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if cmds[0].Name() == "hmget" && c.armed.CompareAndSwap(true, false) {
			if err := c.rdb.Del(ctx, c.key).Err(); err != nil {
				return err
			}
		}
		return next(ctx, cmds)
	}
}
