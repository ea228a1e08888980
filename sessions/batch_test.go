package sessions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
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
	if _, ok := errors.AsType[redis.Error](reply); !ok {
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
