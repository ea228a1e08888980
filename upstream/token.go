package upstream

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"
	"golang.org/x/sync/singleflight"
)

// Credentials are the registered application and the access key that maskgate uses
// towards CXone. They never appear in a log line, an error or a metric.
type Credentials struct {
	ClientID        string
	ClientSecret    string
	AccessKeyID     string
	AccessKeySecret string
}

// token is an access token and what came with it.
type token struct {
	access    string
	refresh   string
	refreshAt time.Time // renew in the background from here on
	expiry    time.Time // unusable from here on
	tenantID  string    // from the id_token, for API discovery
	issuer    string    // from the id_token, for API discovery
}

// tokenSource obtains CXone access tokens with the access key (password grant), caches
// the current one for all requests, and renews it before it expires. However many
// requests need a token at once, at most one token request is in flight, and after a
// failure the next waits (hold).
type tokenSource struct {
	authURL string
	creds   Credentials
	hc      *fasthttp.Client
	timeout time.Duration
	now     func() time.Time
	metrics *metrics

	current  atomic.Pointer[token] // read by every request: no lock
	flight   singleflight.Group
	failed   hold         // of the renewals
	forcedAt atomic.Int64 // when Invalidate last dropped a token (Unix ns), 0 never
}

// refreshMargin is how long before expiry a token is renewed: two minutes, as NICE's
// own SDK does, or a tenth of the lifetime for short-lived tokens.
func refreshMargin(lifetime time.Duration) time.Duration {
	return min(2*time.Minute, lifetime/10)
}

// Token returns a usable access token. A token near its expiry is still returned while
// a renewal runs in the background; an expired or missing one is waited for. While a
// failed renewal holds the next back, none is started, and without a usable token the
// failure is the answer.
func (ts *tokenSource) Token(ctx context.Context) (*token, error) {
	cur := ts.current.Load()
	now := ts.now()
	if cur != nil && now.Before(cur.expiry) {
		if !now.Before(cur.refreshAt) && ts.failed.held(now) == nil {
			ts.flight.DoChan("token", ts.renew) // background renewal; its result lands in ts.current
		}
		return cur, nil
	}
	if err := ts.failed.held(now); err != nil {
		ts.metrics.heldBack(heldToken)
		return nil, err
	}
	return await[*token](ctx, "token", ts.flight.DoChan("token", ts.renew))
}

// await is the result of a flight (a token request, the discovery) that runs detached
// from its callers, or a timeout when ctx ends first: the flight goes on for the others.
func await[T any](ctx context.Context, op string, flight <-chan singleflight.Result) (T, error) {
	var zero T
	select {
	case res := <-flight:
		if res.Err != nil {
			return zero, res.Err
		}
		return res.Val.(T), nil
	case <-ctx.Done():
		return zero, &Error{Op: op, Kind: ErrTimeout, Err: ctx.Err()}
	}
}

// forcedRefreshGap is how long after a forced refresh (Invalidate) the next may come.
// A key that lacks a permission gets 401/403 with every token: without the gap every
// refused request would cost a token request at CXone's token endpoint. A second is
// enough to bound them, and short enough that a token revoked just after a forced
// refresh fails requests for a second at most.
const forcedRefreshGap = time.Second

// Invalidate drops access if it is still the current token, so that the next Token
// fetches a new one: CXone's 401 or 403 on a token the gateway believed valid calls for
// it. It reports whether trying again may help: access is no longer the current token
// (another caller dropped or replaced it), or it is dropped. Within forcedRefreshGap of
// the last refresh it forced, it keeps the current token and reports false: the answer
// stands.
func (ts *tokenSource) Invalidate(access string) bool {
	cur := ts.current.Load()
	if cur == nil || cur.access != access {
		return true
	}
	now, last := ts.now().UnixNano(), ts.forcedAt.Load()
	if last != 0 && now-last < int64(forcedRefreshGap) {
		return false
	}
	if ts.forcedAt.CompareAndSwap(last, now) { // else another caller is dropping it
		ts.current.CompareAndSwap(cur, nil) // a token renewed meanwhile stays
	}
	return true
}

// renew runs once however many callers wait: it refreshes with the refresh token when
// there is one and falls back to the access key when the refresh is refused (not when
// the token endpoint failed: it would fail the access key too). It runs detached from
// any one caller's context, so that a caller that gives up does not fail the others.
func (ts *tokenSource) renew() (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ts.timeout)
	defer cancel()
	cur := ts.current.Load()
	if cur != nil && ts.now().Before(cur.refreshAt) {
		// A caller decides to ask before it joins the flight: the flight it saw may
		// have ended meanwhile with a fresh token, which serves it too.
		return cur, nil
	}
	var (
		tok *token
		err error
	)
	if cur != nil && cur.refresh != "" {
		tok, err = ts.request(ctx, "refresh_token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {cur.refresh}})
		if tok != nil {
			tok.keep(cur)
		}
	}
	if tok == nil && !mayPass(err) {
		tok, err = ts.request(ctx, "password", url.Values{
			"grant_type": {"password"},
			"username":   {ts.creds.AccessKeyID},
			"password":   {ts.creds.AccessKeySecret},
		})
	}
	ts.failed.record(err, ts.now())
	if err != nil {
		return nil, err
	}
	ts.current.Store(tok)
	return tok, nil
}

