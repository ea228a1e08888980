package upstream_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/maskgate/maskgate/internal/testkit"
	"github.com/maskgate/maskgate/upstream"
)

// BenchmarkMask is one mask through the client to the simulator over loopback HTTP,
// from 32 goroutines as maskbench's 32 connections: the cost of CXone's client (the
// simulator's share, in the same process, included).
func BenchmarkMask(b *testing.B) {
	sim := testkit.NewSimServing(b, 1000, nil)
	const agents = 500
	for i := range agents {
		sim.StartCall(strconv.Itoa(i), false, true)
	}
	c := upstream.New(sim.UpstreamConfig())
	defer c.Close()
	if err := c.Ready(context.Background()); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16) // 32 goroutines on this project's 2 cores
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Mask(context.Background(), strconv.Itoa(int(n.Add(1)%agents))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
