package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maskgate/maskgate/handlers"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

func TestOperationalEndpoints(t *testing.T) {
	g := newGateway(t)
	if r := g.do("GET", "/healthz", "", ""); r.status != 200 || r.json(t)["status"] != "ok" {
		t.Errorf("healthz = %d %s", r.status, r.body)
	}
	if r := g.do("GET", "/readyz", "", ""); r.status != 200 {
		t.Errorf("readyz = %d %s", r.status, r.body)
	}
	if r := g.do("GET", "/openapi.yaml", "", ""); r.status != 200 || !strings.Contains(string(r.body), "openapi: 3.0.3") {
		t.Errorf("openapi.yaml = %d", r.status)
	}
	g.sim.StartCall("a1", false, true)
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), ""); r.status != 200 {
		t.Fatalf("mask = %d", r.status)
	}
	r := g.do("GET", "/metrics", "", "")
	for _, line := range []string{
		`maskgate_http_requests_total{method="POST",route="/v1/agents/{userId}/mask",status="200"} 1`,
		`maskgate_cxone_requests_total{op="mask",status="200"} 1`,
		`maskgate_cxone_token_requests_total{grant="password",status="200"} 1`,
		`maskgate_cxone_held_back_total{reason="retry_after"} 0`, // every reason from the start
		`maskgate_session_events_total{event="masked"} 1`,
		`maskgate_session_events_total{event="unmask_gave_up"} 0`, // every event from the start
		"maskgate_open_sessions 1",
		"maskgate_redis_up 1",
		"maskgate_unmasks_pending 0",
		"maskgate_unmasks_given_up 0",
		"maskgate_sweeper_overdue_seconds 0",
		"maskgate_unmask_giveups_total 0",
		"maskgate_unmask_failures_total 0",
		"maskgate_unmask_failing_for_seconds_count 0",
		"maskgate_sweeper_lag_seconds_count 0",
	} {
		if !strings.Contains(string(r.body), line+"\n") {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	// The mask's two scripts, each its own round trip here; the sweeper's may add to both.
	sample := func(name string) float64 {
		for line := range strings.Lines(string(r.body)) {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				return f
			}
		}
		t.Errorf("/metrics lacks %s", name)
		return 0
	}
	if pipelines, scripts := sample("maskgate_redis_script_pipelines_total"), sample("maskgate_redis_scripts_total"); scripts < 2 || pipelines < 1 || pipelines > scripts {
		t.Errorf("/metrics: %v script pipelines carrying %v scripts; want at least the mask's 2 scripts, in at most as many pipelines", pipelines, scripts)
	}
	if strings.Contains(string(r.body), `route="/v1/agents/a1`) {
		t.Error("/metrics labels a route with a user id")
	}
	if r := g.do("GET", "/nowhere", "", ""); r.status != 404 || r.json(t)["code"] != "not_found" {
		t.Errorf("unknown route = %d %s", r.status, r.body)
	}
}

// A method a route does not serve is 405 with the methods it does serve in Allow (RFC
// 9110 §15.5.6), before authentication, as for a route that does not exist.
func TestWrongMethodIsAnsweredWithTheAllowedOnes(t *testing.T) {
	g := newGateway(t)
	for _, tt := range []struct{ method, path, allow string }{
		{"DELETE", "/v1/masks", "GET, HEAD"},
		{"PUT", "/v1/agents/a1/mask", "GET, HEAD, POST"},
		{"GET", "/v1/agents/a1/unmask", "POST"},
		{"OPTIONS", "/v1/agents/a1/unmask", "POST"},
		{"HEAD", "/v1/agents/a1/unmask", "POST"},
		{"POST", "/healthz", "GET, HEAD"},
	} {
		r := g.do(tt.method, tt.path, "", "")
		if r.status != 405 || tt.method != "HEAD" && r.json(t)["code"] != "method_not_allowed" || r.header.Get("Allow") != tt.allow {
			t.Errorf("%s %s = %d, Allow %q, %s; want 405, Allow %q", tt.method, tt.path, r.status, r.header.Get("Allow"), r.body, tt.allow)
		}
	}
}

