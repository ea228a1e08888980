package sessions

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// SweeperConfig configures a Sweeper.
type SweeperConfig struct {
	Interval    time.Duration // how often due sessions are claimed (MASKGATE_SWEEP_INTERVAL, 1s)
	Concurrency int           // CXone calls in flight at most (16)
	Lease       time.Duration // how long a claim holds a session before another replica may take it (10s)
	Log         zerolog.Logger
}

// Sweeper does what no request does (design §3.4–§3.6): it unmasks sessions whose
// deadline passed, retries failed unmasks, and confirms CXone's 202 answers through
// the recording status. Each replica runs one; due sessions are claimed in Redis with
// a lease, so each is worked by one replica at a time, and a dead replica's claims are
// taken over when their lease ends. It never holds more claims than it can work at
// once, so a burst of expiries is worked off steadily at Concurrency calls at a time.
type Sweeper struct {
	svc     *Service
	cfg     SweeperConfig
	replica string
	claims  atomic.Int64
	// claimFailed logs a failed claim, once per claimFailedEvery: while Redis is down
	// every sweep fails, and maskgate_redis_up and its alert say so already.
	claimFailed zerolog.Logger
}

// claimFailedEvery is how often a sweeper that keeps failing to claim says so.
const claimFailedEvery = 10 * time.Second

// NewSweeper returns the service's sweeper.
func (s *Service) NewSweeper(cfg SweeperConfig) *Sweeper {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 10 * time.Second
	}
	return &Sweeper{svc: s, cfg: cfg, replica: uuid.NewString()[:8],
		claimFailed: cfg.Log.Sample(&zerolog.BurstSampler{Burst: 1, Period: claimFailedEvery})}
}

// errReleased is the cause with which a stopping sweeper ends the work it holds.
var errReleased = errors.New("sweeper stopping: claim released")

// Run sweeps until ctx ends. Then it stops claiming, ends the work under way and
// releases those claims at once (due now, no failed attempt counted), so that another
// replica takes them without waiting for their lease.
func (w *Sweeper) Run(ctx context.Context) {
	slots := make(chan struct{}, w.cfg.Concurrency)
	freed := make(chan struct{}, 1)
	var work sync.WaitGroup
	workCtx, release := context.WithCancelCause(context.WithoutCancel(ctx))
	defer func() {
		release(errReleased)
		work.Wait()
	}()
	tick := time.NewTicker(w.cfg.Interval)
	defer tick.Stop()
	for {
		full := w.sweep(ctx, workCtx, slots, freed, &work)
		wake := tick.C
		var more <-chan struct{}
		if full {
			more = freed // more may be due: claim again as soon as a slot frees
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-more:
		}
	}
}

// sweep claims as many due sessions as there are free slots and starts working them
// under workCtx; it reports whether it filled every free slot.
func (w *Sweeper) sweep(ctx, workCtx context.Context, slots chan struct{}, freed chan struct{}, work *sync.WaitGroup) bool {
	free := cap(slots) - len(slots)
	if free == 0 {
		return true
	}
	prefix := w.replica + "-" + strconv.FormatInt(w.claims.Add(1), 36)
	cctx, cancel := context.WithTimeout(ctx, w.cfg.Interval+time.Second)
	claimed, err := w.svc.store.claim(cctx, free, prefix, w.cfg.Lease)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			w.claimFailed.Error().Err(err).Msg("sweeper could not claim due sessions")
		}
		return false
	}
	for _, c := range claimed {
		slots <- struct{}{}
		work.Go(func() {
			defer func() {
				<-slots
				select {
				case freed <- struct{}{}:
				default:
				}
			}()
			// A claim is worth its lease: work it under that deadline.
			jctx, cancel := context.WithTimeout(workCtx, w.cfg.Lease-time.Second/2)
			defer cancel()
			w.work(w.cfg.Log.WithContext(jctx), c)
		})
	}
	return len(claimed) == free
}

