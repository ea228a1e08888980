package testkit

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// echoThroughProxy starts an echo server behind a FaultProxy set to f, and a client
// connection through it.
func echoThroughProxy(t *testing.T, f Fault) (*FaultProxy, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	p := NewFaultProxy(t, ln.Addr().String())
	p.Set(f)
	c := dial(t, p)
	return p, c
}

func dial(t *testing.T, p *FaultProxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads as many bytes back, within a minute.
func roundTrip(c net.Conn, msg []byte) ([]byte, time.Duration, error) {
	start := time.Now()
	_ = c.SetDeadline(start.Add(time.Minute))
	if _, err := c.Write(msg); err != nil {
		return nil, 0, err
	}
	got := make([]byte, len(msg))
	n, err := io.ReadFull(c, got)
	return got[:n], time.Since(start), err
}

func TestFaultProxyForwardsWithoutAFault(t *testing.T) {
	p, c := echoThroughProxy(t, Fault{})
	if got, _, err := roundTrip(c, []byte("PING")); err != nil || string(got) != "PING" {
		t.Fatalf("echo through the proxy: %q, %v", got, err)
	}
	if p.Conns() != 1 {
		t.Errorf("the proxy holds %d connections, want 1", p.Conns())
	}
}

func TestFaultProxyAddsLatencyBothWays(t *testing.T) {
	_, c := echoThroughProxy(t, Fault{Latency: 100 * time.Millisecond})
	if got, took, err := roundTrip(c, []byte("PING")); err != nil || string(got) != "PING" || took < 200*time.Millisecond {
		t.Errorf("echo took %v (%q, %v); want 100ms each way", took, got, err)
	}
}

func TestFaultProxyCapsBandwidth(t *testing.T) {
	_, c := echoThroughProxy(t, Fault{BytesPerSecond: 1000})
	msg := bytes.Repeat([]byte("x"), 200)
	if got, took, err := roundTrip(c, msg); err != nil || !bytes.Equal(got, msg) || took < 400*time.Millisecond {
		t.Errorf("200 bytes each way at 1000 bytes/s took %v (%d bytes back, %v); want 0.4s at least", took, len(got), err)
	}
}

func TestFaultProxyRefusesAndCuts(t *testing.T) {
	p, open := echoThroughProxy(t, Fault{})
	if _, _, err := roundTrip(open, []byte("PING")); err != nil {
		t.Fatal(err)
	}
	p.Set(Fault{Refuse: true})
	if _, _, err := roundTrip(open, []byte("PING")); err == nil {
		t.Error("a connection open before Refuse still carries traffic")
	}
	if _, _, err := roundTrip(dial(t, p), []byte("PING")); err == nil {
		t.Error("a new connection carries traffic while refused")
	}
	p.Set(Fault{})
	if got, _, err := roundTrip(dial(t, p), []byte("PING")); err != nil || string(got) != "PING" {
		t.Errorf("after the fault is lifted: %q, %v", got, err)
	}
}

// A black hole swallows what a connection open before it sends, and holds a new one
// without forwarding anything.
func TestFaultProxyBlackholesBothWays(t *testing.T) {
	p, open := echoThroughProxy(t, Fault{})
	if _, _, err := roundTrip(open, []byte("PING")); err != nil {
		t.Fatal(err)
	}
	p.Set(Fault{Blackhole: true})
	for name, c := range map[string]net.Conn{"open": open, "new": dial(t, p)} {
		_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Write([]byte("PING")); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Read(make([]byte, 4)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s connection: read %d bytes, %v, from a black hole; want nothing until the deadline", name, n, err)
		}
	}
	if p.Conns() != 2 {
		t.Errorf("the black hole holds %d connections, want both", p.Conns())
	}
}

// A black hole holds a new connection whatever is behind it, as a dependency that
// stopped answering does: it is not closed because the target cannot be reached.
func TestFaultProxyBlackholeHoldsANewConnectionWithNoTargetBehindIt(t *testing.T) {
	p := NewFaultProxy(t, "127.0.0.1:"+strconv.Itoa(FreePort(t)))
	p.Set(Fault{Blackhole: true})
	c := dial(t, p)
	_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read %d bytes, %v, from a black hole with no target; want nothing until the deadline", n, err)
	}
}

func TestFaultProxyResetsAfterTheBytesBack(t *testing.T) {
	_, c := echoThroughProxy(t, Fault{ResetAfter: 10})
	if got, _, err := roundTrip(c, []byte("0123456789")); err != nil {
		t.Fatalf("the first 10 bytes back: %q, %v", got, err)
	}
	got, _, err := roundTrip(c, []byte("more"))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("past 10 bytes back: %q, %v; want the connection reset", got, err)
	}
}
