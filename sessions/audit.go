package sessions

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// TimeFormat is the time of an audit line, as of every log line the gateway writes:
// decisions on one agent come milliseconds apart, and their order must show.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// event is an audit event. Every audit line names one of auditEvents, which README
// ("Audit and logs") lists: a struct, so that no string can be passed for one.
type event struct{ name string }

var (
	evMasked            = event{"masked"}
	evReMasked          = event{"re-masked"}
	evMaskedPending     = event{"masked_pending"}
	evReMaskedPending   = event{"re-masked_pending"}
	evMaskConfirmed     = event{"mask_confirmed"}
	evMaskUnconfirmed   = event{"mask_unconfirmed"}
	evMaskFailed        = event{"mask_failed"}
	evUnmasked          = event{"unmasked"}
	evExpired           = event{"expired"}
	evCallEnded         = event{"call_ended"}
	evUnmaskPending     = event{"unmask_pending"}
	evUnmaskConfirmed   = event{"unmask_confirmed"}
	evUnmaskUnconfirmed = event{"unmask_unconfirmed"}
	evUnmaskRetry       = event{"unmask_retry"}
	evUnmaskGaveUp      = event{"unmask_gave_up"}
	evForcedUnmask      = event{"forced_unmask"}
	evCoalesced         = event{"coalesced"}
	evRejected          = event{"rejected"}
	evReleased          = event{"released"}
	evStoreFailed       = event{"store_failed"}
)

// The outcomes of a mask_failed line that OpenInTrail reads: a mask CXone refused or
// that never went to CXone masked nothing; a re-mask that found no call closed the
// session.
const (
	outcomeRejected  = "rejected"
	outcomeNotSent   = "not_sent"
	outcomeCallEnded = "call_ended"
)

// auditEvents are all the audit events, in README's order. Each one's series of
// maskgate_session_events_total exists from the start, so that a dashboard or an alert
// sees 0 rather than nothing.
var auditEvents = []event{
	evMasked, evReMasked, evMaskedPending, evReMaskedPending, evMaskConfirmed, evMaskUnconfirmed, evMaskFailed,
	evUnmasked, evExpired, evCallEnded, evUnmaskPending, evUnmaskConfirmed, evUnmaskUnconfirmed, evUnmaskRetry,
	evUnmaskGaveUp, evForcedUnmask, evCoalesced, evRejected, evReleased, evStoreFailed,
}

// closeEvent is the event of an unmask that closes a session as reason.
func closeEvent(reason CloseReason) event {
	if reason == CloseExpired {
		return evExpired
	}
	return evUnmasked
}

// audit starts the audit line of one session decision (design §5). Lines go to the
// request's logger (carrying request_id) or, for the sweeper, to its own.
func (s *Service) audit(ctx context.Context, e event, userID, sessionID, caller string) *zerolog.Event {
	s.metrics.events.WithLabelValues(e.name).Inc()
	return zerolog.Ctx(ctx).Info().Bool("audit", true).Str("event", e.name).
		Str("user_id", userID).Str("session_id", sessionID).Str("caller", caller)
}

// auditSession is an audit line of a decision on sess; it says when the session is a
// forced unmask's, and which session it replaced until CXone's answer to the mask that
// replaced it, or to a later operation on it, is recorded (also when that mask's
// replica died and another's sweeper or a later request finds the session so), so that
// the trail closes the replaced one.
func (s *Service) auditSession(ctx context.Context, e event, sess Session, caller string) *zerolog.Event {
	ev := s.audit(ctx, e, sess.UserID, sess.ID, caller)
	if sess.Forced {
		ev.Bool("forced", true)
	}
	if sess.SupersededID != "" {
		ev.Str("superseded_session_id", sess.SupersededID)
	}
	return ev
}

// auditUpstream is an audit line of a decision on sess that followed a CXone answer.
func (s *Service) auditUpstream(ctx context.Context, e event, sess Session, caller string, status int, elapsed time.Duration) *zerolog.Event {
	return s.auditSession(ctx, e, sess, caller).
		Int("upstream_status", status).Float64("upstream_ms", float64(elapsed.Microseconds())/1000)
}
