package sessions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// UnmaskInput is a request to unmask an agent.
type UnmaskInput struct {
	UserID    string
	Caller    string
	SessionID *string // optional precondition: the open session must be this one
	Force     bool    // operator override: unmask at CXone even without an open session (it then opens one)
	Rate      Rate    // the caller's rate limit, counted with the first transition
}

// maxSessionIDLength bounds a sessionId a caller may send (ours are 36 characters).
const maxSessionIDLength = 64

// Validate checks the input against the domain's rules. A sessionId that names no
// session is the 409 the unmask answers, but one that no session's id could be goes
// no further: it would be written into the audit line that refuses the unmask
// (requested_session_id), so it is held to what a reason is, and stricter, since
// every id is printable ASCII: no escape sequence for the terminal of whoever reads
// the trail with jq -r, no line break to start a line of its own there, no card number
// a CRM put in the wrong field.
func (in UnmaskInput) Validate() error {
	if !ValidUserID(in.UserID) {
		return ErrInvalidUserID
	}
	if id := in.SessionID; id != nil {
		switch {
		case *id == "" || len(*id) > maxSessionIDLength || !PrintableASCII(*id):
			return invalidInput(fmt.Sprintf("sessionId must be 1 to %d printable ASCII characters", maxSessionIDLength))
		case holdsCardNumber(*id):
			return invalidInput("sessionId must not contain a card number")
		}
	}
	return nil
}

// Unmask unmasks the agent's recording (design §3.4): the session is marked
// "unmasking", CXone is asked, and the session closes on 200 (unmasked) or 404
// (call_ended). On 202 or a transient failure the session stays "unmasking" — the
// sweeper confirms or retries it — and the answer says so; with no open session nothing
// is sent to CXone (ErrNotMasked).
//
// A forced unmask with no open session (an operator's recovery after Redis lost
// sessions) opens one, "unmasking" from the start, and goes on as any unmask: it holds
// the agent's lock, so a mask that crosses it waits instead of being undone at CXone,
// and a 202 or a failure is confirmed or retried by the sweeper.
func (s *Service) Unmask(ctx context.Context, in UnmaskInput) (Session, error) {
	in.UserID = CanonicalUserID(in.UserID)
	if err := in.Validate(); err != nil {
		return Session{}, err
	}
	expected, forcedID := "", ""
	if in.SessionID != nil {
		expected = lowerUUID(*in.SessionID) // as every sessionId is written
	}
	if in.Force {
		forcedID = uuid.NewString()
	}
	fp := fingerprint("unmask", expected)
	return s.operate(ctx, in.UserID, in.Caller, func(opID string, rate bool) (begin, error) {
		return s.store.beginUnmask(ctx, in.UserID, expected, in.Caller, opID, fp, forcedID, s.lease(), only(rate, in.Rate))
	}, func(ctx context.Context, b begin, opID string) (Session, error) {
		refused := func(err error) (Session, error) {
			ev := s.audit(ctx, evRejected, in.UserID, b.session.ID, in.Caller).Str("outcome", b.outcome)
			if expected != "" {
				// The session the caller meant: a reviewer sees which late unmask was kept
				// from touching which newer session.
				ev.Str("requested_session_id", expected)
			}
			ev.Msg("unmask refused; CXone not called")
			return Session{}, err
		}
		e := evUnmasked
		switch b.outcome {
		case "not_masked":
			return refused(ErrNotMasked)
		case "mismatch":
			return refused(ErrSessionMismatch)
		case "forced":
			e = evForcedUnmask
		}
		return s.unmask(ctx, unmaskJob{session: b.session, opID: opID, closeAs: CloseUnmasked, by: in.Caller, event: e})
	})
}

// unmaskJob is one unmask of a session whose lock the caller holds.
type unmaskJob struct {
	session   Session
	opID      string
	closeAs   CloseReason // the reason the session closes with on CXone's 200
	by        string      // who unmasks
	event     event       // the audit event on success
	attempts  int         // failed unmasks so far
	retryFrom time.Time   // the first failed unmask (Redis's clock), zero when none
	now       time.Time   // Redis's clock when the sweeper claimed it; zero for a request
}

