package testkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/freeport"
)

// RedisProc is a redis-server process of a test's own, on a free loopback port.
type RedisProc struct {
	Port int
	cmd  *exec.Cmd
	args []string
}

// Restart starts the server again with the same port, configuration and data
// directory (after Kill: a crash and a restart).
func (p *RedisProc) Restart(t testing.TB) {
	t.Helper()
	p.cmd = exec.Command("redis-server", p.args...)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: p.Addr()})
	defer c.Close()
	Eventually(t, 10*time.Second, "redis-server to answer again", func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
}

// Addr is the process's address.
func (p *RedisProc) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.Port) }

// Kill ends the process with SIGKILL, as a crash would.
func (p *RedisProc) Kill() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// StartRedis starts redis-server with the config lines given (port, dir and bind are
// set here), or with --sentinel when sentinel is true. It is killed when the test ends.
func StartRedis(t testing.TB, sentinel bool, conf ...string) *RedisProc {
	t.Helper()
	port := FreePort(t)
	lines := append([]string{"port " + strconv.Itoa(port)}, conf...)
	if slices.Contains(conf, "cluster-enabled yes") {
		// The cluster bus is on port+10000 unless set: maybe taken, maybe past 65535
		// (redis-server then refuses to start).
		lines = append(lines, "cluster-port "+strconv.Itoa(FreePort(t)))
	}
	p := startRedis(t, sentinel, lines)
	p.Port = port
	c := redis.NewClient(&redis.Options{Addr: p.Addr()})
	defer c.Close()
	Eventually(t, 10*time.Second, fmt.Sprintf("redis-server on %d to answer", port), func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
	return p
}

// StartRedisTLS starts redis-server listening only with TLS, with the PEM files given
// (clients are not asked for certificates). The caller checks that it answers.
func StartRedisTLS(t testing.TB, certFile, keyFile, caFile string) *RedisProc {
	t.Helper()
	port := FreePort(t)
	p := startRedis(t, false, []string{"port 0", "tls-port " + strconv.Itoa(port), "tls-cert-file " + certFile,
		"tls-key-file " + keyFile, "tls-ca-cert-file " + caFile, "tls-auth-clients no"})
	p.Port = port
	return p
}

func startRedis(t testing.TB, sentinel bool, conf []string) *RedisProc {
	t.Helper()
	dir := t.TempDir()
	lines := append([]string{"bind 127.0.0.1", "dir " + dir, `save ""`}, conf...)
	path := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{path}
	if sentinel {
		args = append(args, "--sentinel")
	}
	cmd := exec.Command("redis-server", args...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	p := &RedisProc{cmd: cmd, args: args}
	t.Cleanup(func() { p.Kill() })
	return p
}

// FreePort returns a loopback port for a process to bind: free now, and out of reach
// of the machine's outgoing connections (freeport).
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return port
}
