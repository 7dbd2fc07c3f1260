package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/campaign/recurring"
	"github.com/wacampaign/wacampaign/internal/campaign/sequence"
	"github.com/wacampaign/wacampaign/internal/idempotency"
)

// The OpenAPI document (openapi.json) is written by hand; these tests keep it
// honest: well-formed, every endpoint of the route table and no other, the
// security and Idempotency-Key of each route as the mux applies them, and
// the schemas' property names as the Go types marshal them.

// openAPIMethods are the operation keys of an OpenAPI path item.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type openAPIOp struct {
	method, path string
	op           map[string]any
	pathItem     map[string]any
}

func (o openAPIOp) key() string { return o.method + " " + o.path }

// loadOpenAPI parses the embedded document.
func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(openAPIDocument))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("openapi.json has something after its object")
	}
	return doc
}

// openAPIOperations lists the document's operations.
func openAPIOperations(t *testing.T, doc map[string]any) []openAPIOp {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatal("openapi.json has no paths object")
	}
	var ops []openAPIOp
	for path, item := range paths {
		pi, ok := item.(map[string]any)
		if !ok {
			t.Fatalf("path %s is not an object", path)
		}
		for _, m := range openAPIMethods {
			if op, ok := pi[m].(map[string]any); ok {
				ops = append(ops, openAPIOp{method: strings.ToUpper(m), path: path, op: op, pathItem: pi})
			}
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].key() < ops[j].key() })
	return ops
}

// resolve follows a local $ref ("#/components/...") to what it names.
func resolve(doc map[string]any, ref string) (any, error) {
	if !strings.HasPrefix(ref, "#/components/") {
		return nil, fmt.Errorf("$ref %q is not a local #/components/ reference", ref)
	}
	var cur any = doc
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %q: %q is not inside an object", ref, tok)
		}
		if cur, ok = obj[tok]; !ok {
			return nil, fmt.Errorf("$ref %q: nothing named %q", ref, tok)
		}
	}
	return cur, nil
}

// deref answers v, or what it references when it is {"$ref": ...}.
func deref(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	for range 10 {
		obj, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("expected an object, got %T", v)
		}
		ref, isRef := obj["$ref"].(string)
		if !isRef {
			return obj
		}
		target, err := resolve(doc, ref)
		if err != nil {
			t.Fatal(err)
		}
		v = target
	}
	t.Fatal("a $ref chain longer than 10")
	return nil
}

// routePatterns is the route table as "METHOD /path" → public.
func routePatterns(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, rt := range (&server{}).table() {
		method, path, ok := strings.Cut(rt.pattern, " ")
		if !ok || method == "" || !strings.HasPrefix(path, "/") {
			t.Fatalf("route pattern %q is not METHOD /path", rt.pattern)
		}
		out[method+" "+path] = rt.public
	}
	return out
}

