// Command gofloor is maskbench's third target, the floor of maskgate's stack: the
// forward nginx does, plus the two Redis scripts of the pairing guarantee at their
// smallest, and nothing else, written with the libraries maskgate uses as cheaply as
// they allow (net/http's server, fasthttp's client; go-redis with RESP2, EVALSHA and its
// full-duplex automatic pipelining, which batches the scripts of concurrent requests;
// maskgate's GOGC). It has no JWT, no session logic, no audit line, no metrics: what
// maskgate costs beyond it is what maskgate's own work costs. Not a gateway: maskbench
// starts it with -floor.
//
//	gofloor -addr 127.0.0.1:8081 -redis redis://127.0.0.1:6379/0 -cxone http://127.0.0.1:8082 -token T
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
)

// The two transitions the guarantee needs, at their smallest: the write-ahead (the
// session and its deadline) before CXone is asked, and the outcome after.
var (
	begin  = redis.NewScript(`redis.call('HSET', KEYS[1], 'state', 'masking') redis.call('ZADD', KEYS[2], ARGV[1], KEYS[1]) return 1`)
	finish = redis.NewScript(`redis.call('HSET', KEYS[1], 'state', 'masked') return 1`)
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	redisURL := flag.String("redis", "redis://127.0.0.1:6379/0", "Redis URL")
	cxone := flag.String("cxone", "", "CXone (simulator) base URL")
	token := flag.String("token", "", "CXone access token")
	flag.Parse()
	debug.SetGCPercent(800) // maskgate's default
	opt, err := redis.ParseURL(*redisURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(2)
	}
	opt.Protocol = 2 // as maskgate
	// Experimental in go-redis, and not bounded by a caller's context (which is why
	// maskgate batches with its own sessions/batch.go), but the cheapest way there is.
	apOpt := redis.DefaultBlockingAutoPipelineOptions()
	apOpt.FullDuplex = true
	rdb, err := redis.NewClient(opt).AutoPipelineWithOptions(apOpt)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(2)
	}
	client := &fasthttp.Client{MaxIdleConnDuration: time.Minute}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(http.ResponseWriter, *http.Request) {})
	mux.Handle("POST /v1/agents/{userId}/mask", mask(rdb, client, *cxone+"/interaction-recording-management-service/v1/interactions/mask?userId=", "Bearer "+*token))
	srv := &http.Server{Addr: *addr, Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(1)
	}
}

func mask(rdb redis.Scripter, client *fasthttp.Client, maskURL, bearer string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		user := r.PathValue("userId")
		_, _ = io.Copy(io.Discard, r.Body)
		keys := []string{"{floor}:" + user, "{floor}:due"}
		if err := begin.Run(ctx, rdb, keys, time.Now().Add(10*time.Minute).UnixMilli()).Err(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetMethod(http.MethodPost)
		req.SetRequestURI(maskURL + url.QueryEscape(user))
		req.Header.Set("Authorization", bearer)
		if err := client.DoTimeout(req, resp, 5*time.Second); err != nil {
			http.Error(w, err.Error(), http.StatusGatewayTimeout)
			return
		}
		if err := finish.Run(ctx, rdb, keys[:1]).Err(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode())
		_, _ = w.Write(strconv.AppendQuote([]byte(`{"state":"masked","userId":`), user))
		_, _ = w.Write([]byte("}\n"))
	}
}
