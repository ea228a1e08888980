package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	maskgate "github.com/maskgate/maskgate"
	"github.com/maskgate/maskgate/api"
)

func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(maskgate.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not valid OpenAPI: %v", err)
	}
	return doc
}

func TestEveryProblemCodeHasATitle(t *testing.T) {
	doc := loadSpec(t)
	codes := doc.Components.Schemas["Problem"].Value.Properties["code"].Value.Enum
	if len(codes) == 0 {
		t.Fatal("the spec lists no problem codes")
	}
	for _, c := range codes {
		code := api.ProblemCode(c.(string))
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if p := api.NewProblem(r, 400, code, "d"); p.Title == "" || p.Type != "urn:maskgate:problem:"+string(code) {
			t.Errorf("code %s: problem %+v has no title", code, p)
		}
	}
}

// TestREADMEListsEveryProblemCode: README's table of answers has a row for every code
// of the spec's, so that a caller can look up what an answer means.
func TestREADMEListsEveryProblemCode(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| ([0-9]{3}) \\| `([a-z_]+)` \\|").FindAllStringSubmatch(string(readme), -1) {
		rows[m[2]] = true
	}
	for _, c := range loadSpec(t).Components.Schemas["Problem"].Value.Properties["code"].Value.Enum {
		if !rows[c.(string)] {
			t.Errorf("README's table of answers has no row for problem code %s", c)
		}
	}
}

// TestEveryAPIOperationRequiresAScope keeps the authorization fail-closed: an operation
// under /v1 without a `security` scope would be served to anyone.
func TestEveryAPIOperationRequiresAScope(t *testing.T) {
	doc := loadSpec(t)
	n := 0
	for path, item := range doc.Paths.Map() {
		if !strings.HasPrefix(path, "/v1/") {
			continue
		}
		for method, op := range item.Operations() {
			n++
			if op.Security == nil || len(*op.Security) != 1 || len((*op.Security)[0]["bearerAuth"]) == 0 {
				t.Errorf("%s %s has no bearerAuth scope", method, path)
			}
		}
	}
	if n < 4 {
		t.Errorf("found %d /v1 operations; want at least 4", n)
	}
}

func TestWriteProblemSetsRetryAfterOn503(t *testing.T) {
	w := httptest.NewRecorder()
	api.WriteProblem(w, httptest.NewRequest(http.MethodGet, "/", nil), 503, api.ProblemCodeStoreUnavailable, "down", 0)
	if w.Header().Get("Retry-After") != "1" || w.Header().Get("Content-Type") != api.ProblemContentType {
		t.Errorf("headers = %v", w.Header())
	}
	w = httptest.NewRecorder()
	api.WriteProblem(w, httptest.NewRequest(http.MethodGet, "/", nil), 503, api.ProblemCodeUpstreamUnavailable, "busy", 2500e6)
	if w.Header().Get("Retry-After") != "3" {
		t.Errorf("Retry-After for 2.5s = %q; want 3", w.Header().Get("Retry-After"))
	}
}

// TestCallerGoneOnlyWhenTheCallerHungUp: a canceled wait is the caller's hang-up (499,
// nobody to answer) only when the request's own context ended; an error that wraps
// context.Canceled from elsewhere is answered as a failure like any other.
func TestCallerGoneOnlyWhenTheCallerHungUp(t *testing.T) {
	canceled := fmt.Errorf("redis: %w", context.Canceled)
	live := httptest.NewRequest(http.MethodPost, "/v1/agents/a1/mask", nil)
	if w := httptest.NewRecorder(); api.CallerGone(w, live, canceled) {
		t.Errorf("a live request's error wrapping context.Canceled was taken for a hang-up (%d)", w.Code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	gone := live.WithContext(ctx)
	if w := httptest.NewRecorder(); !api.CallerGone(w, gone, canceled) || w.Code != api.StatusClientClosedRequest {
		t.Errorf("the hung-up caller's request: recorded %d; want %d", w.Code, api.StatusClientClosedRequest)
	}
	if w := httptest.NewRecorder(); api.CallerGone(w, gone, errors.New("redis: connection refused")) {
		t.Errorf("another error of a hung-up caller's request was taken for the hang-up")
	}
}