// keep takes from the token it refreshes what a refresh answer may leave out: a new
// refresh token (RFC 6749 §6) and the id_token (OpenID Connect), whose tenant and
// issuer the API's discovery needs.
func (t *token) keep(prev *token) {
	if t.refresh == "" {
		t.refresh = prev.refresh
	}
	if t.tenantID == "" {
		t.tenantID, t.issuer = prev.tenantID, prev.issuer
	}
}

// tokenAnswer is the JSON of CXone's token endpoint, successful or an OAuth error.
type tokenAnswer struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	IDToken          string `json:"id_token"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func (ts *tokenSource) request(ctx context.Context, grant string, form url.Values) (*token, error) {
	if !IsHTTPURL(ts.authURL) {
		return nil, &Error{Op: "token", Kind: ErrRefused, Err: errors.New("bad CXONE_AUTH_URL")}
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(http.MethodPost)
	req.SetRequestURI(ts.authURL)
	req.Header.SetContentType("application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: client id and secret are form-encoded before Basic auth.
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString(
		[]byte(url.QueryEscape(ts.creds.ClientID)+":"+url.QueryEscape(ts.creds.ClientSecret))))
	req.SetBodyString(form.Encode())
	started := ts.now()
	if err := exchange(ctx, ts.hc, ts.timeout, req, resp); err != nil {
		ts.metrics.tokenRequest(grant, "error")
		return nil, &Error{Op: "token", Kind: exchangeKind(err), Err: err}
	}
	status := resp.StatusCode()
	var ans tokenAnswer
	decodeErr := json.Unmarshal(resp.Body(), &ans)
	ts.metrics.tokenRequest(grant, strconv.Itoa(status))
	switch {
	case status == http.StatusOK && decodeErr == nil && ans.AccessToken != "" && ans.ExpiresIn > 0:
	case status == http.StatusBadRequest || status == http.StatusUnauthorized:
		return nil, &Error{Op: "token", Status: status, Kind: ErrRefused, Err: oauthError(ans)}
	case status >= 500 || status == http.StatusTooManyRequests:
		return nil, &Error{Op: "token", Status: status, Kind: ErrUnavailable,
			RetryAfter: parseRetryAfter(string(resp.Header.Peek("Retry-After")), ts.now())}
	case status == http.StatusOK:
		return nil, &Error{Op: "token", Status: status, Kind: ErrRefused, Err: unusableToken(ans, decodeErr)}
	default:
		return nil, &Error{Op: "token", Status: status, Kind: ErrRefused, Err: errors.New("unexpected token answer")}
	}
	lifetime := time.Duration(ans.ExpiresIn) * time.Second
	tok := &token{
		access:    ans.AccessToken,
		refresh:   ans.RefreshToken,
		expiry:    started.Add(lifetime),
		refreshAt: started.Add(lifetime - refreshMargin(lifetime)),
	}
	tok.tenantID, tok.issuer = idTokenTenant(ans.IDToken)
	return tok, nil
}

// unusableToken says what a 200 from the token endpoint lacks, in RFC 6749's names of
// its fields, so that whoever reads check-config or /readyz can tell a token endpoint
// of another shape (an expires_in sent as a string, say) from a wrong URL. It never
// says what the decoder says: its words may quote a value, a token's among them.
func unusableToken(ans tokenAnswer, decodeErr error) error {
	switch {
	case decodeErr != nil:
		return errors.New("the token answer is not JSON with a string access_token and a number expires_in")
	case ans.AccessToken == "":
		return errors.New("the token answer has no access_token")
	default:
		return errors.New("the token answer has no expires_in of a positive number of seconds")
	}
}

// oauthError keeps CXone's OAuth error code and description (never a credential).
func oauthError(ans tokenAnswer) error {
	if ans.Error == "" {
		return errors.New("token endpoint refused the credentials")
	}
	if ans.ErrorDescription == "" {
		return errors.New(ans.Error)
	}
	return fmt.Errorf("%s: %s", ans.Error, ans.ErrorDescription)
}

// idTokenTenant reads the tenantId and iss claims of CXone's id_token. The token comes
// straight from the token endpoint over the connection the gateway opened, so its
// signature is not checked here: it only says where to discover the API.
func idTokenTenant(idToken string) (tenantID, issuer string) {
	if idToken == "" {
		return "", ""
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(idToken, claims); err != nil {
		return "", ""
	}
	tenantID, _ = claims["tenantId"].(string)
	issuer, _ = claims["iss"].(string)
	return tenantID, issuer
}
