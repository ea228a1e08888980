package middleware

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/golang-jwt/jwt/v5"

	"github.com/maskgate/maskgate/api"
	"github.com/maskgate/maskgate/sessions"
)

// Authorize enforces the security of each operation of the spec: it reads the scopes
// the generated router put on the context (api.BearerAuthScopes, from the operation's
// `security` entry), and for such operations requires one Authorization header (400
// invalid_parameter, RFC 6750's invalid_request) holding a valid bearer token (401),
// every scope listed (403 insufficient_scope), and, for a token bound to one agent by its
// agent_id claim, that the path's {userId} is that agent (403 agent_forbidden; so such
// a token cannot list, a route without an agent).
// Operations without security pass untouched. It runs after routing, per operation.
func Authorize(a *Authenticator) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			required, secured := r.Context().Value(api.BearerAuthScopes).([]string)
			if !secured {
				next.ServeHTTP(w, r)
				return
			}
			if len(r.Header.Values("Authorization")) > 1 {
				// Which one counts is where a proxy in front and the gateway could
				// disagree: neither.
				w.Header().Set("WWW-Authenticate", `Bearer realm="maskgate", error="invalid_request"`)
				api.WriteProblem(w, r, http.StatusBadRequest, api.ProblemCodeInvalidParameter, "the Authorization header must be sent once", 0)
				return
			}
			raw, ok := bearer(r)
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="maskgate"`)
				api.WriteProblem(w, r, http.StatusUnauthorized, api.ProblemCodeUnauthorized, "a bearer token is required", 0)
				return
			}
			caller, err := a.Authenticate(raw)
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="maskgate", error="invalid_token"`)
				api.WriteProblem(w, r, http.StatusUnauthorized, api.ProblemCodeUnauthorized, "invalid bearer token: "+reason(err), 0)
				return
			}
			ScopeFrom(r.Context()).Caller = &caller
			for _, s := range required {
				if !caller.HasScope(s) {
					w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="maskgate", error="insufficient_scope", scope=%q`, strings.Join(required, " ")))
					api.WriteProblem(w, r, http.StatusForbidden, api.ProblemCodeInsufficientScope, "the token lacks scope "+s, 0)
					return
				}
			}
			if caller.AgentID != "" && pathUserID(r) != caller.AgentID {
				api.WriteProblem(w, r, http.StatusForbidden, api.ProblemCodeAgentForbidden, "the token may act only on its own agent, and not list sessions", 0)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// pathUserID is the request's {userId}, unescaped as the generated handler binds it
// (chi gives it as sent: "user%40tenant" for user@tenant) and spelt as the gateway
// keeps it (sessions.CanonicalUserID); "" when it has none or cannot be unescaped,
// which no agent is.
func pathUserID(r *http.Request) string {
	id, err := url.PathUnescape(chi.URLParam(r, "userId"))
	if err != nil {
		return ""
	}
	return sessions.CanonicalUserID(id)
}

// bearer extracts the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// reason names why a token was refused without echoing any part of it.
func reason(err error) string {
	for _, known := range []error{
		errCriticalExtension, errUnusableKey, // before ErrTokenUnverifiable, which wraps them
		jwt.ErrTokenMalformed, jwt.ErrTokenUnverifiable, jwt.ErrTokenSignatureInvalid,
		jwt.ErrTokenRequiredClaimMissing, jwt.ErrTokenInvalidAudience, jwt.ErrTokenExpired,
		jwt.ErrTokenUsedBeforeIssued, jwt.ErrTokenInvalidIssuer, jwt.ErrTokenNotValidYet,
	} {
		if errors.Is(err, known) {
			return known.Error()
		}
	}
	return "token is invalid"
}
