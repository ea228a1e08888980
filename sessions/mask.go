package sessions

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/upstream"
)

// MaskInput is a request to mask an agent.
type MaskInput struct {
	UserID     string
	Caller     string // who asks (audit, maskedBy)
	Reason     string // optional
	TTLSeconds *int   // nil: the default
	Rate       Rate   // the caller's rate limit, counted with the write-ahead
}

// Validate checks the input against the domain's rules.
func (in MaskInput) Validate(maxTTL time.Duration) error {
	if !ValidUserID(in.UserID) {
		return ErrInvalidUserID
	}
	if utf8.RuneCountInString(in.Reason) > MaxReasonLength {
		return invalidInput(fmt.Sprintf("reason must be at most %d characters", MaxReasonLength))
	}
	if hiddenIn(in.Reason) {
		return invalidInput("reason must not contain control or invisible formatting characters (tab and line breaks are fine, so are directional marks, and a zero-width joiner or non-joiner between two non-ASCII letters or emoji)")
	}
	if holdsCardNumber(in.Reason) {
		return invalidInput("reason must not contain a card number")
	}
	if t := in.TTLSeconds; t != nil && (*t < 1 || int64(*t) > int64(maxTTL/time.Second)) {
		return invalidInput(fmt.Sprintf("ttlSeconds must be between 1 and %d", int64(maxTTL/time.Second)))
	}
	return nil
}

// Mask masks the agent's recording (design §3.1–§3.3): the session is written ahead as
// "masking" with its deadline, then CXone is asked, then the session becomes "masked"
// (or stays "masking" while a 202 is confirmed). When CXone refuses definitively a new
// session is removed; when the outcome is unknown (timeout, CXone unavailable) the
// session stays open so that its deadline still unmasks the agent. A concurrent
// identical mask joins this one and gets its answer.
func (s *Service) Mask(ctx context.Context, in MaskInput) (Session, error) {
	in.UserID = CanonicalUserID(in.UserID)
	if err := in.Validate(s.cfg.MaxTTL); err != nil {
		return Session{}, err
	}
	ttl := s.cfg.DefaultTTL
	if in.TTLSeconds != nil {
		ttl = time.Duration(*in.TTLSeconds) * time.Second
	}
	fp := maskFingerprint(ttl, in.Reason)
	return s.operate(ctx, in.UserID, in.Caller, func(opID string, rate bool) (begin, error) {
		return s.store.beginMask(ctx, in, uuid.NewString(), opID, fp, ttl, s.lease(), only(rate, in.Rate))
	}, func(ctx context.Context, b begin, opID string) (Session, error) {
		return s.mask(ctx, b, opID, in.Caller)
	})
}

// maskFingerprint names a mask's parameters: masks coalesce only when their lifetime
// and their reason are the same.
func maskFingerprint(ttl time.Duration, reason string) string {
	return fingerprint("mask", strconv.FormatInt(ttl.Milliseconds(), 10), reason)
}

// mask runs a mask that holds the agent's lock (operate: ctx does not end with the
// caller).
func (s *Service) mask(ctx context.Context, b begin, opID, caller string) (Session, error) {
	sess := b.session
	e, pending := evMasked, evMaskedPending
	if b.outcome == "refreshed" {
		e, pending = evReMasked, evReMaskedPending
	}
	uctx, cancel := context.WithTimeout(ctx, s.cfg.UpstreamBudget)
	res, err := s.cx.Mask(uctx, sess.UserID)
	cancel()
	if err != nil {
		return s.maskFailed(ctx, b, opID, caller, err)
	}
	f := finishing{state: StateMasked, confirm: "0"}
	if res.Accepted() {
		e = pending
		f = finishing{state: StateMasking, confirm: after(s.cfg.ConfirmWindow), next: after(time.Second)}
	}
	ferr := s.store.finish(ctx, sess.UserID, opID, f)
	ev := s.auditMask(ctx, e, sess, caller, res.Status, res.Duration).Str("reason", sess.Reason)
	if ferr != nil {
		ev.Str("outcome", "lock_lost").Err(ferr).Msg("CXone masked but the session could not be updated; its deadline still holds")
	} else {
		ev.Str("outcome", pendingOutcome(res)).Msg("mask")
	}
	return f.apply(sess), nil
}

// maskFailed ends a mask that CXone did not accept. One that CXone refused, or that
// never went to CXone, masked nothing (audit outcome "rejected" or "not_sent").
func (s *Service) maskFailed(ctx context.Context, b begin, opID, caller string, err error) (Session, error) {
	sess := b.session
	status, elapsed := upstreamStatus(err)
	definitive := errorIsAny(err, ErrNoActiveCall, ErrInternalCall, ErrUpstreamRefused)
	nothing, outcome := definitive, outcomeRejected
	if errors.Is(err, errUpstreamNotSent) {
		nothing, outcome = true, outcomeNotSent
	}
	var serr error
	var msg string
	switch {
	case nothing && b.outcome == "superseded":
		// Nothing was masked, and the earlier call may still be: the session this mask
		// superseded comes back in place of the write-ahead record, its unmask pending.
		// Only the mask that superseded it may: a re-mask of a session that still keeps
		// the one it superseded (its mask's answer never recorded) keeps that session
		// open, since its mask may have masked, and its deadline unmasks the agent.
		_, serr = s.store.close(ctx, sess.UserID, opID, closeRejected, "", codeOf(err))
		msg = "mask failed at CXone; the session it superseded is back, its unmask pending"
	case nothing && b.outcome != "refreshed":
		// Nothing was masked: the write-ahead record goes.
		_, serr = s.store.close(ctx, sess.UserID, opID, closeRejected, "", codeOf(err))
		msg = "mask failed at CXone; session removed"
	case errorIsAny(err, ErrNoActiveCall):
		// A re-mask that finds no call: the masked call has ended.
		_, serr = s.store.close(ctx, sess.UserID, opID, CloseCallEnded, caller, codeOf(err))
		outcome, msg = outcomeCallEnded, "re-mask found no active call; session closed"
	case nothing:
		serr = s.store.finish(ctx, sess.UserID, opID, finishing{code: codeOf(err), keepSuperseded: true})
		msg = "re-mask failed at CXone; the open session keeps its deadline"
	default:
		serr = s.store.finish(ctx, sess.UserID, opID, finishing{code: codeOf(err)})
		outcome, msg = "unknown", "mask outcome unknown; the session stays open and its deadline will unmask the agent"
	}
	s.auditMask(ctx, evMaskFailed, sess, caller, status, elapsed).Err(err).Str("outcome", outcome).Msg(msg)
	if serr != nil {
		s.auditSession(ctx, evStoreFailed, sess, caller).Err(serr).Str("outcome", "unknown").Msg("could not record the mask's failure; the deadline still holds")
	}
	return Session{}, err
}

// auditMask is the audit line of a mask's outcome, with the deadline the mask wrote
// ahead (which stands whatever CXone answered, unless the session goes).
func (s *Service) auditMask(ctx context.Context, e event, sess Session, caller string, status int, elapsed time.Duration) *zerolog.Event {
	return s.auditUpstream(ctx, e, sess, caller, status, elapsed).Time("expires_at", sess.ExpiresAt)
}

func pendingOutcome(res upstream.Result) string {
	if res.Accepted() {
		return "accepted"
	}
	return "done"
}
