package sessions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream"
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
	rdb, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	call := sim.StartCall("a", false, true)
	svc := NewService(NewStore(rdb, prefix), upstream.New(sim.UpstreamConfig()),
		Config{DefaultTTL: time.Hour, MaxTTL: time.Hour, UpstreamBudget: 200 * time.Millisecond})
	ctx := context.Background()
	opened, err := svc.Mask(ctx, MaskInput{UserID: "a", Caller: "crm"})
	if err != nil {
		t.Fatal(err)
	}

	// The dying replica: the unmask written ahead, then nothing.
	if _, err := svc.store.beginUnmask(ctx, "a", "", "ivr", uuid.NewString(), "fp", svc.lease(), Rate{}); err != nil {
		t.Fatal(err)
	}
	unmaskedAs(t, sweepUntilClosed(t, svc, "a"), opened.ID, "ivr")
	unmasked(t, sim, call.ID, 1)
}

// TestRedisLostBeforeAnUnmaskIsRecorded is Redis becoming unreachable between CXone's
// 200 to an unmask and the write that closes the session: the caller hears that the
// unmask is under way (CXone did unmask), and once Redis is back and the lease has
// passed, the sweeper unmasks again — which changes nothing at CXone — and closes the
// session as the caller's unmask.
func TestRedisLostBeforeAnUnmaskIsRecorded(t *testing.T) {
	direct, prefix := testkit.Redis(t)
	opts := *direct.Options()
	proxy := testkit.NewFaultProxy(t, opts.Addr)
	opts.Addr = proxy.Addr()
	rdb := redis.NewClient(&opts)
	t.Cleanup(func() { rdb.Close() })
	sim := testkit.NewSim(t)
	call := sim.StartCall("a", false, true)
	cx := &cutAfterUnmask{CXone: upstream.New(sim.UpstreamConfig()), cut: func() { proxy.Set(testkit.Fault{Refuse: true}) }}
	svc := NewService(NewStore(rdb, prefix), cx,
		Config{DefaultTTL: time.Hour, MaxTTL: time.Hour, UpstreamBudget: 200 * time.Millisecond})
	var log bytes.Buffer
	ctx := zerolog.New(&log).WithContext(context.Background())
	opened, err := svc.Mask(ctx, MaskInput{UserID: "a", Caller: "crm"})
	if err != nil {
		t.Fatal(err)
	}

	s, err := svc.Unmask(ctx, UnmaskInput{UserID: "a", Caller: "ivr"})
	if err != nil || s.State != StateUnmasking {
		t.Fatalf("Unmask = %+v, %v; want the session unmasking and no error", s, err)
	}
	if line := auditLine(t, log.String(), "unmasked"); line["error"] == nil || line["outcome"] != "done" {
		t.Errorf("audit line = %v; want CXone's unmask done, with the store's error", line)
	}
	if c, _ := sim.Call(call.ID); c.Masked {
		t.Fatal("CXone did not unmask")
	}

	proxy.Set(testkit.Fault{})
	unmaskedAs(t, sweepUntilClosed(t, svc, "a"), opened.ID, "ivr")
	unmasked(t, sim, call.ID, 2) // the caller's and the sweeper's
}

// cutAfterUnmask is CXone followed, after its first unmask, by the loss of Redis.
type cutAfterUnmask struct {
	CXone
	cut  func()
	once sync.Once
}

func (c *cutAfterUnmask) Unmask(ctx context.Context, userID string) (upstream.Result, error) {
	res, err := c.CXone.Unmask(ctx, userID)
	c.once.Do(c.cut)
	return res, err
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
	testkit.Eventually(t, 5*time.Second, "the sweeper to close the session", func() bool {
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
	for l := range strings.Lines(log) {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if line["audit"] == true && line["event"] == event {
			found = line
		}
	}
	if found == nil {
		t.Fatalf("no %q audit line in:\n%s", event, log)
	}
	return found
}
