package sessions_test

import (
	"context"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

// TestTrailLeavesOpenWhatRedisHoldsOpen drives agents through every kind of session
// decision, then reads the audit trail they left: the sessions it leaves open are
// exactly those Redis holds open, so that after Redis lost its data the trail names
// the agents to unmask. The trail is read as written, in reverse (replicas' lines
// merged out of order) and with a prefix on every line (as kubectl logs --prefix
// writes them).
func TestTrailLeavesOpenWhatRedisHoldsOpen(t *testing.T) {
	var logs testkit.LogBuffer
	c := newCluster(t, 0, func(_ *sessions.Config, s *sessions.SweeperConfig) { s.Log = zerolog.New(&logs) })
	r := c.start()
	ctx := zerolog.New(&logs).With().Timestamp().Logger().WithContext(context.Background())
	svc := r.svc
	// Each request starts in a millisecond of its own, so that no two of a session's
	// lines share a time: of those that do, OpenInTrail cannot tell which came last, and
	// reads them in the order it is given them.
	nextMillisecond := func() {
		for start := time.Now().Truncate(time.Millisecond); !time.Now().Truncate(time.Millisecond).After(start); {
			runtime.Gosched()
		}
	}
	mask := func(id string, ttl int) (sessions.Session, error) {
		nextMillisecond()
		return svc.Mask(ctx, sessions.MaskInput{UserID: id, Caller: "crm", TTLSeconds: &ttl})
	}
	unmask := func(in sessions.UnmaskInput) (sessions.Session, error) {
		nextMillisecond()
		in.Caller = "crm"
		return svc.Unmask(ctx, in)
	}
	must := func(_ sessions.Session, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	faults := func(f cxonesim.Faults) { c.sim.SetFaults(f) }
	outage := cxonesim.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable}
	for _, id := range []string{"masked", "unmasked", "expired", "re-mask-refused", "unknown", "pending", "not-sent",
		"superseded", "superseded-refused", "mismatch", "coalesced", "accepted"} {
		c.sim.StartCall(id, false, true)
	}
	c.sim.StartCall("internal", true, true)

	must(mask("masked", 600))
	must(mask("unmasked", 600))
	must(unmask(sessions.UnmaskInput{UserID: "unmasked"}))
	must(mask("expired", 1))
	mask("no-call", 600)  // 404: never opened
	mask("internal", 600) // 422: never opened
	faults(cxonesim.Faults{TokenDown: true})
	// A replica that has no token yet, and cannot get one: never sent, never opened.
	c.start().svc.Mask(ctx, sessions.MaskInput{UserID: "not-sent", Caller: "crm"})
	faults(cxonesim.Faults{})
	must(mask("re-mask-refused", 600))
	faults(cxonesim.Faults{DenyMasking: true})
	mask("re-mask-refused", 300) // 403: the open session stays, with the deadline this re-mask wrote
	faults(outage)
	mask("unknown", 600) // may have masked: stays open
	faults(cxonesim.Faults{})
	must(mask("pending", 600))
	must(mask("superseded", 600))
	faults(outage)
	must(unmask(sessions.UnmaskInput{UserID: "pending"}))
	must(unmask(sessions.UnmaskInput{UserID: "superseded"}))
	faults(cxonesim.Faults{})
	must(mask("superseded", 600)) // replaces the session whose unmask was pending
	must(mask("superseded-refused", 600))
	c.sim.StartCall("superseded-refused", true, true) // its latest call is internal now
	unmask(sessions.UnmaskInput{UserID: "superseded-refused"})
	mask("superseded-refused", 600) // 422: the session it replaced comes back
	ended := c.sim.StartCall("call-ended", false, true)
	must(mask("call-ended", 600))
	c.sim.EndCall(ended.ID)
	mask("call-ended", 600) // 404: the masked call has ended, the session closes
	must(mask("mismatch", 600))
	unmask(sessions.UnmaskInput{UserID: "mismatch", SessionID: new("another")})
	faults(cxonesim.Faults{LatencyMs: 200})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { mask("coalesced", 600) })
	}
	wg.Wait()
	faults(cxonesim.Faults{})
	c.sim.SetBehaviour("accepted", 0, time.Hour) // 202, not carried out during the test
	must(mask("accepted", 600))
	c.closed(t, "expired", 5*time.Second)
	faults(outage)
	unmask(sessions.UnmaskInput{UserID: "forced", Force: true}) // opens a session of its own, retried
	r.stop()
	<-r.done

	var inRedis []string
	due := map[string]time.Time{} // when the sweeper would unmask each: zero when it is unmasking
	for page, cursor := (sessions.Page{}), ""; ; cursor = page.Next {
		var err error
		if page, err = svc.List(context.Background(), cursor, 100); err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Sessions {
			inRedis = append(inRedis, s.UserID+" "+s.ID)
			if s.State != sessions.StateUnmasking {
				due[s.ID] = s.ExpiresAt
			}
		}
		if page.Next == "" {
			break
		}
	}
	holds := func(agent string) bool {
		return slices.ContainsFunc(inRedis, func(s string) bool { return strings.HasPrefix(s, agent+" ") })
	}
	for _, agent := range []string{"masked", "re-mask-refused", "unknown", "superseded", "superseded-refused", "mismatch", "coalesced", "accepted", "forced"} {
		if !holds(agent) {
			t.Fatalf("Redis holds no session of %s: the scenario did not go as meant (%v)", agent, inRedis)
		}
	}
	for _, agent := range []string{"unmasked", "expired", "no-call", "internal", "not-sent", "call-ended"} {
		if holds(agent) {
			t.Fatalf("Redis holds a session of %s: the scenario did not go as meant (%v)", agent, inRedis)
		}
	}
	lines := strings.SplitAfter(logs.String(), "\n")
	reversed := slices.Clone(lines)
	slices.Reverse(reversed)
	prefixed := make([]string, len(lines))
	for i, l := range lines {
		prefixed[i] = "[pod/maskgate-7d9f/maskgate] " + l
	}
	for name, trail := range map[string][]string{"as written": lines, "reversed": reversed, "prefixed": prefixed} {
		open, err := sessions.OpenInTrail(strings.NewReader(strings.Join(trail, "")))
		if err != nil {
			t.Fatal(err)
		}
		var fromTrail []string
		for _, s := range open {
			fromTrail = append(fromTrail, s.UserID+" "+s.SessionID)
			if !s.Due.Equal(due[s.SessionID]) {
				t.Errorf("%s, the trail has %s due at %v; Redis, at %v", name, s.UserID, s.Due, due[s.SessionID])
			}
		}
		slices.Sort(fromTrail)
		if !slices.Equal(fromTrail, inRedis) {
			t.Errorf("%s, the trail leaves open\n%v\nbut Redis holds\n%v", name, fromTrail, inRedis)
		}
	}
}

