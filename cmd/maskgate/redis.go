package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/sessions"
)

// redisConfig is MASKGATE_REDIS_URL parsed into one of go-redis's three topologies:
//
//	redis://[user:pass@]host:6379/0           one server (rediss:// for TLS)
//	redis://[user:pass@]s1:26379/0?master_name=mymaster&addr=s2:26379&addr=s3:26379
//	                                          Sentinel: the sentinels, and the master's name
//	redis+cluster://[user:pass@]n1:6379?addr=n2:6379&addr=n3:6379
//	                                          Cluster: seed nodes (rediss+cluster:// for TLS)
//
// Other go-redis options may be given as query parameters (pool_size=50,
// read_timeout=3s, ...), but none that lets a command wait without end (settle).
type redisConfig struct {
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// errRedisOption is a query parameter of MASKGATE_REDIS_URL that maskgate refuses; its
// text names the parameter and none of the URL's other parts (it may hold a password).
type errRedisOption string

func (e errRedisOption) Error() string { return string(e) }

func parseRedisURL(raw string) (redisConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return redisConfig{}, errors.New("not a URL")
	}
	if q := u.Query(); q.Has("context_timeout_enabled") && q.Get("context_timeout_enabled") != "true" {
		return redisConfig{}, errRedisOption("context_timeout_enabled must not be turned off: every Redis command is bound by its request's deadline")
	}
	var c redisConfig
	switch {
	case u.Scheme == "redis+cluster" || u.Scheme == "rediss+cluster":
		u.Scheme = strings.TrimSuffix(u.Scheme, "+cluster")
		c.cluster, err = redis.ParseClusterURL(u.String())
	case u.Query().Has("master_name"):
		c.failover, err = redis.ParseFailoverURL(raw)
	default:
		c.single, err = redis.ParseURL(raw)
	}
	if err != nil {
		return c, err
	}
	return c, c.options().settle()
}

// The timeouts maskgate gives Redis unless the URL sets its own: a slow or black-holed
// Redis must not hold requests. Every command is also bound by its request's context.
const (
	redisDialTimeout = 2 * time.Second
	redisIOTimeout   = time.Second
)

// redisProtocol is RESP2, the only one maskgate is tested with: it uses nothing of
// RESP3, and with RESP3 go-redis checks every connection for push notifications before
// every command (6 % of a mask's CPU in the profile).
const redisProtocol = 2

// redisOptions are the options maskgate sets or shows, in whichever of go-redis's
// option types the URL's topology parsed into.
type redisOptions struct {
	timeouts       [3]redisTimeout
	protocol       *int
	contextTimeout *bool
	tls            *tls.Config
}

// redisTimeout is a timeout a URL may set, and maskgate's when it sets none.
type redisTimeout struct {
	param string // the URL's query parameter
	value *time.Duration
	def   time.Duration
}

func (c redisConfig) options() redisOptions {
	opts := func(dial, read, write *time.Duration, protocol *int, contextTimeout *bool, t *tls.Config) redisOptions {
		return redisOptions{timeouts: [3]redisTimeout{{"dial_timeout", dial, redisDialTimeout},
			{"read_timeout", read, redisIOTimeout}, {"write_timeout", write, redisIOTimeout}},
			protocol: protocol, contextTimeout: contextTimeout, tls: t}
	}
	switch {
	case c.cluster != nil:
		o := c.cluster
		return opts(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.Protocol, &o.ContextTimeoutEnabled, o.TLSConfig)
	case c.failover != nil:
		o := c.failover
		return opts(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.Protocol, &o.ContextTimeoutEnabled, o.TLSConfig)
	default:
		o := c.single
		return opts(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.Protocol, &o.ContextTimeoutEnabled, o.TLSConfig)
	}
}

// settle gives the options maskgate's timeouts where the URL set none (go-redis leaves
// them zero), RESP2, and binds every command by its context. It refuses a timeout the
// URL turned off (0 or less, which go-redis reads as none), since the session scripts'
// shared pipelines rely on a Redis that stops answering failing them in time (README,
// Redis), and another protocol.
func (o redisOptions) settle() error {
	for _, t := range o.timeouts {
		switch {
		case *t.value < 0:
			return errRedisOption(t.param + " must be a positive duration: a Redis that stops answering must not hold requests")
		case *t.value == 0:
			*t.value = t.def
		}
	}
	if *o.protocol != 0 && *o.protocol != redisProtocol {
		return errRedisOption("protocol must be 2 (RESP2, the only one maskgate is tested with) or left out")
	}
	*o.protocol = redisProtocol
	*o.contextTimeout = true
	return nil
}

// roundTrip is the longest one command may take on a new connection: dialled, written
// and answered, each within its timeout.
func (c redisConfig) roundTrip() time.Duration {
	var d time.Duration
	for _, t := range c.options().timeouts {
		d += *t.value
	}
	return d
}

// client returns the client for the topology (go-redis completes the options it is
// given: each gets a copy).
func (c redisConfig) client() redis.UniversalClient {
	switch {
	case c.cluster != nil:
		o := *c.cluster
		return redis.NewClusterClient(&o)
	case c.failover != nil:
		o := *c.failover
		return redis.NewFailoverClient(&o)
	default:
		o := *c.single
		return redis.NewClient(&o)
	}
}

