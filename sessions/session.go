// Package sessions is maskgate's domain: what a mask session is, which transitions are
// legal, and the Service that pairs every CXone mask with exactly one unmask by keeping
// each open session in Redis.
package sessions

import (
	"strings"
	"time"

	"github.com/google/uuid"
)

// State is where a session is in its life.
type State string

// The states of a session (design §2).
const (
	// StateMasking: written ahead, the CXone mask is under way or answered 202.
	StateMasking State = "masking"
	// StateMasked: CXone masked the agent's recording.
	StateMasked State = "masked"
	// StateUnmasking: the unmask is accepted; the gateway is still getting CXone to do it.
	StateUnmasking State = "unmasking"
	// StateClosed: the session is over; CloseReason says why.
	StateClosed State = "closed"
)

// CloseReason says why a session closed.
type CloseReason string

// The reasons a session closes.
const (
	CloseUnmasked  CloseReason = "unmasked"
	CloseExpired   CloseReason = "expired"
	CloseCallEnded CloseReason = "call_ended"
	// closeRejected removes a session that CXone refused to open; callers never see it.
	closeRejected CloseReason = "rejected"
)

// Session is one agent's mask session.
type Session struct {
	ID          string
	UserID      string
	State       State
	MaskedAt    time.Time
	ExpiresAt   time.Time
	MaskedBy    string
	Reason      string
	UnmaskedAt  time.Time // zero until closed
	UnmaskedBy  string
	CloseReason CloseReason
	Forced      bool // opened by a forced unmask that found none: the gateway never saw the mask, so no maskedAt, expiresAt or maskedBy
	// SupersededID is the session this one replaced while that one's unmask was pending,
	// until the mask that replaced it has CXone's answer (mask_begin.lua): audit only.
	SupersededID string
}

// Pending reports whether CXone has not yet finished what the session's state promises:
// such a session is answered 202 rather than 200.
func (s Session) Pending() bool {
	return s.State == StateMasking || s.State == StateUnmasking
}

// ValidUserID reports whether id follows the rule for a CXone agent user id (design §2,
// openapi.yaml's pattern ^[A-Za-z0-9._:@-]{1,128}$), which keeps Redis keys and CXone
// query strings free of anything but these characters. A loop rather than a regexp: it
// runs on every request, 16 ns against 335; FuzzUserID holds it to the spec's pattern.
func ValidUserID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := range len(id) {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("._:@-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// CanonicalUserID is the one spelling of a userId under which the gateway keeps the
// agent's session and lock, asks CXone and answers: a userId in a UUID's form
// (8-4-4-4-12 hexadecimal digits) in lower case, any other as it is. SQL Server, say,
// shows UUIDs in upper case: a CRM and an IVR that spell one agent's id differently
// must still share one session, or an unmask in one spelling would find no mask (409,
// nothing sent) while the other's keeps the agent masked.
func CanonicalUserID(id string) string { return lowerUUID(id) }

// lowerUUID is s in lower case when it is in a UUID's form, else s itself: RFC 9562
// makes a UUID's letters case-insensitive on input and writes them in lower case.
func lowerUUID(s string) string {
	if len(s) != uuidLength || !strings.ContainsAny(s, "ABCDEF") {
		return s // the common case, without parsing
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return s
	}
	return u.String()
}
