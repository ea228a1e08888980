package upstream

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's Prometheus metrics. Labels are bounded: an operation name
// and an HTTP status, never a user id or a token.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	tokens   *prometheus.CounterVec
	held     *prometheus.CounterVec
}

// The reasons a request to CXone is held back without being sent (hold).
const (
	heldToken      = "token"       // a failed token request holds the next back
	heldDiscovery  = "discovery"   // a failed discovery holds the next back
	heldRetryAfter = "retry_after" // CXone's 429 or 503 asked the gateway to wait
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "maskgate_cxone_requests_total",
			Help: "HTTP requests sent to CXone, by operation and answered status (\"error\" when none).",
		}, []string{"op", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "maskgate_cxone_request_duration_seconds",
			Help:    "Duration of one HTTP request to CXone, by operation.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"op"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "maskgate_cxone_token_requests_total",
			Help: "Token requests sent to CXone, by grant and answered status (\"error\" when none).",
		}, []string{"grant", "status"}),
		held: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "maskgate_cxone_held_back_total",
			Help: "Attempts that maskgate did not send to CXone because a hold was on, by reason: token (a failed token request), discovery, retry_after (CXone's 429 or 503 asked to wait).",
		}, []string{"reason"}),
	}
	for _, reason := range []string{heldToken, heldDiscovery, heldRetryAfter} {
		m.held.WithLabelValues(reason) // every series exists from 0
	}
	reg.MustRegister(m.requests, m.duration, m.tokens, m.held)
	return m
}

func (m *metrics) heldBack(reason string) {
	m.held.WithLabelValues(reason).Inc()
}

func (m *metrics) request(op, status string, d time.Duration) {
	m.requests.WithLabelValues(op, status).Inc()
	m.duration.WithLabelValues(op).Observe(d.Seconds())
}

func (m *metrics) tokenRequest(grant, status string) {
	m.tokens.WithLabelValues(grant, status).Inc()
}
