package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunRefusesToStartWithoutCredentials(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"-addr", "127.0.0.1:0"}, func(string) string { return "" }, &stderr)
	if err == nil || !strings.Contains(err.Error(), "CXONE_CLIENT_ID") {
		t.Fatalf("run without credentials = %v; want it to name the variables", err)
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	env := map[string]string{"CXONE_CLIENT_ID": "a", "CXONE_CLIENT_SECRET": "b", "CXONE_ACCESS_KEY_ID": "c", "CXONE_ACCESS_KEY_SECRET": "d"}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stderr bytes.Buffer
	if err := run(ctx, []string{"-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, &stderr); err != nil {
		t.Fatalf("run = %v; want a clean stop", err)
	}
	if !strings.Contains(stderr.String(), "listening on http://127.0.0.1:") {
		t.Errorf("stderr = %q", stderr.String())
	}
}

// A command line that would start something else than was asked is refused: an
// argument (the address without -addr), a token lifetime under a second (expires_in
// counts whole seconds, and 0 is a token no client takes), or one of no time (which
// the simulator's library would take for its default of an hour).
func TestRunRefusesACommandLineItCannotHonour(t *testing.T) {
	env := map[string]string{"CXONE_CLIENT_ID": "a", "CXONE_CLIENT_SECRET": "b", "CXONE_ACCESS_KEY_ID": "c", "CXONE_ACCESS_KEY_SECRET": "d"}
	for args, want := range map[string]string{
		"127.0.0.1:0":         "it takes no arguments (1 given)",
		"-token-ttl 500ms":    "-token-ttl must be at least 1s",
		"-token-ttl 0s":       "-token-ttl must be at least 1s",
		"-request-log 0":      "-request-log must be at least 1",
		"-addr 127.0.0.1:0 x": "it takes no arguments (1 given)",
	} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // one that started anyway stops at once
		var stderr bytes.Buffer
		err := run(ctx, strings.Fields(args), func(k string) string { return env[k] }, &stderr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("cxone-sim %s = %v; want %q", args, err, want)
		}
	}
}
