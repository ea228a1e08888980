package sessions

import (
	"context"
	"regexp"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/testkit"
)

// rateCheckScript runs rate_check on a clock the test chooses (ARGV[3], in ms).
var rateCheckScript = redis.NewScript(rateCheckSrc + "return rate_check(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]))")

// windowStart is the start of a 1,000 ms window, in ms.
const windowStart = 1_800_000_000_000

// rateCheckAt is one request against 10 per 1,000 ms window, at ms into window w:
// the wait it is told (0: allowed).
func rateCheckAt(t *testing.T, rdb *redis.Client, key string, w, at int64) int64 {
	t.Helper()
	wait, err := rateCheckScript.Run(context.Background(), rdb, []string{key}, 10, 1000, windowStart+w*1000+at).Int64()
	if err != nil {
		t.Fatal(err)
	}
	return wait
}

// TestRateCheckSlidesOverTheWindow runs rate_check on chosen clocks: 10 requests per
// 1,000 ms window, the previous window weighing as much as it still overlaps.
func TestRateCheckSlidesOverTheWindow(t *testing.T) {
	rdb, prefix := testkit.Redis(t)
	key := "{" + prefix + "}:rate:t"
	// check sends n requests at the given ms into the window of index w and wants the
	// last to wait wait ms (0: allowed) and the others allowed.
	check := func(step string, w, at int64, n int, wait int64) {
		t.Helper()
		for i := 1; i <= n; i++ {
			if got, want := rateCheckAt(t, rdb, key, w, at), map[bool]int64{true: wait, false: 0}[i == n]; got != want {
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

// A caller well under its limit costs one Redis command, the count (README, Rate
// limit); the previous window is read only once the request might be over the limit.
// On a Redis of its own, whose command counts no other test moves.
func TestRateCheckUnderTheLimitIsOneCommand(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: testkit.StartRedis(t, false).Addr(), Protocol: 2})
	defer rdb.Close()
	ctx := context.Background()
	calls := func(command string) int {
		t.Helper()
		m := regexp.MustCompile(`cmdstat_` + command + `:calls=(\d+)`).FindStringSubmatch(rdb.Info(ctx, "commandstats").Val())
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	for range 10 {
		rateCheckAt(t, rdb, "rate", 0, 500) // a full window 0
	}
	rateCheckAt(t, rdb, "rate", 1, 900) // window 1 begins: its count, and the clean-up
	rdb.ConfigResetStat(ctx)
	// Nine tenths in, window 0's 10 weigh 1: the second request fits without reading it.
	if wait := rateCheckAt(t, rdb, "rate", 1, 900); wait != 0 || calls("hincrby") != 1 || calls("hget") != 0 || calls("hdel") != 0 || calls("pexpire") != 0 {
		t.Errorf("a request well under the limit: wait %d, HINCRBY %d, HGET %d, HDEL %d, PEXPIRE %d; want allowed by one HINCRBY",
			wait, calls("hincrby"), calls("hget"), calls("hdel"), calls("pexpire"))
	}
	for range 7 {
		rateCheckAt(t, rdb, "rate", 1, 900) // counts 3 to 9: each fits beside a full window 0
	}
	if calls("hget") != 0 {
		t.Errorf("requests that fit beside a full previous window read it %d times; want none", calls("hget"))
	}
	// The 10th might not fit (10 + 1 > 10): window 0 is read, and its weight refuses it.
	if wait := rateCheckAt(t, rdb, "rate", 1, 900); wait != 100 || calls("hget") != 1 {
		t.Errorf("the 10th request: wait %d, HGET %d; want refused for 100 ms after one HGET", wait, calls("hget"))
	}
}
