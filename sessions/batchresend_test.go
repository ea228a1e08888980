package sessions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/testkit"
)

// What the batcher sends again and what it never sends: a script Redis does not have is
// loaded, one a cluster refused without running is sent again, and one that may have run
// (its answer lost) or whose caller has gone is not.

// readers are the batcher's two ways to run a script, each with what its answer says
// of an INCR: run reads any reply, strings a flat array of strings, where a nil (a
// missing field of an HMGET) reads as "".
var readers = []struct {
	name string
	src  string // the INCR script in the form this reader reads
	read func(b *batcher, ctx context.Context, script *redis.Script, key string) (int64, error)
}{
	{"run", `return redis.call('INCR', KEYS[1])`, func(b *batcher, ctx context.Context, script *redis.Script, key string) (int64, error) {
		return b.run(ctx, script, []string{key}).Int64()
	}},
	{"strings", `return {tostring(redis.call('INCR', KEYS[1])), false}`, func(b *batcher, ctx context.Context, script *redis.Script, key string) (int64, error) {
		reply, err := b.strings(ctx, script, []string{key})
		if err != nil {
			return 0, err
		}
		if len(reply) != 2 || reply[1] != "" {
			return 0, fmt.Errorf("reply %q; want the count and \"\"", reply)
		}
		return strconv.ParseInt(reply[0], 10, 64)
	}},
}

// ungated is a batcher on a client of its own, and a key of the test's for its scripts.
func ungated(t *testing.T) (*batcher, *redis.Client, string) {
	t.Helper()
	rdb, prefix := testkit.Redis(t)
	return &batcher{rdb: rdb}, rdb, "{" + prefix + "}:n"
}

func TestScriptRedisDoesNotHaveIsLoaded(t *testing.T) {
	for _, r := range readers {
		t.Run(r.name, func(t *testing.T) {
			b, _, key := ungated(t)
			// A script Redis has never seen: as after a restart, without flushing the
			// scripts of the tests running beside this one.
			unseen := redis.NewScript("-- " + testkit.RandomHex(8) + "\n" + r.src)
			for want := int64(1); want <= 2; want++ {
				if n, err := r.read(b, context.Background(), unseen, key); err != nil || n != want {
					t.Fatalf("INCR by a script Redis did not have = %d, %v; want %d", n, err, want)
				}
			}
			// The first: refused with NOSCRIPT, then loaded by EVAL; the second: EVALSHA.
			if p, s := b.pipelines.Load(), b.scripts.Load(); p != 3 || s != 3 {
				t.Errorf("counted %d round trips carrying %d scripts; want 3 and 3", p, s)
			}
		})
	}
}

// A caller that has already gone gets its context's error, in the type it reads, and
// its script never runs.
func TestScriptOfACallerAlreadyGoneIsNotSent(t *testing.T) {
	for _, r := range readers {
		t.Run(r.name, func(t *testing.T) {
			b, rdb, key := ungated(t)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if n, err := r.read(b, ctx, redis.NewScript(r.src), key); !errors.Is(err, context.Canceled) {
				t.Fatalf("a caller already gone got %d, %v; want context.Canceled", n, err)
			}
			if n, err := rdb.Exists(context.Background(), key).Result(); err != nil || n != 0 {
				t.Errorf("its script ran (EXISTS = %d, %v)", n, err)
			}
			if p := b.pipelines.Load(); p != 0 {
				t.Errorf("%d round trips; want none", p)
			}
		})
	}
}

// slotsOnFirstScript gives a cluster node every slot when the first script is sent
// alone, after its pipeline was refused.
type slotsOnFirstScript struct {
	admin     *redis.Client
	pipelines atomic.Int32
	done      atomic.Bool
}

func (h *slotsOnFirstScript) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *slotsOnFirstScript) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "evalsha" && !h.done.Swap(true) {
			if err := h.admin.ClusterAddSlotsRange(ctx, 0, 16383).Err(); err != nil {
				return err
			}
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if info, _ := h.admin.ClusterInfo(ctx).Result(); strings.Contains(info, "cluster_state:ok") {
					break
				}
			}
		}
		return next(ctx, cmd)
	}
}
func (h *slotsOnFirstScript) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if cmds[0].Name() == "evalsha" {
			h.pipelines.Add(1)
		}
		return next(ctx, cmds)
	}
}

