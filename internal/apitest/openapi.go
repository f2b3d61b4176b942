// Package apitest helps tests of Stint's HTTP API. Its Validator checks
// answers of the server against the API's OpenAPI document
// (api.OpenAPIDocument), so that the handlers, the apiv1 types and the
// document cannot drift apart unnoticed.
package apitest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/stint-dev/stint/apiv1"
)

// ErrUnknownOperation is wrapped by the errors of ValidateResponse when the
// document has no operation for the request's method and path and the
// answer is not a 404 Error. Tests that send such requests on purpose can
// skip it with errors.Is.
var ErrUnknownOperation = errors.New("no operation of the OpenAPI document matches the request")

// Validator checks HTTP answers against an OpenAPI 3 document. It is safe
// for concurrent use.
type Validator struct {
	doc     *openapi3.T
	router  routers.Router
	options openapi3filter.Options
	schemas []openapi3.SchemaValidationOption
}

// maxBodyInError is how much of a bad body an error quotes.
const maxBodyInError = 2000

// NewValidator loads an OpenAPI 3 document (JSON or YAML), validates it, and
// returns a Validator of answers to its operations.
//
// Beyond the document, the Validator checks two formats strictly, as the
// server writes them: "date-time" must be apiv1.TimeLayout in UTC
// (2006-01-02T15:04:05.000000Z, microseconds), and "uuid" a lowercase or
// uppercase RFC 9562 UUID.
func NewValidator(doc []byte) (*Validator, error) {
	loader := openapi3.NewLoader()
	t, err := loader.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("loading the OpenAPI document: %w", err)
	}
	ctx := context.Background()
	if err := t.Validate(ctx, openapi3.EnableSchemaFormatValidation()); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is invalid: %w", err)
	}
	router, err := legacy.NewRouter(t, openapi3.EnableSchemaFormatValidation())
	if err != nil {
		return nil, fmt.Errorf("routing the OpenAPI document: %w", err)
	}
	schemas := []openapi3.SchemaValidationOption{
		openapi3.WithStringFormatValidator("date-time", openapi3.NewCallbackValidator(validateTimestamp)),
		openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562)),
		openapi3.DisableSchemaErrorDetails(),
	}
	v := &Validator{doc: t, router: router, schemas: schemas}
	v.options = openapi3filter.Options{
		IncludeResponseStatus:   true,
		MultiError:              true,
		SchemaValidationOptions: schemas,
	}
	return v, nil
}

var timestampRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$`)

// validateTimestamp accepts the timestamps the server writes: TimeLayout
// in UTC.
func validateTimestamp(s string) error {
	if !timestampRE.MatchString(s) {
		return fmt.Errorf("%q is not RFC 3339 in UTC with microseconds (%s)", s, apiv1.TimeLayout)
	}
	if _, err := time.Parse(apiv1.TimeLayout, s); err != nil {
		return fmt.Errorf("%q is not a valid time: %v", s, err)
	}
	return nil
}

// ValidateResponse checks an answer of the server to req: the document must
// have an operation for req's method and path (the path with or without a
// trailing slash; scheme, host and port are ignored, so requests built for
// http://127.0.0.1:PORT work), the status must be one the operation
// documents, the documented headers (such as Location) must be present and
// valid, the Content-Type must be one the document gives for the status,
// and a JSON body must match its schema. Bodies of other media types
// (text/event-stream, text/plain, ...) are not checked. Answers to HEAD
// requests are not checked.
//
// When no operation matches the request, a 404 with a JSON Error body is
// valid (the server's answer to an unknown path or method, which the
// document describes in words only); any other answer is an error wrapping
// ErrUnknownOperation.
//
// The error, if any, names the request and quotes the start of the body.
func (v *Validator) ValidateResponse(req *http.Request, status int, header http.Header, body []byte) error {
	if req == nil || req.URL == nil {
		return errors.New("apitest: ValidateResponse needs the request")
	}
	if header == nil {
		header = http.Header{}
	}
	route, params, err := v.findRoute(req)
	if err != nil {
		if status == http.StatusNotFound && isJSON(header.Get("Content-Type")) {
			// An unknown path or method: the server answers 404 with an
			// Error, which no operation of the document can describe.
			if verr := v.ValidateSchema("Error", body); verr != nil {
				return fmt.Errorf("%s %s -> 404 of an unknown endpoint: %w", req.Method, req.URL.Path, verr)
			}
			return nil
		}
		return fmt.Errorf("%s %s: %w (%v)", req.Method, req.URL.Path, ErrUnknownOperation, err)
	}
	options := v.options
	if ct := header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		if resp := route.Operation.Responses.Status(status); resp != nil && resp.Value != nil && len(resp.Value.Content) > 0 {
			if resp.Value.Content.Get(ct) == nil {
				return fmt.Errorf("%s %s -> %d: Content-Type %q is not one of the document's %q",
					req.Method, req.URL.Path, status, ct, slices.Sorted(maps.Keys(resp.Value.Content)))
			}
		}
		options.ExcludeResponseBody = true
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
			Options:    &options,
		},
		Status:  status,
		Header:  header,
		Options: &options,
	}
	input.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		return fmt.Errorf("%s %s -> %d (operation %s): %w; body: %s",
			req.Method, req.URL.Path, status, route.Operation.OperationID, err, quote(body))
	}
	return nil
}

// ValidateSchema checks a JSON document against the schema of the given
// name in the document's components (e.g. "TaskEvent" for the data of an
// event of GET /api/v1/events), as a response.
func (v *Validator) ValidateSchema(name string, body []byte) error {
	ref := v.doc.Components.Schemas[name]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("apitest: the document has no schema %q", name)
	}
	var value any
	if err := json.Unmarshal(body, &value); err != nil {
		return fmt.Errorf("schema %s: not JSON: %w; body: %s", name, err, quote(body))
	}
	opts := append([]openapi3.SchemaValidationOption{openapi3.MultiErrors(), openapi3.VisitAsResponse()}, v.schemas...)
	if err := ref.Value.VisitJSON(value, opts...); err != nil {
		return fmt.Errorf("schema %s: %w; body: %s", name, err, quote(body))
	}
	return nil
}

// findRoute finds the operation of req by its method and path alone,
// trying the path without and with a trailing slash.
func (v *Validator) findRoute(req *http.Request) (*routers.Route, map[string]string, error) {
	// The escaped path: a percent-encoded slash (a resource named
	// "repo/1" is /resources/repo%2F1) stays inside its segment.
	path := req.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	candidates := []string{path}
	if trimmed := strings.TrimRight(path, "/"); trimmed != path && trimmed != "" {
		candidates = []string{trimmed, path}
	} else if path != "/" {
		candidates = append(candidates, path+"/")
	}
	var firstErr error
	for _, p := range candidates {
		lookup := &http.Request{Method: req.Method, URL: &url.URL{Path: p}, Header: req.Header}
		route, params, err := v.router.FindRoute(lookup)
		if err == nil {
			return route, params, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, nil, firstErr
}

// isJSON reports whether a Content-Type is JSON.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// quote returns the start of a body for an error message.
func quote(body []byte) string {
	if len(body) > maxBodyInError {
		return fmt.Sprintf("%q... (%d bytes)", body[:maxBodyInError], len(body))
	}
	return fmt.Sprintf("%q", body)
}
