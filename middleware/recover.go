package middleware

import (
	"net/http"
	"runtime/debug"

	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/api"
)

// Recover turns a panic in a handler into a 500 problem answer and an error log line
// with the stack, instead of a dropped connection.
func Recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			zerolog.Ctx(r.Context()).Error().Interface("panic", p).Bytes("stack", debug.Stack()).Msg("handler panicked")
			api.WriteProblem(w, r, http.StatusInternalServerError, api.ProblemCodeInternal, "internal error", 0)
		}()
		next.ServeHTTP(w, r)
	})
}
