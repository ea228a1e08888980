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
