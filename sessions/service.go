package sessions

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/maskgate/maskgate/upstream"
)

// CXone is what the Service needs of the recording platform; *upstream.Client is it.
type CXone interface {
	Mask(ctx context.Context, userID string) (upstream.Result, error)
	Unmask(ctx context.Context, userID string) (upstream.Result, error)
	RecordingStatus(ctx context.Context, userID string) (upstream.RecordingStatus, error)
}

// Config holds the Service's limits.
type Config struct {
	DefaultTTL     time.Duration // a mask's lifetime when the caller names none (MASKGATE_MASK_TTL)
	MaxTTL         time.Duration // the longest lifetime a caller may ask for (MASKGATE_MASK_TTL_MAX)
	UpstreamBudget time.Duration // how long one request may spend on CXone, retries included (15s)
	UnmaskGiveUp   time.Duration // how long a failing unmask is retried (MASKGATE_UNMASK_GIVEUP, 1h)
	ConfirmWindow  time.Duration // how long a 202 is confirmed through the recording status (30s)
	RetryBackoff   time.Duration // first wait before an unmask is retried, doubled up to a minute (1s)
	Registerer     prometheus.Registerer
	// Now is this replica's clock (default time.Now). It only measures waits: every
	// deadline, lease and retry start is Redis's TIME, so replicas whose clocks differ
	// agree on them.
	Now func() time.Time
}

// MaxReasonLength caps a mask's reason, in characters.
const MaxReasonLength = 200

// maskgateCaller names the gateway itself as the one who unmasked on expiry.
const maskgateCaller = "maskgate"

// Service masks and unmasks agents and keeps their sessions. For each agent at most one
// operation — a request's mask or unmask, or the sweeper's work — runs at a time across
// all replicas: it holds the lock in the agent's session (design §3.2).
type Service struct {
	store   *Store
	cx      CXone
	cfg     Config
	metrics *metrics
}

// NewService returns a Service over store and cx.
func NewService(store *Store, cx CXone, cfg Config) *Service {
	if cfg.UpstreamBudget <= 0 {
		cfg.UpstreamBudget = 15 * time.Second
	}
	if cfg.UnmaskGiveUp <= 0 {
		cfg.UnmaskGiveUp = time.Hour
	}
	if cfg.ConfirmWindow <= 0 {
		cfg.ConfirmWindow = 30 * time.Second
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = time.Second
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{store: store, cx: cx, cfg: cfg}
	s.metrics = newMetrics(cfg.Registerer, store)
	return s
}

// lease is how long a request's operation holds the agent's lock: its CXone budget and
// a third more. A replica that dies holding it blocks the agent at most this long.
func (s *Service) lease() time.Duration { return s.cfg.UpstreamBudget + s.cfg.UpstreamBudget/3 }

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
		return fmt.Errorf("%w: reason must be at most %d characters", ErrInvalidInput, MaxReasonLength)
	}
	if t := in.TTLSeconds; t != nil && (*t < 1 || int64(*t) > int64(maxTTL/time.Second)) {
		return fmt.Errorf("%w: ttlSeconds must be between 1 and %d", ErrInvalidInput, int64(maxTTL/time.Second))
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
	if err := in.Validate(s.cfg.MaxTTL); err != nil {
		return Session{}, err
	}
	ttl := s.cfg.DefaultTTL
	if in.TTLSeconds != nil {
		ttl = time.Duration(*in.TTLSeconds) * time.Second
	}
	fp := fingerprint("mask", strconv.FormatInt(ttl.Milliseconds(), 10), in.Reason)
	return s.operate(ctx, in.UserID, in.Caller, func(opID string, rate bool) (begin, error) {
		return s.store.beginMask(ctx, in, uuid.NewString(), opID, fp, ttl, s.lease(), only(rate, in.Rate))
	}, func(ctx context.Context, b begin, opID string) (Session, error) {
		return s.mask(ctx, b, opID, in.Caller)
	})
}

