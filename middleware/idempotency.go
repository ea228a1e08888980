package middleware

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/api"
	"github.com/maskgate/maskgate/sessions"
)

// IdempotencyStore keeps Idempotency-Key records; *sessions.Store is one.
type IdempotencyStore interface {
	ReserveIdempotency(ctx context.Context, caller, key, fp string, ttl time.Duration) (*sessions.Replay, error)
	CompleteIdempotency(ctx context.Context, caller, key string, r sessions.Replay, ttl time.Duration) error
	ReleaseIdempotency(ctx context.Context, caller, key string) error
}

const (
	// IdempotencyRetention is how long an answer is replayed (design §2).
	IdempotencyRetention = 24 * time.Hour
	// idempotencyMargin is what a key stays reserved beyond the longest a request may
	// run, for the Redis round trips around it.
	idempotencyMargin = 10 * time.Second
	maxIdempotencyKey = 255
)

// Idempotency makes a POST with an Idempotency-Key header safe to retry (design §2):
// the first request's answer is kept for 24 h and replayed, with Idempotent-Replayed:
// true, to a repeat with the same key from the same caller, without running it again;
// the same key with another request (method, path, query or body) is 422
// idempotency_key_reused, and a repeat while the first runs is 409
// idempotency_key_in_flight. Answers with a 5xx status, 400, 403, 429 or 499 (the
// caller hung up) are not kept: a retry runs again. It runs after Authorize: keys are scoped
// to the caller.
//
// longest is the longest a request may run: a key stays reserved that long (and a
// margin) for a request that never answers because its replica died. Any shorter, and
// a retry of a request still running would run it a second time.
func Idempotency(store IdempotencyStore, longest time.Duration) func(http.Handler) http.Handler {
	inFlight := longest + idempotencyMargin
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, sent := r.Header["Idempotency-Key"]
			if r.Method != http.MethodPost || !sent {
				next.ServeHTTP(w, r)
				return
			}
			// An empty key is refused, not taken for none: its caller believes its
			// retry safe (a template whose variable came out empty, say).
			key := r.Header.Get("Idempotency-Key")
			if key == "" || len(key) > maxIdempotencyKey || !sessions.PrintableASCII(key) {
				api.WriteProblem(w, r, http.StatusBadRequest, api.ProblemCodeInvalidParameter, "Idempotency-Key must be 1-255 printable ASCII characters", 0)
				return
			}
			body, err := io.ReadAll(r.Body)
			var tooLarge *http.MaxBytesError
			switch {
			case err == nil:
			case errors.As(err, &tooLarge):
				api.WriteProblem(w, r, http.StatusRequestEntityTooLarge, api.ProblemCodeBodyTooLarge, "the request body must be at most 16 KiB", 0)
				return
			default:
				api.WriteProblem(w, r, http.StatusBadRequest, api.ProblemCodeInvalidBody, "the request body could not be read", 0)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			caller, _ := CallerFrom(r.Context())
			who := caller.Subject + "\x00" + caller.ClientID
			sum := sha256.Sum256(append([]byte(r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+"\x00"), body...))
			fp := hex.EncodeToString(sum[:])

			prior, err := store.ReserveIdempotency(r.Context(), who, key, fp, inFlight)
			switch {
			case err != nil && api.CallerGone(w, r, err):
				return
			case err != nil:
				api.WriteProblem(w, r, http.StatusServiceUnavailable, api.ProblemCodeStoreUnavailable, "session store unavailable", 0)
				return
			case prior != nil && prior.Fingerprint != fp:
				api.WriteProblem(w, r, http.StatusUnprocessableEntity, api.ProblemCodeIdempotencyKeyReused, "this Idempotency-Key was used with another request", 0)
				return
			case prior != nil && !prior.Done:
				api.WriteProblem(w, r, http.StatusConflict, api.ProblemCodeIdempotencyKeyInFlight, "the first request with this Idempotency-Key is still running", 0)
				return
			case prior != nil:
				zerolog.Ctx(r.Context()).Info().Bool("idempotent_replay", true).Msg("answer replayed for a repeated Idempotency-Key")
				var p api.Problem
				if prior.ContentType == api.ProblemContentType && json.Unmarshal(prior.Body, &p) == nil {
					ScopeFrom(r.Context()).Problem = p // its access line says why too
				}
				w.Header().Set("Content-Type", prior.ContentType)
				w.Header().Set("Idempotent-Replayed", "true")
				w.WriteHeader(prior.Status)
				_, _ = w.Write(prior.Body)
				return
			}

			var answer bytes.Buffer
			ww := chimw.NewWrapResponseWriter(w, r.ProtoMajor)
			ww.Tee(&answer)
			ctx := context.WithoutCancel(r.Context())
			answered := false
			defer func() {
				// A panic passing through (Recover answers 500 further out): the key
				// is freed as after a 500. Not recovered here, so that Recover logs
				// the stack where it happened.
				if !answered {
					_ = store.ReleaseIdempotency(ctx, who, key)
				}
			}()
			next.ServeHTTP(ww, r)
			answered = true

			if notKept(ww.Status()) {
				err = store.ReleaseIdempotency(ctx, who, key)
			} else {
				err = store.CompleteIdempotency(ctx, who, key, sessions.Replay{Fingerprint: fp, Status: ww.Status(),
					ContentType: ww.Header().Get("Content-Type"), Body: answer.Bytes()}, IdempotencyRetention)
			}
			if err != nil {
				zerolog.Ctx(r.Context()).Error().Err(err).Msg("could not keep the answer of an Idempotency-Key")
			}
		})
	}
}

// notKept is an answer not kept for a key, so that the key's next request runs: the
// request did not run or failed for a while (429 over the rate limit, a 5xx), its
// caller hung up before it began (499), or it was refused before anything ran, for
// its input (400) or for what its token may do (403: force=true without the admin
// scope; the other 403s come before the key is taken). A refused request changes
// nothing, its key included: the same request again is refused again the same way,
// and a corrected one (or one with a token that may) runs rather than being 422
// idempotency_key_reused or the 403 replayed, as after a 413, refused before the key
// is taken.
func notKept(status int) bool {
	return status == http.StatusBadRequest || status == http.StatusForbidden || status == http.StatusTooManyRequests ||
		status == api.StatusClientClosedRequest || status >= http.StatusInternalServerError
}
