package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/api"
	"github.com/maskgate/maskgate/sessions"
)

// An error the problem table does not name (a bug: every error the domain returns has
// a row, and no test of the API can reach this) is a 500 "internal" whose cause is
// logged, never shown: it may name an address, a key or a caller's input.
func TestUnclassifiedErrorIsA500WithoutItsCause(t *testing.T) {
	var log bytes.Buffer
	r := httptest.NewRequest(http.MethodGet, "/v1/masks", nil)
	r = r.WithContext(zerolog.New(&log).WithContext(r.Context()))
	w := httptest.NewRecorder()
	cause := errors.New("dial tcp 10.0.0.7:6379: connection refused")
	writeError(w, r, cause)
	var p api.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != http.StatusInternalServerError ||
		p.Code != api.ProblemCodeInternal || p.Detail != "internal error" || strings.Contains(w.Body.String(), "10.0.0.7") {
		t.Errorf("an unclassified error = %d %s; want 500 internal, detail \"internal error\" and nothing of its cause", w.Code, w.Body)
	}
	if !strings.Contains(log.String(), cause.Error()) {
		t.Errorf("the cause is not logged: %s", log.String())
	}
}

// A request that waited for a busy agent past its CXone budget is answered 503
// agent_busy with Retry-After, as README says. sessions holds when it gives up
// (TestRequestForAnAgentLockedByADeadReplicaIsRefusedInTime); no test of the API holds
// an agent that long.
func TestAgentBusyIs503WithRetryAfter(t *testing.T) {
	w := httptest.NewRecorder()
	writeError(w, httptest.NewRequest(http.MethodPost, "/v1/agents/a1/mask", nil), sessions.ErrAgentBusy)
	var p api.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != http.StatusServiceUnavailable || p.Code != api.ProblemCodeAgentBusy || w.Header().Get("Retry-After") == "" {
		t.Errorf("agent busy = %d %v %s; want 503 agent_busy with Retry-After", w.Code, w.Header(), w.Body)
	}
}
