package main

import (
	"context"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/upstream"
)

// notTheTenantsEndpoint is the warning, in check-config and at start-up, about a
// configured CXONE_API_BASE_URL that is not the endpoint the discovery document of the
// token's tenant names, or "" when it is or none is configured; err when the discovery
// could not say. With one configured, the endpoint is never discovered, and a wrong
// one (the token endpoint's host, another region's) may answer every mask 404, which
// the gateway can only take for "no active call" and a caller for nothing to mask. A
// warning, not an error: a proxy of the operator's may stand for CXone's endpoint.
func notTheTenantsEndpoint(ctx context.Context, cx *upstream.Client, configured string) (note string, err error) {
	if configured == "" {
		return "", nil
	}
	discovered, err := cx.TenantEndpoint(ctx)
	if err != nil || strings.EqualFold(strings.TrimRight(discovered, "/"), strings.TrimRight(configured, "/")) {
		return "", err
	}
	return "CXONE_API_BASE_URL is " + configured + ", but the discovery document of the token's tenant names " + discovered +
		": unless a proxy of yours stands for it, leave CXONE_API_BASE_URL empty (an endpoint that is not the tenant's may answer every mask 404, which reads as no active call)", nil
}

// reportTenantEndpoint logs, once CXone answers after start-up, a warning when the
// configured endpoint is not the tenant's (notTheTenantsEndpoint), so that an operator
// who never runs check-config sees it, or that it is. It asks again every retry until
// CXone's token endpoint and discovery answer, or ctx ends. With none configured, it
// has nothing to say.
func reportTenantEndpoint(ctx context.Context, cx *upstream.Client, configured string, retry time.Duration, log zerolog.Logger) {
	if configured == "" {
		return
	}
	for {
		note, err := notTheTenantsEndpoint(ctx, cx, configured)
		switch {
		case err == nil && note != "":
			log.Warn().Msg(note)
			return
		case err == nil:
			log.Info().Msg("CXONE_API_BASE_URL is the endpoint that the discovery document of the token's tenant names")
			return
		}
		log.Debug().Err(err).Msg("the tenant's CXone endpoint not read yet, to compare with CXONE_API_BASE_URL")
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}
