package handlers_test

import (
	"net/http"
	"strings"
	"testing"
)

// send makes a request outside the spec's checks (a browser's preflight is no
// operation of openapi.yaml).
func (g *gateway) send(method, path, origin string, header ...string) *http.Response {
	g.t.Helper()
	req, err := http.NewRequest(method, g.url+path, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Origin", origin)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// A page of a listed origin (an agent desktop in a browser) may call the API: its
// preflight is answered without a token, and the answers name the origin and expose
// the headers a caller reads. Other origins get no CORS header, and the token is still
// required.
func TestBrowserCallsFromListedOrigins(t *testing.T) {
	const crm = "https://crm.example.com"
	g := newGateway(t, withCORS(crm, "https://*.desk.example"))
	g.sim.StartCall("a1", false, true)
	preflight := func(origin string) *http.Response {
		return g.send("OPTIONS", "/v1/agents/a1/mask", origin,
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, idempotency-key")
	}
	r := preflight(crm)
	if r.StatusCode != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != crm ||
		!strings.Contains(strings.ToLower(r.Header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("preflight from %s = %d %v; want it allowed", crm, r.StatusCode, r.Header)
	}
	if r := preflight("https://agent7.desk.example"); r.Header.Get("Access-Control-Allow-Origin") != "https://agent7.desk.example" {
		t.Errorf("preflight from a subdomain of a wildcard origin = %v; want it allowed", r.Header)
	}
	if r := preflight("https://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin allowed: %v", r.Header)
	}
	r = g.send("POST", "/v1/agents/a1/mask", crm, "Authorization", "Bearer "+g.all())
	if r.StatusCode != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != crm ||
		!strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
		t.Errorf("mask from %s = %d %v; want 200 with the CORS headers", crm, r.StatusCode, r.Header)
	}
	if r := g.send("POST", "/v1/agents/a1/unmask", crm); r.StatusCode != http.StatusUnauthorized || r.Header.Get("Access-Control-Allow-Origin") != crm {
		t.Errorf("unmask from %s without a token = %d %v; want 401 the page can read", crm, r.StatusCode, r.Header)
	}
}

// Without MASKGATE_CORS_ORIGINS no browser page may call: no CORS header at all.
func TestNoCORSByDefault(t *testing.T) {
	g := newGateway(t)
	r := g.send("OPTIONS", "/v1/masks", "https://crm.example.com", "Access-Control-Request-Method", "GET")
	if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight = %d %v; want 405 without CORS headers", r.StatusCode, r.Header)
	}
	if r := g.send("GET", "/v1/masks", "https://crm.example.com", "Authorization", "Bearer "+g.all()); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a GET with an Origin got CORS headers: %v", r.Header)
	}
}
