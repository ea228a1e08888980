package middleware

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"regexp"

	chimw "github.com/go-chi/chi/v5/middleware"
)

// RequestIDHeader carries the request id in and out.
const RequestIDHeader = "X-Request-ID"

// acceptedRequestID bounds what an incoming request id may be, so that a caller cannot
// smuggle anything odd into the logs; others are replaced by a fresh id.
var acceptedRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// RequestID gives every request an id: the caller's X-Request-ID when it is sane,
// else a new random one. The id is echoed in the X-Request-ID answer header, stored
// where chi's GetReqID finds it (problem answers carry it) and in the request Scope.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !acceptedRequestID.MatchString(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set(RequestIDHeader, id)
		ctx := withScope(r.Context(), &Scope{RequestID: id})
		ctx = context.WithValue(ctx, chimw.RequestIDKey, id)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