// A script Redis refused without running it (here a cluster node that serves no slot
// yet: CLUSTERDOWN) is sent again alone, with go-redis's retries, and succeeds once the
// node serves its slot. A script that may have run is not (the tests above).
func TestScriptRefusedWithoutRunningIsSentAgain(t *testing.T) {
	for _, r := range readers {
		t.Run(r.name, func(t *testing.T) {
			node := testkit.StartRedis(t, false, "cluster-enabled yes", "cluster-config-file nodes.conf")
			admin := redis.NewClient(&redis.Options{Addr: node.Addr(), Protocol: 2})
			defer admin.Close()
			h := &slotsOnFirstScript{admin: admin}
			rdb := redis.NewClient(&redis.Options{Addr: node.Addr(), Protocol: 2})
			defer rdb.Close()
			rdb.AddHook(h)
			b := &batcher{rdb: rdb}
			n, err := r.read(b, context.Background(), redis.NewScript(r.src), "{refused}:n")
			if err != nil || n != 1 {
				t.Fatalf("INCR refused with CLUSTERDOWN, then sent again = %d, %v; want 1", n, err)
			}
			if p := h.pipelines.Load(); p != 1 || !h.done.Load() {
				t.Errorf("%d pipelines, sent alone: %v; want the refused pipeline, then the script alone", p, h.done.Load())
			}
			if p, s := b.pipelines.Load(), b.scripts.Load(); p != 2 || s != 2 {
				t.Errorf("counted %d round trips carrying %d scripts; want 2 and 2", p, s)
			}
		})
	}
}

// scriptWrites counts the scripts written to the wire, on any connection the client
// opens, and calls dialed before each new connection.
type scriptWrites struct {
	n      atomic.Int32
	dialed func()
}

type countingConn struct {
	net.Conn
	w *scriptWrites
}

func (c countingConn) Write(p []byte) (int, error) {
	c.w.n.Add(int32(bytes.Count(p, []byte("evalsha"))))
	return c.Conn.Write(p)
}

func (w *scriptWrites) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if w.dialed != nil {
			w.dialed()
		}
		conn, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{conn, w}, nil
	}
}
func (w *scriptWrites) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (w *scriptWrites) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A script whose answer did not come back may have run: it is not sent again, on this
// connection or a new one (go-redis would otherwise retry the pipeline on a new
// connection, and the script would run twice).
func TestScriptThatTimedOutIsNotSentAgain(t *testing.T) {
	opts, err := redis.ParseURL(testkit.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := testkit.NewFaultProxy(t, opts.Addr)
	opts.Addr, opts.Protocol, opts.ContextTimeoutEnabled = proxy.Addr(), 2, true
	opts.ReadTimeout, opts.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond
	w := &scriptWrites{}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	rdb.AddHook(w)
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	// Redis gets the script and runs it, but its answer comes after the read timeout;
	// then the network is well again, for any connection opened after the script went.
	proxy.Set(testkit.Fault{Latency: 300 * time.Millisecond})
	w.dialed = func() {
		if w.n.Load() > 0 {
			proxy.Set(testkit.Fault{})
		}
	}
	direct, prefix := testkit.Redis(t)
	key := "{" + prefix + "}:n"
	b := &batcher{rdb: rdb}
	err = b.run(context.Background(), incrScript, []string{key}).Err()
	if n := w.n.Load(); n != 1 {
		t.Errorf("the script was written %d times; want once", n)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("script answered late: %v; want a timeout", err)
	}
	// It did run, once. (Waiting for it also keeps the proxy from delivering it after
	// the test's keys are deleted.)
	testkit.Eventually(t, 5*time.Second, "the late script to run", func() bool {
		return direct.Get(context.Background(), key).Val() == "1"
	})
}
