package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

func TestIdempotencyKeyReplaysTheFirstAnswer(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	first := g.do("POST", "/v1/agents/a1/mask", g.all(), `{"ttlSeconds":60}`, "Idempotency-Key", "k-1")
	if first.status != 200 || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first = %d %v", first.status, first.header)
	}
	again := g.do("POST", "/v1/agents/a1/mask", g.all(), `{"ttlSeconds":60}`, "Idempotency-Key", "k-1")
	if again.status != 200 || again.header.Get("Idempotent-Replayed") != "true" || string(again.body) != string(first.body) {
		t.Fatalf("repeat = %d %v %s; want the first answer replayed", again.status, again.header, again.body)
	}
	if n := g.sim.Count("mask", "a1", 0); n != 1 {
		t.Errorf("masks sent to CXone = %d; want 1", n)
	}
	if again.header.Get("X-Request-ID") == first.header.Get("X-Request-ID") {
		t.Error("the replay reused the first request's id")
	}
}

func TestIdempotencyKeyReusedWithAnotherRequestIs422(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	g.do("POST", "/v1/agents/a1/mask", g.all(), `{"ttlSeconds":60}`, "Idempotency-Key", "k-1")
	for _, other := range []struct{ path, body string }{
		{"/v1/agents/a1/mask", `{"ttlSeconds":61}`},
		{"/v1/agents/a2/mask", `{"ttlSeconds":60}`},
		{"/v1/agents/a1/unmask", ``},
	} {
		r := g.do("POST", other.path, g.all(), other.body, "Idempotency-Key", "k-1")
		if r.status != 422 || r.json(t)["code"] != "idempotency_key_reused" {
			t.Errorf("%s %s with a used key = %d %s; want 422 idempotency_key_reused", other.path, other.body, r.status, r.body)
		}
	}
	if n := len(g.sim.Requests()); n != 1 {
		t.Errorf("CXone requests = %d; want only the first mask", n)
	}
}

func TestIdempotencyKeyInFlightIs409(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	g.sim.SetFaults(cxonesim.Faults{LatencyMs: 250})
	done := make(chan response, 1)
	go func() { done <- g.do("POST", "/v1/agents/a1/mask", g.all(), "", "Idempotency-Key", "k-slow") }()
	testkit.Eventually(t, 5*time.Second, "the first request to reach CXone", func() bool { return g.sim.Held() == 1 })
	r := g.do("POST", "/v1/agents/a1/mask", g.all(), "", "Idempotency-Key", "k-slow")
	if r.status != 409 || r.json(t)["code"] != "idempotency_key_in_flight" {
		t.Errorf("repeat while in flight = %d %s; want 409 idempotency_key_in_flight", r.status, r.body)
	}
	if first := <-done; first.status != 200 {
		t.Errorf("first = %d", first.status)
	}
}

// A key stays reserved as long as a request may run (README: up to 6 × CXONE_TIMEOUT),
// so that a client's retry of a request still running is 409, not a second run. It
// was a fixed minute, less than a request may run once CXONE_TIMEOUT is over 10 s.
func TestIdempotencyKeyStaysReservedForTheLongestRequest(t *testing.T) {
	const longest = 3 * time.Minute
	g := newGateway(t, withLongestRequest(longest))
	g.sim.StartCall("a1", false, true)
	g.sim.SetFaults(cxonesim.Faults{LatencyMs: 250})
	done := make(chan response, 1)
	go func() { done <- g.do("POST", "/v1/agents/a1/mask", g.all(), "", "Idempotency-Key", "k-long") }()
	testkit.Eventually(t, 5*time.Second, "the request to reach CXone", func() bool { return g.sim.Held() == 1 })
	var ttl time.Duration
	for _, k := range testkit.Keys(t, g.rdb, g.prefix) {
		if strings.Contains(k, ":idem:") {
			ttl = g.rdb.PTTL(context.Background(), k).Val()
		}
	}
	if ttl <= longest {
		t.Errorf("the key is reserved for %s while its request runs; want over %s", ttl, longest)
	}
	if first := <-done; first.status != 200 {
		t.Errorf("first = %d", first.status)
	}
}

// The query is part of the request a key is tied to: an unmask refused for want of a
// session is not replayed to the same key's forced unmask, which is another request.
func TestIdempotencyKeyWithAnotherQueryIs422(t *testing.T) {
	g := newGateway(t)
	admin := g.token("recordings:unmask recordings:admin", nil)
	if r := g.do("POST", "/v1/agents/a1/unmask", admin, "", "Idempotency-Key", "k-q"); r.status != 409 {
		t.Fatalf("unmask without a session = %d %s; want 409", r.status, r.body)
	}
	r := g.do("POST", "/v1/agents/a1/unmask?force=true", admin, "", "Idempotency-Key", "k-q")
	if r.status != 422 || r.json(t)["code"] != "idempotency_key_reused" {
		t.Errorf("forced unmask with the key of an unforced one = %d %v %s; want 422 idempotency_key_reused", r.status, r.header, r.body)
	}
	if n := len(g.sim.Requests()); n != 0 {
		t.Errorf("CXone requests = %d; want none", n)
	}
}

