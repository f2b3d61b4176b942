package api

import _ "embed"

//go:embed openapi.json
var openAPIDocument []byte

// OpenAPIDocument returns the OpenAPI 3.0.3 description of Stint's HTTP API
// (openapi.json beside this file), as served at /api/v1/openapi.json. The
// caller must not modify the returned slice.
func OpenAPIDocument() []byte { return openAPIDocument }