func TestOpenAPIDocumentIsWellFormed(t *testing.T) {
	doc := loadOpenAPI(t)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.0.") {
		t.Errorf("openapi = %q, want 3.0.x", v)
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == nil || info["version"] != "1" || info["description"] == nil {
		t.Errorf("info needs title, version \"1\" and a description: %v", info)
	}
	scheme, err := resolve(doc, "#/components/securitySchemes/bearerAuth")
	if err != nil {
		t.Fatal(err)
	}
	if s := scheme.(map[string]any); s["type"] != "http" || s["scheme"] != "bearer" {
		t.Errorf("bearerAuth = %v, want an http bearer scheme", s)
	}

	// Every $ref resolves.
	refs := 0
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"]; ok {
				refs++
				if len(v) > 1 {
					t.Errorf("at %s: OpenAPI 3.0 ignores what stands beside a $ref", at)
				}
				s, _ := ref.(string)
				if _, err := resolve(doc, s); err != nil {
					t.Errorf("at %s: %v", at, err)
				}
			}
			for k, child := range v {
				walk(at+"/"+k, child)
			}
		case []any:
			for i, child := range v {
				walk(fmt.Sprintf("%s/%d", at, i), child)
			}
		}
	}
	walk("#", doc)
	if refs == 0 {
		t.Error("the document has no $ref at all")
	}

	// Every operation has an id, a summary and responses; error responses
	// are the error envelope; path parameters match the path's template.
	ids := map[string]string{}
	camel := regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
	wildcard := regexp.MustCompile(`\{([^}]+)\}`)
	for _, o := range openAPIOperations(t, doc) {
		id, _ := o.op["operationId"].(string)
		if !camel.MatchString(id) {
			t.Errorf("%s: operationId %q is not camelCase", o.key(), id)
		} else if prev, dup := ids[id]; dup {
			t.Errorf("%s: operationId %q is also %s's", o.key(), id, prev)
		}
		ids[id] = o.key()
		if s, _ := o.op["summary"].(string); strings.TrimSpace(s) == "" {
			t.Errorf("%s: no summary", o.key())
		}
		responses, _ := o.op["responses"].(map[string]any)
		if len(responses) == 0 {
			t.Errorf("%s: no responses", o.key())
		}
		for code, r := range responses {
			if code < "400" || code == "default" {
				continue
			}
			resp := deref(t, doc, r)
			content, _ := resp["content"].(map[string]any)
			media, _ := content["application/json"].(map[string]any)
			if ref, _ := media["schema"].(map[string]any)["$ref"].(string); ref != "#/components/schemas/ErrorEnvelope" {
				t.Errorf("%s: response %s is not application/json ErrorEnvelope", o.key(), code)
			}
		}

		want := map[string]bool{}
		for _, m := range wildcard.FindAllStringSubmatch(o.path, -1) {
			want[m[1]] = true
		}
		got := map[string]bool{}
		for _, p := range operationParameters(t, doc, o) {
			if p["in"] == "path" {
				name, _ := p["name"].(string)
				if p["required"] != true {
					t.Errorf("%s: path parameter %s is not required", o.key(), name)
				}
				got[name] = true
			}
		}
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s: path parameters %v, want %v", o.key(), sortedSet(got), sortedSet(want))
		}
	}
}

