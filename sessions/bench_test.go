package sessions

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maskgate/maskgate/internal/testkit"
)

// BenchmarkTransitions runs a session's life through its Lua transitions against the
// real Redis: mask_begin (with the caller's rate), finish (masked), unmask_begin (with
// the rate), close — four round trips, two per request.
func BenchmarkTransitions(b *testing.B) {
	rdb, prefix := testkit.Redis(b)
	store := NewStore(rdb, prefix)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		user := "bench-" + strconv.Itoa(i%5000)
		op := uuid.NewString()
		bg, err := store.beginMask(ctx, MaskInput{UserID: user, Caller: "bench"}, uuid.NewString(), op, "fp", time.Minute, time.Minute, Rate{Caller: "bench", PerSecond: 1 << 30})
		if err != nil || bg.outcome == "busy" {
			b.Fatalf("beginMask: %v %s", err, bg.outcome)
		}
		if err := store.finish(ctx, user, op, finishing{state: StateMasked}); err != nil {
			b.Fatal(err)
		}
		op = uuid.NewString()
		if _, err := store.beginUnmask(ctx, user, "", "bench", op, "fp", time.Minute, Rate{Caller: "bench", PerSecond: 1 << 30}); err != nil {
			b.Fatal(err)
		}
		if _, err := store.close(ctx, user, op, CloseUnmasked, "bench", ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRateCheck is one caller's rate check: one round trip.
func BenchmarkRateCheck(b *testing.B) {
	rdb, prefix := testkit.Redis(b)
	store := NewStore(rdb, prefix)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := store.Allow(context.Background(), "bench", 1<<30, time.Second); err != nil {
			b.Fatal(err)
		}
	}
}
