package sessions_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/sessions"
	"github.com/maskgate/maskgate/upstream"
)

// TestWhatARedisCrashLoses measures what the README promises about Redis durability:
// sessions are opened, Redis is killed with SIGKILL right after the last answer and
// restarted on the same data directory, and the open sessions are counted.
func TestWhatARedisCrashLoses(t *testing.T) {
	if testing.Short() {
		t.Skip("crashes redis-server processes")
	}
	const n = 200
	for _, tt := range []struct {
		name        string
		conf        []string
		least, most int
	}{
		{"no persistence", []string{"appendonly no"}, 0, 0},
		{"appendfsync always", []string{"appendonly yes", "appendfsync always"}, n, n},
		// A process crash loses nothing here either: what write() gave the kernel is
		// kept. everysec can lose up to a second when the machine itself goes down.
		{"appendfsync everysec", []string{"appendonly yes", "appendfsync everysec"}, n, n},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := testkit.StartRedis(t, false, tt.conf...)
			rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
			defer rdb.Close()
			sim := testkit.NewSim(t)
			svc := sessions.NewService(sessions.NewStore(rdb, "d"), upstream.New(sim.UpstreamConfig()),
				sessions.Config{DefaultTTL: time.Hour, MaxTTL: time.Hour})
			for i := range n {
				id := fmt.Sprintf("d-%d", i)
				sim.StartCall(id, false, true)
				if _, err := svc.Mask(context.Background(), sessions.MaskInput{UserID: id, Caller: "t"}); err != nil {
					t.Fatal(err)
				}
			}
			r.Kill()
			r.Restart(t)
			page, err := svc.List(context.Background(), "", 1000)
			if err != nil {
				t.Fatal(err)
			}
			kept := len(page.Sessions)
			t.Logf("%s: %d of %d acknowledged sessions survived a SIGKILL of Redis", tt.name, kept, n)
			if kept < tt.least || kept > tt.most {
				t.Errorf("%d of %d sessions kept; want %d to %d", kept, n, tt.least, tt.most)
			}
		})
	}
}
