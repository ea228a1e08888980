package sessions

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
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

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go svc.NewSweeper(SweeperConfig{Interval: 100 * time.Millisecond, Lease: time.Second, Log: zerolog.Nop()}).Run(ctx)
	testkit.Eventually(t, 10*time.Second, "the survivor to unmask", func() bool {
		_, err := svc.Get(context.Background(), "a")
		return errors.Is(err, ErrNotMasked)
	})
	if got, _ := sim.Call(call.ID); got.Masked {
		t.Error("the call stayed masked after the crash")
	}
	if n := sim.Count("unmask", "a", 200); n != 1 {
		t.Errorf("unmasks = %d; want 1", n)
	}
}
