package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
)

// fakeServer answers every request with answer and records what it got.
type fakeServer struct {
	*httptest.Server
	method, path, query, body string
}

func newFakeServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) (*fakeServer, *Client) {
	t.Helper()
	f := &fakeServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.method, f.path, f.query, f.body = r.Method, r.URL.Path, r.URL.RawQuery, string(b)
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		answer(w, r)
	}))
	t.Cleanup(f.Close)
	c, err := New(f.URL, WithToken("tok"))
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func answerJSON(status int, doc any) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(doc) //nolint:errcheck
	}
}

func (f *fakeServer) expect(t *testing.T, method, path, body string) {
	t.Helper()
	if f.method != method || f.path != path || strings.TrimSpace(f.body) != body {
		t.Errorf("request %s %s %s; want %s %s %s", f.method, f.path, f.body, method, path, body)
	}
}

func TestCreateTaskGroup(t *testing.T) {
	ctx := context.Background()
	id := uuid.MustParse("01900000-0000-7000-8000-0000000000aa")
	group := apiv1.TaskGroup{ID: id, Href: apiv1.TaskGroupHref(id), Description: "d", Counts: map[string]int{"total": 0}}

	// Without tasks: 201 and the group.
	f, c := newFakeServer(t, answerJSON(http.StatusCreated, group))
	sealed := true
	g, got, err := c.CreateTaskGroup(ctx, apiv1.CreateTaskGroup{Description: "d", AllTasksDispatched: &sealed})
	if err != nil || got != id || g == nil || g.ID != id || g.Description != "d" {
		t.Fatalf("201: %+v %s %v", g, got, err)
	}
	f.expect(t, "POST", "/api/v1/task-groups", `{"description":"d","all_tasks_dispatched":true}`)

	// With tasks: 202 and the href.
	f, c = newFakeServer(t, answerJSON(http.StatusAccepted, apiv1.TaskGroupRef{TaskGroup: apiv1.TaskGroupHref(id)}))
	tasks := []apiv1.DispatchTask{{Name: "stint.noop"}}
	g, got, err = c.CreateTaskGroup(ctx, apiv1.CreateTaskGroup{Tasks: &tasks})
	if err != nil || got != id || g != nil {
		t.Fatalf("202: %+v %s %v", g, got, err)
	}
	f.expect(t, "POST", "/api/v1/task-groups", `{"tasks":[{"name":"stint.noop"}]}`)

	// An empty list of tasks is sent as such: the server then seals.
	none := []apiv1.DispatchTask{}
	if _, _, err := c.CreateTaskGroup(ctx, apiv1.CreateTaskGroup{Tasks: &none}); err != nil {
		t.Fatal(err)
	}
	f.expect(t, "POST", "/api/v1/task-groups", `{"tasks":[]}`)

	// 202 with the href in the Location header only.
	_, c = newFakeServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Location", "http://example.com"+apiv1.TaskGroupHref(id))
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte("{}")) //nolint:errcheck
	})
	if g, got, err := c.CreateTaskGroup(ctx, apiv1.CreateTaskGroup{Tasks: &tasks}); err != nil || got != id || g != nil {
		t.Fatalf("Location: %+v %s %v", g, got, err)
	}

	// A bad task: the server's detail, on one line.
	_, c = newFakeServer(t, answerJSON(http.StatusBadRequest, apiv1.Error{Detail: `tasks[3].name: unknown task name "x"`}))
	if _, _, err := c.CreateTaskGroup(ctx, apiv1.CreateTaskGroup{Tasks: &tasks}); !IsStatus(err, 400) || !strings.Contains(err.Error(), "tasks[3].name") {
		t.Fatalf("400: %v", err)
	}

	// An answer without an id is an error, not uuid.Nil.
	_, c = newFakeServer(t, answerJSON(http.StatusAccepted, map[string]string{}))
	if _, _, err := c.CreateTaskGroup(ctx, apiv1.CreateTaskGroup{}); err == nil || !strings.Contains(err.Error(), "without a task group id") {
		t.Fatalf("no id: %v", err)
	}
}

