package main

import (
	"strings"
	"testing"

	"github.com/maskgate/maskgate/internal/testkit"
)

// exposition is a live gateway's /metrics, with TLS on (the certificate's metric is
// exported then) and after a mask (labelled counters appear once used: a token request
// and a CXone call).
func exposition(t *testing.T) string {
	t.Helper()
	sim := testkit.NewSim(t)
	sim.StartCall("81", false, true)
	ca, certFile, keyFile := writeTestPKI(t)
	s := startTLS(t, sim, ca, certFile, keyFile)
	if a := s.call(t, "POST", "/v1/agents/81/mask", "", ""); a.status != 200 {
		t.Fatalf("mask = %d %s", a.status, a.body)
	}
	return s.call(t, "GET", "/metrics", "", "").body
}

// TestREADMEListsEveryMetric: the README's table of metrics names every maskgate_
// metric a live gateway exports, and nothing it does not.
func TestREADMEListsEveryMetric(t *testing.T) {
	listed := namesInREADME(t, "| metric | what it says |", "\n\n", "`(maskgate_[a-z_]+)")
	exported := map[string]bool{}
	for line := range strings.Lines(exposition(t)) {
		if rest, ok := strings.CutPrefix(line, "# TYPE maskgate_"); ok {
			exported["maskgate_"+strings.Fields(rest)[0]] = true
		}
	}
	for name := range exported {
		if !listed[name] {
			t.Errorf("the README's table of metrics lacks %s", name)
		}
	}
	for name := range listed {
		if !exported[name] {
			t.Errorf("the README lists %s, which the gateway does not export", name)
		}
	}
}
