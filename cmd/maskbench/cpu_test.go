package main

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestProcessCPUIsUserAndSystemTime: what /proc gives for a process is the user and
// system time that the kernel accounts to it, in ticks of 10 ms, and its parent.
func TestProcessCPUIsUserAndSystemTime(t *testing.T) {
	used := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for used() < 300*time.Millisecond { // a system call in a loop: user and system time
	}
	before := used()
	ticks, parent := processCPU()
	after := used()
	got := time.Duration(ticks[os.Getpid()]) * 10 * time.Millisecond
	if got < before-30*time.Millisecond || got > after+30*time.Millisecond {
		t.Errorf("/proc says this process used %v of CPU; getrusage says %v…%v", got, before, after)
	}
	if parent[os.Getpid()] != os.Getppid() {
		t.Errorf("/proc names %d as this process's parent, not %d", parent[os.Getpid()], os.Getppid())
	}
}
