package sessions

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

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
	RetryBackoff   time.Duration // first wait before an unmask is retried, doubled up to RetryMax (1s)
	RetryMax       time.Duration // the longest wait between two attempts of an unmask (1m)
	// MaxVerifying bounds the callers' recording-status checks (Verify) in flight (16),
	// so that callers polling them cannot take the CXone slots masks and unmasks need.
	MaxVerifying int
	Registerer   prometheus.Registerer
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
	store     *Store
	cx        CXone
	cfg       Config
	metrics   *metrics
	verifying chan struct{} // one slot per Verify asking CXone
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
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = time.Minute
	}
	if cfg.MaxVerifying <= 0 {
		cfg.MaxVerifying = 16
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{store: store, cx: cx, cfg: cfg, verifying: make(chan struct{}, cfg.MaxVerifying)}
	s.metrics = newMetrics(cfg.Registerer, store)
	return s
}

// lease is how long a request's operation holds the agent's lock: its CXone budget and
// a third more. A replica that dies holding it blocks the agent at most this long.
func (s *Service) lease() time.Duration { return s.cfg.UpstreamBudget + s.cfg.UpstreamBudget/3 }

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
			s.audit(ctx, evRejected, userID, "", caller).Err(err).Str("outcome", outcomeOf(err)).Msg("operation not started; CXone not called")
			return Session{}, err
		}
		switch b.outcome {
		case "rate_limited":
			return Session{}, &rateLimited{wait: b.busyFor}
		case "join":
			if sess, err, ok := s.awaitResult(ctx, b.joinOp, s.cfg.Now().Add(b.busyFor), waitUntil); ok {
				s.audit(ctx, evCoalesced, userID, sess.ID, caller).Str("op_id", b.joinOp).Str("outcome", outcomeOf(err)).
					Msg("joined an identical operation in flight")
				return sess, err
			}
		case "busy":
		default:
			return run(context.WithoutCancel(ctx), b, opID)
		}
		if s.cfg.Now().Add(pause).After(waitUntil) {
			s.audit(ctx, evRejected, userID, "", caller).Str("outcome", "agent_busy").Msg("another operation on the agent did not finish in time")
			return Session{}, ErrAgentBusy
		}
		if err := sleep(ctx, pause); err != nil {
			s.audit(ctx, evRejected, userID, "", caller).Str("outcome", "caller_gone").Msg("the caller stopped waiting for the busy agent")
			return Session{}, fmt.Errorf("%w: %w", ErrAgentBusy, err)
		}
	}
}

// awaitResult waits for operation opID's answer while its lease lasts (lockUntil);
// false when none came (its holder died: the caller retries and takes the lock over) or
// when the caller stopped waiting, during a poll or between two (operate says so).
func (s *Service) awaitResult(ctx context.Context, opID string, lockUntil, waitUntil time.Time) (Session, error, bool) {
	until := lockUntil.Add(100 * time.Millisecond)
	if waitUntil.Before(until) {
		until = waitUntil
	}
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		r, ok, err := s.store.result(ctx, opID)
		if err != nil {
			if ctx.Err() != nil {
				return Session{}, nil, false
			}
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
