package sessions

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Each script is one transition of a session, but for given_up and overdue, which only
// read for the gauges at scrape time; its header lists KEYS and ARGV.
var (
	//go:embed lua/mask_begin.lua
	maskBeginSrc string
	//go:embed lua/unmask_begin.lua
	unmaskBeginSrc string
	//go:embed lua/finish.lua
	finishSrc string
	//go:embed lua/close.lua
	closeSrc string
	//go:embed lua/claim.lua
	claimSrc string
	//go:embed lua/rate_check.lua
	rateCheckSrc string
	//go:embed lua/keep_result.lua
	keepResultSrc string
	//go:embed lua/rate.lua
	rateSrc string
	//go:embed lua/clock.lua
	clockSrc string
	//go:embed lua/held.lua
	heldSrc string
	//go:embed lua/given_up.lua
	givenUpSrc string
	//go:embed lua/overdue.lua
	overdueSrc string

	// The begin scripts count the caller's request first: one round trip for both.
	beginSrc          = clockSrc + rateCheckSrc + sessionSrc + heldSrc
	maskBeginScript   = redis.NewScript(beginSrc + maskBeginSrc)
	unmaskBeginScript = redis.NewScript(beginSrc + unmaskBeginSrc)
	rateScript        = redis.NewScript(clockSrc + rateCheckSrc + rateSrc)
	finishScript      = redis.NewScript(clockSrc + keepResultSrc + sessionSrc + finishSrc)
	closeScript       = redis.NewScript(clockSrc + keepResultSrc + sessionSrc + closeSrc)
	claimScript       = redis.NewScript(clockSrc + sessionSrc + claimSrc)
	givenUpScript     = redis.NewScript(givenUpSrc)
	overdueScript     = redis.NewScript(clockSrc + overdueSrc)
)

// resultTTL is how long an operation's answer is kept for requests that joined it.
const resultTTL = time.Minute

// Store keeps sessions in Redis. Every key carries the hash tag {prefix}, so all of them
// live in one slot and the scripts also run on Redis Cluster:
//
//	{prefix}:session:<userId>  hash, the agent's open session and its operation lock (op, opId,
//	                           opFp, opUntil; opJoined once an identical request joined it)
//	{prefix}:due               sorted set, userId by when the sweeper must look next (ms)
//	{prefix}:open              sorted set, userId with score 0 (listing in userId order)
//	{prefix}:unmasking         set, userIds whose unmask is not finished
//	{prefix}:result:<opId>     string, an operation's answer, kept only when requests joined it (1 min)
//	{prefix}:idem:<hash>       string, an Idempotency-Key's record (24 h)
//	{prefix}:rate:<hash>       hash, a caller's request count per window, under the window's index (2 windows)
//
// Two versions share these keys during a rolling upgrade: testdata/redis-layout.txt holds
// them, fields and all, and TestRedisLayoutIsWhatTheLastVersionWrote fails on a change.
type Store struct {
	rdb           redis.UniversalClient
	scripts       *batcher
	tag           string
	sessionPrefix string
	due           string
	open          string
	unmasking     string
}

// NewStore returns a Store whose keys start with {prefix}.
func NewStore(rdb redis.UniversalClient, prefix string) *Store {
	tag := "{" + prefix + "}"
	return &Store{
		rdb:           rdb,
		scripts:       &batcher{rdb: rdb},
		tag:           tag,
		sessionPrefix: tag + ":session:",
		due:           tag + ":due",
		open:          tag + ":open",
		unmasking:     tag + ":unmasking",
	}
}

func (s *Store) sessionKey(userID string) string { return s.sessionPrefix + userID }
func (s *Store) resultKey(opID string) string    { return s.tag + ":result:" + opID }

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	return storeErr(s.rdb.Ping(ctx).Err())
}

// begin is what a begin script found: the session it locked, or that the agent's lock
// is held for busyFor more by an operation to join (joinOp) or to wait for, or that the
// caller must wait busyFor (rate_limited). A duration, not a time: Redis's clock and this
// replica's may differ.
type begin struct {
	outcome string // created, refreshed, superseded, ok, forced, mismatch, not_masked, join, busy
	session Session
	joinOp  string
	busyFor time.Duration
}

func (s *Store) beginMask(ctx context.Context, in MaskInput, newID, opID, fp string, ttl, lease time.Duration, rate Rate) (begin, error) {
	keys := []string{s.sessionKey(in.UserID), s.due, s.open, s.unmasking, s.rateKey(rate.Caller)}
	return s.begin(ctx, maskBeginScript, keys, in.UserID, newID, ttl.Milliseconds(), in.Caller, in.Reason, opID, lease.Milliseconds(), fp,
		rate.PerSecond, time.Second.Milliseconds())
}

// beginUnmask runs unmask_begin; forcedID, when not empty, is the id of the session a
// forced unmask opens when the agent has none.
func (s *Store) beginUnmask(ctx context.Context, userID, expectedID, caller, opID, fp, forcedID string, lease time.Duration, rate Rate) (begin, error) {
	keys := []string{s.sessionKey(userID), s.due, s.unmasking, s.rateKey(rate.Caller), s.open}
	return s.begin(ctx, unmaskBeginScript, keys, userID, expectedID, caller, opID, lease.Milliseconds(), fp,
		rate.PerSecond, time.Second.Milliseconds(), forcedID)
}

func (s *Store) begin(ctx context.Context, script *redis.Script, keys []string, args ...any) (begin, error) {
	reply, err := s.scripts.strings(ctx, script, keys, args...)
	if err != nil {
		return begin{}, storeErr(err)
	}
	b := begin{outcome: reply[0]}
	switch b.outcome {
	case "join":
		b.joinOp = reply[1]
		b.busyFor, err = msDuration(reply[2])
	case "busy", "rate_limited":
		b.busyFor, err = msDuration(reply[1])
	case "not_masked":
	default:
		b.session, err = decodeSession(reply[1:])
	}
	return b, err
}

