package middleware

import (
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"
)

// AccessLog puts a request logger (carrying request_id and remote_ip, the origin of
// the request) on the request context, for every audit line written while serving it,
// and writes one access line per request when it is done (design §5): request_id,
// time, remote_ip, method, route, status, duration_ms and the caller's sub/client_id.
// It must run after RequestID.
func AccessLog(log zerolog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		access := hlog.AccessHandler(func(r *http.Request, status, size int, d time.Duration) {
			scope := ScopeFrom(r.Context())
			ev := zerolog.Ctx(r.Context()).Info()
			if status >= http.StatusInternalServerError {
				ev = zerolog.Ctx(r.Context()).Error()
			}
			ev = ev.Str("method", r.Method).Str("route", route(r)).
				Int("status", status).Int("size", size).Float64("duration_ms", float64(d.Microseconds())/1000)
			if c := scope.Caller; c != nil {
				ev = ev.Str("sub", c.Subject)
				if c.ClientID != "" {
					ev = ev.Str("client_id", c.ClientID)
				}
			}
			ev.Msg("request")
		})
		next = access(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			l := log.With().Str("request_id", ScopeFrom(r.Context()).RequestID).Str("remote_ip", remoteIP(r)).Logger()
			next.ServeHTTP(w, r.WithContext(l.WithContext(r.Context())))
		})
	}
}

// route is chi's route pattern of the request (never the raw path, which carries
// user ids), or "unmatched".
func route(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return p
		}
	}
	return "unmatched"
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
