package sessions

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/testkit"
)

// TestRateCheckSlidesOverTheWindow runs rate_check on chosen clocks: 10 requests per
// 1,000 ms window, the previous window weighing as much as it still overlaps.
func TestRateCheckSlidesOverTheWindow(t *testing.T) {
	rdb, prefix := testkit.Redis(t)
	script := redis.NewScript(rateCheckSrc + "return rate_check(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]))")
	key := "{" + prefix + "}:rate:t"
	const start = 1_800_000_000_000 // a window's start, in ms
	// check sends n requests at the given ms into the window of index w and wants the
	// last to wait wait ms (0: allowed) and the others allowed.
	check := func(step string, w, at int64, n int, wait int64) {
		t.Helper()
		for i := 1; i <= n; i++ {
			got, err := script.Run(context.Background(), rdb, []string{key}, 10, 1000, start+w*1000+at).Int64()
			if err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			if want := map[bool]int64{true: wait, false: 0}[i == n]; got != want {
				t.Fatalf("%s: request %d of %d waits %d ms; want %d", step, i, n, got, want)
			}
		}
	}
	check("window 0: 10 allowed", 0, 100, 10, 0)
	check("window 0: the 11th refused until the window ends", 0, 100, 1, 900)
	// A quarter into window 1, window 0's 10 weigh 7.5: 2 more fit.
	check("window 1: 2 allowed", 1, 250, 2, 0)
	check("window 1: the 3rd refused", 1, 250, 1, 750)
	// Three quarters in, window 0 weighs 2.5: 5 more fit only if the refused
	// request did not count.
	check("window 1: 5 more allowed", 1, 750, 5, 0)
	check("window 1: then refused", 1, 750, 1, 250)
	// Window 2 stays empty; window 3 has no previous count: 10 fit even at its start.
	check("window 3: 10 allowed", 3, 10, 10, 0)
	check("window 3: the 11th refused", 3, 10, 1, 990)
	check("window 4: a quarter in, window 3 weighs 7.5: 2 fit", 4, 250, 2, 0)
	// The counts of windows no longer needed are gone, even across the empty one.
	if fields := rdb.HKeys(context.Background(), key).Val(); len(fields) != 2 {
		t.Errorf("the caller's hash holds windows %v; want only the last two", fields)
	}
}
