package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/api"
	"github.com/maskgate/maskgate/sessions"
)

// problemError is an error the handlers raise themselves, already classified.
type problemError struct {
	status int
	code   api.ProblemCode
	detail string
}

func (e *problemError) Error() string { return e.detail }

func invalidParameter(detail string) error {
	return &problemError{http.StatusBadRequest, api.ProblemCodeInvalidParameter, detail}
}

var errForceNeedsAdmin = &problemError{http.StatusForbidden, api.ProblemCodeInsufficientScope, "force=true needs scope " + ScopeAdmin}

// problems is the one table from the domain's errors to HTTP status and problem code;
// the first match wins. Anything not listed is a 500 "internal" whose cause is logged,
// never shown.
var problems = []struct {
	err    error
	status int
	code   api.ProblemCode
}{
	{sessions.ErrInvalidUserID, http.StatusBadRequest, api.ProblemCodeInvalidUserId},
	{sessions.ErrInvalidInput, http.StatusBadRequest, api.ProblemCodeInvalidBody},
	{sessions.ErrInvalidCursor, http.StatusBadRequest, api.ProblemCodeInvalidParameter},
	{sessions.ErrSessionMismatch, http.StatusConflict, api.ProblemCodeSessionMismatch},
	{sessions.ErrNotMasked, http.StatusNotFound, api.ProblemCodeNotMasked}, // 409 on POST, below
	{sessions.ErrStoreUnavailable, http.StatusServiceUnavailable, api.ProblemCodeStoreUnavailable},
	{sessions.ErrAgentBusy, http.StatusServiceUnavailable, api.ProblemCodeAgentBusy},
	{sessions.ErrRateLimited, http.StatusTooManyRequests, api.ProblemCodeRateLimited},
	{sessions.ErrNoActiveCall, http.StatusNotFound, api.ProblemCodeNoActiveCall},
	{sessions.ErrInternalCall, http.StatusUnprocessableEntity, api.ProblemCodeInternalCall},
	{sessions.ErrUpstreamRefused, http.StatusBadGateway, api.ProblemCodeUpstreamRefused},
	{sessions.ErrUpstreamUnavailable, http.StatusServiceUnavailable, api.ProblemCodeUpstreamUnavailable},
	{sessions.ErrUpstreamTimeout, http.StatusGatewayTimeout, api.ProblemCodeUpstreamTimeout},
}

// writeError answers r with the problem that err stands for.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	if api.CallerGone(w, r, err) {
		return
	}
	if pe, ok := errors.AsType[*problemError](err); ok {
		api.WriteProblem(w, r, pe.status, pe.code, pe.detail, 0)
		return
	}
	for _, p := range problems {
		if !errors.Is(err, p.err) {
			continue
		}
		status, detail := p.status, err.Error()
		if p.code == api.ProblemCodeNotMasked && r.Method == http.MethodPost {
			status = http.StatusConflict // unmask without an open session: nothing to unmask
		}
		if p.code == api.ProblemCodeStoreUnavailable || p.code == api.ProblemCodeRateLimited {
			detail = p.err.Error() // Redis's own words stay in the log
		}
		if status >= http.StatusInternalServerError {
			zerolog.Ctx(r.Context()).Warn().Err(err).Str("code", string(p.code)).Msg("request failed")
		}
		problem := api.NewProblem(r, status, p.code, detail)
		if notMasked, ok := errors.AsType[*sessions.NotMaskedError](err); ok {
			problem.Recording = recordingToAPI(notMasked.Recording) // CXone's view all the same
		}
		api.WriteBuiltProblem(w, r, problem, sessions.RetryAfter(err))
		return
	}
	zerolog.Ctx(r.Context()).Error().Err(err).Msg("unclassified error")
	api.WriteProblem(w, r, http.StatusInternalServerError, api.ProblemCodeInternal, "internal error", 0)
}

