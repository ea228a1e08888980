// Package middleware holds maskgate's HTTP middleware: request id, access log, panic
// recovery, body limit and JWT authorization. Each is a func(http.Handler) http.Handler
// in its own file; handlers.NewServer assembles them in one place.
package middleware

import (
	"context"
	"slices"
	"strings"

	"github.com/maskgate/maskgate/api"
)

// Caller is the authenticated caller of a request, from its JWT.
type Caller struct {
	Subject  string // sub
	ClientID string // azp or client_id, when present
	// AgentID is agent_id, spelt as sessions.CanonicalUserID spells a userId: the token
	// may act only on this agent. Empty for service tokens.
	AgentID string
	Scopes  []string // from scope (space separated) or scp
}

// Identity is how the caller is named in sessions and audit lines: the subject, and
// the client it came through when that differs.
func (c Caller) Identity() string {
	if c.ClientID == "" || c.ClientID == c.Subject {
		return c.Subject
	}
	return c.Subject + " (" + c.ClientID + ")"
}

// RateKey names the caller for its rate limit: the subject and the client.
func (c Caller) RateKey() string { return c.Subject + "\x00" + c.ClientID }

// HasScope reports whether the caller holds scope.
func (c Caller) HasScope(scope string) bool {
	return slices.Contains(c.Scopes, scope)
}

// Scope is the one typed request-scope value: what the middleware learns about a
// request while it flows inwards, read again by the access log on the way out.
type Scope struct {
	RequestID string
	Caller    *Caller     // nil until authorized
	Problem   api.Problem // the problem the request was answered with, if any (Code set)
}

type scopeKey struct{}

// ScopeFrom returns the request's Scope (a fresh one when there is none).
func ScopeFrom(ctx context.Context) *Scope {
	if s, ok := ctx.Value(scopeKey{}).(*Scope); ok {
		return s
	}
	return &Scope{}
}

// CallerFrom returns the request's authenticated caller, if any.
func CallerFrom(ctx context.Context) (Caller, bool) {
	s := ScopeFrom(ctx)
	if s.Caller == nil {
		return Caller{}, false
	}
	return *s.Caller, true
}

func withScope(ctx context.Context, s *Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, s)
}

// scopesOf reads a scope claim: a space-separated string (RFC 8693's scope) or a list of
// strings (as some identity providers write scp); anything else grants nothing.
func scopesOf(claim any) []string {
	switch claim := claim.(type) {
	case string:
		return strings.Fields(claim)
	case []any:
		var out []string
		for _, s := range claim {
			if s, ok := s.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
