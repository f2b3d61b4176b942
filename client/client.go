package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
)

// Client talks to one Stint server. It is safe for concurrent use.
type Client struct {
	server string // as given, without a trailing slash, for messages
	base   *url.URL
	token  string
	hc     *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends token as "Authorization: Bearer token" on every request.
// An empty token sends no Authorization header.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient makes the Client send its requests with hc instead of
// http.DefaultClient. An hc with a Timeout also ends event streams after
// that time: bound requests with their contexts instead.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// New returns a Client of the server at the given URL, such as
// http://127.0.0.1:7710 (a trailing slash, or a path prefix under which a
// proxy serves the API, is accepted). It refuses a URL that is not http or
// https with a host.
func New(server string, opts ...Option) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server %q is not an http:// or https:// URL such as http://127.0.0.1:7710", server)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	c := &Client{server: strings.TrimRight(server, "/"), base: u, hc: http.DefaultClient}
	for _, opt := range opts {
		opt(c)
	}
	return c, nil
}

// Server returns the server's URL as given to New, without a trailing slash.
func (c *Client) Server() string { return c.server }

// APIError is an answer of the server with a 4xx or 5xx status.
type APIError struct {
	// StatusCode is the HTTP status, such as 404.
	StatusCode int
	// Detail is the server's explanation (the "detail" of its JSON body),
	// or the status text when the body has none.
	Detail string
}

// Error returns one line: the status and the detail.
func (e *APIError) Error() string {
	status := fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Detail == "" || e.Detail == http.StatusText(e.StatusCode) {
		return "server answered " + status
	}
	return "server answered " + status + ": " + e.Detail
}

// IsStatus reports whether err is an *APIError with the given status code.
func IsStatus(err error, code int) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.StatusCode == code
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// decodeError turns an error answer into an *APIError.
func decodeError(resp *http.Response) *APIError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var doc apiv1.Error
	detail := http.StatusText(resp.StatusCode)
	if json.Unmarshal(body, &doc) == nil && strings.TrimSpace(doc.Detail) != "" {
		detail = oneLine(doc.Detail)
	}
	return &APIError{StatusCode: resp.StatusCode, Detail: detail}
}

// oneLine folds whitespace runs (newlines included) into single spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// url returns the absolute URL of a path under the API prefix, such as
// "/tasks", or of an href the server gave, such as "/api/v1/tasks?offset=100"
// (taken under the server's URL) or "http://host/api/v1/tasks?offset=100".
func (c *Client) url(ref string) (string, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("bad href %q: %w", ref, err)
	}
	if r.IsAbs() {
		return r.String(), nil
	}
	if !strings.HasPrefix(r.Path, apiv1.Prefix) {
		r.Path, r.RawPath = apiv1.Prefix+r.Path, apiv1.Prefix+r.EscapedPath()
	}
	u := *c.base
	u.Path, u.RawPath = c.base.Path+r.Path, c.base.EscapedPath()+r.EscapedPath()
	u.RawQuery = r.RawQuery
	return u.String(), nil
}

// do sends a request with an optional JSON body and returns the answer if
// its status is 2xx; it closes the body and returns an *APIError otherwise.
func (c *Client) do(ctx context.Context, method, ref string, body any, accept string) (*http.Response, error) {
	target, err := c.url(ref)
	if err != nil {
		return nil, err
	}
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", "stint-client")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.connError(ctx, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

// connError explains a failed request: the context's error when it ended,
// otherwise which server could not be reached and why.
func (c *Client) connError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return fmt.Errorf("cannot reach the Stint server at %s: %w", c.server, err)
}

// call sends a request and decodes a JSON answer into out.
func (c *Client) call(ctx context.Context, method, ref string, body, out any) error {
	resp, err := c.do(ctx, method, ref, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("%s %s: the answer of %s is not the expected JSON: %w", method, ref, c.server, err)
	}
	return nil
}

// Dispatch dispatches a task (POST /tasks) and returns its id.
func (c *Client) Dispatch(ctx context.Context, task apiv1.DispatchTask) (uuid.UUID, error) {
	d, err := c.DispatchTask(ctx, task)
	return d.ID, err
}

