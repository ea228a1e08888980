package middleware_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/middleware"
	"github.com/maskgate/maskgate/sessions"
)

// A handler that panics is answered 500 internal as a problem, with the request's id
// and nothing of the panic; the panic and its stack go to the log, and the access line
// says 500 at error level.
func TestPanicIsAnsweredAsAProblemAndLogged(t *testing.T) {
	var logs bytes.Buffer
	h := middleware.RequestID(middleware.AccessLog(zerolog.New(&logs), nil)(middleware.Recover(
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom: a bug") }))))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/masks", nil))

	var p struct{ Code, Detail, RequestID string }
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Code != http.StatusInternalServerError ||
		rec.Header().Get("Content-Type") != "application/problem+json" || p.Code != "internal" ||
		p.RequestID == "" || p.RequestID != rec.Header().Get("X-Request-ID") {
		t.Fatalf("answer = %d %v %s; want a 500 internal problem with the request id", rec.Code, rec.Header(), rec.Body)
	}
	if strings.Contains(rec.Body.String(), "boom") {
		t.Errorf("the answer shows the panic: %s", rec.Body)
	}
	var panicked, access bool
	for _, line := range testkit.LogLines(t, logs.String()) {
		switch {
		case line["message"] == "handler panicked":
			stack, _ := line["stack"].(string)
			panicked = line["panic"] == "boom: a bug" && strings.Contains(stack, "recover_test.go") &&
				line["request_id"] == p.RequestID
		case line["status"] == float64(500):
			access = line["level"] == "error" && line["request_id"] == p.RequestID
		}
	}
	if !panicked || !access {
		t.Errorf("log (panic line %v, access line %v):\n%s", panicked, access, logs.String())
	}
}

// http.ErrAbortHandler is net/http's way to abort an answer on purpose: it is passed on,
// not turned into a 500.
func TestAbortHandlerIsPassedOn(t *testing.T) {
	h := middleware.Recover(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	rec := httptest.NewRecorder()
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Errorf("recovered %v; want http.ErrAbortHandler passed on", p)
		}
		if rec.Body.Len() != 0 {
			t.Errorf("an aborted answer was written: %s", rec.Body)
		}
	}()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/masks", nil))
	t.Error("the abort did not reach net/http")
}

// A handler that panics frees the Idempotency-Key it ran under, as a 500 answer does:
// the caller's retry runs, instead of being told for the key's whole reservation that
// the first request is still in flight.
func TestPanicFreesItsIdempotencyKey(t *testing.T) {
	rdb, prefix := testkit.Redis(t)
	var runs atomic.Int32
	h := middleware.Recover(middleware.Idempotency(sessions.NewStore(rdb, prefix), time.Minute)(
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if runs.Add(1) == 1 {
				panic("a bug")
			}
			w.WriteHeader(http.StatusOK)
		})))
	post := func() int {
		req := httptest.NewRequest(http.MethodPost, "/v1/agents/a/mask", nil)
		req.Header.Set("Idempotency-Key", "k-1")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := post(); code != http.StatusInternalServerError {
		t.Fatalf("the request that panicked = %d; want 500", code)
	}
	if code := post(); code != http.StatusOK || runs.Load() != 2 {
		t.Errorf("its retry = %d after %d runs; want it run again: 200", code, runs.Load())
	}
}
