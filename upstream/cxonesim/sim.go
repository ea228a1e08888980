// Package cxonesim simulates the parts of NICE CXone that maskgate talks to: the
// access-key token endpoint, API discovery, and the Multi-ACD mask, unmask and
// recording-status endpoints, with agents, calls, recording timelines and fault
// injection. A control API under /sim lets tests and people set it up (see README).
package cxonesim

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Sim.
type Options struct {
	ClientID        string
	ClientSecret    string
	AccessKeyID     string
	AccessKeySecret string
	TenantID        string        // default "tenant-sim"
	TokenTTL        time.Duration // lifetime of an access token (default 1h)
	// MaxRequests bounds the request log (Requests, Count): past it the oldest half is
	// dropped. 0 keeps every request, as tests want; a long-running or load-tested
	// simulator sets it, or the log grows without end and stalls it as it does.
	MaxRequests int
}

// Faults are injected into the API endpoints (mask, unmask, recording status) and,
// for TokenDown, into the token endpoint.
type Faults struct {
	LatencyMs   int     `json:"latencyMs"`   // added before every API answer
	ErrorRate   float64 `json:"errorRate"`   // share of API requests answered ErrorStatus
	ErrorStatus int     `json:"errorStatus"` // default 503
	RetryAfter  int     `json:"retryAfter"`  // seconds, sent with 425, 429 and 503 answers when > 0
	Hang        bool    `json:"hang"`        // API requests are never answered (until the client gives up)
	TokenDown   bool    `json:"tokenDown"`   // the token endpoint answers 503
	DenyMasking bool    `json:"denyMasking"` // the key's user lacks the masking permission: 403
}

// Event is one entry of a call's timeline.
type Event struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"` // started, masked, unmasked, ended
}

// Span is a stretch of a call's time, [From, To); To is zero while it lasts.
type Span struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to,omitzero"`
}

// Call is one call of an agent, with what happened to its recording.
type Call struct {
	ID       string  `json:"callId"`
	UserID   string  `json:"userId"`
	Internal bool    `json:"internal"`
	Recorded bool    `json:"recorded"`
	Masked   bool    `json:"masked"`
	Active   bool    `json:"active"`
	Timeline []Event `json:"timeline"`
}

// RecordedSpans returns the spans in which the call was recorded.
func (c *Call) RecordedSpans() []Span { return c.spans(true) }

// MaskedSpans returns the spans in which the call was masked.
func (c *Call) MaskedSpans() []Span { return c.spans(false) }

// spans walks the timeline: recording runs from start (if recorded) except while masked.
func (c *Call) spans(recorded bool) []Span {
	var out []Span
	open := false
	for _, e := range c.Timeline {
		on := (recorded && c.Recorded && (e.Kind == "started" || e.Kind == "unmasked")) || (!recorded && e.Kind == "masked")
		off := (recorded && (e.Kind == "masked" || e.Kind == "ended")) || (!recorded && (e.Kind == "unmasked" || e.Kind == "ended"))
		switch {
		case on && !open:
			out, open = append(out, Span{From: e.At}), true
		case off && open:
			out[len(out)-1].To, open = e.At, false
		}
	}
	return out
}

// Request is one request the API endpoints answered.
type Request struct {
	Op     string    `json:"op"` // mask, unmask, recording-status
	UserID string    `json:"userId"`
	Status int       `json:"status"`
	At     time.Time `json:"at"`
}

// agent is an agent's behaviour and calls.
type agent struct {
	calls    []*Call
	lock     int           // the next lock requests are answered 425
	async    time.Duration // > 0: answer 202 and apply after async
	busyTill time.Time     // an async request is being processed: 425 until then
	hang     bool          // requests for this agent are never answered
	lose     bool          // masks and unmasks are answered 202 and never carried out
}

