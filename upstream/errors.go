// Package upstream is maskgate's client of NICE CXone: the access-key token exchange and
// API discovery, the Multi-ACD mask and unmask calls and the recording status, with
// retries, timeouts and the mapping of every CXone answer to a small set of errors.
package upstream

import (
	"errors"
	"fmt"
	"time"
)

// The kinds of failure a caller of this package tells apart with errors.Is.
var (
	// ErrNoActiveCall: CXone answered 404, no active interaction for the agent.
	ErrNoActiveCall = errors.New("CXone has no active interaction for the agent")
	// ErrInternalCall: CXone answered 422, the call is internal.
	ErrInternalCall = errors.New("CXone does not mask or unmask internal calls")
	// ErrRefused: CXone refused the gateway (401/403 after a token refresh, an OAuth
	// error from the token endpoint) or answered something the API does not document.
	ErrRefused = errors.New("CXone refused the request")
	// ErrUnavailable: CXone stayed locked or busy (425, 429, 5xx, network errors) after retries.
	ErrUnavailable = errors.New("CXone unavailable")
	// ErrTimeout: CXone did not answer in time.
	ErrTimeout = errors.New("CXone did not answer in time")
	// ErrNotSent: none of the operation's requests went to CXone's API (the token, the
	// discovery or a free slot failed first), so CXone cannot have carried it out. It
	// comes with one of the kinds above, never alone.
	ErrNotSent = errors.New("not sent to CXone")
)

// Error is a failed CXone operation: its kind (one of the errors above), the last
// HTTP status CXone answered (0 when there was none) and the cause.
type Error struct {
	Op         string        // mask, unmask, recording-status, token, discovery
	Status     int           // CXone's last HTTP status, 0 when it did not answer
	RetryAfter time.Duration // what CXone asked to wait, when it said so
	Attempts   int
	Duration   time.Duration // from the first attempt to the failure
	Kind       error
	Err        error // the cause, or nil
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("cxone %s: %v", e.Op, e.Kind)
	if e.Status != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Attempts > 1 {
		msg += fmt.Sprintf(" after %d attempts", e.Attempts)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap lets errors.Is match both the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}
