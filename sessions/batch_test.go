package sessions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/testkit"
)

var incrScript = redis.NewScript(`return redis.call('INCR', KEYS[1])`)

// gate holds every script pipeline until it is opened, and records their sizes; with
// fail set, it fails them as an unreachable Redis would, sending nothing.
type gate struct {
	open  chan struct{}
	fail  error
	mu    sync.Mutex
	sizes []int
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (g *gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (g *gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if cmds[0].Name() != "evalsha" {
			return next(ctx, cmds) // a new connection's handshake
		}
		g.mu.Lock()
		g.sizes = append(g.sizes, len(cmds))
		g.mu.Unlock()
		<-g.open
		if g.fail != nil {
			for _, cmd := range cmds {
				cmd.SetErr(g.fail)
			}
			return g.fail
		}
		return next(ctx, cmds)
	}
}

func (g *gate) pipelines() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.sizes)
}

// gated is a batcher whose script pipelines g holds, on a client of its own, with
// incrScript loaded as after its first use (no NOSCRIPT resend in the tests' counts).
func gated(t *testing.T, g *gate) (*batcher, *redis.Client, string) {
	t.Helper()
	rdb, prefix := testkit.Redis(t, g)
	if err := incrScript.Load(context.Background(), rdb).Err(); err != nil {
		t.Fatal(err)
	}
	return &batcher{rdb: rdb}, rdb, prefix
}

func (b *batcher) queuedLen() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queued)
}

// held starts a script on each of the maxFlushers pipelines, which the gate holds, one
// after the other so that each has a pipeline of its own.
func held(t *testing.T, b *batcher, g *gate, key string) <-chan *redis.Cmd {
	t.Helper()
	out := make(chan *redis.Cmd, maxFlushers)
	for i := range maxFlushers {
		go func() { out <- b.run(context.Background(), incrScript, []string{key}) }()
		testkit.Eventually(t, 5*time.Second, "a pipeline to be held", func() bool { return len(g.pipelines()) == i+1 })
	}
	return out
}

