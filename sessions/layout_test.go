package sessions_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

var update = flag.Bool("update", false, "rewrite testdata/redis-layout.txt from what the store writes now")

const layoutFile = "testdata/redis-layout.txt"

// TestRedisLayoutIsWhatTheLastVersionWrote holds what the store keeps in Redis (key
// names, types, fields, the shape of values, which keys expire) to testdata: replicas of
// two versions share these keys during a rolling upgrade, and open sessions outlive both
// (README, Upgrades). A change that fails it must let each version read what the other
// writes; then run `go test ./sessions -run TestRedisLayout -update` and commit the file.
func TestRedisLayoutIsWhatTheLastVersionWrote(t *testing.T) {
	f := newFixture(t)
	bg := context.Background()
	rate := sessions.Rate{Caller: "ivr", PerSecond: 50}
	for _, agent := range []string{"masked", "unmasking", "accepted", "joined", "superseding"} {
		f.sim.StartCall(agent, false, true)
	}
	if _, err := f.svc.Mask(bg, sessions.MaskInput{UserID: "masked", Caller: "ivr", Reason: "payment", TTLSeconds: new(300), Rate: rate}); err != nil {
		t.Fatal(err)
	}
	for _, agent := range []string{"unmasking", "superseding"} {
		if _, err := f.svc.Mask(bg, sessions.MaskInput{UserID: agent, Caller: "ivr", Rate: rate}); err != nil {
			t.Fatal(err)
		}
	}
	f.sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable})
	for _, agent := range []string{"unmasking", "superseding"} {
		if s, _ := f.svc.Unmask(bg, sessions.UnmaskInput{UserID: agent, Caller: "crm"}); s.State != sessions.StateUnmasking {
			t.Fatalf("an unmask CXone keeps refusing left %+v; want it unmasking", s)
		}
	}
	f.sim.SetFaults(cxonesim.Faults{})
	f.sim.SetBehaviour("accepted", 0, time.Hour)
	if s, err := f.svc.Mask(bg, sessions.MaskInput{UserID: "accepted", Caller: "ivr"}); err != nil || s.State != sessions.StateMasking {
		t.Fatalf("a mask CXone answers 202 = %+v, %v; want it masking", s, err)
	}
	store := sessions.NewStore(f.rdb, f.prefix)
	if err := store.CompleteIdempotency(bg, "ivr", "order-1", sessions.Replay{Fingerprint: "fp", Status: 200, ContentType: "application/json", Body: []byte("{}")}, time.Hour); err != nil {
		t.Fatal(err)
	}

	// Operations in flight: one with an identical request joined to it (the lock's
	// fields), and a mask over a pending unmask (the session it superseded, kept).
	f.sim.SetFaults(cxonesim.Faults{Hang: true})
	done := make(chan error, 3)
	mask := func(in sessions.MaskInput) { _, err := f.svc.Mask(bg, in); done <- err }
	in := sessions.MaskInput{UserID: "joined", Caller: "ivr", TTLSeconds: new(60)}
	go mask(in)
	go mask(sessions.MaskInput{UserID: "superseding", Caller: "ivr"})
	session := "{" + f.prefix + "}:session:"
	testkit.Eventually(t, 5*time.Second, "the first masks to hold their agents", func() bool {
		return f.rdb.HExists(bg, session+"joined", "opId").Val() && f.rdb.HExists(bg, session+"superseding", "opId").Val()
	})
	go mask(in)
	testkit.Eventually(t, 5*time.Second, "the second mask to join the first", func() bool { return f.rdb.HExists(bg, session+"joined", "opJoined").Val() })
	got := "# while an operation is in flight\n" + dumpLayout(t, f.rdb, f.prefix)
	f.sim.SetFaults(cxonesim.Faults{})
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	got += "\n# once it has ended (its answer kept for the request that joined it)\n" + dumpLayout(t, f.rdb, f.prefix)

	if *update {
		if err := os.WriteFile(layoutFile, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(layoutFile)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("the store's Redis layout changed: replicas of the previous version read and write these keys during a rolling upgrade.\n"+
			"Make each version read what the other writes, then rewrite %s with -update.\nnow:\n%s\nin %s:\n%s", layoutFile, got, layoutFile, want)
	}
}

// Values that differ from run to run: ids, hashes, Redis's clock, counts.
var (
	uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	hexPattern  = regexp.MustCompile(`\b[0-9a-f]{16,}\b`)
	timePattern = regexp.MustCompile(`\b[0-9]{10,}\b`)
)

func normalize(s string) string {
	s = uuidPattern.ReplaceAllString(s, "<uuid>")
	s = hexPattern.ReplaceAllString(s, "<hex>")
	return timePattern.ReplaceAllString(s, "<time>")
}

// dumpLayout lists the keys under prefix, one line each, sorted: name, type, whether
// it expires, and its content with what varies between runs replaced.
func dumpLayout(t *testing.T, rdb *redis.Client, prefix string) string {
	t.Helper()
	bg := context.Background()
	var lines []string
	for _, key := range testkit.Keys(t, rdb, prefix) {
		typ := rdb.Type(bg, key).Val()
		expires := "persistent"
		if rdb.PTTL(bg, key).Val() > 0 {
			expires = "expires"
		}
		var content []string
		switch typ {
		case "hash":
			for field, value := range rdb.HGetAll(bg, key).Val() {
				if strings.Contains(key, ":rate:") {
					value = "<count>" // how many of the test's requests fell in each window
				}
				content = append(content, normalize(field)+"="+normalize(value))
			}
		case "zset":
			for _, z := range rdb.ZRangeWithScores(bg, key, 0, -1).Val() {
				content = append(content, fmt.Sprintf("%s=%s", z.Member, normalize(fmt.Sprintf("%.0f", z.Score))))
			}
		case "set":
			content = rdb.SMembers(bg, key).Val()
		case "string":
			content = append(content, jsonShape(rdb.Get(bg, key).Val()))
		}
		slices.Sort(content)
		content = slices.Compact(content) // a rate counter's windows, one or two
		lines = append(lines, fmt.Sprintf("%s %s %s: %s", normalize(strings.Replace(key, "{"+prefix+"}", "{prefix}", 1)), typ, expires, strings.Join(content, " ")))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

// jsonShape is a JSON object's fields and the kinds of their values, or the value
// itself when it is not JSON.
func jsonShape(raw string) string {
	var obj map[string]any
	if json.Unmarshal([]byte(raw), &obj) != nil {
		return normalize(raw)
	}
	var fields []string
	for name, v := range obj {
		kind := "string"
		switch v.(type) {
		case float64:
			kind = "number"
		case bool:
			kind = "bool"
		case []any:
			kind = "array"
		case map[string]any:
			kind = "object"
		}
		fields = append(fields, name+":"+kind)
	}
	slices.Sort(fields)
	return "json{" + strings.Join(fields, " ") + "}"
}