// requestError answers what the generated code could not bind: an empty userId (chi
// matches /v1/agents//mask), a malformed or repeated parameter, or a body that is not
// the JSON the spec describes, or too large.
func requestError(w http.ResponseWriter, r *http.Request, err error) {
	var tooLarge *http.MaxBytesError
	var param *api.InvalidParamFormatError
	var repeated *api.TooManyValuesForParamError
	var number *strconv.NumError
	switch {
	case errors.As(err, &tooLarge):
		api.WriteProblem(w, r, http.StatusRequestEntityTooLarge, api.ProblemCodeBodyTooLarge, "the request body must be at most 16 KiB", 0)
	case errors.As(err, &param) && param.ParamName == "userId":
		api.WriteProblem(w, r, http.StatusBadRequest, api.ProblemCodeInvalidUserId, sessions.ErrInvalidUserID.Error(), 0)
	case errors.As(err, &param) && len(r.URL.Query()[param.ParamName]) > 1:
		// The binding says so in words of its own, wrapped as a malformed parameter.
		api.WriteProblem(w, r, http.StatusBadRequest, api.ProblemCodeInvalidParameter, sentOnceDetail(param.ParamName), 0)
	case errors.As(err, &param) && errors.As(err, &number) && number.Func == "ParseBool":
		api.WriteProblem(w, r, http.StatusBadRequest, api.ProblemCodeInvalidParameter, booleanDetail(param.ParamName), 0)
	case errors.As(err, &param):
		api.WriteProblem(w, r, http.StatusBadRequest, api.ProblemCodeInvalidParameter, "parameter "+param.ParamName+" is malformed", 0)
	case errors.As(err, &repeated):
		api.WriteProblem(w, r, http.StatusBadRequest, api.ProblemCodeInvalidParameter, sentOnceDetail(repeated.ParamName), 0)
	default:
		api.WriteProblem(w, r, http.StatusBadRequest, api.ProblemCodeInvalidBody, bodyDetail(err), 0)
	}
}

// sentOnceDetail is the detail of a parameter sent more than once, in the query or
// as a header.
func sentOnceDetail(name string) string { return "parameter " + name + " must be sent once" }

// bodyDetail says what is wrong with a body in the caller's terms (JSON's types, the
// field's name), built from the decoder's structured error: its text may quote what
// the caller sent (a number that does not fit, bytes that are not UTF-8).
func bodyDetail(err error) string {
	var syntax *jsontext.SyntacticError
	var semantic *jsonv2.SemanticError
	switch {
	case errors.Is(err, jsontext.ErrDuplicateName) && errors.As(err, &syntax):
		return "field " + syntax.JSONPointer.LastToken() + " is sent more than once"
	case errors.As(err, &syntax):
		return "the request body is not valid JSON"
	case errors.Is(err, jsonv2.ErrUnknownName) && errors.As(err, &semantic):
		return "unknown field " + quoted(semantic.JSONPointer.LastToken())
	case errors.Is(err, api.ErrNullField) && errors.As(err, &semantic):
		return "field " + semantic.JSONPointer.LastToken() + " is null: give it a value, or leave it out"
	case errors.As(err, &semantic) && semantic.JSONPointer != "" && semantic.GoType != nil:
		return "field " + semantic.JSONPointer.LastToken() + " must be a JSON " + jsonKind(semantic.GoType.Kind().String())
	case errors.As(err, &semantic):
		return "the request body must be a JSON object"
	default:
		return strings.TrimPrefix(err.Error(), "can't decode JSON body: ")
	}
}

// jsonKind names a Go kind the way a JSON caller knows it.
func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"):
		return "integer" // 1.5, 1e2 and 100.0 are numbers, but not for an int
	case strings.HasPrefix(goKind, "float"):
		return "number"
	case goKind == "struct", goKind == "map":
		return "object"
	}
	return goKind
}

// maxEchoed bounds a name of the caller's that a problem repeats: a field name may
// take the 16 KiB of a body and a query parameter most of the 64 KiB of the headers,
// even unauthenticated (/readyz), and the access line carries the detail too
// (Docker's log driver splits a line over 16 KiB in pieces a collector may not join).
const maxEchoed = 64

// quoted is a caller's name, quoted, for a problem's detail; a longer one than
// maxEchoed is said by its length.
func quoted(name string) string {
	if len(name) > maxEchoed {
		return fmt.Sprintf("(a name of %d bytes)", len(name))
	}
	return strconv.Quote(name)
}
