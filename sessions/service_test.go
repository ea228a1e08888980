package sessions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
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

// TestMain gives the tests' log lines maskgate's own times (main sets them), so that
// the order of decisions milliseconds apart shows in an audit trail.
func TestMain(m *testing.M) {
	zerolog.TimeFieldFormat = sessions.TimeFormat
	os.Exit(m.Run())
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

// cancelAfterNextScript cancels a caller's context as soon as the next session
// script has run: the caller goes away right after the write-ahead.
type cancelAfterNextScript struct {
	cancel atomic.Pointer[context.CancelFunc]
}

func (h *cancelAfterNextScript) DialHook(next redis.DialHook) redis.DialHook { return next }

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
	s, err := f.svc.Mask(ctx, sessions.MaskInput{UserID: "a", Caller: "crm", TTLSeconds: new(60)})
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
	in := sessions.MaskInput{UserID: "a", Caller: "ivr", TTLSeconds: new(60)}
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
