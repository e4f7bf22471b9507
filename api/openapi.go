package api

import (
	"bytes"
	_ "embed"
)

// openAPI is the OpenAPI 3 document. It is a copy of docs/openapi.json;
// TestOpenAPIMatchesDocs fails when the two differ, and
// TestOpenAPIMatchesRoutes when a route and the document disagree.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPIDocument returns the OpenAPI 3 document served at /v1/openapi.json.
func OpenAPIDocument() []byte { return bytes.Clone(openAPI) }
