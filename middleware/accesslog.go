package middleware

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"

	"github.com/maskgate/maskgate/api"
	"github.com/maskgate/maskgate/sessions"
)

// AccessLog puts a request logger (carrying request_id and remote_ip, the origin of
// the request) on the request context, for every audit line written while serving it,
// and writes one access line per request when it is done (design §5): request_id,
// time, remote_ip, method, route, status, duration_ms, the caller's sub/client_id, and
// the user_id of a route with an agent, so that an attempt refused before any audit
// line (401, 403: PCI DSS 10.2.1.4) still names the agent it aimed at; and for an
// answer that is a problem, its code and detail, so that it also says why.
// remote_ip is the connection's peer, or, when the peer is one of the trusted proxies,
// the client that X-Forwarded-For names (see ClientIP); the peer is then peer_ip.
// It must run after RequestID.
func AccessLog(log zerolog.Logger, trusted []netip.Prefix) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		access := hlog.AccessHandler(func(r *http.Request, status, size int, d time.Duration) {
			scope := ScopeFrom(r.Context())
			ev := zerolog.Ctx(r.Context()).Info()
			if status >= http.StatusInternalServerError {
				ev = zerolog.Ctx(r.Context()).Error()
			}
			ev = ev.Str("method", method(r)).Str("route", route(r)).
				Int("status", status).Int("size", size).Float64("duration_ms", float64(d.Microseconds())/1000)
			if c := scope.Caller; c != nil {
				ev = ev.Str("sub", c.Subject)
				if c.ClientID != "" {
					ev = ev.Str("client_id", c.ClientID)
				}
			}
			if id := pathUserID(r); sessions.ValidUserID(id) {
				ev = ev.Str("user_id", id) // the agent aimed at, also by a refused attempt
			}
			if p := scope.Problem; p.Code != "" {
				ev = ev.Str("code", string(p.Code)).Str("detail", p.Detail) // why, as its caller was told
			}
			ev.Msg("request")
		})
		next = access(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			lc := log.With().Str("request_id", ScopeFrom(r.Context()).RequestID)
			client, peer := ClientIP(r, trusted)
			lc = lc.Str("remote_ip", client)
			if client != peer {
				lc = lc.Str("peer_ip", peer)
			}
			l := lc.Logger()
			ctx := api.WithProblemNote(l.WithContext(r.Context()), &ScopeFrom(r.Context()).Problem)
			next.ServeHTTP(w, r.WithContext(ctx))
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

// ClientIP is the address a request came from, and the connection's peer. They are
// the same unless the peer is a trusted proxy (a load balancer or ingress in front of
// maskgate): then X-Forwarded-For is read from its right end, each trusted proxy
// skipped, and the first address not trusted is the client. An address a caller wrote
// into the header itself is never taken, since it sits left of what a trusted proxy
// appended; a peer not trusted is the client whatever the header says.
func ClientIP(r *http.Request, trusted []netip.Prefix) (client, peer string) {
	peer = r.RemoteAddr
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		peer = host
	}
	if len(trusted) == 0 {
		return peer, peer
	}
	addr, err := netip.ParseAddr(peer)
	if err != nil || !within(addr, trusted) {
		return peer, peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for _, h := range slices.Backward(hops) {
		hop, err := parseHop(strings.TrimSpace(h))
		if err != nil {
			break // not an address: nothing left of it can be believed
		}
		addr = hop.Unmap()
		if !within(addr, trusted) {
			break
		}
	}
	return addr.String(), peer
}

// parseHop reads one X-Forwarded-For entry: an address, or one with a port as some
// load balancers write it ("203.0.113.7:51000", "[2001:db8::7]:51000").
func parseHop(s string) (netip.Addr, error) {
	if addr, err := netip.ParseAddr(s); err == nil {
		return addr, nil
	}
	ap, err := netip.ParseAddrPort(s)
	return ap.Addr(), err
}

func within(addr netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(addr.Unmap()) {
			return true
		}
	}
	return false
}
