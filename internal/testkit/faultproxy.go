package testkit

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault is what a FaultProxy does to the traffic it carries.
type Fault struct {
	Latency        time.Duration // added before every chunk forwarded, both ways
	Refuse         bool          // new connections are closed at once; existing ones are cut
	Blackhole      bool          // connections are accepted (and kept) but nothing is forwarded either way
	ResetAfter     int           // a connection is reset once this many bytes came back from the target (0: never)
	BytesPerSecond int           // bandwidth cap per direction and connection (0: none)
}

// FaultProxy is a TCP proxy on loopback between the gateway and one of its
// dependencies, injecting Faults: real connections, real timeouts.
type FaultProxy struct {
	ln     net.Listener
	target string
	fault  atomic.Pointer[Fault]
	mu     sync.Mutex
	conns  map[net.Conn]struct{} // client connections
	wg     sync.WaitGroup
}

// NewFaultProxy proxies a free loopback port to target until the test ends.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &FaultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.fault.Store(&Fault{})
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// Addr is where to connect instead of the target.
func (p *FaultProxy) Addr() string { return p.ln.Addr().String() }

// Set changes the fault; Refuse also cuts the connections already open.
func (p *FaultProxy) Set(f Fault) {
	p.fault.Store(&f)
	if f.Refuse {
		p.cut()
	}
}

// Conns is how many client connections the proxy holds.
func (p *FaultProxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *FaultProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

func (p *FaultProxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *FaultProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.fault.Load().Refuse {
			client.Close()
			continue
		}
		p.wg.Go(func() { p.serve(client) })
	}
}

func (p *FaultProxy) serve(client net.Conn) {
	defer client.Close()
	var target net.Conn
	if !p.fault.Load().Blackhole {
		var err error
		if target, err = net.DialTimeout("tcp", p.target, 2*time.Second); err != nil {
			return
		}
	} else {
		// Black hole: hold the connection, forward nothing, until the client gives up.
		p.track(client, true)
		defer p.track(client, false)
		_, _ = io.Copy(io.Discard, client)
		return
	}
	defer target.Close()
	p.track(client, true) // cutting the client ends both pipes, and so the target
	defer p.track(client, false)
	done := make(chan struct{}, 2)
	var back atomic.Int64
	pipe := func(dst, src net.Conn, counted bool) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				f := p.fault.Load()
				switch {
				case f.Blackhole:
					continue // swallowed: the other side waits for ever
				case f.Latency > 0:
					time.Sleep(f.Latency)
				}
				if f.BytesPerSecond > 0 {
					time.Sleep(time.Duration(n) * time.Second / time.Duration(f.BytesPerSecond))
				}
				if counted && f.ResetAfter > 0 && back.Add(int64(n)) > int64(f.ResetAfter) {
					if tc, ok := dst.(*net.TCPConn); ok {
						_ = tc.SetLinger(0) // RST, not FIN
					}
					dst.Close()
					src.Close()
					return
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go pipe(target, client, false)
	go pipe(client, target, true)
	<-done
	client.Close()
	target.Close()
	<-done
}
