package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5/middleware"
)

// ProblemContentType is the media type of every error answer (RFC 9457).
const ProblemContentType = "application/problem+json"

// StatusClientClosedRequest is what the access line and the request metric record for
// a request whose caller hung up before it was answered: nginx's 499, which log and
// dashboard tools know. It is not a failure of the gateway, and nobody reads it.
const StatusClientClosedRequest = 499

// titles is the one table of problem codes: each code's human title. The spec's
// Problem.code enum lists the same codes; a test keeps the two equal.
var titles = map[ProblemCode]string{
	ProblemCodeInvalidUserId:              "Invalid user id",
	ProblemCodeInvalidBody:                "Invalid request body",
	ProblemCodeInvalidParameter:           "Invalid parameter",
	ProblemCodeBodyTooLarge:               "Request body too large",
	ProblemCodeUnsupportedContentEncoding: "Content-Encoding not supported",
	ProblemCodeUnauthorized:               "Unauthorized",
	ProblemCodeInsufficientScope:          "Insufficient scope",
	ProblemCodeAgentForbidden:             "Agent not allowed for this token",
	ProblemCodeNotMasked:                  "Agent not masked",
	ProblemCodeNoActiveCall:               "No active call",
	ProblemCodeSessionMismatch:            "Session mismatch",
	ProblemCodeInternalCall:               "Internal call",
	ProblemCodeUpstreamRefused:            "CXone refused the request",
	ProblemCodeUpstreamUnavailable:        "CXone unavailable",
	ProblemCodeUpstreamTimeout:            "CXone timeout",
	ProblemCodeStoreUnavailable:           "Session store unavailable",
	ProblemCodeAgentBusy:                  "Agent busy",
	ProblemCodeRateLimited:                "Too many requests",
	ProblemCodeIdempotencyKeyReused:       "Idempotency-Key reused",
	ProblemCodeIdempotencyKeyInFlight:     "Idempotency-Key in flight",
	ProblemCodeNotFound:                   "Not found",
	ProblemCodeMethodNotAllowed:           "Method not allowed",
	ProblemCodeInternal:                   "Internal error",
}

// NewProblem builds the problem answer for code, carrying the request id that the
// request-id middleware put on r's context.
func NewProblem(r *http.Request, status int, code ProblemCode, detail string) Problem {
	return Problem{
		Type:      "urn:maskgate:problem:" + string(code),
		Title:     titles[code],
		Status:    status,
		Detail:    detail,
		Code:      code,
		RequestId: middleware.GetReqID(r.Context()),
	}
}

type problemNoteKey struct{}

// WithProblemNote returns a copy of ctx in which WriteProblem keeps, in n, the problem
// it answers a request of that context with: for the request's access line, so that
// the log says why a request was refused (its code and detail), not only its status.
func WithProblemNote(ctx context.Context, n *Problem) context.Context {
	return context.WithValue(ctx, problemNoteKey{}, n)
}

// WriteProblem answers r with a problem+json body. A 429 or 503 gets a Retry-After
// header of retryAfter, rounded up to whole seconds and at least one.
func WriteProblem(w http.ResponseWriter, r *http.Request, status int, code ProblemCode, detail string, retryAfter time.Duration) {
	WriteBuiltProblem(w, r, NewProblem(r, status, code, detail), retryAfter)
}

// WriteBuiltProblem is WriteProblem for a problem NewProblem built and its caller
// added to (the recording of a not_masked answer to ?verify=true).
func WriteBuiltProblem(w http.ResponseWriter, r *http.Request, p Problem, retryAfter time.Duration) {
	if n, ok := r.Context().Value(problemNoteKey{}).(*Problem); ok {
		*n = p
	}
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("Cache-Control", "no-store")
	if p.Status == http.StatusTooManyRequests || p.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", strconv.Itoa(max(1, int((retryAfter+time.Second-1)/time.Second))))
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// CallerGone records r as StatusClientClosedRequest when err comes of r's caller
// having hung up, and says whether it did. The caller's going cancels the request's
// context, and the wait or Redis command under way ends with that error. (A body
// that stops mid-way fails its read with an EOF instead: that is a 400.)
func CallerGone(w http.ResponseWriter, r *http.Request, err error) bool {
	if r.Context().Err() == nil || !errors.Is(err, context.Canceled) {
		return false
	}
	w.WriteHeader(StatusClientClosedRequest)
	return true
}