func TestTaskGroupCalls(t *testing.T) {
	ctx := context.Background()
	id := uuid.MustParse("01900000-0000-7000-8000-0000000000bb")
	href := apiv1.TaskGroupHref(id)
	group := apiv1.TaskGroup{ID: id, Href: href, AllTasksDispatched: true, Counts: map[string]int{"completed": 2, "total": 2},
		Tasks: &[]string{apiv1.TaskHref(uuid.New()), apiv1.TaskHref(uuid.New())}}
	f, c := newFakeServer(t, answerJSON(http.StatusOK, group))

	g, err := c.TaskGroup(ctx, id)
	if err != nil || g.ID != id || g.Tasks == nil || len(*g.Tasks) != 2 || g.Counts["total"] != 2 {
		t.Fatalf("TaskGroup: %+v %v", g, err)
	}
	f.expect(t, "GET", href, "")

	if _, err := c.SealTaskGroup(ctx, id); err != nil {
		t.Fatal(err)
	}
	f.expect(t, "PATCH", href, `{"all_tasks_dispatched":true}`)

	if _, err := c.CancelTaskGroup(ctx, id); err != nil {
		t.Fatal(err)
	}
	f.expect(t, "PATCH", href, `{"state":"canceled"}`)

	f, c = newFakeServer(t, answerJSON(http.StatusOK, apiv1.Page[apiv1.TaskGroup]{Count: new(1), Results: []apiv1.TaskGroup{group}}))
	page, err := c.ListTaskGroups(ctx, url.Values{"owner": {"alice"}, "all_tasks_dispatched": {"false"}})
	if err != nil || countOf(page.Count) != 1 || page.Results[0].ID != id {
		t.Fatalf("ListTaskGroups: %+v %v", page, err)
	}
	f.expect(t, "GET", "/api/v1/task-groups", "")
	if f.query != "all_tasks_dispatched=false&owner=alice" {
		t.Errorf("query %q", f.query)
	}
}

func TestDeleteTask(t *testing.T) {
	id := uuid.New()
	f, c := newFakeServer(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	if err := c.DeleteTask(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	f.expect(t, "DELETE", apiv1.TaskHref(id), "")
	_, c = newFakeServer(t, answerJSON(http.StatusConflict, apiv1.Error{Detail: "task is running"}))
	if err := c.DeleteTask(context.Background(), id); !IsStatus(err, http.StatusConflict) {
		t.Fatalf("409: %v", err)
	}
}

func TestPurgeTasks(t *testing.T) {
	id := uuid.MustParse("01900000-0000-7000-8000-0000000000cc")
	f, c := newFakeServer(t, answerJSON(http.StatusAccepted, apiv1.TaskRef{Task: apiv1.TaskHref(id)}))
	before := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 3600))
	got, err := c.PurgeTasks(context.Background(), apiv1.PurgeTasks{FinishedBefore: &apiv1.Time{Time: before}, States: []string{"completed", "failed"}})
	if err != nil || got != id {
		t.Fatalf("%s %v", got, err)
	}
	f.expect(t, "POST", "/api/v1/tasks/purge", `{"finished_before":"2026-01-02T02:04:05.000006Z","states":["completed","failed"]}`)
	if _, err := c.PurgeTasks(context.Background(), apiv1.PurgeTasks{}); err != nil {
		t.Fatal(err)
	}
	f.expect(t, "POST", "/api/v1/tasks/purge", `{}`)
	_, c = newFakeServer(t, answerJSON(http.StatusForbidden, apiv1.Error{Detail: "only admins may purge"}))
	if _, err := c.PurgeTasks(context.Background(), apiv1.PurgeTasks{}); !IsStatus(err, http.StatusForbidden) {
		t.Fatalf("403: %v", err)
	}
}

// countOf is a page's count for comparisons and messages: -1 when the API
// sent none.
func countOf(n *int) int {
	if n == nil {
		return -1
	}
	return *n
}
