package cxonesim

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The CXone paths the simulator answers, as the real platform does (design §1).
const (
	TokenPath     = "/auth/token"
	DiscoveryPath = "/.well-known/cxone-configuration"
	apiPrefix     = "/interaction-recording-management-service/v1/interactions/"
)

// idTokenKey signs the simulator's id_tokens; nothing verifies them but their shape.
var idTokenKey = []byte("cxonesim-id-token")

func (s *Sim) routeCXone() {
	s.mux.HandleFunc("POST "+TokenPath, s.token)
	s.mux.HandleFunc("GET "+DiscoveryPath, s.discovery)
	s.mux.HandleFunc("POST "+apiPrefix+"mask", func(w http.ResponseWriter, r *http.Request) { s.maskOrUnmask(w, r, "mask") })
	s.mux.HandleFunc("POST "+apiPrefix+"unmask", func(w http.ResponseWriter, r *http.Request) { s.maskOrUnmask(w, r, "unmask") })
	s.mux.HandleFunc("GET "+apiPrefix+"get-recording-status", s.recordingStatus)
}

// baseURL is the simulator's own address as the client reached it.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// token is CXone's token endpoint: password grant with the access key, refresh_token
// grant, client authentication with HTTP Basic (form-encoded id and secret).
func (s *Sim) token(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	down := s.faults.TokenDown
	s.mu.Unlock()
	if down {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "token endpoint down (simulated)")
		return
	}
	id, secret, ok := r.BasicAuth()
	id, _ = url.QueryUnescape(id)
	secret, _ = url.QueryUnescape(secret)
	if !ok || id != s.opts.ClientID || secret != s.opts.ClientSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.PostForm.Get("grant_type") {
	case "password":
		if r.PostForm.Get("username") != s.opts.AccessKeyID || r.PostForm.Get("password") != s.opts.AccessKeySecret {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "access key not recognised")
			return
		}
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		if !s.refresh[rt] {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token not recognised")
			return
		}
		delete(s.refresh, rt)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be password or refresh_token")
		return
	}
	// Recognisable, so that tests can scan every output for a leaked CXone token.
	access, refresh := "cxsim-at-"+newID(), "cxsim-rt-"+newID()
	s.access[access] = s.now().Add(s.opts.TokenTTL)
	s.refresh[refresh] = true
	s.issued++
	idToken, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": baseURL(r), "sub": "user:" + s.opts.AccessKeyID, "tenantId": s.opts.TenantID,
		"iat": s.now().Unix(), "exp": s.now().Add(s.opts.TokenTTL).Unix(),
	}).SignedString(idTokenKey)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access, "token_type": "bearer", "expires_in": int(s.opts.TokenTTL / time.Second),
		"refresh_token": refresh, "id_token": idToken,
	})
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// discovery is CXone's discovery document: the simulator is its own API endpoint.
func (s *Sim) discovery(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("tenantId") != s.opts.TenantID {
		http.NotFound(w, r)
		return
	}
	base := baseURL(r)
	writeJSON(w, http.StatusOK, map[string]string{"api_endpoint": base, "area": "sim", "auth_endpoint": base + TokenPath})
}

// authorize checks the bearer token; false when it answered 401.
func (s *Sim) authorize(w http.ResponseWriter, r *http.Request, op string) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	exp, known := s.access[tok]
	valid := ok && known && s.now().Before(exp)
	s.mu.Unlock()
	if !valid {
		s.answer(w, op, r.URL.Query().Get("userId"), http.StatusUnauthorized, 0)
	}
	return valid
}