// operationParameters are an operation's parameters, its path item's
// included, references resolved.
func operationParameters(t *testing.T, doc map[string]any, o openAPIOp) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, list := range []any{o.pathItem["parameters"], o.op["parameters"]} {
		items, _ := list.([]any)
		for _, p := range items {
			out = append(out, deref(t, doc, p))
		}
	}
	return out
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestOpenAPIMatchesRouteTable(t *testing.T) {
	doc := loadOpenAPI(t)
	routes := routePatterns(t)
	documented := map[string]bool{}
	for _, o := range openAPIOperations(t, doc) {
		documented[o.key()] = true
	}
	var missing, extra []string
	for p := range routes {
		if !documented[p] {
			missing = append(missing, p)
		}
	}
	for p := range documented {
		if _, ok := routes[p]; !ok {
			extra = append(extra, p)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes the OpenAPI document lacks:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(extra) > 0 {
		t.Errorf("operations in the OpenAPI document that the route table does not have:\n  %s", strings.Join(extra, "\n  "))
	}
}

// hasBearer reports whether a security requirement list asks for bearerAuth.
func hasBearer(v any) bool {
	list, _ := v.([]any)
	for _, req := range list {
		if r, ok := req.(map[string]any); ok {
			if _, ok := r["bearerAuth"]; ok {
				return true
			}
		}
	}
	return false
}

func TestOpenAPISecurityAndIdempotencyKey(t *testing.T) {
	doc := loadOpenAPI(t)
	routes := routePatterns(t)
	globalBearer := hasBearer(doc["security"])
	for _, o := range openAPIOperations(t, doc) {
		public, known := routes[o.key()]
		if !known {
			continue // TestOpenAPIMatchesRouteTable names it
		}
		own, hasOwn := o.op["security"]
		if public {
			if list, ok := own.([]any); !hasOwn || !ok || len(list) != 0 {
				t.Errorf("%s is public: it needs \"security\": []", o.key())
			}
		} else {
			switch {
			case hasOwn && !hasBearer(own):
				t.Errorf("%s needs the API key, but its security %v does not ask for bearerAuth", o.key(), own)
			case !hasOwn && !globalBearer:
				t.Errorf("%s needs the API key, but neither it nor the document asks for bearerAuth", o.key())
			}
			if responses, _ := o.op["responses"].(map[string]any); responses["401"] == nil {
				t.Errorf("%s needs the API key but does not document 401", o.key())
			}
		}

		// The mux wraps exactly the authenticated POSTs in the
		// Idempotency-Key middleware (server.routes).
		honoured := !public && o.method == http.MethodPost
		documented := false
		for _, p := range operationParameters(t, doc, o) {
			if p["in"] == "header" && strings.EqualFold(fmt.Sprint(p["name"]), idempotency.Header) {
				documented = true
			}
		}
		switch {
		case honoured && !documented:
			t.Errorf("%s honours Idempotency-Key but does not document the header", o.key())
		case !honoured && documented:
			t.Errorf("%s documents Idempotency-Key, which it does not honour", o.key())
		}
		if honoured {
			responses, _ := o.op["responses"].(map[string]any)
			for _, code := range []string{"409", "422", "503"} {
				if responses[code] == nil {
					t.Errorf("%s honours Idempotency-Key but does not document its %s", o.key(), code)
				}
			}
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	h := newHarness(t)
	res, err := http.Get(h.api.URL + "/v1/openapi.json") // public: no API key
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json: %d %s", res.StatusCode, body)
	}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", res.Header.Get("Content-Type"))
	}
	if !bytes.Equal(body, openAPIDocument) {
		t.Errorf("the served document (%d bytes) is not the embedded openapi.json (%d bytes)", len(body), len(openAPIDocument))
	}
}

// TestOpenAPISchemasMatchGoTypes marshals each answer type with every field
// set and compares the JSON's keys, nested objects included, with the
// schema's properties: a field renamed, added or removed in Go without the
// document following fails here.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	for schema, v := range map[string]any{
		"Campaign":        campaign.Campaign{},
		"Recipient":       campaign.Recipient{},
		"Counts":          campaign.Counts{},
		"Credits":         campaign.Credits{},
		"Funnel":          campaign.Funnel{},
		"Tracking":        campaign.Tracking{},
		"Window":          campaign.Window{},
		"RejectedRow":     campaign.RejectedRow{},
		"HistoryEntry":    campaign.HistoryEntry{},
		"Sequence":        sequence.Sequence{},
		"SequenceStep":    sequence.Step{},
		"Enrollment":      sequence.Enrollment{},
		"EnrolledStep":    sequence.EnrolledStep{},
		"EnrollReport":    sequence.EnrollReport{},
		"Problem":         campaign.Problem{},
		"Account":         accountView{},
		"Quota":           quotaView{},
		"QuotaCampaign":   campaignQuotaRow{},
		"ErrorEnvelope":   errorEnvelope{},
		"SequenceRequest": sequenceRequest{},
		"Recurring":       recurring.Definition{},
		"Wait":            campaign.Wait{},
		"QueueSplit":      campaign.QueueSplit{},
		"Preview":         campaign.Preview{},
		"RowCounts":       campaign.RowCounts{},
		"PreviewMessage":  campaign.PreviewMessage{},
		"PreviewWarning":  campaign.PreviewWarning{},
		"TestSend":        campaign.TestSend{},
	} {
		p := reflect.New(reflect.TypeOf(v))
		fill(p.Elem(), 0)
		raw, err := json.Marshal(p.Interface())
		if err != nil {
			t.Fatalf("%s: %v", schema, err)
		}
		var got any
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		compareKeys(t, doc, schema, got, map[string]any{"$ref": "#/components/schemas/" + schema})
	}
}

// compareKeys checks that the object keys of a marshalled value are the
// properties of its schema, recursively.
func compareKeys(t *testing.T, doc map[string]any, at string, v any, schema any) {
	t.Helper()
	s := deref(t, doc, schema)
	switch v := v.(type) {
	case map[string]any:
		props, ok := s["properties"].(map[string]any)
		if !ok {
			return // a map (additionalProperties): its keys are data
		}
		for k, child := range v {
			ps, ok := props[k]
			if !ok {
				t.Errorf("%s: Go has %q, the schema does not", at, k)
				continue
			}
			compareKeys(t, doc, at+"."+k, child, ps)
		}
		for k := range props {
			if _, ok := v[k]; !ok {
				t.Errorf("%s: the schema has %q, Go does not", at, k)
			}
		}
	case []any:
		if items, ok := s["items"]; ok && len(v) > 0 {
			compareKeys(t, doc, at+"[]", v[0], items)
		}
	}
}

// fill sets every exported field of v to a non-zero value, so that
// omitempty fields appear in its JSON too.
func fill(v reflect.Value, depth int) {
	if depth > 8 || !v.CanSet() {
		return
	}
	if v.Type() == reflect.TypeOf(time.Time{}) {
		v.Set(reflect.ValueOf(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(0.5)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		e := reflect.New(v.Type().Elem()).Elem()
		fill(k, depth+1)
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	case reflect.Interface:
		v.Set(reflect.ValueOf("x"))
	}
}