// A caller is its sub and its client: another subject, or the same subject through
// another client (azp), sending the same key has its request run, not another's answer.
func TestIdempotencyKeysAreScopedToTheCaller(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	crm := g.token("recordings:mask", jwt.MapClaims{"sub": "crm", "azp": "crm-desk"})
	g.do("POST", "/v1/agents/a1/mask", crm, "", "Idempotency-Key", "shared")
	others := map[string]string{
		"another subject":                         g.token("recordings:mask", jwt.MapClaims{"sub": "ivr", "azp": "crm-desk"}),
		"the same subject through another client": g.token("recordings:mask", jwt.MapClaims{"sub": "crm", "azp": "crm-mobile"}),
	}
	for name, token := range others {
		r := g.do("POST", "/v1/agents/a1/mask", token, "", "Idempotency-Key", "shared")
		if r.status != 200 || r.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("%s's request with the same key = %d %v; want it run", name, r.status, r.header)
		}
	}
	if n := g.sim.Count("mask", "a1", 0); n != 1+len(others) {
		t.Errorf("masks sent = %d; want %d", n, 1+len(others))
	}
}

func TestIdempotencyKeepsClientErrorsButNotServerErrors(t *testing.T) {
	g := newGateway(t)
	// A 404 is an answer: replayed.
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), "", "Idempotency-Key", "k-404"); r.status != 404 {
		t.Fatalf("first = %d", r.status)
	}
	g.sim.StartCall("a1", false, true)
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), "", "Idempotency-Key", "k-404"); r.status != 404 || r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("repeat of a 404 = %d %v; want the 404 replayed", r.status, r.header)
	}
	// A 503 is not: the retry runs again.
	g.sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: 503})
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), "", "Idempotency-Key", "k-503"); r.status != 503 {
		t.Fatalf("during the outage = %d %s", r.status, r.body)
	}
	g.sim.SetFaults(cxonesim.Faults{})
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), "", "Idempotency-Key", "k-503"); r.status != 200 || r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("retry after a 503 = %d %v; want it run again and 200", r.status, r.header)
	}
}

// A 429 is no answer to keep: the request did not run, and its retry with the same key
// after Retry-After must run, not get the 429 again for a day.
func TestIdempotencyDoesNotKeepARateLimitedAnswer(t *testing.T) {
	g := newGateway(t, withRateLimit(1))
	g.sim.StartCall("a1", false, true)
	g.sim.StartCall("a2", false, true)
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), "", "Idempotency-Key", "k-1"); r.status != 200 {
		t.Fatalf("first = %d %s", r.status, r.body)
	}
	limited := g.do("POST", "/v1/agents/a2/mask", g.all(), "", "Idempotency-Key", "k-2")
	if limited.status != 429 {
		t.Fatalf("second within the second = %d %s; want 429", limited.status, limited.body)
	}
	var again response
	testkit.Eventually(t, 5*time.Second, "the retry to run", func() bool {
		again = g.do("POST", "/v1/agents/a2/mask", g.all(), "", "Idempotency-Key", "k-2")
		return again.status != 429
	})
	if again.status != 200 || again.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("retry after the limit = %d %v %s; want it run, 200", again.status, again.header, again.body)
	}
}

// A key that is empty, too long, not printable or sent twice is a bad parameter, named
// as one. An empty one is not taken for no key: the spec's minLength is 1, and a caller
// whose key came out empty (a template's variable unset) believes its retry safe.
func TestBadIdempotencyKeyIs400(t *testing.T) {
	g := newGateway(t)
	for _, header := range [][]string{
		{"Idempotency-Key", ""},
		{"Idempotency-Key", "   "}, // HTTP's white space around a value is no part of it
		{"Idempotency-Key", strings.Repeat("k", 256)},
		{"Idempotency-Key", "tab\there"},
		{"Idempotency-Key", "k-1", "Idempotency-Key", "k-2"},
	} {
		r := g.do("POST", "/v1/agents/a1/mask", g.all(), "", header...)
		if p := r.json(t); r.status != 400 || p["code"] != "invalid_parameter" || p["title"] != "Invalid parameter" ||
			!strings.Contains(p["detail"].(string), "Idempotency-Key") {
			t.Errorf("%q = %d %s; want 400 invalid_parameter about Idempotency-Key", header, r.status, r.body)
		}
	}
	g.untouched("bad Idempotency-Key")
}