// unmask asks CXone to unmask and moves the session on: closed on 200 (closeAs) or 404
// (call_ended); "unmasking" with a confirmation on 202; on a failure, unmaskNotDone.
func (s *Service) unmask(ctx context.Context, j unmaskJob) (Session, error) {
	sess := j.session
	uctx, cancel := context.WithTimeout(ctx, s.cfg.UpstreamBudget)
	res, err := s.cx.Unmask(uctx, sess.UserID)
	cancel()
	released := err != nil && errors.Is(context.Cause(ctx), errReleased)
	ctx = context.WithoutCancel(ctx)
	status, elapsed := res.Status, res.Duration
	if err != nil {
		status, elapsed = upstreamStatus(err)
	}
	switch {
	case released:
		// The sweeper is stopping: hand the session to another replica at once.
		ferr := s.store.finish(ctx, sess.UserID, j.opID, finishing{next: after(0)})
		s.auditUpstream(ctx, evReleased, sess, j.by, status, elapsed).Str("outcome", "pending").AnErr("store_error", ferr).
			Msg("replica stopping: unmask handed over to another replica")
		return sess, nil
	case err == nil && res.Accepted():
		f := finishing{state: StateUnmasking, closeAs: j.closeAs, unmaskedBy: j.by,
			confirm: after(s.cfg.ConfirmWindow), next: after(time.Second)}
		ferr := s.store.finish(ctx, sess.UserID, j.opID, f)
		s.auditUpstream(ctx, evUnmaskPending, sess, j.by, status, elapsed).Str("outcome", "accepted").AnErr("store_error", ferr).
			Msg("CXone accepted the unmask; confirming it through the recording status")
		return f.apply(sess), nil
	case err == nil || errorIsAny(err, ErrNoActiveCall):
		reason, e := j.closeAs, j.event
		if err != nil {
			reason, e = CloseCallEnded, evCallEnded
		}
		closed, cerr := s.store.close(ctx, sess.UserID, j.opID, reason, j.by, "")
		ev := s.auditUpstream(ctx, e, sess, j.by, status, elapsed).Str("outcome", "done")
		if !sess.Forced {
			ev.Time("masked_at", sess.MaskedAt)
		}
		if cerr != nil {
			ev.Err(cerr).Msg("CXone unmasked but the session could not be closed; the sweeper will unmask again")
			return inState(sess, StateUnmasking), nil
		}
		ev.Msg("unmask")
		return closed, nil
	}
	return s.unmaskNotDone(ctx, j, evUnmaskRetry, err, status, elapsed)
}

// errUnconfirmed is an unmask CXone accepted (202) whose outcome its recording status
// did not show within the confirmation window.
var errUnconfirmed = fmt.Errorf("%w: CXone accepted the unmask, and its recording status did not show it carried out within the confirmation window", ErrUpstreamUnavailable)

// unmaskNotDone moves on an unmask CXone did not do: it failed (err), or CXone accepted
// it and did not carry it out (errUnconfirmed). Either is counted, with how long the
// session's unmask has been failing, and retried by the sweeper with backoff (audit
// event e) until MASKGATE_UNMASK_GIVEUP passes, when it is given up with an audit
// error. The error is CXone's when it refused (not when it failed transiently).
func (s *Service) unmaskNotDone(ctx context.Context, j unmaskJob, e event, err error, status int, elapsed time.Duration) (Session, error) {
	sess := j.session
	now := j.now
	if now.IsZero() {
		now = s.cfg.Now()
	}
	retryFrom := j.retryFrom
	if retryFrom.IsZero() {
		retryFrom = now
	}
	s.metrics.unmaskFailures.Inc()
	s.metrics.failingFor.Observe(now.Sub(retryFrom).Seconds())
	if now.Sub(retryFrom) >= s.cfg.UnmaskGiveUp {
		ferr := s.store.finish(ctx, sess.UserID, j.opID, finishing{code: codeOf(err), next: "none", gaveUp: true})
		s.metrics.giveUps.Inc()
		s.auditUpstream(ctx, evUnmaskGaveUp, sess, j.by, status, elapsed).Err(err).AnErr("store_error", ferr).
			Str("outcome", "gave_up").Int("attempts", j.attempts+1).Time("retrying_since", retryFrom).
			Msg("AUDIT ERROR: CXone did not unmask within MASKGATE_UNMASK_GIVEUP; the agent may still be masked")
		return inState(sess, StateUnmasking), err
	}
	wait := min(s.cfg.RetryMax, s.cfg.RetryBackoff<<min(j.attempts, 10)) // exponential, capped
	code := ""
	if !errorIsAny(err, ErrUpstreamUnavailable, ErrUpstreamTimeout) {
		code = codeOf(err) // refused: the caller hears it, the sweeper still retries
	}
	f := finishing{code: code, state: StateUnmasking, closeAs: j.closeAs, unmaskedBy: j.by, retry: true, confirm: "0", next: after(wait)}
	ferr := s.store.finish(ctx, sess.UserID, j.opID, f)
	s.auditUpstream(ctx, e, sess, j.by, status, elapsed).Err(err).AnErr("store_error", ferr).
		Str("outcome", "pending").Int("attempts", j.attempts+1).Dur("retry_in", wait).
		Msg("CXone did not unmask; the session stays unmasking and the sweeper retries")
	if code != "" {
		return Session{}, err
	}
	return f.apply(sess), nil
}

// inState is the session in the state the caller expects, when the store could not
// say what it is.
func inState(sess Session, state State) Session {
	sess.State = state
	return sess
}
