package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/freeport"
)

type options struct {
	rounds, conns, agents, rate int
	duration                    time.Duration
	nginx, profile              string
	maskgateEnv                 []string
	floor                       bool // add gofloor as a third target
}

// bench is everything the benchmark started.
type bench struct {
	o                     options
	dir                   string
	procs                 []*exec.Cmd
	rdb                   *redis.Client
	simURL                string
	maskgateURL, nginxURL string
	floorURL              string         // gofloor's, with -floor
	pids                  map[string]int // the processes it started, by name
	debugURL              string         // maskgate's profiler
	token                 string         // the callers' JWT (nginx ignores it)
}

const (
	secret   = "maskbench-hs256-secret-0123456789abcdef"
	clientID = "bench-app"
	clientSk = "bench-client-secret"
	keyID    = "bench-key"
	keySk    = "bench-key-secret"
)

// start runs a process in the benchmark's directory, its output to a log file there.
func (b *bench) start(name string, env []string, args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(filepath.Join(b.dir, name+".log"))
	if err != nil {
		return err
	}
	defer logf.Close() // the process has its own copy
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	b.procs = append(b.procs, cmd)
	b.pids[name] = cmd.Process.Pid
	return nil
}

// waitHTTP waits until the process name answers at url; when it does not, the error
// carries the end of its log, which tearDown deletes with the rest.
func (b *bench) waitHTTP(name, url string) error {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
	}
	log, _ := os.ReadFile(filepath.Join(b.dir, name+".log"))
	return fmt.Errorf("%s did not answer %s within 20 s; the end of its log:\n%s", name, url, log[max(0, len(log)-2000):])
}

func setUp(ctx context.Context, o options) (*bench, error) {
	dir, err := os.MkdirTemp("", "maskbench-")
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, dir: dir, pids: map[string]int{}}
	fail := func(err error) (*bench, error) { b.tearDown(); return nil, err }
	for _, tool := range []string{"redis-server", o.nginx} {
		if _, err := exec.LookPath(tool); err != nil {
			return fail(fmt.Errorf("%s not found (Debian: apt-get install redis-server nginx)", tool))
		}
	}
	// The binaries, built as the Dockerfile builds them.
	for _, pkg := range []string{"./cmd/maskgate", "./cmd/cxone-sim", "./cmd/maskbench/gofloor"} {
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, filepath.Base(pkg)), pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fail(fmt.Errorf("go build %s: %v\n%s", pkg, err, out))
		}
	}
	ports := make([]int, 6)
	for i := range ports {
		if ports[i], err = freeport.Get(); err != nil {
			return fail(err)
		}
	}
	redisPort, simPort, maskgatePort, nginxPort, debugPort, floorPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]

	if err := b.start("redis", nil, "redis-server", "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir); err != nil {
		return fail(err)
	}
	b.rdb = redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(redisPort)})
	for deadline := time.Now().Add(10 * time.Second); b.rdb.Ping(ctx).Err() != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fail(errors.New("redis did not start"))
		}
	}

	creds := []string{"CXONE_CLIENT_ID=" + clientID, "CXONE_CLIENT_SECRET=" + clientSk,
		"CXONE_ACCESS_KEY_ID=" + keyID, "CXONE_ACCESS_KEY_SECRET=" + keySk}
	b.simURL = "http://127.0.0.1:" + strconv.Itoa(simPort)
	// A short request log: a long one only costs the simulator time under load.
	if err := b.start("cxone-sim", creds, filepath.Join(dir, "cxone-sim"), "-addr", "127.0.0.1:"+strconv.Itoa(simPort),
		"-request-log", "1000"); err != nil {
		return fail(err)
	}
	if err := b.waitHTTP("cxone-sim", b.simURL+"/sim/requests"); err != nil {
		return fail(err)
	}
	for i := range o.agents {
		resp, err := http.Post(b.simURL+"/sim/agents/"+agent(i)+"/calls", "application/json", nil)
		if err != nil {
			return fail(err)
		}
		// Read to the end, so that one connection serves them all.
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	b.maskgateURL = "http://127.0.0.1:" + strconv.Itoa(maskgatePort)
	b.debugURL = "http://127.0.0.1:" + strconv.Itoa(debugPort)
	err = b.start("maskgate", append(append(creds,
		"MASKGATE_ADDR=127.0.0.1:"+strconv.Itoa(maskgatePort),
		"MASKGATE_DEBUG_ADDR=127.0.0.1:"+strconv.Itoa(debugPort),
		"MASKGATE_REDIS_URL=redis://127.0.0.1:"+strconv.Itoa(redisPort)+"/0",
		"MASKGATE_JWT_ISSUER=maskbench", "MASKGATE_JWT_AUDIENCE=maskgate", "MASKGATE_JWT_HS256_SECRET="+secret,
		"MASKGATE_RATE_LIMIT=1000000", // one caller drives it all: the limiter runs, never limits
		"CXONE_AUTH_URL="+b.simURL+"/auth/token"), o.maskgateEnv...), filepath.Join(dir, "maskgate"))
	if err != nil {
		return fail(err)
	}
	if err := b.waitHTTP("maskgate", b.maskgateURL+"/readyz"); err != nil {
		return fail(err)
	}

	simToken, err := cxoneToken(b.simURL)
	if err != nil {
		return fail(err)
	}
	b.nginxURL = "http://127.0.0.1:" + strconv.Itoa(nginxPort)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConf(dir, nginxPort, simPort, simToken)), 0o600); err != nil {
		return fail(err)
	}
	if err := b.start("nginx", nil, o.nginx, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "nginx-error.log")); err != nil {
		return fail(err)
	}
	if err := b.waitHTTP("nginx", b.nginxURL+"/"); err != nil {
		return fail(err)
	}
	if o.floor {
		b.floorURL = "http://127.0.0.1:" + strconv.Itoa(floorPort)
		if err := b.start(floorName, nil, filepath.Join(dir, "gofloor"), "-addr", "127.0.0.1:"+strconv.Itoa(floorPort),
			"-redis", "redis://127.0.0.1:"+strconv.Itoa(redisPort)+"/0", "-cxone", b.simURL, "-token", simToken); err != nil {
			return fail(err)
		}
		if err := b.waitHTTP(floorName, b.floorURL+"/"); err != nil {
			return fail(err)
		}
	}
	b.token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "maskbench", "aud": "maskgate", "sub": "maskbench", "scope": "recordings:mask",
		"iat": time.Now().Unix(), "exp": time.Now().Add(2 * time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		return fail(err)
	}
	return b, nil
}