// OpenInTrail passes over what is not an audit line, and gives the latest event of
// each open session.
func TestTrailReadsOnlyAuditLines(t *testing.T) {
	trail := `not json at all
{"level":"info","message":"request","status":200}
{"audit":true,"event":"masked","user_id":"a","session_id":"s1","outcome":"done","time":"2026-11-26T10:00:00.000Z"}
{"audit":true,"event":"rejected","user_id":"a","session_id":"","outcome":"not_masked","time":"2026-11-26T10:00:01.000Z"}
{"audit":true,"event":"unmask_retry","user_id":"a","session_id":"s1","outcome":"pending","time":"2026-11-26T10:05:00.000Z"}
{"audit":true,"event":"re-masked","user_id":"a","session_id":"s1","outcome":"done","time":"2026-11-26T10:02:00.000Z"}
{"audit":true,"event":"mask_failed","user_id":"b","session_id":"s2","outcome":"rejected","time":"2026-11-26T10:03:00.000Z"}
{"audit":true,"event":"coalesced","user_id":"b","session_id":"s2","outcome":"no_active_call","time":"2026-11-26T10:03:00.000Z"}
{"audit":true,"event":"masked","user_id":"c","session_id":"s3"
`
	open, err := sessions.OpenInTrail(strings.NewReader(trail))
	if err != nil {
		t.Fatal(err)
	}
	want := []sessions.TrailSession{{UserID: "a", SessionID: "s1", LastEvent: "unmask_retry", LastAt: time.Date(2026, 11, 26, 10, 5, 0, 0, time.UTC)}}
	if len(open) != 1 || open[0].UserID != want[0].UserID || open[0].SessionID != want[0].SessionID ||
		open[0].LastEvent != want[0].LastEvent || !open[0].LastAt.Equal(want[0].LastAt) {
		t.Errorf("OpenInTrail = %+v; want %+v", open, want)
	}
}

