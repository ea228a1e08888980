package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// process is a maskgate replica running as its own process (this test binary running
// main), so that it can be killed with SIGKILL.
type process struct {
	cmd  *exec.Cmd
	addr string
	out  *testkit.LogBuffer // everything it logged
}

func spawn(t *testing.T, env map[string]string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MASKGATE_RUN_MAIN=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, out: &testkit.LogBuffer{}}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		var entry struct{ Message, Addr string }
		if json.Unmarshal(lines.Bytes(), &entry) == nil && entry.Message == "listening" {
			p.addr = entry.Addr
			break
		}
	}
	if p.addr == "" {
		t.Fatal("replica did not start")
	}
	go io.Copy(testkit.LogSink(t, p.out), stdout)
	return p
}

func (p *process) request(t *testing.T, method, path, token string) int {
	t.Helper()
	status, err := p.call(context.Background(), method, path, token, "")
	if err != nil {
		t.Fatal(err)
	}
	return status
}

// call sends a request with the bearer token and body ("" for none) to the replica,
// and answers its status.
func (p *process) call(ctx context.Context, method, path, token, body string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, method, "http://"+p.addr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestKilledReplicasSessionsExpireOnTheSurvivor(t *testing.T) {
	_, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	call := sim.StartCall("77", false, true)
	e := env(sim, prefix)
	e["MASKGATE_SWEEP_INTERVAL"] = "200ms"
	e["CXONE_TIMEOUT"] = "1s" // a sweeper claim's lease is 2s
	e["MASKGATE_MASK_TTL"] = "1s"
	token := callerToken(t, "recordings:mask recordings:read")

	doomed := spawn(t, e)
	if status := doomed.request(t, "POST", "/v1/agents/77/mask", token); status != 200 {
		t.Fatalf("mask on the first replica = %d", status)
	}
	// Its expiry unmask hangs in CXone, and the replica is killed while it holds the claim.
	sim.SetFaults(cxonesim.Faults{Hang: true})
	testkit.Eventually(t, 20*time.Second, "the first replica to claim the expiry", func() bool { return sim.Held() == 1 })
	if err := doomed.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = doomed.cmd.Wait()
	sim.SetFaults(cxonesim.Faults{})

	survivor := spawn(t, e)
	testkit.Eventually(t, 15*time.Second, "the survivor to unmask", func() bool {
		return survivor.request(t, "GET", "/v1/agents/77/mask", token) == http.StatusNotFound
	})
	if got, _ := sim.Call(call.ID); got.Masked {
		t.Error("the call stayed masked after its replica was killed")
	}
	if n := sim.Count("unmask", "77", 200); n != 1 {
		t.Errorf("successful unmasks = %d; want 1", n)
	}
}

func TestReplicasShareSessions(t *testing.T) {
	_, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	sim.StartCall("78", false, true)
	e := env(sim, prefix)
	a, b := spawn(t, e), spawn(t, e)
	token := callerToken(t, "recordings:mask recordings:unmask recordings:read")
	if status := a.request(t, "POST", "/v1/agents/78/mask", token); status != 200 {
		t.Fatalf("mask on A = %d", status)
	}
	if status := b.request(t, "GET", "/v1/agents/78/mask", token); status != 200 {
		t.Errorf("B does not see A's session: %d", status)
	}
	if status := b.request(t, "POST", "/v1/agents/78/unmask", token); status != 200 {
		t.Errorf("unmask on B = %d", status)
	}
	if status := a.request(t, "POST", "/v1/agents/78/unmask", token); status != http.StatusConflict {
		t.Errorf("second unmask on A = %d; want 409", status)
	}
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v; want exit status 0", err)
	}
}

