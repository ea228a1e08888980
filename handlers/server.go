package handlers

import (
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/cors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	maskgate "github.com/maskgate/maskgate"
	"github.com/maskgate/maskgate/api"
	"github.com/maskgate/maskgate/middleware"
	"github.com/maskgate/maskgate/sessions"
)

// maxBody caps request bodies (16 KiB).
const maxBody = 16 << 10

// Deps are everything the server needs; NewServer holds no other state.
type Deps struct {
	Log      zerolog.Logger
	Sessions *sessions.Service
	Replays  middleware.IdempotencyStore // Idempotency-Key records
	Rates    middleware.RateStore        // per-caller request counts
	Limit    int                         // requests per second per caller (MASKGATE_RATE_LIMIT)
	Auth     *middleware.Authenticator
	Checks   []Check // readiness checks of /readyz
	Registry *prometheus.Registry
	// TrustedProxies are the load balancers whose X-Forwarded-For names the client
	// (MASKGATE_TRUSTED_PROXIES); none by default.
	TrustedProxies []netip.Prefix
	// CORSOrigins are the web origins whose pages may call the API from a browser
	// (MASKGATE_CORS_ORIGINS); none by default, and then no CORS header is sent.
	CORSOrigins []string
	// LongestRequest is the longest a request may run (waiting for another operation on
	// the agent, then its own CXone budget): an Idempotency-Key stays reserved as long.
	LongestRequest time.Duration
}

// NewServer returns maskgate's HTTP handler. Every route is in routes below; the API
// routes, their parameters and their scopes come from openapi.yaml through package api.
func NewServer(d Deps) http.Handler {
	r := chi.NewRouter()
	// Metrics outside Recover: a panic is counted as the 500 that Recover answers.
	r.Use(middleware.RequestID, middleware.AccessLog(d.Log, d.TrustedProxies), middleware.Metrics(d.Registry),
		middleware.Recover, middleware.LimitBody(maxBody),
		chimw.GetHead, // HEAD wherever GET is served (RFC 9110 §9.1), through the GET route
		// Browsers (CRM pages calling through CORS) take each answer as its Content-Type
		// says, never sniffing a JSON body that echoes a caller's text for HTML.
		chimw.SetHeader("X-Content-Type-Options", "nosniff"))
	if len(d.CORSOrigins) > 0 {
		// A browser's preflight is answered here, before authentication: it carries no
		// token. Only the listed origins get the Access-Control headers.
		r.Use(cors.Handler(cors.Options{
			AllowedOrigins: d.CORSOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost},
			AllowedHeaders: []string{"Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"},
			ExposedHeaders: []string{"X-Request-ID", "Idempotent-Replayed", "Retry-After", "WWW-Authenticate"},
			MaxAge:         600,
		}))
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		api.WriteProblem(w, r, http.StatusNotFound, api.ProblemCodeNotFound, "no such route", 0)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", allowed(r, req))
		api.WriteProblem(w, req, http.StatusMethodNotAllowed, api.ProblemCodeMethodNotAllowed, "method not allowed on this route", 0)
	})
	routes(r, d)
	return r
}

// allowed lists the methods that the route of req's path serves, for the Allow header a
// 405 must carry (RFC 9110 §15.5.6). chi knows them but hands them only to its own 405
// handler, not to one set with MethodNotAllowed.
func allowed(mux chi.Routes, req *http.Request) string {
	path := req.URL.RawPath // what chi routes by
	if path == "" {
		path = req.URL.Path
	}
	var methods []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		if mux.Match(chi.NewRouteContext(), m, path) {
			methods = append(methods, m)
			if m == http.MethodGet {
				methods = append(methods, http.MethodHead) // GetHead
			}
		}
	}
	return strings.Join(methods, ", ")
}

// routes is the whole HTTP surface on one screen.
//
//	GET  /metrics                       Prometheus text format
//	GET  /openapi.yaml                  the spec itself
//	GET  /healthz, /readyz              liveness, readiness
//	POST /v1/agents/{userId}/mask       scope recordings:mask
//	POST /v1/agents/{userId}/unmask     scope recordings:unmask
//	GET  /v1/agents/{userId}/mask       scope recordings:read
//	GET  /v1/masks                      scope recordings:read
//
// and HEAD wherever GET is (GetHead, in NewServer).
//
// The scopes are those of each operation's `security` in openapi.yaml; Authorize reads
// them from the context the generated router fills.
func routes(r chi.Router, d Deps) {
	r.Handle("GET /metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{}))
	r.Get("/openapi.yaml", serveSpec)
	h := &Handlers{svc: d.Sessions, checks: d.Checks, limit: d.Limit}
	strict := api.NewStrictHandlerWithOptions(h, []api.StrictMiddlewareFunc{knownQuery}, api.StrictHTTPServerOptions{
		RequestErrorHandlerFunc:  requestError,
		ResponseErrorHandlerFunc: writeError,
	})
	api.HandlerWithOptions(strict, api.ChiServerOptions{
		BaseRouter: r,
		// The last runs first: no-store on every answer, authorization, the
		// caller's rate limit, a body's coding, then Idempotency-Key (both need
		// the caller).
		Middlewares: []api.MiddlewareFunc{
			middleware.Idempotency(d.Replays, d.LongestRequest),
			middleware.IdentityBody,
			middleware.RateLimit(d.Rates, d.Limit),
			middleware.Authorize(d.Auth),
			middleware.NoStore,
		},
		ErrorHandlerFunc: requestError,
	})
}

func serveSpec(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(maskgate.OpenAPI)
}
