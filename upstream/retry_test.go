package upstream

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestBackoffGrowsStaysCappedAndJitters(t *testing.T) {
	base, ceiling := 100*time.Millisecond, time.Second
	for attempt := 1; attempt <= 8; attempt++ {
		full := min(ceiling, base<<(attempt-1))
		seen := map[time.Duration]bool{}
		for range 200 {
			d := backoff(base, ceiling, attempt)
			if d < full/2 || d > full {
				t.Fatalf("attempt %d: backoff %s outside [%s, %s]", attempt, d, full/2, full)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("attempt %d: only %d distinct backoffs in 200: no jitter", attempt, len(seen))
		}
	}
	// A hold counts failures without end: the doubling must stay at the ceiling.
	if d := backoffLimit(base, ceiling, 1000); d != ceiling {
		t.Errorf("backoffLimit after 1000 failures = %s; want the ceiling %s", d, ceiling)
	}
}

// A Retry-After that asks less, answered to a request sent before the hold began, does
// not shorten the hold another answer began.
func TestAHoldIsNotShortened(t *testing.T) {
	h := hold{base: 100 * time.Millisecond, ceiling: 2 * time.Second}
	start := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	h.record(&Error{Op: "api", Status: 429, RetryAfter: 30 * time.Second, Kind: ErrUnavailable}, start)
	h.record(&Error{Op: "api", Status: 429, RetryAfter: time.Second, Kind: ErrUnavailable}, start.Add(100*time.Millisecond))
	var held *Error
	if err := h.held(start.Add(5 * time.Second)); !errors.As(err, &held) || held.RetryAfter != 25*time.Second {
		t.Fatalf("held 5 s in = %v; want the first hold, 25 s left", err)
	}
	if err := h.held(start.Add(30 * time.Second)); err != nil {
		t.Errorf("held once the 30 s passed = %v; want nil", err)
	}
	h.record(nil, start.Add(31*time.Second))
	h.record(&Error{Kind: ErrUnavailable}, start.Add(32*time.Second))
	if err := h.held(start.Add(32*time.Second + 60*time.Millisecond)); err != nil {
		t.Errorf("held 60 ms after a first failure following a success = %v; want nil (50 ms)", err)
	}
	// However long the failures go on, a transient one holds for half the ceiling at
	// most: 1 s with the defaults (README, A failing token endpoint is not hammered).
	at := start.Add(time.Minute)
	for range 50 {
		h.record(&Error{Kind: ErrUnavailable}, at)
	}
	var last *Error
	if err := h.held(at); !errors.As(err, &last) || last.RetryAfter != time.Second {
		t.Errorf("held after 50 failures in a row = %v; want 1 s left", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"0", 0},
		{"-1", 0},
		{"soon", 0},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second},
		{now.Add(-5 * time.Second).Format(http.TimeFormat), 0},
		{"60", time.Minute},
		{"3600", time.Minute},
		{now.Add(2 * time.Hour).Format(http.TimeFormat), time.Minute},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s; want %s", tt.in, got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	netErr := errors.New("connection reset")
	tests := []struct {
		status    int
		err       error
		want      error
		transient bool
	}{
		{0, netErr, ErrUnavailable, true},
		{0, context.DeadlineExceeded, ErrTimeout, true},
		{401, nil, ErrRefused, false},
		{403, nil, ErrRefused, false},
		{404, nil, ErrNoActiveCall, false},
		{409, nil, ErrRefused, false},
		{422, nil, ErrInternalCall, false},
		{425, nil, ErrUnavailable, true},
		{429, nil, ErrUnavailable, true},
		{500, nil, ErrUnavailable, true},
		{502, nil, ErrUnavailable, true},
		{503, nil, ErrUnavailable, true},
		{504, nil, ErrTimeout, true},
		{501, nil, ErrRefused, false},
		{302, nil, ErrRefused, false},
	}
	for _, tt := range tests {
		if got := classify(tt.status, tt.err); got != tt.want {
			t.Errorf("classify(%d, %v) = %v; want %v", tt.status, tt.err, got, tt.want)
		}
		if got := transient(tt.status, tt.err); got != tt.transient {
			t.Errorf("transient(%d, %v) = %v; want %v", tt.status, tt.err, got, tt.transient)
		}
	}
}

func TestRefreshMargin(t *testing.T) {
	if got := refreshMargin(time.Hour); got != 2*time.Minute {
		t.Errorf("margin of a 1h token = %s; want 2m as NICE's SDK", got)
	}
	if got := refreshMargin(60 * time.Second); got != 6*time.Second {
		t.Errorf("margin of a 60s token = %s; want 6s", got)
	}
}
