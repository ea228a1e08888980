package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// do runs one CXone operation: token, endpoint, attempts with backoff on transient
// failures (of the token or the discovery too: a token endpoint's 503 is as passing as
// the API's), one forced token refresh on 401/403. decode reads a 200 body, when given.
// A failure none of whose attempts went to the API is also ErrNotSent.
func (c *Client) do(ctx context.Context, op, method, path, userID string, decode func(io.Reader) error) (_ Result, err error) {
	sent := false
	defer func() {
		if err != nil && !sent {
			err = fmt.Errorf("%w; %w", err, ErrNotSent)
		}
	}()
	started := c.cfg.Now()
	log := zerolog.Ctx(ctx)
	refreshed := false
	var last *Error
	for attempt := 1; attempt <= c.cfg.MaxAttempts; attempt++ {
		tok, base, err := c.target(ctx)
		if err == nil {
			if err = c.heldBack(op, c.cfg.Now()); err != nil {
				c.metrics.heldBack(heldRetryAfter)
			}
		}
		if err != nil {
			var failed *Error
			if ctx.Err() != nil || !mayPass(err) || !errors.As(err, &failed) || attempt == c.cfg.MaxAttempts {
				return Result{}, err
			}
			last = failed
		} else {
			status, retryAfter, err := c.attempt(ctx, op, method, base+path+"?userId="+url.QueryEscape(userID), tok.access, decode)
			sent = sent || !errors.Is(err, errNoSlot)
			res := Result{Status: status, Duration: c.cfg.Now().Sub(started), Attempts: attempt}
			if err == nil && (status == http.StatusOK || status == http.StatusAccepted) {
				return res, nil
			}
			if (status == http.StatusUnauthorized || status == http.StatusForbidden) && !refreshed {
				// The token may have been revoked or have lost a permission: one fresh
				// token and one more try, which does not count as an attempt (unless a
				// refresh was forced a moment ago: then the answer stands).
				refreshed = true
				if c.tokens.Invalidate(tok.access) {
					attempt--
					continue
				}
			}
			last = &Error{Op: op, Status: status, RetryAfter: retryAfter, Attempts: attempt, Duration: res.Duration, Kind: classify(status, err), Err: err}
			if retryAfter > 0 && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
				c.throttledBy(op).record(&Error{Op: "api", Status: status, RetryAfter: retryAfter, Kind: ErrUnavailable, Err: errAskedToWait}, c.cfg.Now())
			}
			if !transient(status, err) || attempt == c.cfg.MaxAttempts {
				break
			}
		}
		wait := max(backoff(c.cfg.BaseBackoff, c.cfg.MaxBackoff, attempt), last.RetryAfter)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			break // the caller's budget ends first: answer now rather than wait in vain
		}
		if ctx.Err() == nil { // else its caller has gone: the select below returns at once
			log.Warn().Str("op", last.Op).Int("upstream_status", last.Status).Int("attempt", attempt).
				Dur("backoff", wait).AnErr("cause", last.Err).Msg("cxone transient failure, retrying")
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return Result{}, &Error{Op: op, Status: last.Status, Attempts: attempt, Duration: c.cfg.Now().Sub(started), Kind: ErrTimeout, Err: ctx.Err()}
		}
	}
	return Result{}, last
}

// opRecordingStatus is the op of the recording-status read, which ?verify=true and
// the confirmation of a 202 send.
const opRecordingStatus = "recording-status"

// heldBack returns the wait CXone asked for that stands for a request of op, or nil.
// A wait asked in the answer to a mask or an unmask holds back every request; one
// asked in the answer to a read holds back only the reads. Callers that poll
// ?verify=true (NICE's own agent SDK polls every second) must not stop the masks and
// unmasks for up to a minute (maxRetryAfter) should CXone limit its reads apart: if
// its limit is the access key's, the next mask or unmask meets it too, and from its
// answer on every request is held back.
func (c *Client) heldBack(op string, now time.Time) error {
	if err := c.throttled.held(now); err != nil || op != opRecordingStatus {
		return err
	}
	return c.readsThrottled.held(now)
}

// throttledBy is the hold that a wait asked in the answer to a request of op starts.
func (c *Client) throttledBy(op string) *hold {
	if op == opRecordingStatus {
		return &c.readsThrottled
	}
	return &c.throttled
}

// errAskedToWait is a request held back while CXone's Retry-After lasts.
var errAskedToWait = errors.New("CXone asked the gateway to wait before its next request")

// What a failure of CXone's is, whether to try again, and how long to wait first.

// classify maps CXone's answer (or the lack of one) to the kind of failure.
func classify(status int, err error) error {
	switch {
	case err != nil && status == 0:
		return exchangeKind(err)
	case status == http.StatusNotFound:
		return ErrNoActiveCall
	case status == http.StatusUnprocessableEntity:
		return ErrInternalCall
	case status == http.StatusGatewayTimeout:
		return ErrTimeout
	case transient(status, nil):
		return ErrUnavailable
	default:
		return ErrRefused // 401/403 after a refresh, other 4xx, anything undocumented
	}
}

// mayPass reports whether a failure of the token, the discovery or the API may pass
// (CXone unavailable or slow), so that asking again may succeed; a refusal would come
// again.
func mayPass(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout)
}

// transient reports whether another attempt may succeed (design §1).
func transient(status int, err error) bool {
	switch status {
	case 0:
		return err != nil && exchangeKind(err) != ErrRefused
	case http.StatusTooEarly, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// exchangeKind is the kind of failure of an exchange that brought no answer to use: an
// answer or headers larger than any of CXone's are refused (the same would come
// again), a timeout is a timeout, and any other network failure makes CXone
// unavailable.
func exchangeKind(err error) error {
	var t interface{ Timeout() bool } // a net.Error, or fasthttp's ErrTimeout
	var headers *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge) || errors.As(err, &headers):
		return ErrRefused
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &t) && t.Timeout()):
		return ErrTimeout
	}
	return ErrUnavailable
}

// backoff is the wait before attempt+1: exponential, capped, with jitter over the
// upper half of backoffLimit so that retrying replicas spread out but never retry at
// once.
func backoff(base, ceiling time.Duration, attempt int) time.Duration {
	d := backoffLimit(base, ceiling, attempt)
	return d/2 + rand.N(d/2+1)
}

// backoffLimit is base doubled for each attempt after the first, capped at ceiling.
func backoffLimit(base, ceiling time.Duration, attempt int) time.Duration {
	return min(ceiling, base<<min(attempt-1, 20))
}

// maxRetryAfter caps what a Retry-After is believed to ask. A 429 or 503's wait holds
// back every request of the replica, the sweepers' unmasks too, and nothing is sent
// meanwhile that could learn that CXone is back: on the word of one answer (perhaps a
// proxy's in front of CXone), an hour's Retry-After would stop every unmask for an
// hour and see them given up (MASKGATE_UNMASK_GIVEUP). After a minute one request asks
// again, and a CXone still busy asks to wait again.
const maxRetryAfter = time.Minute

// parseRetryAfter reads Retry-After as seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return min(time.Duration(min(secs, int(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}
