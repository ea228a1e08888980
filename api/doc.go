// Package api holds the Go types and the chi strict-server interface generated from
// openapi.yaml, the source of truth of maskgate's HTTP API. Run `go generate ./api`
// after changing the spec; never edit api.gen.go by hand.
package api

//go:generate go tool oapi-codegen -config cfg.yaml ../openapi.yaml
