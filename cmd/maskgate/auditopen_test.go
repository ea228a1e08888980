package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// TestAfterRedisLostItsDataTheTrailNamesTheAgentsToUnmask is the recovery drill the
// README describes: two replicas mask and unmask agents, each writing its own log;
// Redis loses every session; audit-open, given both logs, names the agents CXone still
// masks, and an operator's forced unmask of each leaves no call masked.
func TestAfterRedisLostItsDataTheTrailNamesTheAgentsToUnmask(t *testing.T) {
	rdb, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	dir := t.TempDir()
	replica := func(name string) (*started, string) {
		path := filepath.Join(dir, name+".log")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return startWriting(t, nil, env(sim, prefix), func(w io.Writer) io.Writer { return io.MultiWriter(w, f) }), path
	}
	a, logA := replica("a")
	b, logB := replica("b")
	calls := map[string]string{}
	for _, agent := range []string{"r1", "r2", "r3", "r4", "r6"} {
		calls[agent] = sim.StartCall(agent, false, true).ID
	}
	for _, step := range []struct {
		gw     *started
		method string
		path   string
		status int
	}{
		{a, "POST", "/v1/agents/r1/mask", http.StatusOK},
		{a, "POST", "/v1/agents/r2/mask", http.StatusOK},
		{b, "POST", "/v1/agents/r2/unmask", http.StatusOK},
		{b, "POST", "/v1/agents/r3/mask", http.StatusOK},
		{a, "POST", "/v1/agents/r3/mask", http.StatusOK}, // re-mask, on the other replica
		{b, "POST", "/v1/agents/r4/mask", http.StatusOK},
		{a, "POST", "/v1/agents/r5/mask", http.StatusNotFound}, // no call: nothing masked
		{b, "POST", "/v1/agents/r6/mask", http.StatusOK},
	} {
		if got := step.gw.call(t, step.method, step.path, "", ""); got.status != step.status {
			t.Fatalf("%s %s = %d %s; want %d", step.method, step.path, got.status, got.body, step.status)
		}
	}
	sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable})
	if got := a.call(t, "POST", "/v1/agents/r6/unmask", "", ""); got.status != http.StatusAccepted {
		t.Fatalf("unmask during an outage = %d %s; want 202, pending", got.status, got.body)
	}

	// Redis loses its data (while CXone still fails, so that r6's unmask stays undone).
	if keys := testkit.Keys(t, rdb, prefix); len(keys) > 0 {
		if err := rdb.Del(context.Background(), keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	sim.SetFaults(cxonesim.Faults{})
	var out bytes.Buffer
	if err := run(context.Background(), []string{"audit-open", logB, logA}, environment(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var agents []string
	for line := range strings.Lines(out.String()) {
		fields := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(fields) != 5 {
			t.Fatalf("audit-open line %q; want user id, session id, event, time and due time", line)
		}
		agents = append(agents, fields[0])
		// Masks are due at their deadline (15 minutes by default); an unmask under way, now.
		if due, err := time.Parse(time.RFC3339, fields[4]); fields[0] == "r6" && fields[4] != "now" ||
			fields[0] != "r6" && (err != nil || due.Before(time.Now().Add(10*time.Minute))) {
			t.Errorf("audit-open line %q: %s due at %q", line, fields[0], fields[4])
		}
	}
	if want := []string{"r1", "r3", "r4", "r6"}; !slices.Equal(agents, want) {
		t.Fatalf("audit-open named %v; want %v:\n%s", agents, want, out.String())
	}
	admin := callerToken(t, "recordings:unmask recordings:admin")
	for _, agent := range agents {
		resp, err := post(t, "http://"+a.addr+"/v1/agents/"+agent+"/unmask?force=true", admin)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("forced unmask of %s = %d", agent, resp.StatusCode)
		}
	}
	for agent, id := range calls {
		if call, _ := sim.Call(id); call.Masked {
			t.Errorf("%s's call is still masked", agent)
		}
	}
}

// audit-open without a file to read is a usage error (exit status 2); a file it cannot
// open, an error.
func TestAuditOpenNeedsFilesItCanRead(t *testing.T) {
	var ue *usageError
	if err := run(context.Background(), []string{"audit-open"}, environment(nil), io.Discard, io.Discard); !errors.As(err, &ue) {
		t.Errorf("audit-open with no file = %v; want a usage error", err)
	}
	missing := filepath.Join(t.TempDir(), "missing.log")
	if err := run(context.Background(), []string{"audit-open", missing}, environment(nil), io.Discard, io.Discard); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("audit-open of a missing file = %v; want it not found", err)
	}
	// A file whose entries are not one a line (an export as one JSON array) is refused
	// saying so, not read as a trail with nothing open.
	export := filepath.Join(t.TempDir(), "export.json")
	entry := `{"audit":true,"event":"masked","user_id":"a","session_id":"s1","time":"2026-11-26T10:00:00.000Z"},`
	if err := os.WriteFile(export, []byte("["+strings.Repeat(entry, 20_000)+"]"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"audit-open", export}, environment(nil), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "one log entry per line") {
		t.Errorf("audit-open of one 2 MB line = %v; want it refused, saying why", err)
	}
}

// A log file whose last line has no line end (a collector cut it there) is read to its
// end, and the next file's first line is read as a line of its own.
func TestAuditOpenReadsFilesThatDoNotEndTheirLastLine(t *testing.T) {
	dir := t.TempDir()
	for name, line := range map[string]string{
		"a.log": `{"audit":true,"event":"masked","user_id":"a","session_id":"s1","time":"2026-11-26T10:00:00.000Z"}`,
		"b.log": `{"audit":true,"event":"masked","user_id":"b","session_id":"s2","time":"2026-11-26T10:00:01.000Z"}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"audit-open", filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")}, environment(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var agents []string
	for line := range strings.Lines(out.String()) {
		agents = append(agents, strings.SplitN(line, "\t", 2)[0])
	}
	if !slices.Equal(agents, []string{"a", "b"}) {
		t.Errorf("audit-open named %v; want a and b:\n%s", agents, out.String())
	}
}
