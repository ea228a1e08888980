package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// The paths of CXone's Multi-ACD recording API, under the tenant's API endpoint.
const (
	maskPath   = "/interaction-recording-management-service/v1/interactions/mask"
	unmaskPath = "/interaction-recording-management-service/v1/interactions/unmask"
	statusPath = "/interaction-recording-management-service/v1/interactions/get-recording-status"
)

// Config configures a Client.
type Config struct {
	AuthURL     string        // CXone's token endpoint
	BaseURL     string        // the API endpoint; empty: discovered from the token's tenant
	Credentials Credentials   // the application and the access key
	Timeout     time.Duration // per attempt (default 5s)
	MaxAttempts int           // attempts per operation on transient failures (default 4)
	BaseBackoff time.Duration // first backoff (default 100ms), doubled per attempt
	MaxBackoff  time.Duration // cap of one backoff (default 2s)
	MaxInFlight int           // CXone requests in flight at most, all operations together (default 64)
	IdleTimeout time.Duration // how long a connection may stay unused in the pool (default 55s)
	Registerer  prometheus.Registerer
	Now         func() time.Time // default time.Now
}

// Result is CXone's successful answer to a mask or unmask.
type Result struct {
	Status   int           // 200 done, 202 accepted and still processing
	Duration time.Duration // from the first attempt to the answer
	Attempts int
}

// Accepted reports whether CXone is still processing (202).
func (r Result) Accepted() bool { return r.Status == http.StatusAccepted }

// RecordingStatus is CXone's recording status of the agent's latest active call.
type RecordingStatus struct {
	ContactID                string `json:"contactId"`
	SegmentID                string `json:"segmentId"`
	InteractionID            string `json:"interactionId"`
	StatusReason             string `json:"statusReason"`
	RecordingStatusToAgent   string `json:"recordingStatusToAgent"`
	RecordingStatusFromAgent string `json:"recordingStatusFromAgent"`
}

// Client calls CXone's Multi-ACD mask, unmask and recording status endpoints. It is
// safe for concurrent use; all requests share one token and one connection pool.
type Client struct {
	cfg      Config
	hc       *fasthttp.Client
	tokens   *tokenSource
	metrics  *metrics
	inFlight chan struct{}          // one slot per CXone request in flight
	base     atomic.Pointer[string] // the API endpoint, configured or discovered; nil until known
	unfound  hold                   // of the discovery
	// throttled holds back every request to the API while CXone's 429 or 503 to a
	// mask or an unmask asks to wait (Retry-After): the gateway is one client of
	// CXone's, with one access key. readsThrottled holds back only the reads while
	// one to a recording-status read asks it (heldBack).
	throttled, readsThrottled hold
}

// New returns a Client. Nothing is sent to CXone until the first call.
func New(cfg Config) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 4
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 2 * time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 64
	}
	if cfg.IdleTimeout <= 0 {
		// Under the 60 s after which common load balancers drop an idle connection, so
		// that the pool seldom holds one the other end has closed.
		cfg.IdleTimeout = 55 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	hc := newHTTPClient(cfg.Timeout, cfg.IdleTimeout)
	m := newMetrics(cfg.Registerer)
	c := &Client{
		cfg:      cfg,
		hc:       hc,
		metrics:  m,
		inFlight: make(chan struct{}, cfg.MaxInFlight),
		tokens: &tokenSource{
			authURL: cfg.AuthURL,
			creds:   cfg.Credentials,
			hc:      hc,
			timeout: cfg.Timeout,
			now:     cfg.Now,
			metrics: m,
			failed:  hold{base: cfg.BaseBackoff, ceiling: cfg.MaxBackoff},
		},
		unfound:        hold{base: cfg.BaseBackoff, ceiling: cfg.MaxBackoff},
		throttled:      hold{base: cfg.BaseBackoff, ceiling: cfg.MaxBackoff},
		readsThrottled: hold{base: cfg.BaseBackoff, ceiling: cfg.MaxBackoff},
	}
	if base := strings.TrimRight(cfg.BaseURL, "/"); base != "" {
		c.base.Store(&base)
	}
	return c
}