// A body too large is refused before the key is reserved: the key stays free for the
// caller's corrected request.
func TestIdempotencyKeyWithABodyTooLargeIs413AndKeepsNothing(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	huge := `{"reason":"` + strings.Repeat("r", 17<<10) + `"}`
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), huge, "Idempotency-Key", "k-big"); r.status != 413 || r.json(t)["code"] != "body_too_large" {
		t.Fatalf("body over 16 KiB with a key = %d %s; want 413 body_too_large", r.status, r.body)
	}
	g.untouched("a body too large with a key")
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), `{"reason":"payment"}`, "Idempotency-Key", "k-big"); r.status != 200 || r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("the corrected request with the same key = %d %s; want it run (200)", r.status, r.body)
	}
}

// A request refused before anything ran (400 for its input, 403 for a forced unmask
// without the admin scope) changes nothing, its key included: the same request again
// is refused again, not replayed, and the corrected one runs rather than being 422
// idempotency_key_reused.
func TestIdempotencyKeyOfARefusedRequestIsFreed(t *testing.T) {
	g := newGateway(t)
	g.sim.StartCall("a1", false, true)
	for _, bad := range []struct{ path, body string }{
		{"/v1/agents/a1/mask", `{"reason":"card 4111 1111 1111 1111"}`}, // refused by the session service
		{"/v1/agents/a1/mask", `{"reason":null}`},                       // by the body's decoding
		{"/v1/agents/a1/mask?ttlSeconds=60", ""},                        // by the query check
	} {
		for range 2 {
			if r := g.do("POST", bad.path, g.all(), bad.body, "Idempotency-Key", "k-bad"); r.status != 400 || r.header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("POST %s %s with a key = %d %v %s; want 400, not replayed", bad.path, bad.body, r.status, r.header, r.body)
			}
		}
	}
	if r := g.do("POST", "/v1/agents/a1/mask", g.all(), `{"reason":"payment"}`, "Idempotency-Key", "k-bad"); r.status != 200 || r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("the corrected request with the same key = %d %s; want it run (200)", r.status, r.body)
	}
	if n := len(g.sim.Requests()); n != 1 {
		t.Errorf("%d requests reached CXone; want the corrected mask's only", n)
	}
	// A forced unmask without the admin scope is refused before anything runs too:
	// the same caller's token that may runs it under the same key.
	if r := g.do("POST", "/v1/agents/a1/unmask?force=true", g.all(), "", "Idempotency-Key", "k-force"); r.status != 403 {
		t.Fatalf("forced unmask without recordings:admin = %d %s; want 403", r.status, r.body)
	}
	admin := g.token("recordings:unmask recordings:admin", nil)
	if r := g.do("POST", "/v1/agents/a1/unmask?force=true", admin, "", "Idempotency-Key", "k-force"); r.status != 200 || r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("the same forced unmask by a token that may = %d %s; want it run (200)", r.status, r.body)
	}
}

// When the answer cannot be kept, or the key not freed after a 5xx (Redis fails after
// the request ran), the caller still gets the answer, the failure is logged, and the
// key stays reserved until its reservation passes: a retry meanwhile is told the first
// request is in flight, and nothing runs twice.
func TestIdempotencyRecordThatCannotBeWritten(t *testing.T) {
	for _, tt := range []struct {
		name   string
		faults cxonesim.Faults
		status int
	}{
		{"answer kept", cxonesim.Faults{}, 200},
		{"key freed after a 5xx", cxonesim.Faults{ErrorRate: 1, ErrorStatus: 503}, 503},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rdb, _ := testkit.Redis(t, failIdempotencyWrites)
			g := newGateway(t, withRedis(rdb))
			g.sim.StartCall("a1", false, true)
			g.sim.SetFaults(tt.faults)
			if r := g.do("POST", "/v1/agents/a1/mask", g.all(), "", "Idempotency-Key", "k-1"); r.status != tt.status {
				t.Fatalf("first = %d %s; want %d", r.status, r.body, tt.status)
			}
			if !strings.Contains(g.logs.String(), "could not keep the answer of an Idempotency-Key") {
				t.Error("the lost record was not logged")
			}
			sent := len(g.sim.Requests())
			g.sim.SetFaults(cxonesim.Faults{})
			if r := g.do("POST", "/v1/agents/a1/mask", g.all(), "", "Idempotency-Key", "k-1"); r.status != 409 || r.json(t)["code"] != "idempotency_key_in_flight" {
				t.Errorf("retry = %d %s; want 409 idempotency_key_in_flight", r.status, r.body)
			}
			if n := len(g.sim.Requests()); n != sent {
				t.Errorf("CXone requests = %d after the retry; want %d, as before it", n, sent)
			}
		})
	}
}

// failIdempotencyWrites fails what a request writes to its Idempotency-Key record once
// it ran (the answer, or the key's release), not the reservation before it.
var failIdempotencyWrites = testkit.CommandHook(func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
	args := fmt.Sprintln(cmd.Args()...) // spaces between all the arguments
	if (cmd.Name() == "set" || cmd.Name() == "del") && strings.Contains(args, ":idem:") && !strings.Contains(strings.ToLower(args), " nx ") {
		err := errors.New("injected: Redis failed")
		cmd.SetErr(err)
		return err
	}
	return next(ctx, cmd)
})