func TestScriptsQueuedBehindBusyPipelinesGoOutTogether(t *testing.T) {
	g := newGate()
	b, _, prefix := gated(t, g)
	key := "{" + prefix + "}:n"
	first := held(t, b, g, key)

	const queued = 20
	results := make(chan *redis.Cmd, queued)
	for range queued {
		go func() { results <- b.run(context.Background(), incrScript, []string{key}) }()
	}
	testkit.Eventually(t, 5*time.Second, "the scripts to queue", func() bool { return b.queuedLen() == queued })
	close(g.open)

	var got []int64
	for range maxFlushers {
		n, err := (<-first).Int64()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	for range queued {
		n, err := (<-results).Int64()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	slices.Sort(got)
	for i, n := range got {
		if n != int64(i+1) {
			t.Fatalf("INCR replies %v; want each of 1..%d once", got, maxFlushers+queued)
		}
	}
	sizes := g.pipelines()
	if !slices.Equal(sizes[maxFlushers:], []int{queued}) {
		t.Errorf("pipelines of %v scripts; want %d of 1, then the %d queued scripts in one", sizes, maxFlushers, queued)
	}
	if p, n := b.pipelines.Load(), b.scripts.Load(); p != maxFlushers+1 || n != maxFlushers+queued {
		t.Errorf("counted %d pipelines carrying %d scripts; want %d carrying %d", p, n, maxFlushers+1, maxFlushers+queued)
	}
}

// behind is a batcher whose gate holds both pipelines, with one more script queued
// behind them by a caller who may give up (cancel).
type behind struct {
	g        *gate
	b        *batcher
	rdb      *redis.Client
	first    <-chan *redis.Cmd // the held scripts' answers
	key      string            // the queued script's key
	cancel   context.CancelFunc
	answered <-chan *redis.Cmd
}

func queuedBehind(t *testing.T) *behind {
	t.Helper()
	q := &behind{g: newGate()}
	var prefix string
	q.b, q.rdb, prefix = gated(t, q.g)
	q.first = held(t, q.b, q.g, "{"+prefix+"}:n")
	q.key = "{" + prefix + "}:gone"
	ctx, cancel := context.WithCancel(context.Background())
	answered := make(chan *redis.Cmd, 1)
	go func() { answered <- q.b.run(ctx, incrScript, []string{q.key}) }()
	testkit.Eventually(t, 5*time.Second, "the script to queue", func() bool { return q.b.queuedLen() == 1 })
	q.cancel, q.answered = cancel, answered
	return q
}

// openGate lets every pipeline through and checks the held scripts' answers.
func (q *behind) openGate(t *testing.T) {
	t.Helper()
	close(q.g.open)
	for range maxFlushers {
		if err := (<-q.first).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestScriptOfACallerThatGaveUpIsNeverSent(t *testing.T) {
	q := queuedBehind(t)
	q.cancel()
	select {
	case cmd := <-q.answered:
		if err := cmd.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("the caller that gave up got %v; want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the caller that gave up is still waiting for the pipelines ahead of it")
	}
	q.openGate(t)
	testkit.Eventually(t, 5*time.Second, "the queue to be taken", func() bool { return q.b.queuedLen() == 0 })
	if n, err := q.rdb.Exists(context.Background(), q.key).Result(); err != nil || n != 0 {
		t.Errorf("the script of the caller that gave up ran (EXISTS = %d, %v)", n, err)
	}
	if sizes := q.g.pipelines(); len(sizes) != maxFlushers {
		t.Errorf("pipelines of %v scripts; want only the %d held ones", sizes, maxFlushers)
	}
}

func TestScriptSentIsAwaitedAfterItsCallerGaveUp(t *testing.T) {
	// A begin script that ran takes the agent's lock: had its caller stopped waiting,
	// nobody would release it, and the agent would stay locked until its lease ended.
	q := queuedBehind(t)
	q.g.open <- struct{}{} // one held pipeline goes on; its sender sends the queue next, which the gate holds
	testkit.Eventually(t, 5*time.Second, "the queued script to be sent", func() bool { return len(q.g.pipelines()) == maxFlushers+1 })
	q.cancel()
	select {
	case cmd := <-q.answered:
		t.Fatalf("the caller stopped waiting for a script already sent (%v)", cmd.Err())
	case <-time.After(100 * time.Millisecond):
	}
	q.openGate(t)
	if n, err := (<-q.answered).Int64(); err != nil || n != 1 {
		t.Fatalf("the caller that gave up after its script was sent got %d, %v; want its answer, 1", n, err)
	}
	if n, err := q.rdb.Get(context.Background(), q.key).Int64(); err != nil || n != 1 {
		t.Errorf("the script ran %d times (%v); want once", n, err)
	}
}

// A batch's pipeline lasts until the latest deadline of its callers: one whose caller
// had the least time must not cut short the others' scripts, sent with it.
func TestBatchLastsUntilItsLatestCallersDeadline(t *testing.T) {
	g := newGate()
	b, _, prefix := gated(t, g)
	key := "{" + prefix + "}:n"
	first := held(t, b, g, key)
	long, cancelLong := context.WithTimeout(context.Background(), time.Minute)
	defer cancelLong()
	short, cancelShort := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelShort()
	answers := make(chan *redis.Cmd, 2)
	go func() { answers <- b.run(long, incrScript, []string{key + ":long"}) }()
	go func() { answers <- b.run(short, incrScript, []string{key + ":short"}) }()
	testkit.Eventually(t, 5*time.Second, "both scripts to queue", func() bool { return b.queuedLen() == 2 })
	g.open <- struct{}{} // one held pipeline goes on; its sender sends the queue, which the gate holds
	testkit.Eventually(t, 5*time.Second, "the queue to be sent", func() bool { return len(g.pipelines()) == maxFlushers+1 })
	<-short.Done()
	close(g.open)
	for range maxFlushers {
		if err := (<-first).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // the short one's too: sent, it is awaited whatever it got
		<-answers
	}
	if n, err := b.rdb.Get(context.Background(), key+":long").Int64(); err != nil || n != 1 {
		t.Errorf("the script with a minute to run ran %d times (%v) in a batch held past the other's deadline; want once", n, err)
	}
}

// refused tells the replies and failures after which Redis surely did not run a script
// (it is sent again alone) from those after which it may have (it is not): each of the
// refusals that pass, worded as Redis words them.
func TestRefusedIsOnlyWhatSurelyDidNotRun(t *testing.T) {
	for err, want := range map[error]bool{
		errors.New("LOADING Redis is loading the dataset in memory"):                                   true,
		errors.New("READONLY You can't write against a read only replica."):                            true,
		errors.New("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."): true,
		errors.New("CLUSTERDOWN The cluster is down"):                                                  true,
		errors.New("TRYAGAIN Multiple keys request during rehashing of slot"):                          true,
		errors.New("ERR max number of clients reached"):                                                true,
		redis.ErrPoolTimeout: true,
		&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}: true,
		// Sent, then the connection failed or the wait ended: it may have run.
		&net.OpError{Op: "read", Net: "tcp", Err: errors.New("i/o timeout")}: false,
		io.EOF:                   false,
		context.DeadlineExceeded: false,
		errors.New("ERR user_script:1: Script attempted to access nonexistent global variable 'x'"): false,
	} {
		if got := refused(err); got != want {
			t.Errorf("refused(%v) = %v; want %v", err, got, want)
		}
	}
}

// Only a failure of the connection fails the scripts queued behind a batch: not the
// batch's callers' deadline, nor a script's own error reply.
func TestOnlyAFailedConnectionFailsTheQueue(t *testing.T) {
	rdb, _ := testkit.Redis(t)
	reply := rdb.Do(context.Background(), "NO-SUCH-COMMAND").Err()
	var re redis.Error
	if !errors.As(reply, &re) {
		t.Fatalf("Redis's answer to an unknown command is %T %v; want an error reply", reply, reply)
	}
	for err, want := range map[error]bool{
		reply:                    false,
		context.DeadlineExceeded: false,
		fmt.Errorf("pipeline: %w", context.Canceled): false,
		io.EOF: true,
		&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}: true,
	} {
		if got := unreachable(err); got != want {
			t.Errorf("unreachable(%v) = %v; want %v", err, got, want)
		}
	}
}

func TestScriptsQueuedBehindAnUnreachableRedisFailWithIt(t *testing.T) {
	g := newGate()
	g.fail = errors.New("i/o timeout")
	b, _, prefix := gated(t, g)
	key := "{" + prefix + "}:n"
	first := held(t, b, g, key)

	const queued = 5
	results := make(chan error, queued)
	for range queued {
		go func() { results <- b.run(context.Background(), incrScript, []string{key}).Err() }()
	}
	testkit.Eventually(t, 5*time.Second, "the scripts to queue", func() bool { return b.queuedLen() == queued })
	close(g.open)
	for range maxFlushers + queued {
		var err error
		select {
		case cmd := <-first:
			err = cmd.Err()
		case err = <-results:
		}
		if err == nil || err.Error() != g.fail.Error() {
			t.Errorf("a script behind an unreachable Redis got %v; want %v", err, g.fail)
		}
	}
	if sizes := g.pipelines(); len(sizes) != maxFlushers {
		t.Errorf("pipelines of %v scripts; want only the %d that failed: the queued scripts fail with them", sizes, maxFlushers)
	}
	testkit.Eventually(t, 5*time.Second, "the flushers to end", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.flushers == 0
	})
}

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
