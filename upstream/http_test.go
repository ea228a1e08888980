package upstream_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maskgate/maskgate/upstream"
)

// fakeCXone serves a token to anyone at /auth/token and everything else with api: a
// CXone that misbehaves in ways the simulator does not.
func fakeCXone(t *testing.T, api http.HandlerFunc) upstream.Config {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/auth/token" {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"access_token":"a","token_type":"bearer","expires_in":3600}`))
			return
		}
		api(w, r)
	}))
	t.Cleanup(srv.Close)
	return upstream.Config{AuthURL: srv.URL + "/auth/token", BaseURL: srv.URL, Timeout: 2 * time.Second,
		BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
}

func TestARedirectIsNotFollowed(t *testing.T) {
	var followed atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Add(1) }))
	defer elsewhere.Close()
	cfg := fakeCXone(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	})
	_, err := upstream.New(cfg).Mask(context.Background(), "7")
	if !errors.Is(err, upstream.ErrRefused) {
		t.Errorf("Mask = %v; want ErrRefused", err)
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("the redirect was followed %d times; the bearer token went elsewhere", n)
	}
}

func TestAnAnswerTooLargeIsNotBelievedNorAskedAgain(t *testing.T) {
	var asked atomic.Int32
	cfg := fakeCXone(t, func(w http.ResponseWriter, _ *http.Request) {
		asked.Add(1)
		w.Write([]byte(strings.Repeat(" ", 65<<10)))
	})
	_, err := upstream.New(cfg).Mask(context.Background(), "7")
	var ue *upstream.Error
	if !errors.Is(err, upstream.ErrRefused) || !errors.As(err, &ue) || ue.Status != http.StatusOK {
		t.Errorf("Mask = %v; want ErrRefused with CXone's status 200", err)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("CXone was asked %d times; want 1: the same answer would come again", n)
	}
}

// A connection that CXone closed while it sat idle in the pool costs no attempt and no
// backoff: the request goes again at once on a new connection.
func TestAConnectionClosedByCXoneIsReplacedAtOnce(t *testing.T) {
	var asked atomic.Int32
	cfg := fakeCXone(t, func(w http.ResponseWriter, _ *http.Request) {
		if asked.Add(1) > 1 {
			return
		}
		// Answer, then drop the connection without saying so (no Connection: close),
		// as a load balancer does with one idle for too long.
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		buf.Flush()
		conn.Close()
	})
	// A retry by Client.do would wait an hour: with the caller's budget shorter, it
	// answers the failure at once instead.
	cfg.BaseBackoff, cfg.MaxBackoff = time.Hour, time.Hour
	c := upstream.New(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 2 {
		res, err := c.Mask(ctx, "7")
		if err != nil || res.Attempts != 1 {
			t.Fatalf("mask %d = %+v, %v; want success in 1 attempt", i+1, res, err)
		}
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("CXone saw %d masks; want 2", n)
	}
}

// Names are resolved at each dial (fasthttp's DNS cache is off): CXone is reached by
// its name, here localhost.
func TestCXoneIsReachedByName(t *testing.T) {
	cfg := fakeCXone(t, func(http.ResponseWriter, *http.Request) {})
	cfg.AuthURL = strings.Replace(cfg.AuthURL, "127.0.0.1", "localhost", 1)
	cfg.BaseURL = strings.Replace(cfg.BaseURL, "127.0.0.1", "localhost", 1)
	if !strings.Contains(cfg.BaseURL, "localhost") {
		t.Fatalf("the test server is at %s, not 127.0.0.1", cfg.BaseURL)
	}
	if _, err := upstream.New(cfg).Mask(context.Background(), "7"); err != nil {
		t.Fatalf("Mask through localhost: %v", err)
	}
}

// Headers as large as a CDN in front of an API may send are read (fasthttp's default
// buffer, 4 KiB, would fail them); beyond 32 KiB an answer is not believed.
func TestAnswerHeadersAreReadUpTo32KiB(t *testing.T) {
	for _, tt := range []struct {
		kib int
		ok  bool
	}{{16, true}, {40, false}} {
		var asked atomic.Int32
		cfg := fakeCXone(t, func(w http.ResponseWriter, _ *http.Request) {
			asked.Add(1)
			for i := range tt.kib {
				w.Header().Set("X-Padding-"+strconv.Itoa(i), strings.Repeat("p", 1000))
			}
		})
		_, err := upstream.New(cfg).Mask(context.Background(), "7")
		if (err == nil) != tt.ok {
			t.Errorf("Mask with %d KB of answer headers = %v; want success %v", tt.kib, err, tt.ok)
		}
		if !tt.ok && (!errors.Is(err, upstream.ErrRefused) || asked.Load() != 1) {
			t.Errorf("Mask with %d KB of answer headers = %v after %d requests; want ErrRefused after 1: the same would come again", tt.kib, err, asked.Load())
		}
	}
}

// The proxy of HTTP_PROXY carries every request to CXone: here CXone's name resolves
// nowhere but in the proxy, which tunnels to the fake CXone.
func TestCXoneIsReachedThroughTheEnvironmentsProxy(t *testing.T) {
	cfg := fakeCXone(t, func(http.ResponseWriter, *http.Request) {})
	_, port, _ := strings.Cut(strings.TrimPrefix(cfg.BaseURL, "http://"), ":")
	var tunnels atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.Host != "cxone.test:"+port {
			http.Error(w, "unexpected "+r.Method+" "+r.Host, http.StatusBadRequest)
			return
		}
		tunnels.Add(1)
		backend, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		client, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			backend.Close()
			return
		}
		buf.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
		buf.Flush()
		go func() { io.Copy(backend, client); backend.Close() }()
		io.Copy(client, backend)
		client.Close()
	}))
	defer proxy.Close()
	for _, name := range []string{"HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"} {
		t.Setenv(name, "")
	}
	t.Setenv("HTTP_PROXY", proxy.URL)
	cfg.AuthURL = "http://cxone.test:" + port + "/auth/token"
	cfg.BaseURL = "http://cxone.test:" + port
	c := upstream.New(cfg)
	defer c.Close()
	if _, err := c.Mask(context.Background(), "7"); err != nil {
		t.Fatalf("Mask through the proxy: %v", err)
	}
	if tunnels.Load() == 0 {
		t.Error("no request went through the proxy")
	}
}

// An oversized answer is refused wherever it comes from, not taken for a network
// failure to try again: the token endpoint's as CXone's API's, its body or its headers.
func TestATokenAnswerTooLargeIsRefused(t *testing.T) {
	for name, answer := range map[string]http.HandlerFunc{
		"body": func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte(`{"access_token":"a","token_type":"bearer","expires_in":3600,"pad":"` + strings.Repeat("x", 65<<10) + `"}`))
		},
		"headers": func(w http.ResponseWriter, _ *http.Request) {
			for i := range 40 {
				w.Header().Set("X-Padding-"+strconv.Itoa(i), strings.Repeat("p", 1000))
			}
			w.Write([]byte(`{"access_token":"a","token_type":"bearer","expires_in":3600}`))
		},
	} {
		srv := httptest.NewServer(answer)
		err := upstream.New(upstream.Config{AuthURL: srv.URL, BaseURL: srv.URL, Timeout: 2 * time.Second}).Ready(context.Background())
		srv.Close()
		if !errors.Is(err, upstream.ErrRefused) {
			t.Errorf("Ready with a token answer too large (%s) = %v; want ErrRefused", name, err)
		}
	}
}
