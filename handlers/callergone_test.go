package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// A caller that hangs up while its request waits is not a failure of the gateway: its
// access line and the request metric say 499 (nginx's "client closed request") at the
// info level, no error is logged, and its Idempotency-Key is free for the retry.
func TestCallerThatHangsUpIsRecordedAs499AndItsRetryRuns(t *testing.T) {
	g := newGateway(t, withCXoneTimeout(5*time.Second))
	g.sim.StartCall("a", false, true)
	g.sim.SetFaults(cxonesim.Faults{Hang: true}) // the first mask holds the agent for its budget
	first := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", g.url+"/v1/agents/a/mask", nil)
		req.Header.Set("Authorization", "Bearer "+g.all())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	testkit.Eventually(t, 5*time.Second, "the first mask to reach CXone", func() bool { return g.sim.Held() > 0 })

	access := g.hangUp("unmask", "unmask-a-1")
	for _, l := range testkit.LogLines(t, g.logs.String()) {
		if l["request_id"] == access["request_id"] && (l["level"] == "error" || l["level"] == "warn") {
			t.Errorf("a caller hanging up was logged as a failure: %v", l)
		}
	}
	metrics := string(g.do("GET", "/metrics", "", "").body)
	if want := `maskgate_http_requests_total{method="POST",route="/v1/agents/{userId}/unmask",status="499"} 1`; !strings.Contains(metrics, want+"\n") {
		t.Errorf("/metrics lacks %s", want)
	}

	if status := <-first; status != http.StatusGatewayTimeout {
		t.Fatalf("the hung mask = %d; want 504", status)
	}
	g.sim.SetFaults(cxonesim.Faults{})
	r := g.do("POST", "/v1/agents/a/unmask", g.all(), "", "Idempotency-Key", "unmask-a-1")
	if r.status != http.StatusOK || r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("the retry of the unmask whose caller hung up = %d (replayed %q) %s; want it run: 200",
			r.status, r.header.Get("Idempotent-Replayed"), r.body)
	}
}

// A caller that hangs up while its Idempotency-Key is being reserved is 499 too, not
// 503 store_unavailable: Redis did not fail, the caller went.
func TestCallerThatHangsUpDuringTheKeysReservationIs499(t *testing.T) {
	var holding atomic.Bool
	holding.Store(true)
	rdb, _ := testkit.Redis(t, testkit.CommandHook(func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
		if args := fmt.Sprintln(cmd.Args()...); holding.Load() && cmd.Name() == "set" && strings.Contains(args, ":idem:") {
			<-ctx.Done() // the reservation waits until its caller goes
			cmd.SetErr(ctx.Err())
			return ctx.Err()
		}
		return next(ctx, cmd)
	}))
	g := newGateway(t, withRedis(rdb))
	g.sim.StartCall("a", false, true)
	g.hangUp("mask", "mask-a-1")
	if n := len(g.sim.Requests()); n != 0 {
		t.Errorf("%d requests reached CXone; want none", n)
	}
	holding.Store(false)
	if r := g.do("POST", "/v1/agents/a/mask", g.all(), "", "Idempotency-Key", "mask-a-1"); r.status != http.StatusOK {
		t.Errorf("the retry = %d %s; want it run: 200", r.status, r.body)
	}
}

// hangUp POSTs op (mask or unmask) for agent a with an Idempotency-Key, gives up after
// 300 ms, and returns the request's access line once it is written, having checked
// that it says 499 at info.
func (g *gateway) hangUp(op, key string) map[string]any {
	g.t.Helper()
	path, route := "/v1/agents/a/"+op, "/v1/agents/{userId}/"+op
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", g.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+g.all())
	req.Header.Set("Idempotency-Key", key)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		g.t.Fatalf("POST %s was answered %d before its caller hung up", path, resp.StatusCode)
	}
	var access map[string]any
	testkit.Eventually(g.t, 5*time.Second, "the access line of "+path, func() bool {
		for _, l := range testkit.LogLines(g.t, g.logs.String()) {
			if l["message"] == "request" && l["route"] == route {
				access = l
				return true
			}
		}
		return false
	})
	if access["status"] != float64(499) || access["level"] != "info" {
		g.t.Errorf("access line of a caller that hung up: status %v, level %v; want 499 at info", access["status"], access["level"])
	}
	return access
}
