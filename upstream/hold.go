package upstream

import (
	"errors"
	"sync/atomic"
	"time"
)

// refusedHold is how long a refused token request or discovery holds back the next:
// the same credentials are refused again until someone changes them at CXone.
const refusedHold = 30 * time.Second

// hold keeps a flight that fails (a token request, the discovery, or any request to
// CXone's API once CXone asked the gateway to wait) from being sent again by every
// request that needs it, and by each of their attempts: under load, a revoked access
// key or an outage of CXone's authentication would otherwise send a token request for
// every request of the gateway's, and a flood of refused password grants can get a key
// locked. After a failure the next flight waits at least as long as a request's own
// retry would (half its backoff, doubling while the failures go on, or what CXone's
// Retry-After asked), or refusedHold after a refusal; meanwhile every caller gets that
// failure at once. A success ends the hold.
type hold struct {
	base, ceiling time.Duration // a request's backoff (Config.BaseBackoff, MaxBackoff)
	last          atomic.Pointer[failure]
}

// failure is the last failure of a flight, and until when it stands.
type failure struct {
	err   error
	until time.Time
	count int // failures in a row
}

// held returns the failure that stands at now, asking to wait what is left of the
// hold, or nil when a flight may go.
func (h *hold) held(now time.Time) error {
	f := h.last.Load()
	if f == nil || !now.Before(f.until) {
		return nil
	}
	var failed *Error
	if !errors.As(f.err, &failed) {
		return f.err
	}
	left := *failed
	left.RetryAfter = f.until.Sub(now)
	return &left
}

// record notes a flight's outcome at now: a failure holds the next flight back, a
// success (err nil) ends the hold. Its callers call it one at a time (the flight), or
// only to hold back for a Retry-After (Client.throttled), where a lost count matters
// not: the wait is CXone's.
func (h *hold) record(err error, now time.Time) {
	if err == nil {
		h.last.Store(nil)
		return
	}
	count, standing := 1, now
	if prev := h.last.Load(); prev != nil {
		count, standing = prev.count+1, prev.until
	}
	wait := refusedHold
	var failed *Error
	if !errors.As(err, &failed) || failed.Kind != ErrRefused {
		wait = backoffLimit(h.base, h.ceiling, count) / 2
		if failed != nil {
			wait = max(wait, failed.RetryAfter)
		}
	}
	// A hold standing longer is not shortened: a Retry-After answered to a request
	// sent before the hold began may ask less than the one that began it.
	until := now.Add(wait)
	if standing.After(until) {
		until = standing
	}
	h.last.Store(&failure{err: err, until: until, count: count})
}
