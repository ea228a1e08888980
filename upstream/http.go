package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpproxy"
)

// maxAnswer bounds how much of a CXone answer is read, and maxHeaders its headers.
const (
	maxAnswer  = 64 << 10
	maxHeaders = 32 << 10
)

// newHTTPClient is the client of every request to CXone (token, discovery, API): one
// keep-alive pool per host, the proxy of HTTP_PROXY/HTTPS_PROXY/NO_PROXY, no redirects
// (a redirect is not part of CXone's API; following one could carry the bearer token
// or the credentials elsewhere).
//
// fasthttp, not net/http: it writes and reads on the caller's goroutine, where
// net/http's Transport hands every request to two goroutines of the connection and
// back, and it reuses its requests and answers. BenchmarkMask: a quarter to half less time
// and a third of the allocations per CXone call; maskbench: maskgate's throughput
// against nginx's about 2 points higher (docs/PERFORMANCE.md, item 13). What it does
// not do, and what maskgate does not need of it, is in exchange.
//
// Its goroutines that close idle connections notice only after up to idle that the
// pool is empty, so they outlive Close by as much: a test that counts goroutines sets
// a short idle.
func newHTTPClient(timeout, idle time.Duration) *fasthttp.Client {
	dialer := &fasthttpproxy.Dialer{Timeout: timeout, ConnectTimeout: timeout, DialDualStack: true,
		// Names are resolved by Go's resolver at each dial, as net/http does: fasthttp's
		// own DNS cache keeps a goroutine for a minute after the last dial.
		TCPDialer: fasthttp.TCPDialer{DisableDNSResolution: true}}
	return &fasthttp.Client{
		Name:                "maskgate",
		ConfigureClient:     func(hc *fasthttp.HostClient) error { return useProxy(dialer, hc) },
		MaxIdleConnDuration: idle,
		MaxResponseBodySize: maxAnswer,
		// The read buffer bounds an answer's headers too: fasthttp's 4 KiB default is
		// less than what a CDN or load balancer in front of an API may add.
		ReadBufferSize:         maxHeaders,
		DisablePathNormalizing: true, // the request goes as built
		RetryIfErr:             retryIfClosed,
		// One more try when the pool's connection turned out to be closed: see
		// retryIfClosed.
		MaxIdemponentCallAttempts: 2,
	}
}

// useProxy dials hc's host through the proxy the environment names for its scheme.
func useProxy(d *fasthttpproxy.Dialer, hc *fasthttp.HostClient) error {
	dial, err := d.GetDialFuncForTLS(true, hc.IsTLS)
	if err != nil {
		return fmt.Errorf("proxy from the environment: %w", err)
	}
	hc.Dial = dial
	return nil
}

// retryIfClosed sends a request again, on another connection, when the one it was
// written to was closed by CXone before any answer: an idle connection that the other
// end dropped while it sat in the pool. net/http's Transport sees such a close before
// it reuses the connection (its read goroutine is waiting on it); fasthttp's client
// learns of it from the request. Sending again is safe: a network error is transient
// (design §1), so Client.do would send the request again all the same, only after a
// backoff.
func retryIfClosed(_ *fasthttp.Request, _ int, err error) (resetTimeout, retry bool) {
	return false, errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// IsHTTPURL reports whether s is an absolute http or https URL with a host: what a
// request can be sent to (CXone's endpoints, and the configuration's other URLs).
func IsHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// exchange sends req and reads the answer into resp, by the earlier of ctx's deadline
// and timeout. A context that ends while the answer is awaited does not interrupt it
// (fasthttp's client takes a deadline, not a context: valyala/fasthttp#2198): the
// timeout bounds that wait, and maskgate's own calls of CXone run detached from the
// caller anyway (an operation finishes whatever its caller does).
func exchange(ctx context.Context, hc *fasthttp.Client, timeout time.Duration, req *fasthttp.Request, resp *fasthttp.Response) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	err := hc.DoDeadline(req, resp, deadline)
	if errors.Is(err, fasthttp.ErrTimeout) && ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return err
}
