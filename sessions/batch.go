package sessions

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxFlushers bounds the pipelines in flight, and so the Redis connections the scripts
// hold at once. A script that arrives while one is free is sent at once, by its own
// caller; under load the scripts of concurrent requests queue behind the busy pipelines
// and go out together.
const maxFlushers = 2

// batcher runs the session scripts of concurrent requests through shared pipelines:
// one write and one read, on maskgate's side and on Redis's, for a whole batch
// instead of for each script (Redis is single-threaded and shared by every replica).
//
// Unlike go-redis's experimental AutoPipeline, it is bound by each caller's context: a
// caller whose script waits in the queue stops waiting when its context ends, and a
// script whose caller has already gone is dropped, never sent late. A script already
// sent is waited for all the same: it runs in Redis whatever its caller does, and what
// it did (an agent's lock taken) must reach the caller to be undone.
type batcher struct {
	rdb redis.UniversalClient

	mu       sync.Mutex // held to queue, take or fail calls, never across I/O
	queued   []*scriptCall
	flushers int

	pipelines, scripts atomic.Int64 // sent so far: round trips, and the scripts they carried
}

type scriptCall struct {
	ctx    context.Context
	script *redis.Script
	keys   []string
	args   []any
	newCmd func(ctx context.Context, args ...any) redis.Cmder // the reply's type
	cmd    redis.Cmder
	done   chan struct{} // closed when cmd holds the reply
	state  atomic.Int32  // queued, then sent or dropped, whichever comes first
}

// The states of a scriptCall.
const (
	queued int32 = iota
	sent
	dropped // its caller stopped waiting before it was sent
)

// The replies a script's caller reads: any (nested arrays, integers), or a flat array
// of strings, which go-redis reads straight into a []string.
func anyReply(ctx context.Context, args ...any) redis.Cmder { return redis.NewCmd(ctx, args...) }
func stringsReply(ctx context.Context, args ...any) redis.Cmder {
	return redis.NewStringSliceCmd(ctx, args...)
}

// run is script.Run, sent in a pipeline with whatever other scripts are waiting.
func (b *batcher) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	cmd, again := b.do(ctx, anyReply, script, keys, args)
	if again != nil {
		return again(ctx, b.rdb, keys, args...)
	}
	return cmd.(*redis.Cmd)
}

// strings is run for a script whose reply is a flat array of strings (the session
// scripts), a nil read as "": without an interface value per element and the copy into
// a []string, a mask allocates about 40 objects fewer.
func (b *batcher) strings(ctx context.Context, script *redis.Script, keys []string, args ...any) ([]string, error) {
	cmd, again := b.do(ctx, stringsReply, script, keys, args)
	if again != nil {
		vals, err := again(ctx, b.rdb, keys, args...).Slice()
		return strs(vals), err
	}
	return cmd.(*redis.StringSliceCmd).Result()
}

// alone sends a script by itself, outside the pipelines: script.Eval or script.Run.
type alone func(ctx context.Context, c redis.Scripter, keys []string, args ...any) *redis.Cmd

// do queues the script and returns its reply, of newCmd's type; or, when Redis did not
// run it and it must be sent again by itself, how.
func (b *batcher) do(ctx context.Context, newCmd func(context.Context, ...any) redis.Cmder, script *redis.Script, keys []string, args []any) (redis.Cmder, alone) {
	c := &scriptCall{ctx: ctx, script: script, keys: keys, args: args, newCmd: newCmd, done: make(chan struct{})}
	b.mu.Lock()
	b.queued = append(b.queued, c)
	lead := b.flushers < maxFlushers
	if lead {
		b.flushers++
	}
	b.mu.Unlock()
	// With a pipeline free, the caller sends the queue itself, its own script with it:
	// no hand-off to another goroutine and back, which costs CPU and, on busy cores,
	// latency. What queues meanwhile goes on in a goroutine of its own.
	if lead && b.sendQueued() {
		go b.flush()
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		if c.state.CompareAndSwap(queued, dropped) {
			cmd := newCmd(ctx)
			cmd.SetErr(ctx.Err())
			return cmd, nil
		}
		// Sent: its answer comes within the pipeline's timeouts (send).
		<-c.done
	}
	switch err := c.cmd.Err(); {
	case err == nil:
		// The common case, decided before the checks below, whose errors.As allocate.
	case redis.HasErrorPrefix(err, "NOSCRIPT"):
		// Redis lost its script cache (a restart, a failover): EVAL loads it again.
		b.sentAlone()
		return nil, script.Eval
	case refused(err):
		b.sentAlone()
		return nil, script.Run
	}
	return c.cmd, nil
}