// Sim is the simulator; it is an http.Handler and safe for concurrent use.
type Sim struct {
	opts Options
	mux  *http.ServeMux
	held atomic.Int32 // API requests held by injected latency or a hang

	mu       sync.Mutex
	agents   map[string]*agent
	calls    map[string]*Call
	access   map[string]time.Time // access token -> expiry
	refresh  map[string]bool      // live refresh tokens
	faults   Faults
	requests []Request
	issued   int // tokens issued
	now      func() time.Time
}

// New returns a Sim.
func New(opts Options) *Sim {
	if opts.TenantID == "" {
		opts.TenantID = "tenant-sim"
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	s := &Sim{opts: opts, now: time.Now}
	s.reset()
	s.mux = http.NewServeMux()
	s.routeCXone()
	s.routeControl()
	return s
}

func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Sim) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.agents = map[string]*agent{}
	s.calls = map[string]*Call{}
	s.access = map[string]time.Time{}
	s.refresh = map[string]bool{}
	s.faults = Faults{}
	s.requests = nil
	s.issued = 0
}

// Reset forgets every agent, call, token, fault and recorded request.
func (s *Sim) Reset() { s.reset() }

// StartCall joins the agent to a new active call and returns it.
func (s *Sim) StartCall(userID string, internal, recorded bool) Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	c := &Call{ID: newID(), UserID: userID, Internal: internal, Recorded: recorded, Active: true,
		Timeline: []Event{{At: now, Kind: "started"}}}
	a := s.agent(userID)
	a.calls = append(a.calls, c) // in joining order: the latest active call is the one masked
	s.calls[c.ID] = c
	return *c
}

// EndCall ends a call; false if there is no such active call.
func (s *Sim) EndCall(callID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.calls[callID]
	if !ok || !c.Active {
		return false
	}
	c.Active = false
	c.Timeline = append(c.Timeline, Event{At: s.now(), Kind: "ended"})
	return true
}

// Call returns a copy of the call, timeline included.
func (s *Sim) Call(callID string) (Call, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.calls[callID]
	if !ok {
		return Call{}, false
	}
	cp := *c
	cp.Timeline = append([]Event(nil), c.Timeline...)
	return cp, true
}

// SetBehaviour sets how the agent's next requests are answered: lock of them get 425,
// and with async > 0 masks and unmasks are answered 202 and done after async.
func (s *Sim) SetBehaviour(userID string, lock int, async time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agent(userID)
	a.lock, a.async = lock, async
}

// SetHang makes the agent's mask, unmask and status requests hang (never answered,
// until the client gives up) while on is true; other agents are served as usual.
func (s *Sim) SetHang(userID string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.agent(userID).hang = on
}

// SetLose makes CXone lose the agent's masks and unmasks while on is true: each is
// answered 202, as accepted, and never carried out, nor does it lock the interaction.
func (s *Sim) SetLose(userID string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.agent(userID).lose = on
}

// SetFaults replaces the injected faults.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// RevokeTokens revokes every access and refresh token issued so far.
func (s *Sim) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.access = map[string]time.Time{}
	s.refresh = map[string]bool{}
}

// Requests returns the API requests answered so far (the latest Options.MaxRequests of
// them when set), oldest first.
func (s *Sim) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count returns how many op requests (for userID, or any when "") were answered status
// (any when 0).
func (s *Sim) Count(op, userID string, status int) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Op == op && (userID == "" || r.UserID == userID) && (status == 0 || r.Status == status) {
			n++
		}
	}
	return n
}

// Held returns how many API requests are being held by injected latency or a hang,
// so that a test can act while a request is in flight.
func (s *Sim) Held() int { return int(s.held.Load()) }

// TokensIssued returns how many access tokens the token endpoint issued.
func (s *Sim) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// agent returns the agent, created on first use. s.mu is held.
func (s *Sim) agent(userID string) *agent {
	a, ok := s.agents[userID]
	if !ok {
		a = &agent{}
		s.agents[userID] = a
	}
	return a
}

// latest returns the agent's latest joined active call, or nil. s.mu is held.
func (a *agent) latest() *Call {
	for _, call := range slices.Backward(a.calls) {
		if call.Active {
			return call
		}
	}
	return nil
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
