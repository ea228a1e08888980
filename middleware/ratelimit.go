package middleware

import (
	"context"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/api"
)

// RateStore counts requests per caller across replicas; *sessions.Store is one.
type RateStore interface {
	Allow(ctx context.Context, caller string, limit int, window time.Duration) (time.Duration, error)
}

// RateLimit allows each caller (JWT sub and client) perSecond requests per second,
// counted in Redis so that the limit holds across all replicas (design §4). Over it,
// 429 rate_limited with Retry-After. When Redis cannot count, the request passes: the
// limiter must not turn a Redis hiccup into an outage of its own. It runs after
// Authorize. POSTs (mask, unmask) pass: they count in their first Redis script, which
// saves them a round trip.
func RateLimit(store RateStore, perSecond int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			caller, ok := CallerFrom(r.Context())
			if !ok || r.Method == http.MethodPost {
				next.ServeHTTP(w, r)
				return
			}
			wait, err := store.Allow(r.Context(), caller.RateKey(), perSecond, time.Second)
			switch {
			case err != nil:
				zerolog.Ctx(r.Context()).Warn().Err(err).Msg("rate limit not checked: store unavailable")
			case wait > 0:
				api.WriteProblem(w, r, http.StatusTooManyRequests, api.ProblemCodeRateLimited,
					"over the rate limit of this caller", wait)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
