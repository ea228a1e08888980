package sessions

import (
	"context"
	"encoding/base64"

	"github.com/maskgate/maskgate/upstream"
)

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
