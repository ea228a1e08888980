package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// CXone's Retry-After: a request waits what it asks when that fits its caller's budget,
// and answers at once when it does not. One answered to a mask or an unmask holds back
// every request of the gateway's (a minute at most), one answered to a recording-status
// read only the reads, and a 425 only its agent.

func TestRetryAfterLongerThanTheBudgetAnswersAtOnce(t *testing.T) {
	sim := testkit.NewSim(t)
	sim.StartCall("7", false, true)
	sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: 429, RetryAfter: 30})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := upstream.New(sim.UpstreamConfig()).Mask(ctx, "7")
	var ue *upstream.Error
	if !errors.Is(err, upstream.ErrUnavailable) || !errors.As(err, &ue) || ue.RetryAfter != 30*time.Second {
		t.Fatalf("Mask = %v; want ErrUnavailable carrying Retry-After 30s", err)
	}
	if n := sim.Count("mask", "7", 0); n != 1 {
		t.Errorf("mask requests = %d; want 1: waiting 30s cannot fit a 5s budget", n)
	}
	if ctx.Err() != nil {
		t.Error("the client waited out the caller's budget instead of answering")
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	sim := testkit.NewSim(t)
	sim.StartCall("7", false, true)
	sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: 429, RetryAfter: 1})
	cfg := sim.UpstreamConfig()
	cfg.MaxAttempts = 2
	c := upstream.New(cfg)
	go func() {
		// Let CXone recover once the first answer has been given.
		testkit.Eventually(t, 5*time.Second, "the first 429", func() bool { return sim.Count("mask", "7", 429) == 1 })
		sim.SetFaults(cxonesim.Faults{})
	}()
	res, err := c.Mask(context.Background(), "7")
	if err != nil || res.Attempts != 2 {
		t.Fatalf("Mask = %+v, %v; want success on the second attempt", res, err)
	}
	reqs := sim.Requests()
	if gap := reqs[len(reqs)-1].At.Sub(reqs[0].At); gap < time.Second {
		t.Errorf("second attempt came %s after the first; Retry-After asked for 1s", gap)
	}
}

// A Retry-After answered to a recording-status read holds back the reads only: callers
// polling ?verify=true must not stop the masks and unmasks. One answered to a mask
// holds back the reads too.
func TestRetryAfterToAReadHoldsBackOnlyReads(t *testing.T) {
	sim := testkit.NewSim(t)
	sim.StartCall("7", false, true)
	sim.StartCall("8", false, true)
	c, at := clockedClient(sim)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusTooManyRequests, RetryAfter: 5})
	if _, err := c.RecordingStatus(ctx, "7"); !errors.Is(err, upstream.ErrUnavailable) {
		t.Fatalf("RecordingStatus = %v; want ErrUnavailable", err)
	}
	sim.SetFaults(cxonesim.Faults{})
	at(2 * time.Second)
	if _, err := c.Mask(ctx, "8"); err != nil {
		t.Fatalf("Mask 2s into a wait asked by a read = %v; want it sent and done", err)
	}
	var ue *upstream.Error
	if _, err := c.RecordingStatus(ctx, "8"); !errors.Is(err, upstream.ErrNotSent) || !errors.As(err, &ue) || ue.RetryAfter != 3*time.Second {
		t.Fatalf("RecordingStatus 2s into the wait = %v; want ErrNotSent asking to wait the 3s left", err)
	}

	sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusTooManyRequests, RetryAfter: 5})
	at(10 * time.Second)
	if _, err := c.Unmask(ctx, "8"); !errors.Is(err, upstream.ErrUnavailable) {
		t.Fatalf("Unmask = %v; want ErrUnavailable", err)
	}
	sim.SetFaults(cxonesim.Faults{})
	at(12 * time.Second)
	if _, err := c.RecordingStatus(ctx, "8"); !errors.Is(err, upstream.ErrNotSent) || !errors.As(err, &ue) || ue.RetryAfter != 3*time.Second {
		t.Fatalf("RecordingStatus 2s into a wait asked by an unmask = %v; want ErrNotSent asking to wait the 3s left", err)
	}
	at(15 * time.Second)
	if _, err := c.RecordingStatus(ctx, "8"); err != nil {
		t.Fatalf("RecordingStatus once the wait has passed = %v", err)
	}
}

