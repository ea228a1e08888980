package sessions

import (
	"context"
	"errors"
	"time"

	"github.com/maskgate/maskgate/upstream"
)

// The errors of the domain. Callers classify with errors.Is; the HTTP layer maps each
// to one problem code.
var (
	// ErrInvalidUserID: the userId breaks the rule of ValidUserID.
	ErrInvalidUserID = errors.New("userId must be 1-128 characters of A-Z a-z 0-9 . _ : @ -")
	// ErrInvalidInput: a field of the request is out of range. The errors that match
	// it say only which field and how, in the caller's terms.
	ErrInvalidInput = errors.New("invalid input")
	// ErrInvalidCursor: a list cursor that this service did not hand out.
	ErrInvalidCursor = errors.New("invalid cursor")
	// ErrNotMasked: the agent has no open session.
	ErrNotMasked = errors.New("agent has no open mask session")
	// ErrSessionMismatch: the caller named another session than the agent's open one.
	ErrSessionMismatch = errors.New("sessionId does not name the agent's open session")
	// ErrStoreUnavailable: Redis could not be read or written.
	ErrStoreUnavailable = errors.New("session store unavailable")
	// ErrAgentBusy: another operation on the agent held its lock for longer than a
	// request may wait.
	ErrAgentBusy = errors.New("another operation on this agent is still in progress")
	// ErrRateLimited: the caller is over its rate limit (RetryAfter says how long to wait).
	ErrRateLimited = errors.New("over the rate limit of this caller")

	// CXone's answers, as the domain sees them.

	// ErrNoActiveCall: CXone has no active interaction for the agent.
	ErrNoActiveCall = upstream.ErrNoActiveCall
	// ErrInternalCall: CXone does not mask or unmask internal calls.
	ErrInternalCall = upstream.ErrInternalCall
	// ErrUpstreamRefused: CXone refused the gateway or answered unexpectedly.
	ErrUpstreamRefused = upstream.ErrRefused
	// ErrUpstreamUnavailable: CXone stayed locked or busy after retries.
	ErrUpstreamUnavailable = upstream.ErrUnavailable
	// ErrUpstreamTimeout: CXone did not answer in time.
	ErrUpstreamTimeout = upstream.ErrTimeout

	// errUpstreamNotSent comes with one of the above when nothing went to CXone.
	errUpstreamNotSent = upstream.ErrNotSent
)

// invalidInput is an ErrInvalidInput whose text is its detail alone, as a 400 answer
// shows it ("ttlSeconds must be between 1 and 7200").
type invalidInput string

func (e invalidInput) Error() string        { return string(e) }
func (e invalidInput) Is(target error) bool { return target == ErrInvalidInput }

// NotMaskedError is Verify's ErrNotMasked: the agent has no open session, and Recording
// is what CXone reports for it all the same. A recording CXone stopped for a Mask
// (StatusReason "Mask") is then a mask the gateway does not know of: one opened
// before its Redis lost its data, or by another client of the access key.
type NotMaskedError struct{ Recording Recording }

func (e *NotMaskedError) Error() string        { return ErrNotMasked.Error() }
func (e *NotMaskedError) Is(target error) bool { return target == ErrNotMasked }

// resultCodes name the errors an operation's answer can carry to requests that joined
// it (in another process, through Redis).
var resultCodes = map[string]error{
	"no_active_call":       ErrNoActiveCall,
	"internal_call":        ErrInternalCall,
	"upstream_refused":     ErrUpstreamRefused,
	"upstream_unavailable": ErrUpstreamUnavailable,
	"upstream_timeout":     ErrUpstreamTimeout,
}

// codeOf names err for joined requests ("" for nil).
func codeOf(err error) string {
	if err == nil {
		return ""
	}
	for code, e := range resultCodes {
		if errors.Is(err, e) {
			return code
		}
	}
	return "upstream_unavailable"
}

// errOf is the error a joined request returns for code.
func errOf(code string) error {
	if code == "" {
		return nil
	}
	if err, ok := resultCodes[code]; ok {
		return err
	}
	return ErrUpstreamUnavailable
}

// outcomeOf is the audit outcome of an answer.
func outcomeOf(err error) string {
	switch {
	case err == nil:
		return "done"
	case errors.Is(err, context.Canceled):
		return "caller_gone" // it hung up before anything was done for it
	case errors.Is(err, ErrStoreUnavailable):
		return "store_unavailable"
	}
	return codeOf(err)
}

func errorIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// rateLimited is ErrRateLimited with the wait.
type rateLimited struct{ wait time.Duration }

func (e *rateLimited) Error() string { return ErrRateLimited.Error() }
func (e *rateLimited) Unwrap() error { return ErrRateLimited }

// RetryAfter is how long to wait before err's operation may succeed: what CXone asked,
// or the caller's rate limit; 0 when unknown.
func RetryAfter(err error) time.Duration {
	if ue, ok := errors.AsType[*upstream.Error](err); ok {
		return ue.RetryAfter
	}
	if rl, ok := errors.AsType[*rateLimited](err); ok {
		return rl.wait
	}
	return 0
}

// upstreamStatus extracts CXone's last status and the time spent from err.
func upstreamStatus(err error) (int, time.Duration) {
	if ue, ok := errors.AsType[*upstream.Error](err); ok {
		return ue.Status, ue.Duration
	}
	return 0, 0
}
