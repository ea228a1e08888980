package sessions

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// audit starts the audit line of one session decision (design §5). Lines go to the
// request's logger (carrying request_id) or, for the sweeper, to its own.
func (s *Service) audit(ctx context.Context, event, userID, sessionID, caller string) *zerolog.Event {
	s.metrics.events.WithLabelValues(event).Inc()
	return zerolog.Ctx(ctx).Info().Bool("audit", true).Str("event", event).
		Str("user_id", userID).Str("session_id", sessionID).Str("caller", caller)
}

// auditUpstream is an audit line of a decision that followed a CXone answer; it says
// when the session is a forced unmask's.
func (s *Service) auditUpstream(ctx context.Context, event string, sess Session, caller string, status int, elapsed time.Duration) *zerolog.Event {
	ev := s.audit(ctx, event, sess.UserID, sess.ID, caller).
		Int("upstream_status", status).Float64("upstream_ms", float64(elapsed.Microseconds())/1000)
	if sess.Forced {
		ev.Bool("forced", true)
	}
	return ev
}
