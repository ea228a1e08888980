package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// A caller that hangs up while its request waits is not a failure of the gateway: its
// access line and the request metric say 499 (nginx's "client closed request") at the
// info level, no error is logged, and its Idempotency-Key is free for the retry.
func TestCallerThatHangsUpIsRecordedAs499AndItsRetryRuns(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a", false, true)
	g.sim.SetFaults(cxonesim.Faults{Hang: true}) // the first mask holds the agent
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

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", g.url+"/v1/agents/a/unmask", nil)
	req.Header.Set("Authorization", "Bearer "+g.all())
	req.Header.Set("Idempotency-Key", "unmask-a-1")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the unmask waiting for the agent was answered %d before its caller hung up", resp.StatusCode)
	}
	var access map[string]any
	testkit.Eventually(t, 5*time.Second, "the unmask's access line", func() bool {
		for _, l := range testkit.LogLines(t, g.logs.String()) {
			if l["message"] == "request" && l["route"] == "/v1/agents/{userId}/unmask" {
				access = l
				return true
			}
		}
		return false
	})
	if access["status"] != float64(499) || access["level"] != "info" {
		t.Errorf("access line of a caller that hung up: status %v, level %v; want 499 at info", access["status"], access["level"])
	}
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
