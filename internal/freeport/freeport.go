// Package freeport hands out loopback TCP ports for processes that bind them later:
// the redis-server, nginx and maskgate processes of the tests and of maskbench.
//
// A port the kernel picks for a listener on port 0 comes from the range it also takes
// the local ports of outgoing connections from. Between the moment such a port is
// handed out and the moment the process binds it, any connection made on the machine
// can take it, and the process fails with "bind: address already in use" (seen in
// maskbench, whose set-up makes thousands of connections; the tests run the same risk).
// Ports below that range are never given to outgoing connections: they are picked
// there, at random, checked free by listening on them, and never handed out twice by
// one process.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
)

// lowest is the lowest port handed out: well above the ports services usually own.
const lowest = 10000

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Get returns a loopback TCP port that is free now, outside the ephemeral range, and
// not returned before by this process.
func Get() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	high := ephemeralLow()
	if high-lowest < 1000 {
		return 0, fmt.Errorf("the ephemeral port range starts at %d: no room below it for ports handed out in advance", high)
	}
	for range 200 {
		port := lowest + rand.IntN(high-lowest)
		if given[port] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // in use
		}
		ln.Close()
		given[port] = true
		return port, nil
	}
	return 0, errors.New("no free loopback port below the ephemeral range after 200 tries")
}

// ephemeralLow is the lowest port of the kernel's ephemeral range (Linux), or the
// common default where it cannot be read.
func ephemeralLow() int {
	var low int
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if _, err := fmt.Sscan(string(b), &low); err == nil {
			return low
		}
	}
	return 32768
}
