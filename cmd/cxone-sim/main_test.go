package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/freeport"
	"github.com/maskgate/maskgate/upstream/cxonesim"
)

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

// Each of the four credentials is needed: without one, the simulator would accept
// whatever a client sends for it.
func TestRunRefusesToStartWithoutAnyOneCredential(t *testing.T) {
	for _, missing := range []string{"CXONE_CLIENT_ID", "CXONE_CLIENT_SECRET", "CXONE_ACCESS_KEY_ID", "CXONE_ACCESS_KEY_SECRET"} {
		env := map[string]string{"CXONE_CLIENT_ID": "a", "CXONE_CLIENT_SECRET": "b", "CXONE_ACCESS_KEY_ID": "c", "CXONE_ACCESS_KEY_SECRET": "d"}
		delete(env, missing)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // one that started anyway stops at once
		err := run(ctx, []string{"-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("run without %s = %v; want it refused, naming the variables", missing, err)
		}
	}
}

// The simulator started serves with what the command line asked: the credentials of
// the environment, tokens of -token-ttl, and a request log of -request-log entries.
func TestRunServesWithTheSettingsAsked(t *testing.T) {
	port, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	env := map[string]string{"CXONE_CLIENT_ID": "app", "CXONE_CLIENT_SECRET": "s3cret", "CXONE_ACCESS_KEY_ID": "key", "CXONE_ACCESS_KEY_SECRET": "k3y"}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() {
		stopped <- run(ctx, []string{"-addr", "127.0.0.1:" + strconv.Itoa(port), "-token-ttl", "90s", "-request-log", "2"},
			func(k string) string { return env[k] }, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("run = %v; want a clean stop", err)
		}
	}()

	token := func(clientSecret string) *http.Response {
		t.Helper()
		form := url.Values{"grant_type": {"password"}, "username": {"key"}, "password": {"k3y"}}
		for deadline := time.Now().Add(10 * time.Second); ; {
			req, _ := http.NewRequest(http.MethodPost, base+cxonesim.TokenPath, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("app", clientSecret)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				return resp
			}
			if time.Now().After(deadline) {
				t.Fatalf("the simulator never answered: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	resp := token("wrong")
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token with another client secret: %d; want 401", resp.StatusCode)
	}
	resp = token("s3cret")
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token with the environment's credentials: %d, %v", resp.StatusCode, err)
	}
	if tok.ExpiresIn != 90 {
		t.Errorf("expires_in = %d; want -token-ttl's 90", tok.ExpiresIn)
	}

	for _, user := range []string{"1", "2", "3"} {
		req, _ := http.NewRequest(http.MethodPost, base+"/interaction-recording-management-service/v1/interactions/mask?userId="+user, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusNotFound { // no call
			t.Fatalf("mask of agent %s: %v, %v; want 404", user, resp, err)
		}
		resp.Body.Close()
	}
	resp, err = http.Get(base + "/sim/requests")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var log struct{ Requests []cxonesim.Request }
	if err := json.NewDecoder(resp.Body).Decode(&log); err != nil {
		t.Fatal(err)
	}
	if len(log.Requests) != 2 || log.Requests[1].UserID != "3" {
		t.Errorf("request log after 3 requests = %+v; want -request-log's 2, the latest last", log.Requests)
	}
}
