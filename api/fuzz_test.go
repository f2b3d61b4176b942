package api_test

import (
	"net/url"
	"strings"
	"testing"
	"unicode"

	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/internal/enginetest"
)

// FuzzDispatchBody sends arbitrary bodies to POST /tasks: every answer is a
// 202 or a 4xx that fits the OpenAPI document, never a 5xx.
func FuzzDispatchBody(f *testing.F) {
	for _, seed := range []string{
		`{"name": "stint.noop"}`,
		`{"name": "stint.sleep", "args": {"seconds": 0.1, "fail": true}}`,
		`{"name": "test.echo", "args": {"a": [1, {"b": null}]}, "exclusive_resources": ["repo:1"], "shared_resources": ["lib", "repo:1"]}`,
		`{"name": "stint.noop", "versions": {"plugin": "1.2.3"}}`,
		`{"name": "test.echo", "args": {"s": "\u0000"}}`,
		`{"name": "test.echo", "args": "\ud800"}`,
		`{"name": "stint.noop", "exclusive_resources": ["\u0001"]}`,
		`{"name": "stint.sleep", "args": {"seconds": 1e400}}`,
		`{"name": 1}`, `[]`, `null`, `{`, ``, `{"name": "stint.noop"} x`,
		`{"NAME": "stint.noop"}`, `{"name": "x", "name": "stint.noop"}`, `{"name": "test.echo", "args": {"a": 1, "a": 2}}`,
	} {
		f.Add([]byte(seed))
	}
	e := newEnv(f, enginetest.PostgreSQL, api.Config{AllowOpen: true, MaxBodyBytes: 64 << 10})
	f.Fuzz(func(t *testing.T, body []byte) {
		a := e.send(t, "POST", "/api/v1/tasks", body)
		if a.status != 202 && (a.status < 400 || a.status >= 500) {
			t.Fatalf("status %d for %q: %s", a.status, body, a.body)
		}
		if a.status != 202 && a.detail() == "" {
			t.Fatalf("status %d without a detail for %q", a.status, body)
		}
	})
}

// FuzzTaskFilters sends arbitrary queries to GET /tasks: every answer is a
// 200 or a 400 naming a parameter, never a 5xx.
func FuzzTaskFilters(f *testing.F) {
	for _, seed := range []string{
		"state=waiting", "state__in=waiting,running&limit=5&offset=1", "ordering=-finished_at",
		"name__contains=%25_", "reserved_resources=repo:1&exclusive_resources=a&shared_resources=b",
		"created_at__gte=2026-01-02T15:04:05Z&finished_at__lte=2026-01-02T15:04:05.123456%2B02:00",
		"parent_task=01900000-0000-7000-8000-000000000000", "task_group=/api/v1/task-groups/01900000-0000-7000-8000-000000000000",
		"limit=1001", "offset=99999999999999999999", "worker=%00", "owner=a&owner=b", "x=1", "%zz",
	} {
		f.Add(seed)
	}
	e := newEnv(f, enginetest.PostgreSQL, api.Config{AllowOpen: true})
	f.Fuzz(func(t *testing.T, query string) {
		if _, err := url.Parse(e.http.URL + "/api/v1/tasks?" + query); err != nil || strings.ContainsFunc(query, unicode.IsSpace) ||
			strings.ContainsFunc(query, unicode.IsControl) {
			t.Skip("not a request line a client can send") // net/http refuses it before any handler
		}
		a := e.send(t, "GET", "/api/v1/tasks?"+query, nil)
		if a.status != 200 && a.status != 400 {
			t.Fatalf("status %d for %q: %s", a.status, query, a.body)
		}
		if a.status == 400 && a.detail() == "" {
			t.Fatalf("400 without a detail for %q", query)
		}
	})
}
