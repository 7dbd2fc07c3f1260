package main

import _ "embed"

// openAPIDocument is the OpenAPI 3 description of the v1 API, served at
// GET /v1/openapi.json; a test keeps it in step with the route table.
//
//go:embed openapi.json
var openAPIDocument []byte
