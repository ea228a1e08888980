package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisConfig is MASKGATE_REDIS_URL parsed into one of go-redis's three topologies:
//
//	redis://[user:pass@]host:6379/0           one server (rediss:// for TLS)
//	redis://[user:pass@]s1:26379/0?master_name=mymaster&addr=s2:26379&addr=s3:26379
//	                                          Sentinel: the sentinels, and the master's name
//	redis+cluster://[user:pass@]n1:6379?addr=n2:6379&addr=n3:6379
//	                                          Cluster: seed nodes (rediss+cluster:// for TLS)
//
// Other go-redis options may be given as query parameters (dial_timeout=3s, ...).
type redisConfig struct {
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

func parseRedisURL(raw string) (redisConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return redisConfig{}, errors.New("not a URL")
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
	return c, err
}

// Timeouts that keep a slow or black-holed Redis from holding requests: every command
// is also bound by its request's context.
const (
	redisDialTimeout = 2 * time.Second
	redisIOTimeout   = time.Second
)

// redisProtocol is RESP2: maskgate uses nothing of RESP3, and with RESP3 go-redis
// checks every connection for push notifications before every command (6 % of a
// mask's CPU in the profile).
const redisProtocol = 2

// client returns the client for the topology.
func (c redisConfig) client() redis.UniversalClient {
	switch {
	case c.cluster != nil:
		o := *c.cluster
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.ContextTimeoutEnabled = redisDialTimeout, redisIOTimeout, redisIOTimeout, true
		o.Protocol = redisProtocol
		return redis.NewClusterClient(&o)
	case c.failover != nil:
		o := *c.failover
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.ContextTimeoutEnabled = redisDialTimeout, redisIOTimeout, redisIOTimeout, true
		o.Protocol = redisProtocol
		return redis.NewFailoverClient(&o)
	default:
		o := *c.single
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.ContextTimeoutEnabled = redisDialTimeout, redisIOTimeout, redisIOTimeout, true
		o.Protocol = redisProtocol
		return redis.NewClient(&o)
	}
}

// describe names the topology without a password.
func (c redisConfig) describe() string {
	withTLS := func(t *tls.Config) string {
		if t != nil {
			return ", TLS"
		}
		return ""
	}
	switch {
	case c.cluster != nil:
		return fmt.Sprintf("cluster seeds %s%s", strings.Join(c.cluster.Addrs, ","), withTLS(c.cluster.TLSConfig))
	case c.failover != nil:
		return fmt.Sprintf("sentinel master %q via %s db %d%s", c.failover.MasterName, strings.Join(c.failover.SentinelAddrs, ","),
			c.failover.DB, withTLS(c.failover.TLSConfig))
	default:
		return fmt.Sprintf("%s db %d%s", c.single.Addr, c.single.DB, withTLS(c.single.TLSConfig))
	}
}