// Close closes the client's idle connections to CXone. The goroutines that watch the
// pool end within IdleTimeout after it.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Mask asks CXone to mask the recording of the agent's latest active call.
func (c *Client) Mask(ctx context.Context, userID string) (Result, error) {
	return c.post(ctx, "mask", maskPath, userID)
}

// Unmask asks CXone to resume the recording of the agent's latest active call.
func (c *Client) Unmask(ctx context.Context, userID string) (Result, error) {
	return c.post(ctx, "unmask", unmaskPath, userID)
}

// RecordingStatus asks CXone what it records of the agent's latest active call;
// ErrNoActiveCall when the agent has none.
func (c *Client) RecordingStatus(ctx context.Context, userID string) (RecordingStatus, error) {
	var rs RecordingStatus
	_, err := c.do(ctx, opRecordingStatus, http.MethodGet, statusPath, userID, func(body io.Reader) error {
		return json.NewDecoder(body).Decode(&rs)
	})
	return rs, err
}

// Ready reports whether a token is held or obtainable and the API endpoint is known.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.Endpoint(ctx)
	return err
}

// TenantEndpoint is the API endpoint that the discovery document of the token's tenant
// names, whether or not one is configured, so that a configured one can be compared
// with it (check-config, the start-up). It is read anew, and not kept.
func (c *Client) TenantEndpoint(ctx context.Context) (string, error) {
	tok, err := c.tokens.Token(ctx)
	if err != nil {
		return "", err
	}
	return c.discover(ctx, tok)
}

// Endpoint obtains a token if none is held and returns the API endpoint in use
// (configured or discovered).
func (c *Client) Endpoint(ctx context.Context) (string, error) {
	_, base, err := c.target(ctx)
	return base, err
}

// target is what an attempt needs before it can be sent: a token, and the endpoint.
func (c *Client) target(ctx context.Context) (*token, string, error) {
	tok, err := c.tokens.Token(ctx)
	if err != nil {
		return nil, "", err
	}
	base, err := c.endpoint(ctx, tok)
	return tok, base, err
}

func (c *Client) post(ctx context.Context, op, path, userID string) (Result, error) {
	return c.do(ctx, op, http.MethodPost, path, userID, nil)
}

// errNoSlot is an attempt that sent nothing: its context ended while every slot was
// taken.
var errNoSlot = errors.New("waiting for a free CXone slot")

// attempt sends one request with its own timeout and answers CXone's status. It first
// takes one of the MaxInFlight slots, so that however many requests and sweepers call,
// CXone never sees more than that many at once from this replica.
func (c *Client) attempt(ctx context.Context, op, method, target, access string, decode func(io.Reader) error) (status int, retryAfter time.Duration, err error) {
	select {
	case c.inFlight <- struct{}{}:
		defer func() { <-c.inFlight }()
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("%w (%d in flight): %w", errNoSlot, c.cfg.MaxInFlight, ctx.Err())
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(target)
	req.Header.Set("Authorization", "Bearer "+access)
	req.Header.Set("Accept", "application/json")
	t0 := time.Now()
	err = exchange(ctx, c.hc, c.cfg.Timeout, req, resp)
	tooLarge := errors.Is(err, fasthttp.ErrBodyTooLarge) // a status came, with a body beyond any of CXone's
	if err != nil && !tooLarge {
		c.metrics.request(op, "error", time.Since(t0))
		return 0, 0, err
	}
	status = resp.StatusCode()
	c.metrics.request(op, strconv.Itoa(status), time.Since(t0))
	if tooLarge {
		// Not believed, and not asked for again: the same would come.
		return status, 0, fmt.Errorf("answer larger than %d bytes", maxAnswer)
	}
	if status == http.StatusOK && decode != nil {
		if err := decode(bytes.NewReader(resp.Body())); err != nil {
			return status, 0, errors.New("undecodable answer")
		}
	}
	return status, parseRetryAfter(string(resp.Header.Peek("Retry-After")), c.cfg.Now()), nil
}