// fault applies the injected faults to an API request; true when it answered.
func (s *Sim) fault(w http.ResponseWriter, r *http.Request, op, userID string) bool {
	s.mu.Lock()
	f := s.faults
	hang := f.Hang || s.agent(userID).hang
	s.mu.Unlock()
	if hang || f.LatencyMs > 0 {
		s.held.Add(1)
		defer s.held.Add(-1)
	}
	if hang {
		<-r.Context().Done()
		return true
	}
	if f.LatencyMs > 0 {
		select {
		case <-time.After(time.Duration(f.LatencyMs) * time.Millisecond):
		case <-r.Context().Done():
			return true
		}
	}
	if f.ErrorRate > 0 && rand.Float64() < f.ErrorRate {
		status := f.ErrorStatus
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		s.answer(w, op, userID, status, f.RetryAfter)
		return true
	}
	if f.DenyMasking && op != "recording-status" {
		s.answer(w, op, userID, http.StatusForbidden, 0)
		return true
	}
	return false
}

// answer writes an empty-bodied status and records the request.
func (s *Sim) answer(w http.ResponseWriter, op, userID string, status, retryAfter int) {
	s.record(op, userID, status)
	if retryAfter > 0 && (status == http.StatusTooEarly || status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	w.WriteHeader(status)
}

func (s *Sim) record(op, userID string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if max := s.opts.MaxRequests; max > 0 && len(s.requests) >= max {
		s.requests = s.requests[:copy(s.requests, s.requests[len(s.requests)-max/2:])]
	}
	s.requests = append(s.requests, Request{Op: op, UserID: userID, Status: status, At: s.now()})
}

// maskOrUnmask is CXone's mask and unmask: it acts on the agent's latest joined
// active call (design §1).
func (s *Sim) maskOrUnmask(w http.ResponseWriter, r *http.Request, op string) {
	userID := r.URL.Query().Get("userId")
	if !s.authorize(w, r, op) || s.fault(w, r, op, userID) {
		return
	}
	s.mu.Lock()
	a := s.agent(userID)
	call := a.latest()
	now := s.now()
	var status, retryAfter int
	switch {
	case userID == "" || call == nil:
		status = http.StatusNotFound
	case call.Internal:
		status = http.StatusUnprocessableEntity
	case a.lose:
		status = http.StatusAccepted
	case a.lock > 0 || now.Before(a.busyTill):
		if a.lock > 0 {
			a.lock--
		}
		status, retryAfter = http.StatusTooEarly, s.faults.RetryAfter
	case a.async > 0:
		status = http.StatusAccepted
		a.busyTill = now.Add(a.async)
		time.AfterFunc(a.async, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.apply(call, op)
		})
	default:
		status = http.StatusOK
		s.apply(call, op)
	}
	s.mu.Unlock()
	s.answer(w, op, userID, status, retryAfter)
}

// apply masks or unmasks the call, noting it on the timeline when it changes anything.
// s.mu is held.
func (s *Sim) apply(c *Call, op string) {
	masked := op == "mask"
	if !c.Active || c.Masked == masked {
		return
	}
	c.Masked = masked
	c.Timeline = append(c.Timeline, Event{At: s.now(), Kind: op + "ed"})
}

// recordingStatus is CXone's get-recording-status for the agent's latest active call.
func (s *Sim) recordingStatus(w http.ResponseWriter, r *http.Request) {
	userID := r.URL.Query().Get("userId")
	if !s.authorize(w, r, "recording-status") || s.fault(w, r, "recording-status", userID) {
		return
	}
	s.mu.Lock()
	call := s.agent(userID).latest()
	var body map[string]string
	if call != nil {
		reason, state := "Policy", "Recording"
		if !call.Recorded {
			state = "NoRecording"
		}
		if call.Masked {
			reason, state = "Mask", "Stopped"
		}
		body = map[string]string{
			"contactId": call.ID, "segmentId": call.ID + "-1", "interactionId": call.ID,
			"statusReason": reason, "recordingStatusToAgent": state, "recordingStatusFromAgent": state,
		}
	}
	s.mu.Unlock()
	if body == nil {
		s.answer(w, "recording-status", userID, http.StatusNotFound, 0)
		return
	}
	s.record("recording-status", userID, http.StatusOK)
	writeJSON(w, http.StatusOK, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
