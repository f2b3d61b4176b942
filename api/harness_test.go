package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/apitest"
	"github.com/stint-dev/stint/internal/auth"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/internal/syncbuf"
	"github.com/stint-dev/stint/store"
)

// env is a real API server on a fresh database of one engine. Every answer it
// gives a test is validated against the OpenAPI document, and checked not to
// quote a token the test sent; when the test ends, so is the server's log.
type env struct {
	tb        testing.TB
	ctx       context.Context
	store     store.Store
	reg       *stint.Registry
	srv       *api.Server
	http      *httptest.Server
	validator *apitest.Validator
	log       *syncbuf.Buffer // what the server logged, at debug level and up
	secrets   *secretSet      // every token the test sent, which nothing may quote
	// authz is the Authorization header of the requests; empty for none.
	// See as and withAuthorization.
	authz string
}

// secretSet holds the tokens, and their secret parts, that the test sent.
type secretSet struct {
	mu  sync.Mutex
	set map[string]bool
}

// add records the secrets in an Authorization header value: the token and,
// for a Stint token, its secret part. Short strings, which could occur in
// a log by chance, are left out; tests send long bad tokens.
func (s *secretSet) add(authorization string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	token := strings.TrimSpace(authorization)
	if scheme, rest, ok := strings.Cut(token, " "); ok && strings.EqualFold(scheme, "Bearer") {
		token = strings.TrimSpace(rest)
	}
	parts := []string{token}
	if _, secret, err := auth.Parse(token); err == nil {
		parts = append(parts, secret)
	}
	for _, p := range parts {
		if len(p) >= 16 {
			s.set[p] = true
		}
	}
}

// foundIn returns the secrets that text quotes.
func (s *secretSet) foundIn(text string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []string
	for secret := range s.set {
		if strings.Contains(text, secret) {
			found = append(found, secret)
		}
	}
	return found
}

var (
	validatorOnce sync.Once
	validator     *apitest.Validator
	validatorErr  error
)

func newEnv(tb testing.TB, eng enginetest.Engine, cfg api.Config) *env {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	tb.Cleanup(cancel)
	st := eng.Open(tb)
	reg := stint.NewRegistry()
	stint.Register(reg, "test.echo", func(_ context.Context, _ *stint.Run, a map[string]any) (map[string]any, error) { return a, nil })
	// test.parent dispatches Children stint.noop children and returns their ids.
	stint.Register(reg, "test.parent", func(ctx context.Context, run *stint.Run, a struct{ Children int }) ([]uuid.UUID, error) {
		var ids []uuid.UUID
		for range a.Children {
			child, err := run.Dispatch(ctx, stint.DispatchRequest{Name: "stint.noop"})
			if err != nil {
				return nil, err
			}
			ids = append(ids, child.ID)
		}
		return ids, nil
	})
	// test.spawn dispatches one child of the name and args it is given.
	stint.Register(reg, "test.spawn", func(ctx context.Context, run *stint.Run, a struct {
		Name string          `json:"name"`
		Args json.RawMessage `json:"args"`
	}) (uuid.UUID, error) {
		child, err := run.Dispatch(ctx, stint.DispatchRequest{Name: a.Name, Args: a.Args})
		if err != nil {
			return uuid.Nil, err
		}
		return child.ID, nil
	})
	cfg.Store, cfg.Registry, cfg.Engine, cfg.Version = st, reg, eng.Name, "test"
	logs, secrets := &syncbuf.Buffer{}, &secretSet{set: map[string]bool{}}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := api.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	tb.Cleanup(func() { // after the server stopped, below: its log is complete
		out := logs.String()
		if found := secrets.foundIn(out); len(found) > 0 {
			tb.Errorf("the server logged %d secrets of tokens sent, e.g. %q", len(found), found[0])
		}
		if tb.Failed() {
			tb.Logf("server log:\n%s", out)
		}
	})
	tb.Cleanup(func() { srv.Close(); hs.Close() })
	validatorOnce.Do(func() { validator, validatorErr = apitest.NewValidator(api.OpenAPIDocument()) })
	if validatorErr != nil {
		tb.Fatal(validatorErr)
	}
	return &env{tb: tb, ctx: ctx, store: st, reg: reg, srv: srv, http: hs, validator: validator, log: logs, secrets: secrets}
}

// as returns a view of the env whose requests carry the token:
// Authorization: Bearer token.
func (e *env) as(token string) *env { return e.withAuthorization("Bearer " + token) }

// withAuthorization returns a view of the env whose requests carry this
// Authorization header ("" for none).
func (e *env) withAuthorization(value string) *env {
	c := *e
	c.authz = value
	if value != "" {
		e.secrets.add(value)
	}
	return &c
}

// addUser creates a user through the store and returns a new token of it.
func (e *env) addUser(name string, role store.Role) string {
	e.tb.Helper()
	if err := e.store.CreateUser(e.ctx, name, role); err != nil {
		e.tb.Fatal(err)
	}
	return e.addToken(name).Secret
}

