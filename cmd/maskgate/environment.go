package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
)

// environment is the process's environment, read once at start (a map in tests).
type environment map[string]string

// processEnvironment is this process's environment. A name set twice has its first
// value, as os.Getenv reads it: os.Environ leaves the later ones out.
func processEnvironment() environment {
	e := environment{}
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		e[name] = value
	}
	return e
}

// notSettings introduces the ignored variables wherever they are named.
const notSettings = "not maskgate settings, ignored (misspelt?)"

// ignoredNote names the ignored variables in a line of text.
func ignoredNote(names []string) string { return notSettings + ": " + strings.Join(names, ", ") }

// serviceLink is a variable Kubernetes sets in every pod for each Service of its
// namespace (a Service named maskgate gives MASKGATE_SERVICE_HOST, MASKGATE_PORT, ...).
var serviceLink = regexp.MustCompile(`_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT|PORT_[0-9]+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)$`)

// ignored names the variables of env that look like maskgate's settings (MASKGATE_ or
// CXONE_) but that it did not read: a misspelt setting would otherwise leave its default
// in force without a word.
func ignored(env environment, read map[string]bool) []string {
	var names []string
	for name := range env {
		if (strings.HasPrefix(name, "MASKGATE_") || strings.HasPrefix(name, "CXONE_")) && !read[name] && !serviceLink.MatchString(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}
