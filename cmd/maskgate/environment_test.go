package main

import (
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/internal/testkit"
)

// The process's environment as the configuration reads it: misspelt settings,
// settings set twice.

// A variable named like a setting that maskgate does not have is most likely a
// misspelt one, whose default is in force instead: it is named, and the Kubernetes
// service links of a Service called maskgate (or cxone) are not.
func TestMisspeltSettingsAreNamed(t *testing.T) {
	e := env(testkit.NewSim(t), "p")
	maps.Copy(e, map[string]string{"MASKGATE_UNMASK_GIVE_UP": "4h", "CXONE_TIMEOUTS": "", "MASKGATE_CACHE": "x",
		"MASKGATE_SERVICE_HOST": "10.0.0.9", "MASKGATE_SERVICE_PORT": "8080", "MASKGATE_SERVICE_PORT_HTTP": "8080",
		"MASKGATE_PORT": "tcp://10.0.0.9:8080", "MASKGATE_PORT_8080_TCP": "tcp://10.0.0.9:8080",
		"MASKGATE_PORT_8080_TCP_PROTO": "tcp", "MASKGATE_PORT_8080_TCP_PORT": "8080", "MASKGATE_PORT_8080_TCP_ADDR": "10.0.0.9",
		"CXONE_SIM_SERVICE_HOST": "10.0.0.8", "REDIS_PASSWORD": "not maskgate's",
		"MASKGATE_PORTS": "8080"}) // like a Service's variable, but none of them
	cfg := mustLoad(t, e)
	if want := []string{"CXONE_TIMEOUTS", "MASKGATE_CACHE", "MASKGATE_PORTS", "MASKGATE_UNMASK_GIVE_UP"}; !slices.Equal(cfg.Ignored, want) {
		t.Errorf("ignored = %v; want %v", cfg.Ignored, want)
	}
	if cfg.UnmaskGiveUp != time.Hour {
		t.Errorf("unmask give-up = %s; want the default", cfg.UnmaskGiveUp)
	}
	// Every variable maskgate reads (README's table names them all), set, is none of them.
	_, _ = readConfig(func(name string) string {
		if _, set := e[name]; !set {
			e[name] = ""
		}
		return ""
	})
	if len(e) < 40 {
		t.Fatalf("only %d variables set; the recording of those read is broken", len(e))
	}
	if cfg := mustLoad(t, e); len(cfg.Ignored) != 4 {
		t.Errorf("with every documented variable set too, ignored = %v", cfg.Ignored)
	}
	// When a setting is missing, the misspelling may be what it was meant to be.
	delete(e, "MASKGATE_REDIS_URL")
	e["MASKGATE_REDIS_ULR"] = "redis://127.0.0.1:6379"
	_, err := loadConfig(environment(e))
	if err == nil || !strings.Contains(err.Error(), "MASKGATE_REDIS_URL or MASKGATE_REDIS_URL_FILE is required") ||
		!strings.Contains(err.Error(), "not maskgate settings, ignored (misspelt?): CXONE_TIMEOUTS, MASKGATE_CACHE, MASKGATE_PORTS, MASKGATE_REDIS_ULR, MASKGATE_UNMASK_GIVE_UP") {
		t.Errorf("loadConfig = %v; want the missing setting and the misspelt ones named", err)
	}
}

// A variable set twice in the process's environment (os/exec keeps the last, a shell's
// env or a container runtime may pass both) has the value os.Getenv reads, its first:
// maskgate, run as dev-token, signs with the first of two secrets.
func TestASettingSetTwiceHasItsFirstValue(t *testing.T) {
	first, second := hsSecret, testkit.Canary+"jwt-hs256-the-second-of-two"
	e := env(testkit.NewSim(t), "p")
	delete(e, "MASKGATE_JWT_HS256_SECRET")
	environ := []string{"MASKGATE_RUN_MAIN=1", "MASKGATE_ARGS=dev-token", "MASKGATE_JWT_HS256_SECRET=" + first}
	for name, value := range e {
		environ = append(environ, name+"="+value)
	}
	environ = append(environ, "MASKGATE_JWT_HS256_SECRET="+second)
	// os.StartProcess passes the environment as it is; os/exec would drop the first.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := os.StartProcess(os.Args[0], []string{os.Args[0], "-test.run=^$"}, &os.ProcAttr{Env: environ, Files: []*os.File{nil, w, w}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	r.Close()
	if state, err := p.Wait(); err != nil || !state.Success() {
		t.Fatalf("dev-token: %v %v\n%s", state, err, out)
	}
	token := strings.TrimSpace(string(out))
	if _, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return []byte(first), nil }); err != nil {
		t.Errorf("dev-token with the secret set twice signed %q, which the first does not verify: %v", token, err)
	}
}

// The process's environment is read as os.Getenv reads it, a value with = in it whole.
func TestProcessEnvironmentIsWhatGetenvReads(t *testing.T) {
	t.Setenv("MASKGATE_ENV_TEST", "redis://u:p=q@h:6379/0?a=b")
	e := processEnvironment()
	if len(e) == 0 || e["MASKGATE_ENV_TEST"] != "redis://u:p=q@h:6379/0?a=b" {
		t.Fatalf("processEnvironment has %d variables, MASKGATE_ENV_TEST %q", len(e), e["MASKGATE_ENV_TEST"])
	}
	for name, value := range e {
		if os.Getenv(name) != value {
			t.Errorf("%s is %q; os.Getenv reads %q", name, value, os.Getenv(name))
		}
	}
}
