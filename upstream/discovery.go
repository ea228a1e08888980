package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"
)

// endpoint returns the tenant's API endpoint: CXONE_API_BASE_URL when configured, else
// the api_endpoint of the discovery document of the token's tenant, fetched once. The
// fetch runs detached from the caller that starts it, as the token's renewal does, and
// CXONE_TIMEOUT alone bounds it: a caller that stops waiting (a readiness probe with
// a short timeout) must not end it for the others, nor cut it short for all. A failed
// fetch holds the next back as a failed token request does (hold).
func (c *Client) endpoint(ctx context.Context, tok *token) (string, error) {
	if base := c.base.Load(); base != nil {
		return *base, nil
	}
	if err := c.unfound.held(c.cfg.Now()); err != nil {
		c.metrics.heldBack(heldDiscovery)
		return "", err
	}
	detached := context.WithoutCancel(ctx)
	ch := c.tokens.flight.DoChan("discovery", func() (any, error) {
		if base := c.base.Load(); base != nil { // found by a flight that ended meanwhile
			return *base, nil
		}
		base, err := c.discover(detached, tok)
		c.unfound.record(err, c.cfg.Now())
		if err == nil {
			c.base.Store(&base)
		}
		return base, err
	})
	return await[string](ctx, "discovery", ch)
}

// discover reads {issuer}/.well-known/cxone-configuration?tenantId={tenantId}. The
// issuer is the id_token's iss claim, or the origin of the token endpoint.
func (c *Client) discover(ctx context.Context, tok *token) (string, error) {
	fail := func(kind error, status int, err error) (string, error) {
		return "", &Error{Op: "discovery", Status: status, Kind: kind, Err: err}
	}
	if tok.tenantID == "" {
		return fail(ErrRefused, 0, errors.New("the id_token names no tenantId; set CXONE_API_BASE_URL"))
	}
	issuer := tok.issuer
	if issuer == "" {
		u, err := url.Parse(c.cfg.AuthURL)
		if err != nil {
			return fail(ErrRefused, 0, errors.New("bad CXONE_AUTH_URL"))
		}
		issuer = u.Scheme + "://" + u.Host
	}
	if !IsHTTPURL(issuer) {
		return fail(ErrRefused, 0, errors.New("bad issuer in id_token"))
	}
	if leavesTLS(c.cfg.AuthURL, issuer) {
		return fail(ErrRefused, 0, errors.New("the id_token's issuer is plain http, the token endpoint https"))
	}
	target := strings.TrimRight(issuer, "/") + "/.well-known/cxone-configuration?tenantId=" + url.QueryEscape(tok.tenantID)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(target)
	req.Header.Set("Accept", "application/json")
	if err := exchange(ctx, c.hc, c.cfg.Timeout, req, resp); err != nil {
		return fail(exchangeKind(err), 0, err)
	}
	status := resp.StatusCode()
	if status != http.StatusOK {
		kind := ErrRefused
		if transient(status, nil) {
			kind = ErrUnavailable
		}
		return fail(kind, status, nil)
	}
	var doc struct {
		APIEndpoint string `json:"api_endpoint"`
	}
	if err := json.Unmarshal(resp.Body(), &doc); err != nil || doc.APIEndpoint == "" {
		return fail(ErrRefused, status, errors.New("discovery document without api_endpoint"))
	}
	if !IsHTTPURL(doc.APIEndpoint) {
		return fail(ErrRefused, status, errors.New("discovery document with a bad api_endpoint"))
	}
	if leavesTLS(c.cfg.AuthURL, doc.APIEndpoint) {
		return fail(ErrRefused, status, errors.New("discovery document with a plain http api_endpoint, the token endpoint https"))
	}
	return strings.TrimRight(doc.APIEndpoint, "/"), nil
}

// leavesTLS reports whether a discovered URL is plain http while the token endpoint,
// whose answers named it, is https: CXone's tokens would then cross the network in the
// clear on the word of an id_token or a document (the configuration already refuses a
// plain http token endpoint other than a loopback one, unless told otherwise).
func leavesTLS(authURL, discovered string) bool {
	from, err := url.Parse(authURL)
	if err != nil {
		return false
	}
	to, err := url.Parse(discovered)
	return err == nil && from.Scheme == "https" && to.Scheme == "http"
}
