package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// settings reads variables through getenv and keeps every problem it finds, so that a
// configuration is judged whole: maskgate names all its problems at once, one per line
// (configError), not the first alone.
type settings struct {
	getenv   func(string) string
	problems []error
}

// bad notes a problem.
func (s *settings) bad(format string, args ...any) {
	s.problems = append(s.problems, fmt.Errorf(format, args...))
}

// str is the value of the variable name, trimmed, or def when that is empty.
func (s *settings) str(name, def string) string {
	if v := strings.TrimSpace(s.getenv(name)); v != "" {
		return v
	}
	return def
}

// required is the value of the variable name, trimmed; a problem when it is empty.
func (s *settings) required(name string) string {
	v := s.str(name, "")
	if v == "" {
		s.bad("%s is required", name)
	}
	return v
}

// durationAtLeast is the duration the variable name sets, def when it is empty; one
// under least, or not a duration, is a problem.
func (s *settings) durationAtLeast(name string, def, least time.Duration) time.Duration {
	v := s.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < least {
		s.bad("%s must be a duration of at least %s, such as 15m or 30s", name, least)
		return def
	}
	return d
}

// duration is the duration the variable name sets, of a millisecond or more.
func (s *settings) duration(name string, def time.Duration) time.Duration {
	return s.durationAtLeast(name, def, time.Millisecond)
}

// number is the whole number the variable name sets, from lo to hi; def when it is
// empty.
func (s *settings) number(name string, def, lo, hi int) int {
	v := s.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		s.bad("%s must be a whole number from %d to %d", name, lo, hi)
		return def
	}
	return n
}

// boolean is true or false as the variable name sets it; def when it is empty.
func (s *settings) boolean(name string, def bool) bool {
	b, err := strconv.ParseBool(s.str(name, strconv.FormatBool(def)))
	if err != nil {
		s.bad("%s must be true or false", name)
	}
	return b
}

// address is the host:port the variable name sets, def when it is empty. An address
// that cannot be listened on is a configuration error (exit 2), found by check-config,
// rather than a failure to listen.
func (s *settings) address(name, def string) string {
	v := s.str(name, def)
	if v == "" {
		return v
	}
	_, port, err := net.SplitHostPort(v)
	if _, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil {
		s.bad("%s must be host:port with a port number, such as :8080 or 127.0.0.1:8080", name)
	}
	return v
}

// list calls each with every non-empty entry, trimmed, of the comma-separated list the
// variable name sets.
func (s *settings) list(name string, each func(entry string)) {
	for entry := range strings.SplitSeq(s.str(name, ""), ",") {
		if entry = strings.TrimSpace(entry); entry != "" {
			each(entry)
		}
	}
}

// secret is the secret NAME sets, or the file NAME_FILE names (trailing newline
// trimmed, as container secrets have one). Both set is a problem. A problem never shows
// the value.
func (s *settings) secret(name string) string {
	value, path := s.getenv(name), strings.TrimSpace(s.getenv(name+"_FILE"))
	switch {
	case value != "" && path != "":
		s.bad("%s and %s_FILE are both set; set one", name, name)
		return ""
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			s.bad("%s_FILE: %v", name, errors.Unwrap(err))
			return ""
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			s.bad("%s_FILE names an empty file", name)
		}
		return v
	}
	return value
}

// requiredSecret is secret, a problem when neither NAME nor NAME_FILE gives one that is
// more than white space (a problem with the file is named instead).
func (s *settings) requiredSecret(name string) string {
	before := len(s.problems)
	v := s.secret(name)
	if strings.TrimSpace(v) == "" && len(s.problems) == before {
		s.bad("%s or %s_FILE is required", name, name)
	}
	return v
}
