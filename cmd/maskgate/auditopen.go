package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/maskgate/maskgate/sessions"
)

// auditOpen is the audit-open subcommand: it reads the log files named (the audit trail
// of every replica, in any order; /dev/stdin for a pipe) and prints the sessions they
// leave open, one a line: user id, session id, the latest event and its time, and when
// the gateway would have unmasked the agent ("now" when its unmask was under way),
// separated by tabs. After Redis lost its data, these are the agents an operator
// unmasks with ?force=true, each when it is due (README, After Redis lost its data).
func auditOpen(files []string, out io.Writer) error {
	if len(files) == 0 {
		return &usageError{err: errors.New("audit-open needs the log files to read (/dev/stdin for a pipe)")}
	}
	readers := make([]io.Reader, 0, len(files))
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		// A file that does not end its last line must not join it to the next file's first.
		readers = append(readers, f, strings.NewReader("\n"))
	}
	open, err := sessions.OpenInTrail(io.MultiReader(readers...))
	if err != nil {
		return err
	}
	for _, s := range open {
		due := "now"
		if !s.Due.IsZero() {
			due = s.Due.UTC().Format(sessions.TimeFormat)
		}
		if _, err := fmt.Fprintf(out, "%s\t%s\t%s\t%s\t%s\n", s.UserID, s.SessionID, s.LastEvent, s.LastAt.UTC().Format(sessions.TimeFormat), due); err != nil {
			return err
		}
	}
	return nil
}
