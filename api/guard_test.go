package api_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store"
)

// raw sends a request with exactly the headers given ("Host" sets the
// request's Host) and validates the answer against the OpenAPI document.
func (e *env) raw(method, path, body string, headers map[string]string) answer {
	e.tb.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second) // an event stream that opens ends
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.http.URL+path, r)
	if err != nil {
		e.tb.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if e.authz != "" {
		req.Header.Set("Authorization", e.authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.tb.Fatal(err)
	}
	if err := e.validator.ValidateResponse(req, resp.StatusCode, resp.Header, raw); err != nil {
		e.tb.Errorf("%s %s: answer %d does not fit the OpenAPI document: %v\n%s", method, path, resp.StatusCode, err, raw)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: raw}
	if a.status >= 400 && a.detail() == "" {
		e.tb.Errorf("%s %s: answer %d without a detail: %s", method, path, a.status, raw)
	}
	return a
}

// countTasks returns how many tasks the store holds.
func (e *env) countTasks() int {
	e.tb.Helper()
	_, n, err := e.store.ListTasks(e.ctx, store.TaskFilter{Limit: 1})
	if err != nil {
		e.tb.Fatal(err)
	}
	return countOf(n)
}

// TestBodiesMustBeJSON: a body of another media type (a form or
// text/plain, which any web page may POST without asking) is a 415 and
// does nothing.
func TestBodiesMustBeJSON(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		body := `{"name": "stint.noop"}`
		for _, ct := range []string{"", "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
			"multipart/form-data; boundary=x", "application/jsonx", "application/json; charset=latin1", "application/json;;"} {
			for _, path := range []string{"/api/v1/tasks", "/api/v1/tasks/purge", "/api/v1/task-groups"} {
				h := map[string]string{}
				if ct != "" {
					h["Content-Type"] = ct
				}
				a := e.raw("POST", path, body, h)
				if a.status != http.StatusUnsupportedMediaType || !strings.Contains(a.detail(), "application/json") {
					t.Errorf("POST %s as %q: status %d %q, want 415 naming application/json", path, ct, a.status, a.detail())
				}
			}
		}
		if n := e.countTasks(); n != 0 {
			t.Fatalf("%d tasks dispatched by refused requests", n)
		}
		for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON; charset=UTF-8"} {
			if a := e.raw("POST", "/api/v1/tasks", body, map[string]string{"Content-Type": ct}); a.status != http.StatusAccepted {
				t.Errorf("POST as %q: status %d %s, want 202", ct, a.status, a.body)
			}
		}
	})
}

// TestForeignOriginRefused: a state-changing request from a web page of
// another origin is refused; one from the server's own origin (the web
// UI), or with no Origin (the CLI, the Go client, curl), goes through.
func TestForeignOriginRefused(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		own := e.http.URL // http://127.0.0.1:port
		host := strings.TrimPrefix(own, "http://")
		body := `{"name": "stint.noop"}`
		json := "application/json"
		for _, h := range []map[string]string{
			{"Origin": "http://evil.example"},
			{"Origin": "http://localhost:3000"},
			{"Origin": "null"},
			{"Origin": "http://" + host + ".evil.example"},
			{"Sec-Fetch-Site": "cross-site"},
			{"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:3000"},
		} {
			h["Content-Type"] = json
			for _, m := range []string{"POST /api/v1/tasks", "POST /api/v1/tasks/purge", "PATCH /api/v1/tasks/0190d6f6-59b6-7a1a-9d2b-6a3d3e1f0c11"} {
				method, path, _ := strings.Cut(m, " ")
				b := body
				if method == "PATCH" {
					b = `{"state": "canceled"}`
				}
				if a := e.raw(method, path, b, h); a.status != http.StatusForbidden || !strings.Contains(a.detail(), "origin") {
					t.Errorf("%s with %v: status %d %q, want 403 about the origin", m, h, a.status, a.detail())
				}
			}
		}
		if n := e.countTasks(); n != 0 {
			t.Fatalf("%d tasks dispatched by refused requests", n)
		}
		for _, h := range []map[string]string{
			{},
			{"Origin": own},
			{"Origin": own, "Sec-Fetch-Site": "same-origin"},
		} {
			h["Content-Type"] = json
			if a := e.raw("POST", "/api/v1/tasks", body, h); a.status != http.StatusAccepted {
				t.Errorf("POST with %v: status %d %s, want 202", h, a.status, a.body)
			}
		}
		// Reads are not state-changing: another origin cannot read the
		// answer anyway (no CORS headers).
		if a := e.raw("GET", "/api/v1/tasks", "", map[string]string{"Origin": "http://evil.example"}); a.status != http.StatusOK {
			t.Errorf("GET with a foreign Origin: status %d, want 200", a.status)
		}
	})
}