// Dispatched is the answer to a dispatch: the task's id and whether it is
// an incomplete task that had the dispatch's unique key, created earlier
// (Deduplicated), rather than a new one.
type Dispatched struct {
	ID           uuid.UUID
	Deduplicated bool
}

// DispatchTask dispatches one task (POST /tasks) and says whether the
// dispatch was deduplicated by its unique key.
func (c *Client) DispatchTask(ctx context.Context, task apiv1.DispatchTask) (Dispatched, error) {
	return c.postTaskRef(ctx, "/tasks", task)
}

// RetryTask dispatches a failed, dropped or canceled task again
// (POST /tasks/{id}/retry) and returns the new task's id.
func (c *Client) RetryTask(ctx context.Context, id uuid.UUID) (uuid.UUID, error) {
	d, err := c.postTaskRef(ctx, apiv1.TaskHref(id)+"/retry", struct{}{})
	return d.ID, err
}

func (c *Client) postTaskRef(ctx context.Context, path string, body any) (Dispatched, error) {
	var ref apiv1.TaskRef
	if err := c.call(ctx, http.MethodPost, path, body, &ref); err != nil {
		return Dispatched{}, err
	}
	id, err := apiv1.ParseTaskRef(ref.Task)
	if err != nil {
		return Dispatched{}, fmt.Errorf("the server answered a bad task href: %w", err)
	}
	return Dispatched{ID: id, Deduplicated: ref.Deduplicated}, nil
}

// Task returns one task (GET /tasks/{id}).
func (c *Client) Task(ctx context.Context, id uuid.UUID) (*apiv1.Task, error) {
	var t apiv1.Task
	if err := c.call(ctx, http.MethodGet, apiv1.TaskHref(id), nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// ListTasks returns one page of tasks (GET /tasks) that match filter, whose
// keys are the API's query parameters (state, name__contains, limit,
// offset, ordering...). A nil filter lists the first page of all tasks.
func (c *Client) ListTasks(ctx context.Context, filter url.Values) (*apiv1.Page[apiv1.Task], error) {
	return getPage[apiv1.Task](ctx, c, "/tasks?"+filter.Encode())
}

// AllTasks returns every task that matches filter, following the pages'
// next links from the page that filter's offset names.
func (c *Client) AllTasks(ctx context.Context, filter url.Values) ([]apiv1.Task, error) {
	return getAll[apiv1.Task](ctx, c, "/tasks?"+filter.Encode())
}

// CancelTask asks the server to cancel a task (PATCH /tasks/{id} with
// {"state": "canceled"}) and returns the task, now canceling or canceled.
// Canceling a final task is an *APIError with status 409.
func (c *Client) CancelTask(ctx context.Context, id uuid.UUID) (*apiv1.Task, error) {
	var t apiv1.Task
	if err := c.call(ctx, http.MethodPatch, apiv1.TaskHref(id), apiv1.PatchTask{State: "canceled"}, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Workers returns every registered worker (GET /workers, all pages).
func (c *Client) Workers(ctx context.Context) ([]apiv1.Worker, error) {
	return getAll[apiv1.Worker](ctx, c, "/workers")
}

// Worker returns one worker (GET /workers/{name}).
func (c *Client) Worker(ctx context.Context, name string) (*apiv1.Worker, error) {
	var w apiv1.Worker
	if err := c.call(ctx, http.MethodGet, "/workers/"+url.PathEscape(name), nil, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// Status returns the server's status (GET /status).
func (c *Client) Status(ctx context.Context) (*apiv1.Status, error) {
	var s apiv1.Status
	if err := c.call(ctx, http.MethodGet, "/status", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

func getPage[T any](ctx context.Context, c *Client, ref string) (*apiv1.Page[T], error) {
	var p apiv1.Page[T]
	if err := c.call(ctx, http.MethodGet, ref, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// getAll reads the page at ref and every page after it.
func getAll[T any](ctx context.Context, c *Client, ref string) ([]T, error) {
	var all []T
	seen := map[string]bool{}
	for {
		p, err := getPage[T](ctx, c, ref)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Results...)
		if p.Next == nil || *p.Next == "" || len(p.Results) == 0 || seen[*p.Next] {
			return all, nil
		}
		seen[ref] = true
		ref = *p.Next
	}
}