// floorName names gofloor, as a target and as a process.
const floorName = "go-floor"

// target is one of the servers the load is driven against.
type target struct{ name, url string }

// targets are maskgate, gofloor with -floor, and nginx, in the order of their rounds;
// nginx comes last, so each round pair ends with it.
func (b *bench) targets() []target {
	t := []target{{"maskgate", b.maskgateURL}}
	if b.o.floor {
		t = append(t, target{floorName, b.floorURL})
	}
	return append(t, target{"nginx", b.nginxURL})
}

// nginxConf is the reference: the same forward without auth or state, keep-alive to
// the simulator, an access log line per request like maskgate's.
func nginxConf(dir string, port, simPort int, token string) string {
	return fmt.Sprintf(`daemon off;
worker_processes auto;
pid %[1]s/nginx.pid;
events { worker_connections 4096; }
http {
  access_log %[1]s/nginx-access.log;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream cxone { server 127.0.0.1:%[3]d; keepalive 64; }
  server {
    listen 127.0.0.1:%[2]d;
    location = / { return 200; }
    location ~ ^/v1/agents/([A-Za-z0-9._:@-]+)/mask$ {
      proxy_pass http://cxone/interaction-recording-management-service/v1/interactions/mask?userId=$1;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer %[4]s";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }
  }
}
`, dir, port, simPort, token)
}

// cxoneToken obtains a simulator token for nginx to send.
func cxoneToken(simURL string) (string, error) {
	form := url.Values{"grant_type": {"password"}, "username": {keyID}, "password": {keySk}}
	req, _ := http.NewRequest(http.MethodPost, simURL+"/auth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSk)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var ans struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || ans.AccessToken == "" {
		return "", fmt.Errorf("simulator token: %v", err)
	}
	return ans.AccessToken, nil
}

func agent(i int) string { return "bench-" + strconv.Itoa(i) }

func (b *bench) tearDown() {
	for _, p := range slices.Backward(b.procs) {
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = p.Process.Kill()
		}
	}
	if b.rdb != nil {
		b.rdb.Close()
	}
	os.RemoveAll(b.dir)
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
