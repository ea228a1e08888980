package sessions

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// Redis unreachable between CXone's answer and the write that records it: the caller hears
// what CXone did, and once Redis is back the session's deadline or lease ends it.

// TestRedisLostBeforeAnUnmaskIsRecorded is Redis becoming unreachable between CXone's
// 200 to an unmask and the write that closes the session: the caller hears that the
// unmask is under way (CXone did unmask), and once Redis is back and the lease has
// passed, the sweeper unmasks again — which changes nothing at CXone — and closes the
// session as the caller's unmask.
func TestRedisLostBeforeAnUnmaskIsRecorded(t *testing.T) {
	lost := redisLostAfter(t, "unmask", time.Hour)
	opened, err := lost.svc.Mask(lost.ctx(), MaskInput{UserID: "a", Caller: "crm"})
	if err != nil {
		t.Fatal(err)
	}

	s, err := lost.svc.Unmask(lost.ctx(), UnmaskInput{UserID: "a", Caller: "ivr"})
	if err != nil || s.State != StateUnmasking {
		t.Fatalf("Unmask = %+v, %v; want the session unmasking and no error", s, err)
	}
	if line := auditLine(t, lost.log.String(), "unmasked"); line["error"] == nil || line["outcome"] != "done" {
		t.Errorf("audit line = %v; want CXone's unmask done, with the store's error", line)
	}
	if c, _ := lost.sim.Call(lost.call); c.Masked {
		t.Fatal("CXone did not unmask")
	}

	lost.proxy.Set(testkit.Fault{})
	unmaskedAs(t, sweepUntilClosed(t, lost.svc, "a"), opened.ID, "ivr")
	unmasked(t, lost.sim, lost.call, 2) // the caller's and the sweeper's
}

// TestRedisLostBeforeAMaskIsRecorded is Redis becoming unreachable between CXone's 200
// to a mask and the write that records it: CXone masked, so the caller is told so
// and may take the card number; the session written ahead stays "masking", and its
// deadline unmasks the agent once Redis is back.
func TestRedisLostBeforeAMaskIsRecorded(t *testing.T) {
	lost := redisLostAfter(t, "mask", time.Second)
	s, err := lost.svc.Mask(lost.ctx(), MaskInput{UserID: "a", Caller: "crm"})
	if err != nil || s.State != StateMasked {
		t.Fatalf("Mask = %+v, %v; want the session masked and no error", s, err)
	}
	if line := auditLine(t, lost.log.String(), "masked"); line["error"] == nil || line["outcome"] != "lock_lost" {
		t.Errorf("audit line = %v; want outcome lock_lost, with the store's error", line)
	}

	lost.proxy.Set(testkit.Fault{})
	if got, err := lost.svc.Get(lost.ctx(), "a"); err != nil || got.ID != s.ID || got.State != StateMasking {
		t.Errorf("the session after Redis came back = %+v, %v; want %s, masking as written ahead", got, err, s.ID)
	}
	line := auditLine(t, sweepUntilClosed(t, lost.svc, "a"), "expired")
	if line["session_id"] != s.ID || line["outcome"] != "done" {
		t.Errorf("audit line = %v; want session %s expired", line, s.ID)
	}
	unmasked(t, lost.sim, lost.call, 1)
}

// TestRedisLostBeforeARefusedMaskIsRecorded is Redis becoming unreachable between
// CXone's refusal of a mask and the write that removes the session written ahead: the
// caller hears the refusal, a "store_failed" audit line says the record could not be
// removed, and the session's deadline sends an unmask (which changes nothing at CXone)
// and closes it once Redis is back: never a session left open.
func TestRedisLostBeforeARefusedMaskIsRecorded(t *testing.T) {
	lost := redisLostAfter(t, "mask", time.Second)
	lost.sim.SetFaults(cxonesim.Faults{DenyMasking: true})
	if _, err := lost.svc.Mask(lost.ctx(), MaskInput{UserID: "a", Caller: "crm"}); !errors.Is(err, ErrUpstreamRefused) {
		t.Fatalf("Mask = %v; want CXone's refusal", err)
	}
	if line := auditLine(t, lost.log.String(), "store_failed"); line["error"] == nil || line["outcome"] != "unknown" {
		t.Errorf("audit line = %v; want store_failed with the store's error", line)
	}

	lost.sim.SetFaults(cxonesim.Faults{})
	lost.proxy.Set(testkit.Fault{})
	auditLine(t, sweepUntilClosed(t, lost.svc, "a"), "expired")
	if c, _ := lost.sim.Call(lost.call); c.Masked || len(c.Timeline) != 1 {
		t.Errorf("call = %+v; want never masked", c)
	}
}

// lostRedis is a Service whose Redis becomes unreachable right after CXone's first
// answer to one operation, with the agent "a" on a call.
type lostRedis struct {
	svc   *Service
	sim   *testkit.Sim
	call  string
	proxy *testkit.FaultProxy
	log   *bytes.Buffer // what requests made with ctx() logged
}

// ctx is a request's context, whose logger writes to l.log.
func (l *lostRedis) ctx() context.Context {
	return zerolog.New(l.log).WithContext(context.Background())
}

func redisLostAfter(t *testing.T, op string, ttl time.Duration) *lostRedis {
	direct, prefix := testkit.Redis(t)
	opts := *direct.Options()
	proxy := testkit.NewFaultProxy(t, opts.Addr)
	opts.Addr = proxy.Addr()
	rdb := redis.NewClient(&opts)
	t.Cleanup(func() { rdb.Close() })
	sim := testkit.NewSim(t)
	cx := &cutAfter{CXone: upstream.New(sim.UpstreamConfig()), op: op, cut: func() { proxy.Set(testkit.Fault{Refuse: true}) }}
	var log bytes.Buffer
	return &lostRedis{
		svc:   NewService(NewStore(rdb, prefix), cx, Config{DefaultTTL: ttl, MaxTTL: time.Hour, UpstreamBudget: 200 * time.Millisecond}),
		sim:   sim,
		call:  sim.StartCall("a", false, true).ID,
		proxy: proxy,
		log:   &log,
	}
}

// cutAfter is CXone followed, after its first answer to op, by cut.
type cutAfter struct {
	CXone
	op   string
	cut  func()
	once sync.Once
}

func (c *cutAfter) Mask(ctx context.Context, userID string) (upstream.Result, error) {
	defer c.after("mask")
	return c.CXone.Mask(ctx, userID)
}

func (c *cutAfter) Unmask(ctx context.Context, userID string) (upstream.Result, error) {
	defer c.after("unmask")
	return c.CXone.Unmask(ctx, userID)
}

func (c *cutAfter) after(op string) {
	if op == c.op {
		c.once.Do(c.cut)
	}
}
