package sessions

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"time"
)

// TrailSession is a session that an audit trail leaves open: one whose agent CXone may
// still mask, as far as the trail says.
type TrailSession struct {
	UserID    string
	SessionID string
	LastEvent string    // the event of its latest line
	LastAt    time.Time // the time of its latest line
	// Due is when the gateway would have unmasked the agent: the deadline its latest
	// mask wrote; zero when its unmask was already under way, or no deadline is known.
	Due time.Time
}

// trailLine is what OpenInTrail reads of an audit line.
type trailLine struct {
	Audit      bool      `json:"audit"`
	Event      string    `json:"event"`
	UserID     string    `json:"user_id"`
	SessionID  string    `json:"session_id"`
	Outcome    string    `json:"outcome"`
	Superseded string    `json:"superseded_session_id"`
	ExpiresAt  time.Time `json:"expires_at"`
	Time       time.Time `json:"time"`
}

// closingEvents end a session: CXone unmasked it, or its call ended.
var closingEvents = map[string]bool{
	evUnmasked.name: true, evExpired.name: true, evCallEnded.name: true,
	evUnmaskConfirmed.name: true, evForcedUnmask.name: true,
}

// unmaskingEvents show a session's unmask under way (a session never goes back to
// masked from there).
var unmaskingEvents = map[string]bool{
	evUnmaskPending.name: true, evUnmaskRetry.name: true, evUnmaskUnconfirmed.name: true,
	evUnmaskGaveUp.name: true, evReleased.name: true,
}

// OpenInTrail reads an audit trail (maskgate's log lines, of any number of replicas, in
// any order; anything before a line's first "{" is passed over, as are lines that are
// not audit lines) and returns the sessions it leaves open, by user id: after Redis
// lost its data, the agents an operator should unmask (README, After Redis lost its data).
//
// A session is open when the trail shows it, unless one of its lines closes it: an
// unmask or an expiry CXone carried out, its call ended, or a later mask that replaced
// it while its unmask was pending (then the later session is open in its place, unless
// CXone refused that mask or it never went to CXone, which put the earlier one back).
// A session whose only lines are of such a mask never opened. It decides by each
// session's lines, not their order, so that replicas' clocks need not agree; it lists
// more rather than fewer: a session whose mask lies before the trail's start is listed
// when any later line of it is there. Only the latest event and the due time go by the
// lines' times (of lines with the same time, the one read last counts).
func OpenInTrail(r io.Reader) ([]TrailSession, error) {
	type state struct {
		TrailSession
		closed, opened, unmasking bool
		deadlineAt                time.Time // the time of the line the deadline came from
	}
	seen := map[string]*state{}
	var replaced []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		raw := sc.Bytes()
		start := bytes.IndexByte(raw, '{')
		var l trailLine
		if start < 0 || json.Unmarshal(raw[start:], &l) != nil || !l.Audit || l.SessionID == "" {
			continue
		}
		s := seen[l.SessionID]
		if s == nil {
			s = &state{TrailSession: TrailSession{UserID: l.UserID, SessionID: l.SessionID}}
			seen[l.SessionID] = s
		}
		// Of lines with the same time, the one read last counts.
		if !l.Time.Before(s.LastAt) {
			s.LastEvent, s.LastAt = l.Event, l.Time
		}
		if !l.ExpiresAt.IsZero() && !l.Time.Before(s.deadlineAt) {
			s.Due, s.deadlineAt = l.ExpiresAt, l.Time // the latest mask's deadline stands
		}
		s.unmasking = s.unmasking || unmaskingEvents[l.Event]
		// A mask CXone refused, or that never went to CXone, masked nothing.
		void := l.Event == evMaskFailed.name && (l.Outcome == outcomeRejected || l.Outcome == outcomeNotSent)
		switch {
		case closingEvents[l.Event], l.Event == evMaskFailed.name && l.Outcome == outcomeCallEnded:
			s.closed = true
		case void, l.Event == evCoalesced.name, l.Event == evStoreFailed.name:
			// Lines of a request that may have opened nothing.
		default:
			s.opened = true
		}
		if l.Superseded != "" && !void {
			replaced = append(replaced, l.Superseded)
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		// Not skipped: a file that is one long line (a JSON array of entries) would
		// then show nothing open.
		return nil, errors.New("the logs hold a line over 1 MiB, longer than any of maskgate's: give them one log entry per line")
	} else if err != nil {
		return nil, err
	}
	for _, id := range replaced {
		if s := seen[id]; s != nil {
			s.closed = true
		}
	}
	var open []TrailSession
	for _, s := range seen {
		if s.opened && !s.closed {
			if s.unmasking {
				s.Due = time.Time{}
			}
			open = append(open, s.TrailSession)
		}
	}
	slices.SortFunc(open, func(a, b TrailSession) int {
		return cmp.Or(cmp.Compare(a.UserID, b.UserID), a.LastAt.Compare(b.LastAt), cmp.Compare(a.SessionID, b.SessionID))
	})
	return open, nil
}