// TestPausedReplicaDoesNotActOnLostClaims pauses a replica (SIGSTOP) while it holds an
// expiry claim, past the claim's lease: another replica takes the expiry over and a new
// mask of the agent follows; when the paused replica resumes, its late write is fenced
// off by the operation id and changes nothing.
func TestPausedReplicaDoesNotActOnLostClaims(t *testing.T) {
	_, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	call := sim.StartCall("82", false, true)
	e := env(sim, prefix)
	e["MASKGATE_SWEEP_INTERVAL"] = "200ms"
	e["CXONE_TIMEOUT"] = "1s" // claims last 2 s
	token := callerToken(t, "recordings:mask recordings:read")

	paused := spawn(t, e)
	req, _ := http.NewRequest("POST", "http://"+paused.addr+"/v1/agents/82/mask", strings.NewReader(`{"ttlSeconds":1}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mask = %d", resp.StatusCode)
	}
	sim.SetHang("82", true)
	testkit.Eventually(t, 10*time.Second, "the replica to claim the expiry", func() bool { return sim.Held() == 1 })
	if err := paused.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	sim.SetHang("82", false)

	survivor := spawn(t, e)
	testkit.Eventually(t, 15*time.Second, "the survivor to take the expiry over", func() bool {
		return survivor.request(t, "GET", "/v1/agents/82/mask", token) == http.StatusNotFound
	})
	if status := survivor.request(t, "POST", "/v1/agents/82/mask", token); status != 200 {
		t.Fatalf("new mask on the survivor = %d", status)
	}
	unmasksBefore := sim.Count("unmask", "82", 0)

	if err := paused.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 15*time.Second, "the resumed replica to find its claim gone", func() bool {
		return strings.Contains(paused.out.String(), "operation lock lost")
	})
	if status := survivor.request(t, "GET", "/v1/agents/82/mask", token); status != 200 {
		t.Errorf("the new session after the paused replica resumed = %d; want it untouched (200)", status)
	}
	if n := sim.Count("unmask", "82", 0) - unmasksBefore; n != 0 {
		t.Errorf("%d unmasks sent after the resume; the resumed replica acted on a claim it lost", n)
	}
	if got, _ := sim.Call(call.ID); !got.Masked {
		t.Error("the call is not masked: the new mask was undone")
	}
}

// TestReplicasKilledAtRandomPointsLoseNothing kills replicas with SIGKILL at random
// moments while masks and unmasks stream through them, then lets a survivor work: no
// call stays masked.
func TestReplicasKilledAtRandomPointsLoseNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("kills replicas")
	}
	_, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	e := env(sim, prefix)
	e["MASKGATE_SWEEP_INTERVAL"] = "200ms"
	e["CXONE_TIMEOUT"] = "1s"
	e["MASKGATE_MASK_TTL"] = "2s"
	token := callerToken(t, "recordings:mask recordings:unmask recordings:read")
	const agents = 8
	calls := make([]string, agents)
	for i := range agents {
		calls[i] = sim.StartCall("k"+strconv.Itoa(i), false, true).ID
	}
	sim.SetFaults(cxonesim.Faults{LatencyMs: 30}) // so that kills land mid-call too
	client := &http.Client{Timeout: 10 * time.Second}
	for range 4 {
		p := spawn(t, e)
		masks := sim.Count("mask", "", 200)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					op := "mask"
					if (i+w)%3 == 2 {
						op = "unmask"
					}
					req, _ := http.NewRequest("POST", "http://"+p.addr+"/v1/agents/k"+strconv.Itoa((i*7+w)%agents)+"/"+op, nil)
					req.Header.Set("Authorization", "Bearer "+token)
					if resp, err := client.Do(req); err == nil {
						resp.Body.Close()
					}
				}
			})
		}
		// Past the dead replica's locks (4 s), the new one masks again: kill it then,
		// at whatever point it is.
		testkit.Eventually(t, 15*time.Second, "traffic", func() bool { return sim.Count("mask", "", 200) > masks+3 })
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		close(stop)
		wg.Wait()
	}
	sim.SetFaults(cxonesim.Faults{})
	survivor := spawn(t, e)
	// Sessions whose mask died with its replica end at their deadline: wait for all.
	testkit.Eventually(t, 40*time.Second, "every session to end", func() bool {
		for i := range agents {
			if survivor.request(t, "GET", "/v1/agents/k"+strconv.Itoa(i)+"/mask", token) != http.StatusNotFound {
				return false
			}
		}
		return true
	})
	for i, c := range calls {
		if call, _ := sim.Call(c); call.Masked {
			t.Errorf("k%d: the call is still masked with no session left", i)
		}
	}
}
