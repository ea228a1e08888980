package freeport

import (
	"net"
	"strconv"
	"testing"
)

// Every port is distinct, below the ephemeral range, and free when handed out.
func TestPortsAreDistinctFreeAndBelowTheEphemeralRange(t *testing.T) {
	high := ephemeralLow()
	seen := map[int]bool{}
	for range 50 {
		port, err := Get()
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
		if port < lowest || port >= high {
			t.Fatalf("port %d outside [%d, %d): an outgoing connection could take it", port, lowest, high)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatalf("port %d handed out but not free: %v", port, err)
		}
		ln.Close()
	}
}
