// Package maskgate carries the OpenAPI document of the gateway, so that the server can
// serve it and tests can validate every answer against it.
package maskgate

import _ "embed"

// OpenAPI is openapi.yaml, the source of truth of the HTTP API.
//
//go:embed openapi.yaml
var OpenAPI []byte
