package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// TestCallersGuide follows the README's "Calling maskgate from a CRM or an IVR" against
// a whole gateway: a caller that takes the card number only once the session is masked
// never has it recorded, a replayed answer is told apart from the session now, a 5xx
// retried with its Idempotency-Key runs again, an unmask that names its session never
// ends a newer mask, and every mask ends unmasked.
func TestCallersGuide(t *testing.T) {
	g, sim := startWith(t, map[string]string{
		"MASKGATE_SWEEP_INTERVAL": "200ms",
		"CXONE_TIMEOUT":           "1s", // a mask CXone keeps refusing answers within 3 s
	})
	call := sim.StartCall("g1", false, true)
	session := func(a answer) (state, id string) {
		t.Helper()
		var s struct{ State, SessionID string }
		if err := json.Unmarshal([]byte(a.body), &s); err != nil {
			t.Fatalf("answer %d %q: %v", a.status, a.body, err)
		}
		return s.State, s.SessionID
	}
	// takeCardNumber is the agent taking a card number, which takes a while (the sleep
	// is the agent's time, not a wait for the gateway): the call must be masked from
	// before it until after.
	var taken [][2]time.Time
	takeCardNumber := func() {
		from := time.Now()
		time.Sleep(50 * time.Millisecond)
		taken = append(taken, [2]time.Time{from, time.Now()})
	}

	// The first payment: CXone answers 202 and masks 1.5 s later, after the gateway's
	// first look at the recording status (1 s after the 202).
	sim.SetBehaviour("g1", 0, 1500*time.Millisecond)
	a := g.call(t, "POST", "/v1/agents/g1/mask", `{"reason":"payment","ttlSeconds":300}`, "payment-1")
	state, first := session(a)
	if a.status != http.StatusAccepted || state != "masking" {
		t.Fatalf("mask = %d %s; want 202 masking", a.status, a.body)
	}
	testkit.Eventually(t, 10*time.Second, "GET to show the session masked", func() bool {
		state, _ := session(g.call(t, "GET", "/v1/agents/g1/mask", "", ""))
		return state == "masked"
	})
	takeCardNumber()
	a = g.call(t, "POST", "/v1/agents/g1/unmask", `{"sessionId":"`+first+`"}`, "payment-1-done")
	if a.status != http.StatusOK && a.status != http.StatusAccepted {
		t.Fatalf("unmask = %d %s; want 200 or 202", a.status, a.body)
	}

	unmasked := func() bool {
		c, _ := sim.Call(call.ID)
		return !c.Masked
	}
	testkit.Eventually(t, 10*time.Second, "CXone to unmask the call", unmasked)

	// The first payment's mask sent again late, with its key: the answer is the first
	// one, replayed, and the GET says what is true now.
	a = g.call(t, "POST", "/v1/agents/g1/mask", `{"reason":"payment","ttlSeconds":300}`, "payment-1")
	if state, _ := session(a); a.status != http.StatusAccepted || state != "masking" || a.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the first mask again = %d %s (replayed %q); want its first answer replayed", a.status, a.body, a.header.Get("Idempotent-Replayed"))
	}
	// (The session is unmasking until the sweeper confirms the unmask, then gone.)
	a = g.call(t, "GET", "/v1/agents/g1/mask", "", "")
	if state, _ := session(a); a.status == http.StatusOK && state == "masked" || a.status != http.StatusOK && a.code() != "not_masked" {
		t.Fatalf("GET after the replay = %d %s; want the session unmasking or gone, and no card number taken", a.status, a.body)
	}

	// The second payment: CXone is unavailable at first (503), then answers at once.
	sim.SetBehaviour("g1", 0, 0)
	sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable})
	if a = g.call(t, "POST", "/v1/agents/g1/mask", "", "payment-2"); a.status != http.StatusServiceUnavailable {
		t.Fatalf("mask while CXone is unavailable = %d %s; want 503, and no card number taken", a.status, a.body)
	}
	sim.SetFaults(cxonesim.Faults{})
	a = g.call(t, "POST", "/v1/agents/g1/mask", "", "payment-2")
	state, second := session(a)
	if a.status != http.StatusOK || state != "masked" || a.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("the retry with the same key = %d %s (replayed %q); want it run again: 200 masked",
			a.status, a.body, a.header.Get("Idempotent-Replayed"))
	}
	takeCardNumber()

	// A late copy of the first payment's unmask (sent again without its key) ends nothing.
	if a = g.call(t, "POST", "/v1/agents/g1/unmask", `{"sessionId":"`+first+`"}`, ""); a.status != http.StatusConflict || a.code() != "session_mismatch" {
		t.Fatalf("a late unmask of the first session = %d %s; want 409 session_mismatch", a.status, a.body)
	}
	if c, _ := sim.Call(call.ID); !c.Masked {
		t.Fatal("the late unmask of the first session unmasked the second")
	}
	if a = g.call(t, "POST", "/v1/agents/g1/unmask", `{"sessionId":"`+second+`"}`, "payment-2-done"); a.status != http.StatusOK {
		t.Fatalf("unmask = %d %s; want 200", a.status, a.body)
	}

	// No card number was recorded, and the call is recorded again.
	testkit.Eventually(t, 10*time.Second, "CXone to unmask the call", unmasked)
	c, _ := sim.Call(call.ID)
	for _, span := range taken {
		for _, rec := range c.RecordedSpans() {
			if rec.From.Before(span[1]) && (rec.To.IsZero() || rec.To.After(span[0])) {
				t.Errorf("a card number taken from %s to %s was recorded (recording %+v)", span[0].Format(time.StampMicro), span[1].Format(time.StampMicro), rec)
			}
		}
	}
	if spans := c.MaskedSpans(); len(spans) != 2 {
		t.Errorf("masked spans %+v; want the two payments'", spans)
	}
}