// finishing is what finish changes; the zero value only releases the lock.
type finishing struct {
	code       string // the answer for joined requests: "" or an error code
	state      State
	next       string // "", "none", "expiry", or ms from now
	confirm    string // "", "0", or a window in ms
	retry      bool
	closeAs    CloseReason
	unmaskedBy string
	gaveUp     bool
	// keepSuperseded keeps the session that the session's own mask superseded: a
	// re-mask that masked nothing does not know that mask's outcome either.
	keepSuperseded bool
}

// after schedules the sweeper's next look d from now.
func after(d time.Duration) string { return strconv.FormatInt(max(d.Milliseconds(), 1), 10) }

// apply is the session that finish makes of the one its operation locked: of a
// Session's fields, it writes only the state and unmaskedBy.
func (f finishing) apply(sess Session) Session {
	if f.state != "" {
		sess.State = f.state
	}
	if f.unmaskedBy != "" {
		sess.UnmaskedBy = f.unmaskedBy
	}
	return sess
}

// finish runs finish for the operation opID on the agent's session; errStale when the
// operation no longer holds the lock. The session is then f.apply of the one it locked.
func (s *Store) finish(ctx context.Context, userID, opID string, f finishing) error {
	keys := []string{s.sessionKey(userID), s.due, s.resultKey(opID), s.unmasking}
	retry, gaveUp, keep := "", "", ""
	if f.retry {
		retry = "inc"
	}
	if f.gaveUp {
		gaveUp = "1"
	}
	if f.keepSuperseded {
		keep = "1"
	}
	_, err := s.fenced(ctx, finishScript, keys, opID, f.code, resultTTL.Milliseconds(), string(f.state),
		f.next, f.confirm, retry, string(f.closeAs), f.unmaskedBy, gaveUp, keep)
	return err
}

// close runs close: the operation opID ends the agent's session with reason; by ("" to
// keep) is who ended it; code is the answer for joined requests.
func (s *Store) close(ctx context.Context, userID, opID string, reason CloseReason, by, code string) (Session, error) {
	keys := []string{s.sessionKey(userID), s.due, s.open, s.unmasking, s.resultKey(opID)}
	fields, err := s.fenced(ctx, closeScript, keys, userID, opID, string(reason), by, code, resultTTL.Milliseconds())
	if err != nil {
		return Session{}, err
	}
	return decodeSession(fields)
}

// fenced runs a script that only the operation holding the agent's lock may run: its
// answer after the first element, or errStale.
func (s *Store) fenced(ctx context.Context, script *redis.Script, keys []string, args ...any) ([]string, error) {
	reply, err := s.scripts.strings(ctx, script, keys, args...)
	if err != nil {
		return nil, storeErr(err)
	}
	if reply[0] == "stale" {
		return nil, errStale
	}
	return reply[1:], nil
}

// claim locks up to n due sessions for the sweeper, each under an operation id that
// starts with opPrefix, for lease.
func (s *Store) claim(ctx context.Context, n int, opPrefix string, lease time.Duration) ([]claimed, error) {
	reply, err := s.scripts.run(ctx, claimScript, []string{s.due}, s.sessionPrefix, n, lease.Milliseconds(), opPrefix).Slice()
	if err != nil {
		return nil, storeErr(err)
	}
	out := make([]claimed, 0, len(reply))
	for _, r := range reply {
		raw, _ := r.([]any)
		f := strs(raw)
		sess, err := decodeSession(f)
		if err != nil {
			return nil, err
		}
		// After the session's fields: opId, closeAs, attempts, retryFrom, confirmUntil, now.
		more := f[sessionFieldCount:]
		if len(more) != 6 {
			return nil, fmt.Errorf("%w: bad claim record", ErrStoreUnavailable)
		}
		c := claimed{Session: sess, opID: more[0], closeAs: CloseReason(more[1])}
		c.attempts, _ = strconv.Atoi(more[2])
		if c.retryFrom, err = msTime(more[3]); err != nil {
			return nil, err
		}
		if c.confirmUntil, err = msTime(more[4]); err != nil {
			return nil, err
		}
		if c.now, err = msTime(more[5]); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// claimed is a session the sweeper holds, with what it needs to decide.
type claimed struct {
	Session
	opID         string
	closeAs      CloseReason // the reason an unmask under way will close with
	attempts     int         // failed unmasks so far
	retryFrom    time.Time   // the first failed unmask, zero when none
	confirmUntil time.Time   // non-zero while a 202 awaits confirmation
	now          time.Time   // Redis's clock at the claim
}

// result is the answer of a finished operation, for the requests that joined it.
type result struct {
	Code    string   `json:"code"`
	Session []string `json:"session"` // in sessionFields' order
}

// result returns operation opID's answer, or false while there is none yet.
func (s *Store) result(ctx context.Context, opID string) (result, bool, error) {
	raw, err := s.rdb.Get(ctx, s.resultKey(opID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return result{}, false, nil
	}
	if err != nil {
		return result{}, false, storeErr(err)
	}
	var r result
	if err := json.Unmarshal(raw, &r); err != nil {
		return result{}, false, fmt.Errorf("%w: bad result record", ErrStoreUnavailable)
	}
	return r, true, nil
}

// errStale: the operation no longer holds the agent's lock (its lease passed and
// another took over), so it may change nothing.
var errStale = errors.New("operation lock lost")

// storeErr classifies a Redis failure as ErrStoreUnavailable, keeping the cause.
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
}