// mask runs a mask that holds the agent's lock (operate: ctx does not end with the
// caller).
func (s *Service) mask(ctx context.Context, b begin, opID, caller string) (Session, error) {
	sess := b.session
	event := "masked"
	if b.outcome == "refreshed" {
		event = "re-masked"
	}
	uctx, cancel := context.WithTimeout(ctx, s.cfg.UpstreamBudget)
	res, err := s.cx.Mask(uctx, sess.UserID)
	cancel()
	if err != nil {
		return s.maskFailed(ctx, b, opID, caller, err)
	}
	f := finishing{state: StateMasked, confirm: "0"}
	if res.Accepted() {
		event += "_pending"
		f = finishing{state: StateMasking, confirm: after(s.cfg.ConfirmWindow), next: after(time.Second)}
	}
	done, ferr := s.store.finish(ctx, sess.UserID, opID, f)
	ev := s.auditUpstream(ctx, event, sess, caller, res.Status, res.Duration).Time("expires_at", sess.ExpiresAt).Str("reason", sess.Reason)
	if ferr != nil {
		ev.Str("outcome", "lock_lost").Err(ferr).Msg("CXone masked but the session could not be updated; its deadline still holds")
		sess.State = f.state
		return sess, nil
	}
	ev.Str("outcome", pendingOutcome(res)).Msg("mask")
	return done, nil
}

// maskFailed ends a mask that CXone did not accept.
func (s *Service) maskFailed(ctx context.Context, b begin, opID, caller string, err error) (Session, error) {
	sess := b.session
	status, elapsed := upstreamStatus(err)
	definitive := errorIsAny(err, ErrNoActiveCall, ErrInternalCall, ErrUpstreamRefused)
	ev := s.auditUpstream(ctx, "mask_failed", sess, caller, status, elapsed).Err(err)
	var serr error
	switch {
	case definitive && b.outcome != "refreshed":
		// Nothing was masked: the write-ahead record goes.
		_, serr = s.store.close(ctx, sess.UserID, opID, closeRejected, "", codeOf(err))
		ev = ev.Str("outcome", "rejected")
		ev.Msg("CXone refused the mask; session removed")
	case errorIsAny(err, ErrNoActiveCall):
		// A re-mask that finds no call: the masked call has ended.
		_, serr = s.store.close(ctx, sess.UserID, opID, CloseCallEnded, caller, codeOf(err))
		ev.Str("outcome", "call_ended").Msg("re-mask found no active call; session closed")
	case definitive:
		_, serr = s.store.finish(ctx, sess.UserID, opID, finishing{code: codeOf(err)})
		ev.Str("outcome", "rejected").Msg("CXone refused the re-mask; the open session keeps its deadline")
	default:
		_, serr = s.store.finish(ctx, sess.UserID, opID, finishing{code: codeOf(err)})
		ev.Str("outcome", "unknown").Time("expires_at", sess.ExpiresAt).
			Msg("mask outcome unknown; the session stays open and its deadline will unmask the agent")
	}
	if serr != nil {
		s.audit(ctx, "store_failed", sess.UserID, sess.ID, caller).Err(serr).Str("outcome", "unknown").Msg("could not record the mask's failure; the deadline still holds")
	}
	return Session{}, err
}

// UnmaskInput is a request to unmask an agent.
type UnmaskInput struct {
	UserID    string
	Caller    string
	SessionID *string // optional precondition: the open session must be this one
	Force     bool    // operator override: unmask at CXone even without an open session
	Rate      Rate    // the caller's rate limit, counted with the first transition
}

// maxSessionIDLength bounds a sessionId a caller may send (ours are 36 characters).
const maxSessionIDLength = 64

// Validate checks the input against the domain's rules.
func (in UnmaskInput) Validate() error {
	if !ValidUserID(in.UserID) {
		return ErrInvalidUserID
	}
	if id := in.SessionID; id != nil && (*id == "" || len(*id) > maxSessionIDLength) {
		return fmt.Errorf("%w: sessionId must be 1 to %d characters", ErrInvalidInput, maxSessionIDLength)
	}
	return nil
}

// Unmask unmasks the agent's recording (design §3.4): the session is marked
// "unmasking", CXone is asked, and the session closes on 200 (unmasked) or 404
// (call_ended). On 202 or a transient failure the session stays "unmasking" — the
// sweeper confirms or retries it — and the answer says so; with no open session nothing
// is sent to CXone (ErrNotMasked).
func (s *Service) Unmask(ctx context.Context, in UnmaskInput) (Session, error) {
	if err := in.Validate(); err != nil {
		return Session{}, err
	}
	expected := ""
	if in.SessionID != nil {
		expected = *in.SessionID
	}
	fp := fingerprint("unmask", expected)
	return s.operate(ctx, in.UserID, in.Caller, func(opID string, rate bool) (begin, error) {
		return s.store.beginUnmask(ctx, in.UserID, expected, in.Caller, opID, fp, s.lease(), only(rate, in.Rate))
	}, func(ctx context.Context, b begin, opID string) (Session, error) {
		switch {
		case b.outcome == "not_masked" && in.Force:
			return s.forceUnmask(ctx, in)
		case b.outcome == "not_masked":
			return Session{}, ErrNotMasked
		case b.outcome == "mismatch":
			return Session{}, ErrSessionMismatch
		}
		return s.unmask(ctx, unmaskJob{session: b.session, opID: opID, closeAs: CloseUnmasked, by: in.Caller, event: "unmasked"})
	})
}

