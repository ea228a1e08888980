package sessions_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

func TestListPagesThroughOpenSessionsInOrder(t *testing.T) {
	f := newFixture(t)
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("agent-%02d", i)
		want = append(want, id)
		f.sim.StartCall(id, false, true)
		if _, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: id, Caller: "crm"}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	cursor, pages := "", 0
	for {
		page, err := f.svc.List(context.Background(), cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, s := range page.Sessions {
			got = append(got, s.UserID)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if pages != 3 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%d pages with %v; want 3 pages with %v", pages, got, want)
	}
	if _, err := f.svc.List(context.Background(), "!!not-a-cursor", 10); !errors.Is(err, sessions.ErrInvalidCursor) {
		t.Errorf("List with a bad cursor = %v; want ErrInvalidCursor", err)
	}
	// Closed sessions leave the list at once.
	if _, err := f.svc.Unmask(context.Background(), sessions.UnmaskInput{UserID: "agent-00", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	page, _ := f.svc.List(context.Background(), "", 1000)
	if len(page.Sessions) != 24 || page.Sessions[0].UserID != "agent-01" || page.Next != "" {
		t.Errorf("after closing agent-00: %d sessions starting at %s, next %q", len(page.Sessions), page.Sessions[0].UserID, page.Next)
	}
}

func TestVerifyAddsCXonesRecordingStatus(t *testing.T) {
	f := newFixture(t)
	call := f.sim.StartCall("a", false, true)
	if _, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "a", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	_, rec, err := f.svc.Verify(context.Background(), "a")
	if err != nil || !rec.ActiveCall || rec.Status.StatusReason != "Mask" || rec.Status.ContactID != call.ID {
		t.Fatalf("Verify = %+v, %v; want CXone reporting the mask", rec, err)
	}
	f.sim.EndCall(call.ID)
	_, rec, err = f.svc.Verify(context.Background(), "a")
	if err != nil || rec.ActiveCall {
		t.Errorf("Verify after the call ended = %+v, %v; want no active call", rec, err)
	}
}

// Verify of an agent with no open session still asks CXone, so that a mask the gateway
// does not know of (its Redis lost its data) shows: ErrNotMasked, with CXone's view.
func TestVerifyWithoutASessionShowsCXonesView(t *testing.T) {
	f := newFixture(t)
	f.sim.StartCall("lost", false, true)
	f.sim.StartCall("never", false, true)
	if _, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: "lost", Caller: "crm"}); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.Del(context.Background(), testkit.Keys(t, f.rdb, f.prefix)...).Err(); err != nil {
		t.Fatal(err) // Redis lost its data
	}
	for _, tt := range []struct {
		agent        string
		active, mask bool
	}{{"lost", true, true}, {"never", true, false}, {"nobody", false, false}} {
		_, _, err := f.svc.Verify(context.Background(), tt.agent)
		var nm *sessions.NotMaskedError
		if !errors.Is(err, sessions.ErrNotMasked) || !errors.As(err, &nm) {
			t.Errorf("Verify(%s) = %v; want ErrNotMasked with CXone's view", tt.agent, err)
			continue
		}
		if rec := nm.Recording; rec.ActiveCall != tt.active || (rec.Status.StatusReason == "Mask") != tt.mask {
			t.Errorf("Verify(%s): CXone's view %+v; want an active call %v, masked %v", tt.agent, rec, tt.active, tt.mask)
		}
	}
	// CXone failing: the verification failed, whatever the gateway holds.
	f.sim.SetFaults(cxonesim.Faults{ErrorRate: 1, ErrorStatus: 503})
	if _, _, err := f.svc.Verify(context.Background(), "never"); !errors.Is(err, sessions.ErrUpstreamUnavailable) || errors.Is(err, sessions.ErrNotMasked) {
		t.Errorf("Verify with CXone failing = %v; want CXone unavailable", err)
	}
}

// A session that closes between the list's two reads (the userIds, then their
// sessions) is left out of the page, and the page still says whether more follow: the
// sessions after it are on the next page, not lost.
// Callers polling ?verify=true get at most MaxVerifying of the CXone slots: with CXone
// hanging on every recording status, one verification reaches it, the others are told
// CXone is busy (Retry-After) once they have waited a second, and a mask still goes
// through on the slots left.
func TestVerificationsLeaveCXoneSlotsForMasks(t *testing.T) {
	rdb, prefix := testkit.Redis(t)
	sim := testkit.NewSim(t)
	cfg := sim.UpstreamConfig()
	cfg.Timeout, cfg.MaxInFlight = 2*time.Second, 2
	svc := sessions.NewService(sessions.NewStore(rdb, prefix), upstream.New(cfg), sessions.Config{
		DefaultTTL: 15 * time.Minute, MaxTTL: 2 * time.Hour, MaxVerifying: 1,
	})
	for _, id := range []string{"v1", "v2", "v3", "m"} {
		sim.StartCall(id, false, true)
	}
	for _, id := range []string{"v1", "v2", "v3"} {
		if _, err := svc.Mask(context.Background(), sessions.MaskInput{UserID: id, Caller: "crm"}); err != nil {
			t.Fatal(err)
		}
		sim.SetHang(id, true)
	}
	ctx := t.Context()
	errs := make(chan error, 3)
	for _, id := range []string{"v1", "v2", "v3"} {
		go func() {
			_, _, err := svc.Verify(ctx, id)
			errs <- err
		}()
	}
	busy, most := 0, 0
	for deadline := time.Now().Add(10 * time.Second); busy < 2 && time.Now().Before(deadline); {
		select {
		case err := <-errs:
			if !errors.Is(err, sessions.ErrUpstreamUnavailable) || sessions.RetryAfter(err) != time.Second {
				t.Fatalf("a verification beyond the bound = %v (Retry-After %s); want CXone busy, retry after 1s", err, sessions.RetryAfter(err))
			}
			busy++
		case <-time.After(10 * time.Millisecond):
			most = max(most, sim.Held())
		}
	}
	if busy != 2 || most != 1 {
		t.Fatalf("%d verifications told CXone is busy, at most %d held at CXone at once; want 2 and 1", busy, most)
	}
	// The hung verification holds one of the two slots; the mask has the other.
	if s, err := svc.Mask(context.Background(), sessions.MaskInput{UserID: "m", Caller: "crm"}); err != nil || s.State != sessions.StateMasked {
		t.Errorf("a mask while verifications hang = %+v, %v; want masked", s, err)
	}
}

func TestListDoesNotEndAtASessionThatClosedWhileListed(t *testing.T) {
	closes := &closeOnRead{}
	f := newFixture(t, closes)
	for _, id := range []string{"a", "b", "c", "d"} {
		f.sim.StartCall(id, false, true)
		if _, err := f.svc.Mask(context.Background(), sessions.MaskInput{UserID: id, Caller: "crm"}); err != nil {
			t.Fatal(err)
		}
	}
	closes.rdb, closes.key = f.rdb, "{"+f.prefix+"}:session:b"
	closes.armed.Store(true)
	var got []string
	for cursor, pages := "", 0; pages < 5; pages++ {
		page, err := f.svc.List(context.Background(), cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Sessions {
			got = append(got, s.UserID)
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if strings.Join(got, ",") != "a,c,d" {
		t.Errorf("listed %v; want a, c and d (b closed while its page was read)", got)
	}
}

// closeOnRead is a redis.Hook that, once armed, deletes the session at key just before
// the next pipeline of session reads runs: a close that lands between a list's two reads.
type closeOnRead struct {
	rdb   *redis.Client
	key   string
	armed atomic.Bool
}

func (c *closeOnRead) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *closeOnRead) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (c *closeOnRead) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if cmds[0].Name() == "hmget" && c.armed.CompareAndSwap(true, false) {
			if err := c.rdb.Del(ctx, c.key).Err(); err != nil {
				return err
			}
		}
		return next(ctx, cmds)
	}
}