// HEAD is answered wherever GET is (RFC 9110 §9.1), as GET would be without the body,
// and changes nothing where GET would not.
func TestHeadIsServedWhereverGetIs(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), ""); r.status != 200 {
		t.Fatalf("mask = %d", r.status)
	}
	for _, tt := range []struct {
		path, token string
		status      int
	}{
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/v1/agents/a1/mask", g.all(), 200},
		{"/v1/masks", g.all(), 200},
		{"/v1/agents/a1/mask", "", 401},
		{"/v1/agents/nobody/mask", g.all(), 404},
	} {
		r := g.do("HEAD", tt.path, tt.token, "")
		get := g.do("GET", tt.path, tt.token, "")
		if r.status != tt.status || get.status != tt.status || r.header.Get("Content-Type") != get.header.Get("Content-Type") {
			t.Errorf("HEAD %s = %d %q; GET %d %q; want both %d with one Content-Type", tt.path, r.status,
				r.header.Get("Content-Type"), get.status, get.header.Get("Content-Type"), tt.status)
		}
	}
	if r := g.do("HEAD", "/v1/agents/a1/mask", "", ""); r.header.Get("WWW-Authenticate") == "" {
		t.Error("HEAD without a token: no WWW-Authenticate")
	}
	if r := g.do("GET", "/v1/agents/a1/mask", g.all(), ""); r.json(t)["state"] != "masked" {
		t.Errorf("after the HEADs, the session is %s", r.body)
	}
}

func TestReadyzNamesAFailingCXone(t *testing.T) {
	g := newGateway(t)
	g.sim.SetFaults(cxonesim.Faults{TokenDown: true})
	r := g.do("GET", "/readyz", "", "")
	checks, _ := r.json(t)["checks"].(map[string]any)
	if r.status != 503 || checks["redis"] != "ok" || !strings.Contains(fmt.Sprint(checks["cxone"]), "unavailable") {
		t.Errorf("readyz with the token endpoint down = %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), g.sim.Credentials.ClientSecret) || strings.Contains(string(r.body), g.sim.Credentials.AccessKeySecret) {
		t.Error("readyz shows a secret")
	}
}

// A probe may leave a check out (the Kubernetes example leaves CXone's out, so that a
// CXone outage does not take every replica out of the Service at once): the check is
// not run and says "excluded", the others still decide. A name that is no check is a
// 400, so that a misspelt probe fails where it is set up rather than passing.
func TestReadyzLeavesOutTheChecksAProbeExcludes(t *testing.T) {
	var calls atomic.Int32
	g := newGateway(t, withReadyCheck(handlers.Check{Name: "counted", Fn: func(context.Context) error {
		calls.Add(1)
		return errors.New("counted is down")
	}}))
	g.sim.SetFaults(cxonesim.Faults{TokenDown: true})
	for _, tt := range []struct {
		query  string
		status int
		checks map[string]string // "" for any failure
	}{
		{"?exclude=cxone", 503, map[string]string{"redis": "ok", "cxone": "excluded", "counted": ""}},
		{"?exclude=cxone&exclude=counted", 200, map[string]string{"redis": "ok", "cxone": "excluded", "counted": "excluded"}},
		{"?exclude=counted", 503, map[string]string{"redis": "ok", "cxone": "", "counted": "excluded"}},
	} {
		before := calls.Load()
		r := g.do("GET", "/readyz"+tt.query, "", "")
		got, _ := r.json(t)["checks"].(map[string]any)
		if r.status != tt.status || len(got) != len(tt.checks) {
			t.Errorf("readyz%s = %d %s; want %d with %v", tt.query, r.status, r.body, tt.status, tt.checks)
			continue
		}
		for name, want := range tt.checks {
			if v, _ := got[name].(string); (want == "" && (v == "" || v == "ok" || v == "excluded")) || (want != "" && v != want) {
				t.Errorf("readyz%s: check %s says %q; want %q (any failure for \"\")", tt.query, name, v, want)
			}
		}
		if ran := calls.Load() != before; ran == (tt.checks["counted"] == "excluded") {
			t.Errorf("readyz%s: the counted check ran %v", tt.query, ran)
		}
	}
	before := calls.Load()
	r := g.do("GET", "/readyz?exclude=cxnoe", "", "")
	if p := r.json(t); r.status != 400 || p["code"] != "invalid_parameter" ||
		p["detail"] != `exclude "cxnoe" is no check of this gateway; its checks: redis, cxone, counted` {
		t.Errorf("readyz?exclude=cxnoe = %d %s; want 400 invalid_parameter naming it and the checks", r.status, r.body)
	}
	// Anyone may ask /readyz: a long name is not repeated into the answer and the
	// access line.
	long := strings.Repeat("x", 300)
	r = g.do("GET", "/readyz?exclude="+long, "", "")
	if p := r.json(t); r.status != 400 || strings.Contains(fmt.Sprint(p["detail"]), long[:65]) {
		t.Errorf("readyz?exclude=<300 x> = %d %s; want 400 without the name", r.status, r.body)
	}
	if calls.Load() != before {
		t.Error("a readyz refused for its exclude ran the checks")
	}
}

// TestMetricLabelsAreBounded scrapes /metrics after traffic for many agents and checks
// that every maskgate metric uses only bounded labels: no user id, token or path.
func TestMetricLabelsAreBounded(t *testing.T) {
	g := newGateway(t)
	for i := range 20 {
		id := fmt.Sprintf("agent-%d", i)
		g.sim.StartCall(id, false, true)
		g.do("POST", "/v1/agents/"+id+"/mask", g.all(), "")
		g.do("GET", "/v1/agents/"+id+"/mask?verify=true", g.all(), "")
		g.do("POST", "/v1/agents/"+id+"/unmask", g.all(), "")
	}
	g.do("GET", "/v1/agents/nobody/mask", "garbage", "")
	for i := range 5 { // made-up methods must not each make a series
		g.do(fmt.Sprintf("BREW%d", i), "/v1/masks", g.all(), "")
	}
	allowed := map[string]bool{"route": true, "method": true, "status": true, "op": true, "grant": true, "event": true, "reason": true, "le": true}
	methods := map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true,
		"OPTIONS": true, "CONNECT": true, "TRACE": true, "other": true}
	body := string(g.do("GET", "/metrics", "", "").body)
	labels := regexp.MustCompile(`([a-z_]+)="`)
	series := 0
	for line := range strings.SplitSeq(body, "\n") {
		if !strings.HasPrefix(line, "maskgate_") {
			continue
		}
		series++
		for _, m := range labels.FindAllStringSubmatch(line, -1) {
			if !allowed[m[1]] {
				t.Errorf("unbounded label %s in %s", m[1], line)
			}
		}
		if strings.Contains(line, "agent-") || strings.Contains(line, "nobody") {
			t.Errorf("a user id in a metric: %s", line)
		}
		if m := regexp.MustCompile(`method="([^"]*)"`).FindStringSubmatch(line); m != nil && !methods[m[1]] {
			t.Errorf("a method of the caller's own making in a metric: %s", line)
		}
	}
	if series < 20 {
		t.Errorf("only %d maskgate series", series)
	}
}