// forceUnmask sends an unmask for an agent the gateway has no session for: an
// operator's recovery after Redis lost sessions. There is no session to lock or close;
// the audit line says who forced it.
func (s *Service) forceUnmask(ctx context.Context, in UnmaskInput) (Session, error) {
	uctx, cancel := context.WithTimeout(ctx, s.cfg.UpstreamBudget)
	res, err := s.cx.Unmask(uctx, in.UserID)
	cancel()
	status, elapsed := res.Status, res.Duration
	if err != nil {
		status, elapsed = upstreamStatus(err)
	}
	forced := Session{UserID: in.UserID, State: StateClosed, CloseReason: CloseUnmasked,
		UnmaskedAt: s.cfg.Now().UTC(), UnmaskedBy: in.Caller, Forced: true}
	if err == nil && res.Accepted() {
		forced.State = StateUnmasking
	}
	s.auditUpstream(ctx, "forced_unmask", forced, in.Caller, status, elapsed).Err(err).Str("outcome", outcomeOf(err)).
		Msg("operator forced an unmask without an open session")
	if err != nil {
		return Session{}, err
	}
	return forced, nil
}

// only is rate on the first attempt of an operation and nothing on its retries: a
// request counts once against its caller's rate.
func only(first bool, rate Rate) Rate {
	if first {
		return rate
	}
	return Rate{}
}

// operate runs one operation on an agent under its lock: begin tries to take the lock
// (with a fresh operation id, counting the caller's rate on the first try); when an
// identical operation holds it, its answer is awaited and returned; when another does,
// begin is retried once it is released. Waiting is bounded by the CXone budget.
//
// run does the work under the lock, to its end even when the caller goes away (within
// the CXone budget): requests that joined it wait for its answer, which must be CXone's,
// not the first caller's hang-up, and a mask begun is better finished than left with an
// unknown outcome.
func (s *Service) operate(ctx context.Context, userID, caller string, beginOp func(opID string, first bool) (begin, error), run func(context.Context, begin, string) (Session, error)) (Session, error) {
	waitUntil := s.cfg.Now().Add(s.cfg.UpstreamBudget)
	for pause, first := 5*time.Millisecond, true; ; pause, first = min(2*pause, 200*time.Millisecond), false {
		opID := uuid.NewString()
		b, err := beginOp(opID, first)
		if err != nil {
			s.audit(ctx, "rejected", userID, "", caller).Err(err).Str("outcome", outcomeOf(err)).Msg("operation not started; CXone not called")
			return Session{}, err
		}
		switch b.outcome {
		case "rate_limited":
			return Session{}, &rateLimited{wait: b.busyFor}
		case "join":
			if sess, err, ok := s.awaitResult(ctx, b.joinOp, s.cfg.Now().Add(b.busyFor), waitUntil); ok {
				s.audit(ctx, "coalesced", userID, sess.ID, caller).Str("op_id", b.joinOp).Str("outcome", outcomeOf(err)).
					Msg("joined an identical operation in flight")
				return sess, err
			}
		case "busy":
		case "not_masked", "mismatch":
			s.audit(ctx, "rejected", userID, b.session.ID, caller).Str("outcome", b.outcome).Msg("unmask refused; CXone not called")
			fallthrough
		default:
			return run(context.WithoutCancel(ctx), b, opID)
		}
		if s.cfg.Now().Add(pause).After(waitUntil) {
			s.audit(ctx, "rejected", userID, "", caller).Str("outcome", "agent_busy").Msg("another operation on the agent did not finish in time")
			return Session{}, ErrAgentBusy
		}
		if err := sleep(ctx, pause); err != nil {
			s.audit(ctx, "rejected", userID, "", caller).Str("outcome", "caller_gone").Msg("the caller stopped waiting for the busy agent")
			return Session{}, fmt.Errorf("%w: %w", ErrAgentBusy, err)
		}
	}
}

