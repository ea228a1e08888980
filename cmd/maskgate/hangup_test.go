package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// TestCallersThatHangUpLeaveNothingBehind streams masks and unmasks of a few agents
// through two replicas while a third of the callers hang up within 5 ms, at whatever
// step their request is: a caller that waits gets CXone's answer, never an error made
// of another caller's hang-up (identical requests coalesce), no agent is left locked,
// and every call ends unmasked.
func TestCallersThatHangUpLeaveNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("streams requests for seconds")
	}
	_, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	token := callerToken(t, "recordings:mask recordings:unmask")
	const agents = 6
	calls := make([]string, agents)
	for i := range agents {
		calls[i] = sim.StartCall("h"+strconv.Itoa(i), false, true).ID
	}
	sim.SetFaults(cxonesim.Faults{LatencyMs: 5}) // hang-ups land during CXone calls too
	e := env(sim, prefix)
	replicas := []*process{spawn(t, e), spawn(t, e)}
	send := func(ctx context.Context, p *process, op string, agent int) (int, error) {
		body := `{}`
		if op == "mask" {
			body = `{"ttlSeconds":60}` // the same for every mask, so that concurrent ones coalesce
		}
		return p.call(ctx, http.MethodPost, "/v1/agents/h"+strconv.Itoa(agent)+"/"+op, token, body)
	}

	var mu sync.Mutex
	var failed []string
	end := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for w := range 12 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for time.Now().Before(end) {
				op, agent := "mask", r.IntN(agents)
				if r.IntN(2) == 0 {
					op = "unmask"
				}
				patience := time.Minute
				if r.IntN(3) == 0 {
					patience = time.Duration(r.IntN(5000)) * time.Microsecond
				}
				ctx, cancel := context.WithTimeout(context.Background(), patience)
				status, err := send(ctx, replicas[r.IntN(len(replicas))], op, agent)
				cancel()
				if err == nil && status >= http.StatusInternalServerError {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%s h%d: %d", op, agent, status))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("%d answers to callers that waited were failures, with CXone healthy: %v", len(failed), failed[:min(len(failed), 10)])
	}
	// No agent is left locked: a lock left behind would hold these for the whole CXone
	// budget and then refuse them as agent_busy (503).
	for i := range agents {
		for _, op := range []string{"mask", "unmask"} {
			if status, err := send(context.Background(), replicas[0], op, i); err != nil || status != http.StatusOK {
				t.Errorf("%s h%d after the stream = %d, %v; want 200", op, i, status, err)
			}
		}
	}
	for i, c := range calls {
		if call, _ := sim.Call(c); call.Masked {
			t.Errorf("h%d: the call is still masked after its unmask", i)
		}
	}
}
