package upstream

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A caller that found no token, but asks for one only after another caller's token
// request has ended, is served the token just obtained: no second request.
func TestATokenObtainedMeanwhileServesALateCaller(t *testing.T) {
	var issued atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"t%d","token_type":"bearer","expires_in":3600}`, issued.Add(1))
	}))
	defer srv.Close()

	held, release := make(chan struct{}), make(chan struct{})
	var clockReads atomic.Int32
	ts := &tokenSource{
		authURL: srv.URL,
		hc:      newHTTPClient(5*time.Second, time.Second),
		timeout: 5 * time.Second,
		metrics: newMetrics(prometheus.NewRegistry()),
		now: func() time.Time {
			// The first read is the late caller's, after it found no token and
			// before it asks for one: it waits there until the other caller is served.
			if clockReads.Add(1) == 1 {
				close(held)
				<-release
			}
			return time.Now()
		},
	}
	type answer struct {
		tok *token
		err error
	}
	late := make(chan answer, 1)
	go func() {
		tok, err := ts.Token(context.Background())
		late <- answer{tok, err}
	}()
	<-held
	first, err := ts.Token(context.Background())
	close(release)
	if err != nil {
		t.Fatalf("first caller: %v", err)
	}
	got := <-late
	if got.err != nil {
		t.Fatalf("late caller: %v", got.err)
	}
	if n := issued.Load(); n != 1 {
		t.Errorf("token requests = %d; want 1", n)
	}
	if got.tok != first {
		t.Errorf("late caller got %q; want the token just obtained, %q", got.tok.access, first.access)
	}
}

// A 200 from the token endpoint that holds no usable token is refused with what it
// lacks, by the names of RFC 6749's fields, and never with a value of the answer's.
func TestATokenAnswerWithoutAUsableTokenSaysWhatItLacks(t *testing.T) {
	for body, want := range map[string]string{
		`{"access_token":"tok-SECRET","expires_in":"3600"}`: "is not JSON with a string access_token and a number expires_in",
		`{"access_token":987654321,"expires_in":3600}`:      "is not JSON with a string access_token and a number expires_in",
		`<html>tok-SECRET</html>`:                           "is not JSON with a string access_token and a number expires_in",
		`{"token":"tok-SECRET","expires_in":3600}`:          "has no access_token",
		`{"access_token":"tok-SECRET"}`:                     "has no expires_in of a positive number of seconds",
		`{"access_token":"tok-SECRET","expires_in":0}`:      "has no expires_in of a positive number of seconds",
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, body)
		}))
		ts := &tokenSource{authURL: srv.URL, hc: newHTTPClient(5*time.Second, time.Second), timeout: 5 * time.Second,
			metrics: newMetrics(prometheus.NewRegistry()), now: time.Now}
		_, err := ts.Token(context.Background())
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), "(HTTP 200): the token answer "+want) {
			t.Errorf("%s: %v; want a refusal that says the answer %s", body, err, want)
		}
		if err != nil && (strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "987654321")) {
			t.Errorf("%s: the error %q repeats a value of the answer", body, err)
		}
	}
}
