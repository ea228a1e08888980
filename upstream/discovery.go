package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// endpoint returns the tenant's API endpoint: CXONE_API_BASE_URL when configured, else
// the api_endpoint of the discovery document of the token's tenant, fetched once.
func (c *Client) endpoint(ctx context.Context, tok *token) (string, error) {
	if base := c.base.Load(); base != nil {
		return *base, nil
	}
	v, err, _ := c.tokens.flight.Do("discovery", func() (any, error) {
		if base := c.base.Load(); base != nil { // found by a flight that ended meanwhile
			return *base, nil
		}
		base, err := c.discover(ctx, tok)
		if err == nil {
			c.base.Store(&base)
		}
		return base, err
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
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
	target := strings.TrimRight(issuer, "/") + "/.well-known/cxone-configuration?tenantId=" + url.QueryEscape(tok.tenantID)
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, target, nil)
	if err != nil {
		return fail(ErrRefused, 0, errors.New("bad issuer in id_token"))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fail(transportKind(err), 0, err)
	}
	defer drain(resp.Body)
	if resp.StatusCode != http.StatusOK {
		kind := ErrRefused
		if transient(resp.StatusCode, nil) {
			kind = ErrUnavailable
		}
		return fail(kind, resp.StatusCode, nil)
	}
	var doc struct {
		APIEndpoint string `json:"api_endpoint"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&doc); err != nil || doc.APIEndpoint == "" {
		return fail(ErrRefused, resp.StatusCode, errors.New("discovery document without api_endpoint"))
	}
	u, err := url.Parse(doc.APIEndpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fail(ErrRefused, resp.StatusCode, errors.New("discovery document with a bad api_endpoint"))
	}
	return strings.TrimRight(doc.APIEndpoint, "/"), nil
}
