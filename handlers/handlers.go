// Package handlers implements maskgate's HTTP API: the generated strict-server
// interface of openapi.yaml, on top of sessions.Service, and the server that wires the
// middleware and routes together.
package handlers

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/maskgate/maskgate/api"
	"github.com/maskgate/maskgate/middleware"
	"github.com/maskgate/maskgate/sessions"
)

// Check is one readiness check of /readyz.
type Check struct {
	Name string
	Fn   func(context.Context) error
}

// Handlers implements the API over a sessions.Service.
type Handlers struct {
	svc    *sessions.Service
	checks []Check
	limit  int // requests per second per caller
}

var _ api.StrictServerInterface = (*Handlers)(nil)

// ScopeAdmin lets a caller force an unmask without an open session.
const ScopeAdmin = "recordings:admin"

// ReadyTimeout bounds /readyz's checks together. A probe must wait longer, or it times
// out before the answer that names the failing check.
const ReadyTimeout = 3 * time.Second

// The list's page size (design §2).
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// MaskAgent masks an agent: 200 when CXone masked, 202 while it processes.
func (h *Handlers) MaskAgent(ctx context.Context, req api.MaskAgentRequestObject) (api.MaskAgentResponseObject, error) {
	in := sessions.MaskInput{UserID: req.UserId, Caller: callerIdentity(ctx), Rate: h.rate(ctx)}
	if b := req.Body; b != nil {
		in.TTLSeconds = b.TtlSeconds
		if b.Reason != nil {
			in.Reason = *b.Reason
		}
	}
	sess, err := h.svc.Mask(ctx, in)
	if err != nil {
		return nil, err
	}
	if sess.Pending() {
		return api.MaskAgent202JSONResponse(toAPI(sess)), nil
	}
	return api.MaskAgent200JSONResponse(toAPI(sess)), nil
}

// UnmaskAgent unmasks an agent: 200 when closed, 202 while the unmask is pending.
func (h *Handlers) UnmaskAgent(ctx context.Context, req api.UnmaskAgentRequestObject) (api.UnmaskAgentResponseObject, error) {
	in := sessions.UnmaskInput{UserID: req.UserId, Caller: callerIdentity(ctx), Rate: h.rate(ctx)}
	if req.Body != nil {
		in.SessionID = req.Body.SessionId
	}
	if req.Params.Force != nil && *req.Params.Force {
		if c, _ := middleware.CallerFrom(ctx); !c.HasScope(ScopeAdmin) {
			return nil, errForceNeedsAdmin
		}
		in.Force = true
	}
	sess, err := h.svc.Unmask(ctx, in)
	if err != nil {
		return nil, err
	}
	if sess.Pending() {
		return api.UnmaskAgent202JSONResponse(toAPI(sess)), nil
	}
	return api.UnmaskAgent200JSONResponse(toAPI(sess)), nil
}

// GetAgentMask returns the agent's open session, with CXone's view when verify=true.
func (h *Handlers) GetAgentMask(ctx context.Context, req api.GetAgentMaskRequestObject) (api.GetAgentMaskResponseObject, error) {
	if req.Params.Verify == nil || !*req.Params.Verify {
		sess, err := h.svc.Get(ctx, req.UserId)
		if err != nil {
			return nil, err
		}
		return api.GetAgentMask200JSONResponse(toAPI(sess)), nil
	}
	sess, rec, err := h.svc.Verify(ctx, req.UserId)
	if err != nil {
		return nil, err
	}
	out := toAPI(sess)
	out.Recording = recordingToAPI(rec)
	return api.GetAgentMask200JSONResponse(out), nil
}

// ListMasks returns one page of open sessions. (An agent-bound token never gets here:
// middleware.Authorize refuses it on a route without its agent.)
func (h *Handlers) ListMasks(ctx context.Context, req api.ListMasksRequestObject) (api.ListMasksResponseObject, error) {
	limit := defaultLimit
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
		if limit < 1 || limit > maxLimit {
			return nil, invalidParameter("limit must be between 1 and 1000")
		}
	}
	cursor := ""
	if req.Params.Cursor != nil {
		cursor = *req.Params.Cursor
	}
	page, err := h.svc.List(ctx, cursor, limit)
	if err != nil {
		return nil, err
	}
	out := api.SessionPage{Items: make([]api.Session, len(page.Sessions))}
	for i, s := range page.Sessions {
		out.Items[i] = toAPI(s)
	}
	if page.Next != "" {
		out.NextCursor = &page.Next
	}
	return api.ListMasks200JSONResponse(out), nil
}

// GetHealthz answers that the process is alive.
func (h *Handlers) GetHealthz(context.Context, api.GetHealthzRequestObject) (api.GetHealthzResponseObject, error) {
	return api.GetHealthz200JSONResponse{Status: api.HealthStatusOk}, nil
}

// GetReadyz runs every readiness check but those the request excludes, and names the
// ones that fail.
func (h *Handlers) GetReadyz(ctx context.Context, req api.GetReadyzRequestObject) (api.GetReadyzResponseObject, error) {
	excluded := map[string]bool{}
	if req.Params.Exclude != nil {
		for _, name := range *req.Params.Exclude {
			if !slices.ContainsFunc(h.checks, func(c Check) bool { return c.Name == string(name) }) {
				// A probe that names a check wrongly fails where it is set up.
				return nil, invalidParameter("exclude " + quoted(string(name)) + " is no check of this gateway; its checks: " + h.checkNames())
			}
			excluded[string(name)] = true
		}
	}
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	checks := make(map[string]string, len(h.checks))
	ready := true
	for _, c := range h.checks {
		if excluded[c.Name] {
			checks[c.Name] = "excluded"
			continue
		}
		if err := c.Fn(ctx); err != nil {
			checks[c.Name], ready = err.Error(), false
			continue
		}
		checks[c.Name] = "ok"
	}
	if !ready {
		return api.GetReadyz503JSONResponse{Status: api.HealthStatusUnavailable, Checks: &checks}, nil
	}
	return api.GetReadyz200JSONResponse{Status: api.HealthStatusOk, Checks: &checks}, nil
}

// checkNames lists the readiness checks, as an exclude names them.
func (h *Handlers) checkNames() string {
	names := make([]string, len(h.checks))
	for i, c := range h.checks {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// rate is the caller's rate limit, which masks and unmasks count in their first Redis
// script (middleware.RateLimit leaves them to it).
func (h *Handlers) rate(ctx context.Context) sessions.Rate {
	c, _ := middleware.CallerFrom(ctx)
	return sessions.Rate{Caller: c.RateKey(), PerSecond: h.limit}
}

func callerIdentity(ctx context.Context) string {
	c, _ := middleware.CallerFrom(ctx)
	return c.Identity()
}
