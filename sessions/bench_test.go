package sessions

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maskgate/maskgate/internal/testkit"
)

// BenchmarkTransitions runs a session's life through its Lua transitions against the
// real Redis: mask_begin (with the caller's rate), finish (masked), unmask_begin (with
// the rate), close — four round trips, two per request.
func BenchmarkTransitions(b *testing.B) {
	store, ctx := benchStore(b)
	i := 0
	for b.Loop() {
		i++
		user := "bench-" + strconv.Itoa(i%5000)
		benchMask(ctx, b, store, user)
		op := uuid.NewString()
		if _, err := store.beginUnmask(ctx, user, "", "bench", op, "fp", "", time.Minute, benchRate); err != nil {
			b.Fatal(err)
		}
		if _, err := store.close(ctx, user, op, CloseUnmasked, "bench", ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMask is a mask as maskbench makes them once every agent has a session:
// mask_begin (with the caller's rate) refreshing the agent's session, then finish
// (masked) — two round trips. 500 agents, so that after the first 500 masks every one
// is a re-mask. scripts/redis-instructions counts what it costs Redis.
func BenchmarkMask(b *testing.B) {
	store, ctx := benchStore(b)
	i := 0
	for b.Loop() {
		i++
		benchMask(ctx, b, store, "bench-"+strconv.Itoa(i%500))
	}
}

// benchRate counts every request and refuses none.
var benchRate = Rate{Caller: "bench", PerSecond: 1 << 30}

// benchStore is a Store on the real Redis for a benchmark that reports allocations.
func benchStore(b *testing.B) (*Store, context.Context) {
	rdb, prefix := testkit.Redis(b)
	b.ReportAllocs()
	return NewStore(rdb, prefix), context.Background()
}

// benchMask masks user as Service.Mask does when CXone answers 200: mask_begin, then
// finish.
func benchMask(ctx context.Context, b *testing.B, store *Store, user string) {
	op := uuid.NewString()
	bg, err := store.beginMask(ctx, MaskInput{UserID: user, Caller: "bench"}, uuid.NewString(), op, "fp", time.Minute, time.Minute, benchRate)
	if err != nil || bg.outcome == "busy" {
		b.Fatalf("beginMask: %v %s", err, bg.outcome)
	}
	if err := store.finish(ctx, user, op, finishing{state: StateMasked, confirm: "0"}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRateCheck is one caller's rate check: one round trip.
func BenchmarkRateCheck(b *testing.B) {
	store, ctx := benchStore(b)
	for b.Loop() {
		if _, err := store.Allow(ctx, benchRate.Caller, benchRate.PerSecond, time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateMask is a mask's input checked: a short reason, one of 200
// characters that names a case by its UUID and holds letters outside ASCII (every
// rune looked at for hidden characters and digits of other scripts), and one of 200
// ASCII characters.
func BenchmarkValidateMask(b *testing.B) {
	for _, c := range []struct{ name, reason string }{
		{"short", "payment"},
		{"non-ASCII", "refund for order 2026-12-08 1234567, case 716ea641-3614-4560-9547-195aae98c80c, " + strings.Repeat("é", 100)},
		{"ASCII", strings.Repeat("payment, ", 22)},
	} {
		in := MaskInput{UserID: "agent-1", Reason: c.reason}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := in.Validate(time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
