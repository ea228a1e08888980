package middleware

import "net/http"

// NoStore marks every answer, errors included, as not to be stored by any cache: a
// session is live state, and a stale "masked" is worse than none.
func NoStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