// describe names the topology without a password, whether it is TLS, and the timeouts
// the URL set.
func (c redisConfig) describe() string {
	var more []string
	o := c.options()
	switch {
	case o.tls != nil && o.tls.InsecureSkipVerify:
		more = append(more, "TLS without checking Redis's certificate (skip_verify)")
	case o.tls != nil:
		more = append(more, "TLS")
	}
	for _, t := range o.timeouts {
		if *t.value != t.def {
			more = append(more, fmt.Sprintf("%s=%s", t.param, *t.value))
		}
	}
	and := ""
	if len(more) > 0 {
		and = ", " + strings.Join(more, ", ")
	}
	switch {
	case c.cluster != nil:
		return fmt.Sprintf("cluster seeds %s%s", strings.Join(c.cluster.Addrs, ","), and)
	case c.failover != nil:
		return fmt.Sprintf("sentinel master %q via %s db %d%s", c.failover.MasterName, strings.Join(c.failover.SentinelAddrs, ","), c.failover.DB, and)
	default:
		return fmt.Sprintf("%s db %d%s", c.single.Addr, c.single.DB, and)
	}
}

// transportWarning is the warning, at start-up and in check-config, about how the URL
// reaches Redis, or "": a password sent to another machine unencrypted, or TLS whose
// certificate is not checked. A warning, not an error: a service mesh or a private link
// may encrypt what maskgate does not, and some managed Redis services hand out
// certificates no root signs.
func (c redisConfig) transportWarning() string {
	if t := c.options().tls; t != nil && t.InsecureSkipVerify {
		return "MASKGATE_REDIS_URL turns off the check of Redis's TLS certificate (skip_verify=true): whoever can reach the network between them can pose as Redis, and read its password and every session; give Redis's CA in SSL_CERT_FILE instead"
	}
	if addr := c.passwordInTheClear(); addr != "" {
		return "MASKGATE_REDIS_URL sends Redis's password to " + addr +
			" unencrypted (redis://): use rediss:// unless the network between them is encrypted otherwise (a service mesh)"
	}
	return ""
}

// passwordInTheClear names the first address outside this machine to which the URL's
// Redis password would go over plain TCP (redis://, not rediss://), or is "". go-redis
// sends it in AUTH on every new connection.
func (c redisConfig) passwordInTheClear() string {
	if c.options().tls != nil {
		return ""
	}
	var password bool
	var addrs []string
	switch {
	case c.cluster != nil:
		password, addrs = c.cluster.Password != "", c.cluster.Addrs
	case c.failover != nil:
		password, addrs = c.failover.Password != "" || c.failover.SentinelPassword != "", c.failover.SentinelAddrs
	default:
		password, addrs = c.single.Password != "", []string{c.single.Addr}
	}
	if !password {
		return ""
	}
	for _, a := range addrs {
		if host, _, err := net.SplitHostPort(a); err != nil || !loopbackHost(host) {
			return a
		}
	}
	return ""
}

// reportEvictionPolicy logs, once Redis answers, what its maxmemory-policy may drop of
// maskgate's keys (README, Redis): an error line when it may drop open sessions, a
// warning when it may drop Idempotency-Key records or when Redis will not say (managed
// services often refuse CONFIG). A failover or a restart may bring another policy; this
// reads the one found at start-up. Each try waits for a connection and an answer
// (wait), as the Redis URL's timeouts allow.
func reportEvictionPolicy(ctx context.Context, store *sessions.Store, wait time.Duration, log zerolog.Logger) {
	for {
		rctx, cancel := context.WithTimeout(ctx, wait)
		policy, err := store.EvictionPolicy(rctx)
		cancel()
		var reply redis.Error
		switch {
		case err == nil:
			switch e := sessions.EvictionUnder(policy); e {
			case sessions.EvictsNothing:
				log.Info().Str("maxmemory_policy", policy).Msg("Redis evicts nothing of maskgate's: full, it refuses writes")
			case sessions.EvictsExpiring:
				log.Warn().Str("maxmemory_policy", policy).Str("may_evict", e.String()).Msg("Redis may evict maskgate's keys when full; set maxmemory-policy noeviction")
			default:
				log.Error().Str("maxmemory_policy", policy).Str("may_evict", e.String()).Msg("Redis may evict maskgate's keys when full; set maxmemory-policy noeviction")
			}
			return
		case errors.As(err, &reply) && refusal(reply):
			log.Warn().Err(err).Msg("Redis did not say its maxmemory-policy; it must be noeviction")
			return
		}
		log.Debug().Err(err).Msg("Redis's maxmemory-policy not read yet; asking again in 5 s")
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// refusal reports whether Redis refused the command for good: CONFIG unknown (renamed
// away) or not permitted to maskgate's user, as opposed to a reply that passes (a node
// loading its data, a failover or a cluster settling), after which it is asked again.
func refusal(reply redis.Error) bool {
	return strings.HasPrefix(reply.Error(), "ERR ") || strings.HasPrefix(reply.Error(), "NOPERM")
}

// redisLog writes go-redis's own log lines (a pool that cannot dial, a Sentinel's switch
// to a new master) as JSON lines at warn, as the gateway's own are, instead of the
// plain text on standard error that go-redis writes by default. They name addresses
// and the master's name, never a password. Each kind of line (go-redis's format) is
// written once per redisLogEvery at most: with Redis down, every connection the pool
// fails to dial says so, several times a second.
type redisLog struct {
	log      zerolog.Logger
	samplers sync.Map // format → *zerolog.BurstSampler
}

// redisLogEvery is how often go-redis may repeat one kind of line.
const redisLogEvery = 10 * time.Second

func (l *redisLog) Printf(_ context.Context, format string, v ...any) {
	sampler, _ := l.samplers.LoadOrStore(format, &zerolog.BurstSampler{Burst: 1, Period: redisLogEvery})
	log := l.log.Sample(sampler.(*zerolog.BurstSampler))
	log.Warn().Str("component", "go-redis").Msgf(format, v...)
}
