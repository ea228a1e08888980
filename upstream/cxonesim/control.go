package cxonesim

import (
	"encoding/json"
	"net/http"
	"time"
)

// routeControl declares the control API (documented in the README).
func (s *Sim) routeControl() {
	s.mux.HandleFunc("POST /sim/agents/{userId}/calls", s.ctlStartCall)
	s.mux.HandleFunc("PUT /sim/agents/{userId}/behaviour", s.ctlBehaviour)
	s.mux.HandleFunc("GET /sim/calls/{callId}", s.ctlGetCall)
	s.mux.HandleFunc("DELETE /sim/calls/{callId}", s.ctlEndCall)
	s.mux.HandleFunc("PUT /sim/faults", s.ctlFaults)
	s.mux.HandleFunc("GET /sim/requests", s.ctlRequests)
	s.mux.HandleFunc("POST /sim/tokens/revoke", s.ctlRevoke)
	s.mux.HandleFunc("POST /sim/reset", s.ctlReset)
}

func (s *Sim) ctlStartCall(w http.ResponseWriter, r *http.Request) {
	body := struct {
		Internal bool  `json:"internal"`
		Recorded *bool `json:"recorded"` // default true
	}{}
	if !decode(w, r, &body) {
		return
	}
	recorded := body.Recorded == nil || *body.Recorded
	writeJSON(w, http.StatusCreated, s.StartCall(r.PathValue("userId"), body.Internal, recorded))
}

func (s *Sim) ctlBehaviour(w http.ResponseWriter, r *http.Request) {
	body := struct {
		Lock    int  `json:"lock"`
		AsyncMs int  `json:"asyncMs"`
		Hang    bool `json:"hang"`
		Lose    bool `json:"lose"`
	}{}
	if !decode(w, r, &body) {
		return
	}
	s.SetBehaviour(r.PathValue("userId"), body.Lock, time.Duration(body.AsyncMs)*time.Millisecond)
	s.SetHang(r.PathValue("userId"), body.Hang)
	s.SetLose(r.PathValue("userId"), body.Lose)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) ctlGetCall(w http.ResponseWriter, r *http.Request) {
	c, ok := s.Call(r.PathValue("callId"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Call
		RecordedSpans []Span `json:"recordedSpans"`
		MaskedSpans   []Span `json:"maskedSpans"`
	}{c, c.RecordedSpans(), c.MaskedSpans()})
}

func (s *Sim) ctlEndCall(w http.ResponseWriter, r *http.Request) {
	if !s.EndCall(r.PathValue("callId")) {
		http.NotFound(w, r)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) ctlFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if !decode(w, r, &f) {
		return
	}
	s.SetFaults(f)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) ctlRequests(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"requests": s.Requests(), "tokensIssued": s.TokensIssued()})
}

func (s *Sim) ctlRevoke(w http.ResponseWriter, _ *http.Request) {
	s.RevokeTokens()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) ctlReset(w http.ResponseWriter, _ *http.Request) {
	s.Reset()
	w.WriteHeader(http.StatusNoContent)
}

// decode reads an optional JSON body into v; false when it answered 400.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength == 0 {
		return true
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}
