package upstream

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

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
