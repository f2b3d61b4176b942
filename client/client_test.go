package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestErrorDecoding serves canned error answers: the detail of a JSON
// body, or the status text, becomes a one-line *APIError.
func TestErrorDecoding(t *testing.T) {
	cases := []struct {
		status     int
		body       string
		wantDetail string
		wantError  string
	}{
		{400, `{"detail": "name: unknown task name \"x\""}`, `name: unknown task name "x"`, `server answered 400 Bad Request: name: unknown task name "x"`},
		{409, `{"detail": "task is completed:\ncannot cancel"}`, "task is completed: cannot cancel", "server answered 409 Conflict: task is completed: cannot cancel"},
		{502, `<html>bad gateway</html>`, "Bad Gateway", "server answered 502 Bad Gateway"},
		{404, ``, "Not Found", "server answered 404 Not Found"},
		{401, `{"detail": ""}`, "Unauthorized", "server answered 401 Unauthorized"},
	}
	for _, tc := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.status)
			w.Write([]byte(tc.body)) //nolint:errcheck
		}))
		c, err := New(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Task(context.Background(), uuid.New())
		srv.Close()
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.status || apiErr.Detail != tc.wantDetail || err.Error() != tc.wantError {
			t.Errorf("%d %q: got %#v (%v)", tc.status, tc.body, err, err)
		}
		if !IsStatus(err, tc.status) || IsStatus(err, 200) {
			t.Errorf("IsStatus(%v, %d) is wrong", err, tc.status)
		}
	}
}

func TestBadAnswerBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("not json")) //nolint:errcheck
	}))
	defer srv.Close()
	c, _ := New(srv.URL)
	_, err := c.Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not the expected JSON") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("got %v", err)
	}
}

func TestConnectionErrorNamesServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, _ := New("http://" + addr + "/")
	_, err = c.Status(context.Background())
	want := "cannot reach the Stint server at http://" + addr + ": "
	if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("got %v; want it to start with %q", err, want)
	}
	// A canceled context says so, not that the server is unreachable.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Status(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: got %v", err)
	}
}

func TestNewRefusesBadServers(t *testing.T) {
	for _, s := range []string{"", "127.0.0.1:7710", "ftp://host", "http://", "http://host?x=1", "://x"} {
		if _, err := New(s); err == nil {
			t.Errorf("New(%q) took it", s)
		}
	}
}

func TestURLs(t *testing.T) {
	cases := []struct{ server, ref, want string }{
		{"http://h:1", "/tasks?limit=5", "http://h:1/api/v1/tasks?limit=5"},
		{"http://h:1/", "/tasks", "http://h:1/api/v1/tasks"},
		{"http://h:1//", "/api/v1/tasks?offset=100&limit=100", "http://h:1/api/v1/tasks?offset=100&limit=100"},
		{"https://h/stint/", "/api/v1/tasks?offset=1", "https://h/stint/api/v1/tasks?offset=1"},
		{"http://h", "/workers/" + "a%2Fb@c", "http://h/api/v1/workers/a%2Fb@c"},
		{"http://h", "http://other/api/v1/tasks?offset=1", "http://other/api/v1/tasks?offset=1"},
	}
	for _, tc := range cases {
		c, err := New(tc.server)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.url(tc.ref); err != nil || got != tc.want {
			t.Errorf("server %q ref %q: got %q %v; want %q", tc.server, tc.ref, got, err, tc.want)
		}
	}
}