// awaitResult waits for operation opID's answer while its lease lasts (lockUntil);
// false when none came (its holder died: the caller retries and takes the lock over).
func (s *Service) awaitResult(ctx context.Context, opID string, lockUntil, waitUntil time.Time) (Session, error, bool) {
	until := lockUntil.Add(100 * time.Millisecond)
	if waitUntil.Before(until) {
		until = waitUntil
	}
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		r, ok, err := s.store.result(ctx, opID)
		if err != nil {
			return Session{}, err, true
		}
		if ok {
			sess, derr := decodeSession(r.Session)
			if derr != nil {
				return Session{}, derr, true
			}
			return sess, errOf(r.Code), true
		}
		if s.cfg.Now().After(until) || sleep(ctx, pause) != nil {
			return Session{}, nil, false
		}
	}
}

// unmaskJob is one unmask of a session whose lock the caller holds.
type unmaskJob struct {
	session   Session
	opID      string
	closeAs   CloseReason // the reason the session closes with on CXone's 200
	by        string      // who unmasks
	event     string      // the audit event on success
	attempts  int         // failed unmasks so far
	retryFrom time.Time   // the first failed unmask (Redis's clock), zero when none
	now       time.Time   // Redis's clock when the sweeper claimed it; zero for a request
}

// unmask asks CXone to unmask and moves the session on: closed on 200 (closeAs) or 404
// (call_ended); "unmasking" with a confirmation on 202; "unmasking" with a retry
// scheduled by the sweeper on a failure, until MASKGATE_UNMASK_GIVEUP passes. The error
// is CXone's when it refused (not when it failed transiently).
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
		_, ferr := s.store.finish(ctx, sess.UserID, j.opID, finishing{next: after(0)})
		s.auditUpstream(ctx, "released", sess, j.by, status, elapsed).Str("outcome", "pending").AnErr("store_error", ferr).
			Msg("replica stopping: unmask handed over to another replica")
		return orSession(Session{}, sess, sess.State), nil
	case err == nil && res.Accepted():
		done, ferr := s.store.finish(ctx, sess.UserID, j.opID, finishing{state: StateUnmasking, closeAs: j.closeAs,
			unmaskedBy: j.by, confirm: after(s.cfg.ConfirmWindow), next: after(time.Second)})
		s.auditUpstream(ctx, "unmask_pending", sess, j.by, status, elapsed).Str("outcome", "accepted").AnErr("store_error", ferr).
			Msg("CXone accepted the unmask; confirming it through the recording status")
		return orSession(done, sess, StateUnmasking), nil
	case err == nil || errorIsAny(err, ErrNoActiveCall):
		reason, event := j.closeAs, j.event
		if err != nil {
			reason, event = CloseCallEnded, "call_ended"
		}
		closed, cerr := s.store.close(ctx, sess.UserID, j.opID, reason, j.by, "")
		ev := s.auditUpstream(ctx, event, sess, j.by, status, elapsed).Str("outcome", "done").Time("masked_at", sess.MaskedAt)
		if cerr != nil {
			ev.Err(cerr).Msg("CXone unmasked but the session could not be closed; the sweeper will unmask again")
			return orSession(Session{}, sess, StateUnmasking), nil
		}
		ev.Msg("unmask")
		return closed, nil
	}
	s.metrics.unmaskFailures.Inc()
	now := j.now
	if now.IsZero() {
		now = s.cfg.Now()
	}
	retryFrom := j.retryFrom
	if retryFrom.IsZero() {
		retryFrom = now
	}
	if now.Sub(retryFrom) >= s.cfg.UnmaskGiveUp {
		_, ferr := s.store.finish(ctx, sess.UserID, j.opID, finishing{code: codeOf(err), next: "none", gaveUp: true})
		s.metrics.giveUps.Inc()
		s.auditUpstream(ctx, "unmask_gave_up", sess, j.by, status, elapsed).Err(err).AnErr("store_error", ferr).
			Str("outcome", "gave_up").Int("attempts", j.attempts+1).Time("retrying_since", retryFrom).
			Msg("AUDIT ERROR: CXone did not unmask within MASKGATE_UNMASK_GIVEUP; the agent may still be masked")
		return orSession(Session{}, sess, StateUnmasking), err
	}
	wait := retryWait(s.cfg.RetryBackoff, j.attempts)
	code := ""
	if !errorIsAny(err, ErrUpstreamUnavailable, ErrUpstreamTimeout) {
		code = codeOf(err) // refused: the caller hears it, the sweeper still retries
	}
	done, ferr := s.store.finish(ctx, sess.UserID, j.opID, finishing{code: code, state: StateUnmasking, closeAs: j.closeAs,
		unmaskedBy: j.by, retry: true, confirm: "0", next: after(wait)})
	s.auditUpstream(ctx, "unmask_retry", sess, j.by, status, elapsed).Err(err).AnErr("store_error", ferr).
		Str("outcome", "pending").Int("attempts", j.attempts+1).Dur("retry_in", wait).
		Msg("CXone did not unmask; the session stays unmasking and the sweeper retries")
	if code != "" {
		return Session{}, err
	}
	return orSession(done, sess, StateUnmasking), nil
}