// A handler that panics is answered 500 and counted as one in the request metric,
// which MaskgateInternalErrors alerts on: the metric sees what Recover answers.
func TestPanicIsCountedAs500(t *testing.T) {
	g := newGateway(t, withReadyCheck(handlers.Check{Name: "buggy", Fn: func(context.Context) error { panic("a bug") }}))
	resp, err := http.Get(g.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("readyz with a check that panics = %d; want 500", resp.StatusCode)
	}
	metrics := string(g.do("GET", "/metrics", "", "").body)
	if want := `maskgate_http_requests_total{method="GET",route="/readyz",status="500"} 1`; !strings.Contains(metrics, want+"\n") {
		t.Errorf("/metrics lacks %s", want)
	}
}

// /readyz bounds its checks (handlers.ReadyTimeout): a check that does not end is
// answered 503 with its name, before a probe that waits a little longer gives up.
func TestReadyzNamesACheckThatDoesNotEnd(t *testing.T) {
	g := newGateway(t, withReadyCheck(handlers.Check{Name: "stuck", Fn: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}}))
	probe := &http.Client{Timeout: handlers.ReadyTimeout + 2*time.Second}
	resp, err := probe.Get(g.url + "/readyz")
	if err != nil {
		t.Fatalf("readyz with a check that does not end: %v; want an answer within %s", err, probe.Timeout)
	}
	defer resp.Body.Close()
	var body struct{ Checks map[string]string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusServiceUnavailable ||
		body.Checks["stuck"] == "" || body.Checks["stuck"] == "ok" || body.Checks["redis"] != "ok" {
		t.Errorf("readyz with a check that does not end = %d %v (%v); want 503 naming it", resp.StatusCode, body.Checks, err)
	}
}