// TestTrailCases: what one kind of line does to the sessions a trail leaves open.
func TestTrailCases(t *testing.T) {
	line := func(event, session, at string, more ...string) string {
		return `{"audit":true,"event":"` + event + `","user_id":"a","session_id":"` + session + `","time":"2026-11-26T10:` + at + `.000Z"` + strings.Join(more, "") + "}\n"
	}
	const due = `,"expires_at":"2026-11-26T10:15:00.000Z"`
	for _, tt := range []struct {
		name      string
		trail     string
		lastEvent string // of the one session left open, or "" for none
		withDue   bool
	}{
		{"a line that is not an audit line names a session", `{"level":"warn","message":"recording status not read","user_id":"a","session_id":"s1"}` + "\n", "", false},
		{"a mask whose failure could not be recorded opened nothing by itself", line("store_failed", "s1", "00:00", `,"outcome":"unknown"`), "", false},
		{"of lines with the same time, the one read last counts",
			line("masked", "s1", "00:00", due) + line("unmask_retry", "s1", "05:00") + line("unmask_unconfirmed", "s1", "05:00"), "unmask_unconfirmed", false},
		{"an unmask given up is under way: no due time",
			line("masked", "s1", "00:00", due) + line("unmask_gave_up", "s1", "05:00"), "unmask_gave_up", false},
		{"a claim released by a stopping replica is an unmask under way: no due time",
			line("masked", "s1", "00:00", due) + line("released", "s1", "15:01"), "released", false},
		{"an unmask CXone carried out closes the session", line("masked", "s1", "00:00", due) + line("unmasked", "s1", "05:00"), "", false},
		{"an expiry CXone carried out closes the session", line("masked", "s1", "00:00", due) + line("expired", "s1", "15:00"), "", false},
		{"a 202's unmask, confirmed, closes the session", line("masked", "s1", "00:00", due) + line("unmask_confirmed", "s1", "05:00"), "", false},
		{"a forced unmask closes the session", line("masked", "s1", "00:00", due) + line("forced_unmask", "s1", "05:00"), "", false},
		{"the end of the agent's call closes the session", line("masked", "s1", "00:00", due) + line("call_ended", "s1", "05:00"), "", false},
		{"a line longer than 64 KiB, of another program",
			`{"level":"error","stack":"` + strings.Repeat("x", 100<<10) + `"}` + "\n" + line("masked", "s1", "00:00", due), "masked", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			open, err := sessions.OpenInTrail(strings.NewReader(tt.trail))
			switch {
			case err != nil:
				t.Fatal(err)
			case tt.lastEvent == "" && len(open) != 0:
				t.Errorf("OpenInTrail = %+v; want nothing open", open)
			case tt.lastEvent != "" && (len(open) != 1 || open[0].LastEvent != tt.lastEvent || open[0].Due.IsZero() == tt.withDue):
				t.Errorf("OpenInTrail = %+v; want s1 open after %s, with a due time: %v", open, tt.lastEvent, tt.withDue)
			}
		})
	}
}