// TestOpenModeAnswersLoopbackHostsOnly: an open server (no users) answers
// only requests addressed to a loopback name, so that a web page whose
// name was rebound to 127.0.0.1 (DNS rebinding) reads and does nothing.
// With users, the Host does not matter: every request needs a token.
func TestOpenModeAnswersLoopbackHostsOnly(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		u, _ := url.Parse(e.http.URL)
		port := u.Port()
		for _, host := range []string{"evil.example:" + port, "evil.example", "localhost.evil.example:" + port, "10.0.0.1:" + port} {
			for _, path := range []string{"/api/v1/tasks", "/api/v1/events", "/api/v1/me"} {
				a := e.raw("GET", path, "", map[string]string{"Host": host})
				if a.status != http.StatusForbidden || !strings.Contains(a.detail(), "loopback") {
					t.Errorf("GET %s with Host %q: status %d %q, want 403 about loopback", path, host, a.status, a.detail())
				}
			}
			a := e.raw("POST", "/api/v1/tasks", `{"name": "stint.noop"}`, map[string]string{"Host": host, "Content-Type": "application/json"})
			if a.status != http.StatusForbidden {
				t.Errorf("POST with Host %q: status %d, want 403", host, a.status)
			}
		}
		if n := e.countTasks(); n != 0 {
			t.Fatalf("%d tasks dispatched by refused requests", n)
		}
		for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "LocalHost", "127.1.2.3:" + port, "[::1]:" + port, "localhost."} {
			if a := e.raw("GET", "/api/v1/tasks", "", map[string]string{"Host": host}); a.status != http.StatusOK {
				t.Errorf("GET with Host %q: status %d %s, want 200", host, a.status, a.body)
			}
		}
		// The public endpoints and the UI answer any Host.
		if a := e.raw("GET", "/api/v1/status", "", map[string]string{"Host": "evil.example"}); a.status != http.StatusOK {
			t.Errorf("GET /status with a foreign Host: %d", a.status)
		}
		// With a user, the Host does not matter.
		tok := e.addUser("alice", store.RoleAdmin)
		if a := e.as(tok).raw("GET", "/api/v1/tasks", "", map[string]string{"Host": "stint.example.com"}); a.status != http.StatusOK {
			t.Errorf("GET with a token and a foreign Host: status %d %s, want 200", a.status, a.body)
		}
		if a := e.raw("GET", "/api/v1/tasks", "", map[string]string{"Host": "stint.example.com"}); a.status != http.StatusUnauthorized {
			t.Errorf("GET without a token once a user exists: status %d, want 401", a.status)
		}
	})
}

// TestOpenAnyHost: --insecure-no-auth (OpenAnyHost) opens the server to
// every name it is reached by.
func TestOpenAnyHost(t *testing.T) {
	e := newEnv(t, enginetest.SQLite, api.Config{AllowOpen: true, OpenAnyHost: true})
	if a := e.raw("GET", "/api/v1/tasks", "", map[string]string{"Host": "build-box:7710"}); a.status != http.StatusOK {
		t.Fatalf("status %d %s, want 200", a.status, a.body)
	}
}