// CXone's 429 or 503 with a Retry-After speaks to the gateway as a whole (it is one
// client, with one access key): until that wait has passed no request of the replica
// goes to CXone's API, for any agent. A request whose budget cannot hold what is left
// of it answers at once with that wait (and ErrNotSent: nothing went out). A 425, an
// agent's call locked, holds back only that agent's request.
func TestRetryAfterHoldsBackEveryRequest(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			sim := testkit.NewSim(t)
			sim.StartCall("7", false, true)
			sim.StartCall("8", false, true)
			reg := prometheus.NewRegistry()
			c, at := clockedClient(sim, func(c *upstream.Config) { c.Registerer = reg })
			mask := func(id string) error {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, err := c.Mask(ctx, id)
				return err
			}
			sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: status, RetryAfter: 5})
			if err := mask("7"); !errors.Is(err, upstream.ErrUnavailable) {
				t.Fatalf("Mask = %v; want ErrUnavailable", err)
			}
			sim.SetFaults(cxonesim.Faults{}) // CXone could answer now; it asked to wait
			at(2 * time.Second)
			err := mask("8")
			var ue *upstream.Error
			if !errors.Is(err, upstream.ErrNotSent) || !errors.As(err, &ue) || ue.RetryAfter != 3*time.Second {
				t.Fatalf("Mask of another agent 2s into the wait = %v; want ErrNotSent asking to wait the 3s left", err)
			}
			if n := sim.Count("mask", "8", 0); n != 0 {
				t.Fatalf("masks sent for 8 = %d; want none", n)
			}
			if n := testkit.Gathered(t, reg, "maskgate_cxone_held_back_total", "reason", "retry_after"); n != 1 {
				t.Errorf("maskgate_cxone_held_back_total{reason=retry_after} = %v; want 1", n)
			}
			at(5 * time.Second)
			if err := mask("8"); err != nil {
				t.Fatalf("Mask once the wait has passed = %v", err)
			}
		})
	}
	t.Run("an hour asked holds back a minute", func(t *testing.T) {
		// An hour's wait would stop every unmask for an hour, on one answer's word:
		// after a minute one request asks CXone again.
		sim := testkit.NewSim(t)
		sim.StartCall("7", false, true)
		sim.StartCall("8", false, true)
		c, at := clockedClient(sim)
		sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable, RetryAfter: 3600})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Mask(ctx, "7")
		var ue *upstream.Error
		if !errors.As(err, &ue) || ue.Kind != upstream.ErrUnavailable || ue.RetryAfter != time.Minute {
			t.Fatalf("Mask = %v; want ErrUnavailable asking to wait a minute", err)
		}
		sim.SetFaults(cxonesim.Faults{})
		at(59 * time.Second)
		if _, err := c.Mask(ctx, "8"); !errors.Is(err, upstream.ErrNotSent) || !errors.As(err, &ue) || ue.RetryAfter != time.Second {
			t.Fatalf("Mask of another agent 59s into the wait = %v; want ErrNotSent asking to wait the 1s left", err)
		}
		at(time.Minute)
		if _, err := c.Mask(ctx, "8"); err != nil {
			t.Fatalf("Mask a minute into an hour's Retry-After = %v; want it sent and done", err)
		}
	})
	t.Run("waited out within the budget", func(t *testing.T) {
		// On the real clock: another agent's request whose budget holds the wait sends
		// once the wait has passed, and not before.
		sim := testkit.NewSim(t)
		sim.StartCall("7", false, true)
		sim.StartCall("8", false, true)
		c := upstream.New(sim.UpstreamConfig())
		sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusTooManyRequests, RetryAfter: 1})
		short, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if _, err := c.Mask(short, "7"); !errors.Is(err, upstream.ErrUnavailable) {
			t.Fatalf("Mask = %v; want ErrUnavailable", err)
		}
		sim.SetFaults(cxonesim.Faults{})
		long, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.Mask(long, "8"); err != nil {
			t.Fatalf("Mask of another agent = %v; want it sent once the wait has passed", err)
		}
		r := sim.Requests()
		if len(r) != 2 || r[1].UserID != "8" || r[1].At.Sub(r[0].At) < 900*time.Millisecond {
			t.Errorf("CXone's requests = %+v; want agent 8's mask alone, a second after the 429 that asked to wait", r)
		}
	})
	t.Run("425", func(t *testing.T) {
		sim := testkit.NewSim(t)
		sim.StartCall("7", false, true)
		sim.StartCall("8", false, true)
		sim.SetFaults(cxonesim.Faults{RetryAfter: 5})
		sim.SetBehaviour("7", 10, 0) // locked for its next 10 requests
		c, _ := clockedClient(sim)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := c.Mask(ctx, "7"); !errors.Is(err, upstream.ErrUnavailable) {
			t.Fatalf("Mask of the locked agent = %v; want ErrUnavailable", err)
		}
		if _, err := c.Mask(context.Background(), "8"); err != nil {
			t.Fatalf("Mask of another agent = %v; want it sent and done", err)
		}
	})
}
