package main

import (
	"fmt"
	"net/url"

	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/middleware"
)

// logConfiguration records at start-up what the gateway runs with, never a secret: a
// compliance reviewer reading the audit trail can tell which deadlines, limits, callers'
// keys and CXone key were in force.
func logConfiguration(log zerolog.Logger, c config) {
	api := c.CXone.BaseURL
	if api == "" {
		api = "discovered from the token's tenant"
	}
	log.Info().Str("redis", c.Redis.describe()).Str("redis_key_prefix", c.RedisKeyPrefix).
		Str("jwt_keys", keySource(c.Auth)).Str("jwt_issuer", c.Auth.Issuer).Str("jwt_audience", c.Auth.Audience).
		Stringer("mask_ttl", c.MaskTTL).Stringer("mask_ttl_max", c.MaskTTLMax).Stringer("sweep_interval", c.SweepInterval).
		Stringer("unmask_giveup", c.UnmaskGiveUp).Int("rate_limit", c.RateLimit).
		Str("cxone_auth_url", c.CXone.AuthURL).Str("cxone_api", api).Str("cxone_client_id", c.CXone.Credentials.ClientID).
		Str("cxone_access_key_id", c.CXone.Credentials.AccessKeyID).Stringer("cxone_timeout", c.CXone.Timeout).
		Int("trusted_proxies", len(c.TrustedProxies)).Strs("cors_origins", c.CORSOrigins).
		Bool("allow_plain_http", c.AllowPlainHTTP).Msg("configuration")
	if len(c.Ignored) > 0 {
		log.Warn().Strs("ignored", c.Ignored).Msg(notSettings + ": a misspelt setting leaves its default in force (README, Configuration)")
	}
	if note := c.Redis.transportWarning(); note != "" {
		log.Warn().Msg(note)
	}
	if c.AllowPlainHTTP {
		log.Warn().Msg("MASKGATE_ALLOW_PLAIN_HTTP=true: CXone's secrets and tokens, and callers' keys, may cross the network unencrypted; for a simulator only, never in production")
	}
}

// keySource says where callers' keys come from, without any of them.
func keySource(a middleware.AuthConfig) string {
	switch {
	case len(a.HS256PreviousSecret) > 0:
		return "HS256 shared secret, and the previous one"
	case len(a.HS256Secret) > 0:
		return "HS256 shared secret"
	case len(a.PublicKeyPEM) > 0:
		if n, err := middleware.PublicKeyCount(a.PublicKeyPEM); err == nil && n > 1 {
			return fmt.Sprintf("public key file, %d keys", n)
		}
		return "public key file"
	default:
		if u, err := url.Parse(a.JWKSURL); err == nil {
			return "JWKS " + u.Redacted() // a password in the URL is not shown
		}
		return "JWKS"
	}
}
