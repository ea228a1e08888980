package main

import (
	"io"
	"sync/atomic"
)

// logWriter is the gateway's log output. It counts the lines it could not write
// (zerolog writes each line in one call): an audit line lost is a hole in the audit
// trail, which /metrics must show, since the log cannot.
type logWriter struct {
	w    io.Writer
	lost atomic.Int64
}

func (l *logWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if err != nil {
		l.lost.Add(1)
	}
	return n, err
}