// sentAlone counts a script sent again outside the pipelines as one more round trip
// carrying one script (go-redis's own retries of it are not seen here).
func (b *batcher) sentAlone() {
	b.pipelines.Add(1)
	b.scripts.Add(1)
}

// refused reports whether the script surely did not run: the connection could not be
// made, or Redis refused it for a reason that passes (a node loading, a failover, a
// cluster reconfiguring). Sent alone, it then gets go-redis's retries, as any command.
func refused(err error) bool {
	var op *net.OpError
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsMasterDownError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err) || redis.IsMaxClientsError(err) ||
		errors.Is(err, redis.ErrPoolTimeout) || errors.As(err, &op) && op.Op == "dial"
}

// flush sends what is queued until nothing is.
func (b *batcher) flush() {
	for b.sendQueued() {
	}
}

// sendQueued sends the queued scripts in one pipeline and reports whether more queued
// meanwhile; when none did, the pipeline's slot is free again. When Redis could not be
// reached, the scripts that queued meanwhile fail with it rather than wait for a
// timeout of their own: a caller's wait is one pipeline's timeouts, as without the
// batcher.
func (b *batcher) sendQueued() bool {
	b.mu.Lock()
	batch := b.queued
	b.queued = nil
	b.mu.Unlock()
	err := b.send(batch)
	b.mu.Lock()
	defer b.mu.Unlock()
	if unreachable(err) {
		for _, c := range b.queued {
			c.cmd = c.newCmd(c.ctx)
			c.cmd.SetErr(err)
			close(c.done)
		}
		b.queued = nil
	}
	if len(b.queued) == 0 {
		b.flushers--
		return false
	}
	return true
}

// unreachable tells a failure of the connection from a script's own error reply and
// from a batch whose callers have all stopped waiting.
func unreachable(err error) bool {
	if err == nil {
		return false // before reply, which errors.As makes escape: no allocation per batch
	}
	var reply redis.Error
	return !errors.As(err, &reply) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// send runs a batch in one pipeline, until the latest deadline of its callers, who all
// wait for it (a script sent may have run). The client's read and write timeouts bound
// it too (maskgate sets 1 s; a script is not retried), also for callers without a
// deadline.
func (b *batcher) send(batch []*scriptCall) error {
	pipe := b.rdb.Pipeline()
	ctx := context.Background()
	var latest time.Time
	bounded := true
	live := batch[:0]
	for _, c := range batch {
		if c.ctx.Err() != nil || !c.state.CompareAndSwap(queued, sent) {
			continue // its caller has gone
		}
		if d, ok := c.ctx.Deadline(); !ok {
			bounded = false
		} else if d.After(latest) {
			latest = d
		}
		c.cmd = evalSha(c)
		_ = pipe.Process(ctx, once{c.cmd})
		live = append(live, c)
	}
	if len(live) == 0 {
		return nil
	}
	if bounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	b.pipelines.Add(1)
	b.scripts.Add(int64(len(live)))
	_, err := pipe.Exec(ctx) // each command holds its own reply or error too
	for _, c := range live {
		close(c.done)
	}
	return err
}

// evalSha is the command script.EvalSha sends, of the type its caller reads.
func evalSha(c *scriptCall) redis.Cmder {
	cmdArgs := make([]any, 0, 3+len(c.keys)+len(c.args))
	cmdArgs = append(cmdArgs, "evalsha", c.script.Hash(), len(c.keys))
	for _, k := range c.keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmd := c.newCmd(c.ctx, append(cmdArgs, c.args...)...)
	cmd.SetFirstKeyPos(3) // Cluster routes it by its first key
	return cmd
}

// once is a command go-redis must not send twice: a script whose reply did not come
// back may have run, and go-redis retries a pipeline that timed out on new
// connections, several times over. The caller gets the error; a script that surely did
// not run is sent again alone (refused).
type once struct{ redis.Cmder }

func (once) NoRetry() bool { return true }
