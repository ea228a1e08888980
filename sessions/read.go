package sessions

import (
	"context"
	"encoding/base64"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/upstream"
)

// Get returns the agent's open session, or ErrNotMasked.
func (s *Service) Get(ctx context.Context, userID string) (Session, error) {
	if !ValidUserID(userID) {
		return Session{}, ErrInvalidUserID
	}
	return s.store.get(ctx, CanonicalUserID(userID))
}

// Recording is CXone's own view of an agent's recording (design §3.6).
type Recording struct {
	ActiveCall bool
	Status     upstream.RecordingStatus
}

// verifyWait is how long a Verify waits for one of the MaxVerifying slots before it
// answers that CXone is busy.
const verifyWait = time.Second

// errTooManyVerifying is a Verify that found every slot taken for verifyWait.
var errTooManyVerifying = errors.New("too many recording-status checks in flight; masks and unmasks keep the rest of the CXone slots")

// Verify returns the agent's open session with CXone's recording status of the agent.
// An agent with no open session is a *NotMaskedError carrying CXone's status, so that
// a mask the gateway does not know of shows. At most MaxVerifying run at once: one
// that waits verifyWait for a slot is ErrUpstreamUnavailable, with a Retry-After of a
// second.
func (s *Service) Verify(ctx context.Context, userID string) (Session, Recording, error) {
	userID = CanonicalUserID(userID)
	sess, err := s.Get(ctx, userID)
	notMasked := errors.Is(err, ErrNotMasked)
	if err != nil && !notMasked {
		return Session{}, Recording{}, err
	}
	timer := time.NewTimer(verifyWait)
	defer timer.Stop()
	select {
	case s.verifying <- struct{}{}:
		defer func() { <-s.verifying }()
	case <-timer.C:
		return Session{}, Recording{}, &upstream.Error{Op: "recording-status", Kind: ErrUpstreamUnavailable,
			RetryAfter: time.Second, Err: errTooManyVerifying}
	case <-ctx.Done():
		return Session{}, Recording{}, ctx.Err()
	}
	rec, err := s.recording(ctx, userID)
	if err == nil && notMasked {
		return Session{}, Recording{}, &NotMaskedError{Recording: rec}
	}
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

// Page is one page of open sessions. It may hold fewer than its limit while more
// follow (a session that closed while it was read is left out): only an empty Next
// ends the list.
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
	found, last, err := s.store.list(ctx, after, limit)
	if err != nil {
		return Page{}, err
	}
	page := Page{Sessions: found}
	if last != "" {
		page.Next = encodeCursor(last)
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

// get returns the agent's open session, or ErrNotMasked.
func (s *Store) get(ctx context.Context, userID string) (Session, error) {
	fields, err := s.rdb.HMGet(ctx, s.sessionKey(userID), sessionFields[:]...).Result()
	if err != nil {
		return Session{}, storeErr(err)
	}
	f := strs(fields)
	if f[fieldID] == "" {
		return Session{}, ErrNotMasked
	}
	return decodeSession(f)
}

// list returns the open sessions among the first limit userIds after `after`, in
// userId order, and, when more userIds follow, the last of those limit (the next page
// starts after it). A session that closed between the two reads is left out; whether
// more follow is decided by the userIds, so that it does not end the listing.
func (s *Store) list(ctx context.Context, after string, limit int) ([]Session, string, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	// One more than asked tells whether there is a next page.
	ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: s.open, Start: start, Stop: "+", ByLex: true, Count: int64(limit) + 1,
	}).Result()
	if err != nil {
		return nil, "", storeErr(err)
	}
	last := ""
	if len(ids) > limit {
		ids = ids[:limit]
		last = ids[limit-1]
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, s.sessionKey(id), sessionFields[:]...)
	}
	if len(ids) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, "", storeErr(err)
		}
	}
	out := make([]Session, 0, len(ids))
	for _, cmd := range cmds {
		fields := strs(cmd.Val())
		if fields[fieldID] == "" {
			continue // closed between the two reads
		}
		sess, err := decodeSession(fields)
		if err != nil {
			return nil, "", err
		}
		out = append(out, sess)
	}
	return out, last, nil
}