// retryWait is the wait before the next unmask after attempts failures: exponential
// from base, capped at a minute.
func retryWait(base time.Duration, attempts int) time.Duration {
	return min(time.Minute, base<<min(attempts, 10))
}

// orSession returns done, or (when the store could not say) what the caller knew with
// the state it expects.
func orSession(done, known Session, state State) Session {
	if done.ID != "" {
		return done
	}
	known.State = state
	return known
}

// Get returns the agent's open session, or ErrNotMasked.
func (s *Service) Get(ctx context.Context, userID string) (Session, error) {
	if !ValidUserID(userID) {
		return Session{}, ErrInvalidUserID
	}
	return s.store.get(ctx, userID)
}

// Recording is CXone's own view of an agent's recording (design §3.6).
type Recording struct {
	ActiveCall bool
	Status     upstream.RecordingStatus
}

// Verify returns the agent's open session with CXone's recording status of the agent.
func (s *Service) Verify(ctx context.Context, userID string) (Session, Recording, error) {
	sess, err := s.Get(ctx, userID)
	if err != nil {
		return Session{}, Recording{}, err
	}
	rec, err := s.recording(ctx, userID)
	return sess, rec, err
}

func (s *Service) recording(ctx context.Context, userID string) (Recording, error) {
	uctx, cancel := context.WithTimeout(ctx, s.cfg.UpstreamBudget)
	defer cancel()
	rs, err := s.cx.RecordingStatus(uctx, userID)
	switch {
	case errorIsAny(err, ErrNoActiveCall):
		return Recording{}, nil
	case err != nil:
		return Recording{}, err
	}
	return Recording{ActiveCall: true, Status: rs}, nil
}

// Page is one page of open sessions.
type Page struct {
	Sessions []Session
	Next     string // the cursor of the next page; empty on the last one
}

// List returns up to limit open sessions in userId order, after the session the cursor
// points at (an empty cursor starts at the beginning).
func (s *Service) List(ctx context.Context, cursor string, limit int) (Page, error) {
	after, err := decodeCursor(cursor)
	if err != nil {
		return Page{}, err
	}
	// One more than asked tells whether there is a next page.
	found, err := s.store.list(ctx, after, limit+1)
	if err != nil {
		return Page{}, err
	}
	page := Page{Sessions: found}
	if len(found) > limit {
		page.Sessions = found[:limit]
		page.Next = encodeCursor(found[limit-1].UserID)
	}
	return page, nil
}

// A cursor is the last listed userId, opaque to callers.
func encodeCursor(userID string) string { return base64.RawURLEncoding.EncodeToString([]byte(userID)) }

// decodeCursor returns the userId a cursor points after ("" for no cursor), or
// ErrInvalidCursor for anything encodeCursor did not make.
func decodeCursor(cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	// Only the one encoding encodeCursor makes: the decoder alone also takes other
	// trailing bits and skips newlines.
	if err != nil || !ValidUserID(string(raw)) || encodeCursor(string(raw)) != cursor {
		return "", ErrInvalidCursor
	}
	return string(raw), nil
}

// Ready reports whether the store answers.
func (s *Service) Ready(ctx context.Context) error { return s.store.Ping(ctx) }

// fingerprint names a request's parameters, so that only identical requests coalesce.
func fingerprint(parts ...string) string {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return strconv.FormatUint(h.Sum64(), 36)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func pendingOutcome(res upstream.Result) string {
	if res.Accepted() {
		return "accepted"
	}
	return "done"
}