// addToken makes a token of an existing user and stores it.
func (e *env) addToken(user string) auth.Token {
	e.tb.Helper()
	tok, err := auth.New()
	if err != nil {
		e.tb.Fatal(err)
	}
	if err := e.store.AddToken(e.ctx, store.NewToken{ID: tok.ID, User: user, Hash: tok.Hash}); err != nil {
		e.tb.Fatal(err)
	}
	e.secrets.add(tok.Secret)
	return tok
}

// startWorker runs a worker on the env's store until the test ends.
func (e *env) startWorker(name string) {
	e.tb.Helper()
	w, err := stint.NewWorker(e.store, e.reg, stint.WorkerConfig{Name: name, Concurrency: 4,
		HeartbeatInterval: 200 * time.Millisecond, PollInterval: 200 * time.Millisecond, WorkDir: e.tb.TempDir()})
	if err != nil {
		e.tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	e.tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.tb.Errorf("worker: %v", err)
		}
	})
}

// answer is an HTTP answer the test got.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// detail returns the detail of an error answer.
func (a answer) detail() string {
	var e apiv1.Error
	json.Unmarshal(a.body, &e) //nolint:errcheck
	return e.Detail
}

// do sends a request and validates the answer against the OpenAPI
// document. A body that is a string or []byte is sent as it is; anything
// else is sent as JSON.
func (e *env) do(method, path string, body any) answer {
	e.tb.Helper()
	return e.send(e.tb, method, path, body)
}

// send is do, reporting to tb (a fuzz target's own *testing.T).
func (e *env) send(tb testing.TB, method, path string, body any) answer {
	tb.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, e.http.URL+path, r)
	if err != nil {
		tb.Fatal(err)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.authz != "" {
		req.Header.Set("Authorization", e.authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.validator.ValidateResponse(req, resp.StatusCode, resp.Header, raw); err != nil &&
		!(resp.StatusCode == http.StatusNotFound && strings.Contains(err.Error(), "no operation")) {
		tb.Errorf("%s %s: answer %d does not fit the OpenAPI document: %v\n%s", method, path, resp.StatusCode, err, raw)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: raw}
	if a.status >= 400 && a.detail() == "" {
		tb.Errorf("%s %s: answer %d without a detail: %s", method, path, a.status, raw)
	}
	if a.status == http.StatusUnauthorized && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
		tb.Errorf("%s %s: 401 with WWW-Authenticate %q", method, path, a.header.Get("WWW-Authenticate"))
	}
	if found := e.secrets.foundIn(string(raw)); len(found) > 0 {
		tb.Errorf("%s %s: answer %d quotes a token sent: %s", method, path, a.status, raw)
	}
	return a
}

// must sends a request, expects the status, and decodes the answer into
// out (if not nil).
func (e *env) must(method, path string, body any, status int, out any) answer {
	e.tb.Helper()
	a := e.do(method, path, body)
	if a.status != status {
		e.tb.Fatalf("%s %s: status %d, want %d: %s", method, path, a.status, status, a.body)
	}
	if out != nil {
		if err := json.Unmarshal(a.body, out); err != nil {
			e.tb.Fatalf("%s %s: %v: %s", method, path, err, a.body)
		}
	}
	return a
}

// dispatch dispatches a task through the API and returns its id.
func (e *env) dispatch(body apiv1.DispatchTask) uuid.UUID {
	e.tb.Helper()
	var ref apiv1.TaskRef
	e.must("POST", "/api/v1/tasks", body, http.StatusAccepted, &ref)
	id, err := apiv1.ParseTaskRef(ref.Task)
	if err != nil {
		e.tb.Fatal(err)
	}
	return id
}

// task reads a task through the API.
func (e *env) task(id uuid.UUID) apiv1.Task {
	e.tb.Helper()
	var t apiv1.Task
	e.must("GET", "/api/v1/tasks/"+id.String(), nil, http.StatusOK, &t)
	return t
}

// waitState polls a task until it reaches state.
func (e *env) waitState(id uuid.UUID, state string) apiv1.Task {
	e.tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		t := e.task(id)
		if t.State == state {
			return t
		}
		if time.Now().After(deadline) {
			e.tb.Fatalf("task %s is %s, waited for %s", id, t.State, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sseEvent is one event read from a stream.
type sseEvent struct {
	name string
	data apiv1.TaskEvent
}

// openEvents opens GET /events with the query and returns a channel of
// its events; the stream closes when the test ends.
func (e *env) openEvents(query string) <-chan sseEvent {
	e.tb.Helper()
	ch, _ := e.openClosableEvents(query)
	return ch
}

// openClosableEvents is openEvents, and a function that closes the stream
// (its channel then closes).
func (e *env) openClosableEvents(query string) (<-chan sseEvent, context.CancelFunc) {
	e.tb.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	e.tb.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.http.URL+"/api/v1/events"+query, nil)
	if e.authz != "" {
		req.Header.Set("Authorization", e.authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		e.tb.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 1000)
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || sc.Text() != ": connected" { // the stream is subscribed from here on
		e.tb.Fatalf("events: first line %q", sc.Text())
	}
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data) //nolint:errcheck
			case line == "" && ev.name != "":
				ch <- ev
				ev = sseEvent{}
			}
		}
	}()
	return ch, cancel
}

// countOf is a page's count for comparisons and messages: -1 when the API
// sent none.
func countOf(n *int) int {
	if n == nil {
		return -1
	}
	return *n
}