// work does what a claimed session needs. Deadlines are compared with Redis's clock
// at the claim, so a replica whose own clock is off acts on time all the same. The
// unmasks it sends audit every outcome, a failure to record it included: their answers
// are for a caller, and the sweeper has none.
func (w *Sweeper) work(ctx context.Context, c claimed) {
	s := w.svc
	switch {
	case (c.State == StateMasked || c.State == StateMasking) && !c.now.Before(c.ExpiresAt):
		s.metrics.sweeperLag.Observe(c.now.Sub(c.ExpiresAt).Seconds())
		_, _ = s.unmask(ctx, unmaskJob{session: c.Session, opID: c.opID, closeAs: CloseExpired, by: maskgateCaller,
			event: evExpired, attempts: c.attempts, retryFrom: c.retryFrom, now: c.now})
	case !c.confirmUntil.IsZero():
		w.confirm(ctx, c)
	case c.State == StateUnmasking:
		// Whoever asked for the unmask, a caller or the sweeper on expiry (every script
		// that writes "unmasking" writes unmaskedBy with it).
		_, _ = s.unmask(ctx, unmaskJob{session: c.Session, opID: c.opID, closeAs: c.closeAs, by: c.UnmaskedBy,
			event: closeEvent(c.closeAs), attempts: c.attempts, retryFrom: c.retryFrom, now: c.now})
	default:
		// Not due after all: back to its deadline.
		if err := s.store.finish(ctx, c.UserID, c.opID, finishing{next: "expiry"}); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Str("user_id", c.UserID).Msg("sweeper could not release a session")
		}
	}
}

// confirm checks a 202 through CXone's recording status (design §3.6): a mask is
// confirmed when CXone reports the recording masked, an unmask when it no longer does.
// Unconfirmed within the window, a mask stays "masking" (its deadline still unmasks)
// and an unmask is a failed one: sent again after a backoff, and given up at
// MASKGATE_UNMASK_GIVEUP, so that a CXone that keeps accepting unmasks it never carries
// out is not asked for ever without a word.
func (w *Sweeper) confirm(ctx context.Context, c claimed) {
	s := w.svc
	rec, err := s.recording(ctx, c.UserID)
	masked := rec.ActiveCall && rec.Status.StatusReason == "Mask"
	expired := c.now.After(c.confirmUntil)
	ev := func(e event, outcome string) {
		s.auditSession(ctx, e, c.Session, maskgateCaller).Str("outcome", outcome).AnErr("error", err).
			Str("status_reason", rec.Status.StatusReason).Msg("confirmation of CXone's 202")
	}
	var serr error
	switch {
	case err == nil && !rec.ActiveCall:
		_, serr = s.store.close(ctx, c.UserID, c.opID, CloseCallEnded, maskgateCaller, "")
		ev(evCallEnded, "done")
	case c.State == StateMasking && err == nil && masked:
		serr = s.store.finish(ctx, c.UserID, c.opID, finishing{state: StateMasked, confirm: "0", next: "expiry"})
		ev(evMaskConfirmed, "done")
	case c.State == StateUnmasking && err == nil && !masked:
		_, serr = s.store.close(ctx, c.UserID, c.opID, c.closeAs, "", "")
		ev(evUnmaskConfirmed, "done")
	case !expired:
		serr = s.store.finish(ctx, c.UserID, c.opID, finishing{next: after(time.Second)})
	case c.State == StateMasking:
		serr = s.store.finish(ctx, c.UserID, c.opID, finishing{confirm: "0", next: "expiry"})
		ev(evMaskUnconfirmed, "unknown")
	default:
		why := fmt.Errorf("%w (statusReason %q)", errUnconfirmed, rec.Status.StatusReason)
		if err != nil {
			why = fmt.Errorf("%w (its recording status: %w)", errUnconfirmed, err)
		}
		_, _ = s.unmaskNotDone(ctx, unmaskJob{session: c.Session, opID: c.opID, closeAs: c.closeAs, by: c.UnmaskedBy,
			attempts: c.attempts, retryFrom: c.retryFrom, now: c.now}, evUnmaskUnconfirmed, why, 0, 0)
	}
	if serr != nil {
		zerolog.Ctx(ctx).Warn().Err(serr).Str("user_id", c.UserID).Msg("sweeper could not record a confirmation")
	}
}
