package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/enginetest"
)

func TestDispatchAnswers202WithLocation(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		a := e.must("POST", "/api/v1/tasks", apiv1.DispatchTask{
			Name: "test.echo", Args: json.RawMessage(`{"x": 1}`),
			ExclusiveResources: []string{"repo:2", "repo:1"}, SharedResources: []string{"repo:1", "lib"},
			Versions: map[string]string{"plugin": "1.4"},
		}, http.StatusAccepted, nil)
		var ref apiv1.TaskRef
		json.Unmarshal(a.body, &ref) //nolint:errcheck
		if a.header.Get("Location") != ref.Task || !strings.HasPrefix(ref.Task, "/api/v1/tasks/") {
			t.Fatalf("Location %q, body %s", a.header.Get("Location"), a.body)
		}
		var task apiv1.Task
		e.must("GET", ref.Task, nil, http.StatusOK, &task)
		if task.Href != ref.Task || task.State != "waiting" || string(task.Args) != `{"x":1}` ||
			!slices.Equal(task.ExclusiveResources, []string{"repo:1", "repo:2"}) || !slices.Equal(task.SharedResources, []string{"lib"}) ||
			task.Versions["plugin"] != "1.4" || task.Worker != nil || task.BlockedBy == nil || len(*task.BlockedBy) != 1 ||
			(*task.BlockedBy)[0] != (apiv1.Blocker{Reason: "no online worker provides plugin>=1.4"}) {
			t.Fatalf("task: %+v", task)
		}
		// A trailing slash is accepted.
		e.must("GET", ref.Task+"/", nil, http.StatusOK, nil)
		e.must("POST", "/api/v1/tasks/", apiv1.DispatchTask{Name: "stint.noop"}, http.StatusAccepted, nil)
	})
}

func TestDispatchRefusesBadInput(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true, MaxBodyBytes: 4096})
		long := strings.Repeat("r", 1025)
		cases := []struct {
			name   string
			body   string
			status int
			detail string // a part of the detail
		}{
			{"empty body", ``, 400, "empty"},
			{"not JSON", `{"name": `, 400, "not valid JSON"},
			{"array", `[]`, 400, "JSON object"},
			{"two values", `{"name": "stint.noop"} {}`, 400, "more than one"},
			{"unknown field", `{"name": "stint.noop", "colour": 1}`, 400, "colour: unknown field"},
			{"no name", `{}`, 400, "name: is required"},
			{"name not a string", `{"name": 5}`, 400, "name: expected a string"},
			{"unknown name", `{"name": "no.such"}`, 400, `name: unknown task name "no.such"`},
			{"args do not fit", `{"name": "stint.sleep", "args": {"seconds": "x"}}`, 400, "args: do not fit task stint.sleep"},
			{"args unknown field", `{"name": "stint.sleep", "args": {"minutes": 1}}`, 400, "args: "},
			{"args out of range", `{"name": "stint.sleep", "args": {"seconds": -1}}`, 400, "args: "},
			{"args NUL", `{"name": "test.echo", "args": {"a": "\u0000"}}`, 400, "args: "},
			{"resources not a list", `{"name": "stint.noop", "exclusive_resources": "repo"}`, 400, "exclusive_resources: expected an array"},
			{"empty resource", `{"name": "stint.noop", "shared_resources": ["a", ""]}`, 400, "shared_resources[1]: resource is empty"},
			{"long resource", `{"name": "stint.noop", "exclusive_resources": ["` + long + `"]}`, 400, "exclusive_resources[0]: resource is 1025 bytes"},
			{"bad version", `{"name": "stint.noop", "versions": {"p": "new"}}`, 400, "versions.p: "},
			{"bidi override in a resource", `{"name": "stint.noop", "exclusive_resources": ["repo:1\u202egnp.exe"]}`, 400, "exclusive_resources[0]: resource contains a format character (U+202E"},
			{"line separator in a resource", `{"name": "stint.noop", "shared_resources": ["a", "b\u2028c"]}`, 400, "shared_resources[1]: resource contains a line or paragraph separator"},
			{"too large", `{"name": "stint.noop", "args": "` + strings.Repeat("x", 5000) + `"}`, 413, "larger than 4096 bytes"},
			// Field names are matched exactly, and each may be given once.
			{"name in capitals", `{"NAME": "stint.noop"}`, 400, "NAME: unknown field"},
			{"name capitalised", `{"Name": "stint.noop"}`, 400, "Name: unknown field"},
			{"resources in capitals", `{"name": "stint.noop", "Exclusive_Resources": ["a"]}`, 400, "Exclusive_Resources: unknown field"},
			{"name twice", `{"name": "x", "name": "stint.noop"}`, 400, "name: given twice"},
			{"deferred twice", `{"name": "stint.noop", "immediate": true, "deferred": true, "deferred": false}`, 400, "deferred: given twice"},
			{"args key twice", `{"name": "test.echo", "args": {"a": 1, "a": 2}}`, 400, "args.a: given twice"},
			{"versions key twice", `{"name": "stint.noop", "versions": {"p": "1", "p": "2"}}`, 400, "versions.p: given twice"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				a := e.do("POST", "/api/v1/tasks", tc.body)
				if a.status != tc.status || !strings.Contains(a.detail(), tc.detail) {
					t.Fatalf("status %d detail %q; want %d with %q", a.status, a.detail(), tc.status, tc.detail)
				}
			})
		}
		var page apiv1.Page[apiv1.Task]
		e.must("GET", "/api/v1/tasks", nil, http.StatusOK, &page)
		if countOf(page.Count) != 0 {
			t.Fatalf("bad input stored %d tasks", countOf(page.Count))
		}
	})
}

func TestGetTaskErrors(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		if a := e.do("GET", "/api/v1/tasks/"+uuid.NewString(), nil); a.status != 404 || !strings.Contains(a.detail(), "no task") {
			t.Fatalf("unknown id: %d %s", a.status, a.body)
		}
		for _, bad := range []string{"42", "not-a-uuid", strings.Repeat("a", 40), "%00"} {
			if a := e.do("GET", "/api/v1/tasks/"+bad, nil); a.status != 400 || !strings.HasPrefix(a.detail(), "id: ") {
				t.Fatalf("id %q: %d %s", bad, a.status, a.body)
			}
		}
		if a := e.do("GET", "/api/v1/nothing", nil); a.status != 404 {
			t.Fatalf("unknown endpoint: %d", a.status)
		}
		if a := e.do("DELETE", "/api/v1/status", nil); a.status != 405 && a.status != 404 {
			t.Fatalf("wrong method: %d", a.status)
		}
	})
}

func TestCancel(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		// A waiting task (no worker yet) is canceled at once.
		waiting := e.dispatch(apiv1.DispatchTask{Name: "stint.sleep", Args: json.RawMessage(`{"seconds": 30}`), ExclusiveResources: []string{"r"}})
		var got apiv1.Task
		e.must("PATCH", "/api/v1/tasks/"+waiting.String(), apiv1.PatchTask{State: "canceled"}, 200, &got)
		if got.State != "canceled" || got.FinishedAt == nil {
			t.Fatalf("canceled waiting task: %+v", got)
		}
		// Canceling it again: 409.
		if a := e.do("PATCH", "/api/v1/tasks/"+waiting.String(), apiv1.PatchTask{State: "canceled"}); a.status != 409 || !strings.Contains(a.detail(), "canceled already") {
			t.Fatalf("cancel of a final task: %d %s", a.status, a.body)
		}
		// A running task becomes canceling, then canceled by its worker.
		e.startWorker("w1")
		running := e.dispatch(apiv1.DispatchTask{Name: "stint.sleep", Args: json.RawMessage(`{"seconds": 30}`)})
		e.waitState(running, "running")
		e.must("PATCH", "/api/v1/tasks/"+running.String(), apiv1.PatchTask{State: "canceled"}, 200, &got)
		if got.State != "canceling" && got.State != "canceled" {
			t.Fatalf("cancel of a running task: %s", got.State)
		}
		e.waitState(running, "canceled")
		for _, tc := range []struct{ body, detail string }{
			{`{"state": "completed"}`, "state: must be \"canceled\""},
			{`{"state": 1}`, "state: expected a string"},
			{`{}`, "state: must be"},
			{`{"status": "canceled"}`, "status: unknown field"},
			{`{"State": "canceled"}`, "State: unknown field"},
			{`{"state": "completed", "state": "canceled"}`, "state: given twice"},
		} {
			if a := e.do("PATCH", "/api/v1/tasks/"+running.String(), tc.body); a.status != 400 || !strings.Contains(a.detail(), tc.detail) {
				t.Fatalf("patch %s: %d %s", tc.body, a.status, a.body)
			}
		}
		if a := e.do("PATCH", "/api/v1/tasks/"+uuid.NewString(), apiv1.PatchTask{State: "canceled"}); a.status != 404 {
			t.Fatalf("cancel of an unknown task: %d", a.status)
		}
	})
}

func TestTaskShowsWorkerOutputsAndBlockers(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		first := e.dispatch(apiv1.DispatchTask{Name: "stint.sleep", Args: json.RawMessage(`{"seconds": 0.3, "fail": true}`), ExclusiveResources: []string{"repo:1"}})
		second := e.dispatch(apiv1.DispatchTask{Name: "stint.noop", SharedResources: []string{"repo:1"}})
		blocked := e.task(second)
		if blocked.BlockedBy == nil || len(*blocked.BlockedBy) != 1 ||
			(*blocked.BlockedBy)[0] != (apiv1.Blocker{Task: apiv1.TaskHref(first), Resource: "repo:1"}) {
			t.Fatalf("blocked_by: %+v", blocked.BlockedBy)
		}
		e.startWorker("w1")
		failed := e.waitState(first, "failed")
		if failed.Error == nil || failed.Error.Description != "failed as asked (fail: true)" || failed.Worker == nil || failed.Worker.Name != "w1" ||
			failed.Worker.LastHeartbeat == nil || failed.Worker.Missing || len(failed.ProgressReports) != 1 || failed.StartedAt == nil || failed.FinishedAt == nil {
			t.Fatalf("failed task: %+v", failed)
		}
		done := e.waitState(second, "completed")
		if done.BlockedBy != nil || done.UnblockedAt == nil || string(done.Result) != "{}" {
			t.Fatalf("completed task: %+v", done)
		}
	})
}

// TestListFilters dispatches a known set of tasks and checks what each
// filter selects.
func TestListFilters(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		before := time.Now().UTC().Add(-time.Second)
		ids := map[string]uuid.UUID{}
		for _, d := range []struct {
			key  string
			body apiv1.DispatchTask
		}{
			{"a", apiv1.DispatchTask{Name: "stint.noop", ExclusiveResources: []string{"repo:1"}}},
			{"b", apiv1.DispatchTask{Name: "stint.noop", SharedResources: []string{"repo:1", "lib"}}},
			{"c", apiv1.DispatchTask{Name: "test.echo", SharedResources: []string{"lib"}}},
			{"d", apiv1.DispatchTask{Name: "stint.sleep", Args: json.RawMessage(`{"seconds": 30}`), ExclusiveResources: []string{"other"}}},
		} {
			ids[d.key] = e.dispatch(d.body)
		}
		e.must("PATCH", "/api/v1/tasks/"+ids["d"].String(), apiv1.PatchTask{State: "canceled"}, 200, nil)
		after := time.Now().UTC().Add(time.Second)
		ts := func(t time.Time) string { return url.QueryEscape(t.Format(time.RFC3339Nano)) }

		cases := []struct {
			query string
			want  string // keys of the tasks, in order
		}{
			{"", "abcd"},
			{"?ordering=-created_at", "dcba"},
			{"?ordering=created_at", "abcd"},
			{"?ordering=finished_at", "dabc"}, // finished first, then the others (NULLS LAST) by dispatch order
			{"?ordering=-started_at", "dcba"}, // none started: ties in reverse dispatch order
			{"?state=waiting", "abc"},
			{"?state=canceled", "d"},
			{"?state__in=canceled,waiting", "abcd"},
			{"?state__in=running", ""},
			{"?name=stint.noop", "ab"},
			{"?name__contains=noop", "ab"},
			{"?name__contains=e", "cd"},
			{"?exclusive_resources=repo:1", "a"},
			{"?shared_resources=repo:1", "b"},
			{"?reserved_resources=repo:1", "ab"},
			{"?shared_resources=lib", "bc"},
			{"?reserved_resources=nothing", ""},
			{"?created_resources=x", ""},
			{"?owner=nobody", ""},
			{"?worker=w", ""},
			{"?parent_task=" + uuid.NewString(), ""},
			{"?task_group=" + uuid.NewString(), ""},
			{"?created_at__gte=" + ts(before), "abcd"},
			{"?created_at__lte=" + ts(before), ""},
			{"?created_at__gte=" + ts(before) + "&created_at__lte=" + ts(after), "abcd"},
			{"?finished_at__gte=" + ts(before), "d"},
			{"?finished_at__lte=" + ts(after), "d"},
			{"?started_at__gte=" + ts(before), ""},
			{"?started_at__lte=" + ts(after), ""},
			{"?state=waiting&name=stint.noop&reserved_resources=lib", "b"},
			{"?limit=2", "ab"},
			{"?limit=2&offset=3", "d"},
			{"?offset=10", ""},
			{"?offset=1000000000", ""}, // the largest offset
		}
		keyOf := map[uuid.UUID]string{}
		for k, id := range ids {
			keyOf[id] = k
		}
		for _, tc := range cases {
			t.Run(tc.query, func(t *testing.T) {
				want := tc.want
				var page apiv1.Page[apiv1.Task]
				e.must("GET", "/api/v1/tasks"+tc.query, nil, 200, &page)
				got := ""
				for _, task := range page.Results {
					got += keyOf[task.ID]
				}
				if got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			})
		}
	})
}

func TestListRefusesBadFilters(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		cases := []struct{ query, detail string }{
			{"?colour=red", "colour: unknown query parameter"},
			{"?state=done", `state: "done" is not a state`},
			{"?state__in=waiting,nope", `state__in: "nope" is not a state`},
			{"?limit=0", "limit: "},
			{"?limit=1001", "limit: "},
			{"?limit=ten", "limit: "},
			{"?offset=-1", "offset: "},
			{"?offset=9223372036854775807", "offset: "},
			{"?offset=1000000001", "offset: "},
			{"?ordering=name", "ordering: "},
			{"?created_at__gte=yesterday", "created_at__gte: "},
			{"?finished_at__lte=2026-13-01T00:00:00Z", "finished_at__lte: "},
			{"?parent_task=42", "parent_task: "},
			{"?task_group=zz", "task_group: "},
			{"?name=", "name: is empty"},
			{"?worker=%00", "worker: contains a NUL"},
			{"?owner=%ff", "owner: is not valid UTF-8"},
			{"?state=waiting&state=running", "state: given 2 times"},
			{"?%zz", "does not parse"},
		}
		for _, tc := range cases {
			t.Run(tc.query, func(t *testing.T) {
				a := e.do("GET", "/api/v1/tasks"+tc.query, nil)
				if a.status != 400 || !strings.Contains(a.detail(), tc.detail) {
					t.Fatalf("%d %q; want 400 with %q", a.status, a.detail(), tc.detail)
				}
			})
		}
	})
}

func TestPagination(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		var want []uuid.UUID
		for range 7 {
			want = append(want, e.dispatch(apiv1.DispatchTask{Name: "stint.noop"}))
		}
		var got []uuid.UUID
		next := "/api/v1/tasks?limit=3&state=waiting"
		var prev *string
		pages := 0
		for next != "" {
			var page apiv1.Page[apiv1.Task]
			e.must("GET", next, nil, 200, &page)
			if countOf(page.Count) != 7 {
				t.Fatalf("count %d", countOf(page.Count))
			}
			if pages == 0 && page.Previous != nil || pages > 0 && page.Previous == nil {
				t.Fatalf("page %d: previous %v", pages, page.Previous)
			}
			for _, task := range page.Results {
				got = append(got, task.ID)
			}
			prev, next = page.Previous, ""
			if page.Next != nil {
				next = *page.Next
			}
			pages++
		}
		if pages != 3 || !slices.Equal(got, want) {
			t.Fatalf("%d pages, ids %v, want %v", pages, got, want)
		}
		var back apiv1.Page[apiv1.Task]
		e.must("GET", *prev, nil, 200, &back)
		if len(back.Results) != 3 || back.Results[0].ID != want[3] {
			t.Fatalf("previous page: %d results", len(back.Results))
		}
	})
}

func TestWorkersStatusAndMetrics(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		var page apiv1.Page[apiv1.Worker]
		e.must("GET", "/api/v1/workers", nil, 200, &page)
		if countOf(page.Count) != 0 {
			t.Fatalf("workers before any started: %+v", page)
		}
		e.startWorker("w1")
		id := e.dispatch(apiv1.DispatchTask{Name: "stint.sleep", Args: json.RawMessage(`{"seconds": 30}`)})
		e.waitState(id, "running")
		var w apiv1.Worker
		e.must("GET", "/api/v1/workers/w1", nil, 200, &w)
		if w.Name != "w1" || w.Href != "/api/v1/workers/w1" || w.Concurrency != 4 || w.Missing || !slices.Equal(w.CurrentTasks, []string{apiv1.TaskHref(id)}) {
			t.Fatalf("worker: %+v", w)
		}
		e.must("GET", "/api/v1/workers?missing=false", nil, 200, &page)
		if countOf(page.Count) != 1 || page.Results[0].Name != "w1" {
			t.Fatalf("online workers: %+v", page)
		}
		e.must("GET", "/api/v1/workers?missing=true", nil, 200, &page)
		if countOf(page.Count) != 0 {
			t.Fatalf("missing workers: %+v", page)
		}
		if a := e.do("GET", "/api/v1/workers/nobody", nil); a.status != 404 {
			t.Fatalf("unknown worker: %d", a.status)
		}
		if a := e.do("GET", "/api/v1/workers?missing=perhaps", nil); a.status != 400 || !strings.HasPrefix(a.detail(), "missing: ") {
			t.Fatalf("bad filter: %d %s", a.status, a.body)
		}
		if a := e.do("GET", "/api/v1/workers?offset=9223372036854775807", nil); a.status != 400 || !strings.HasPrefix(a.detail(), "offset: ") {
			t.Fatalf("an offset past the bound: %d %s", a.status, a.body)
		}

		var st apiv1.Status
		e.must("GET", "/api/v1/status", nil, 200, &st)
		if st.Engine != eng.Name || !st.Database.Reachable || st.Workers.Online != 1 || st.Tasks.Running != 1 {
			t.Fatalf("status: %+v", st)
		}
		e.must("PATCH", "/api/v1/tasks/"+id.String(), apiv1.PatchTask{State: "canceled"}, 200, nil)
		e.waitState(id, "canceled")

		var doc map[string]any
		e.must("GET", "/api/v1/openapi.json", nil, 200, &doc)
		if doc["openapi"] == nil {
			t.Fatalf("openapi.json: %v", doc)
		}
		if a := e.do("GET", "/healthz", nil); a.status != 200 {
			t.Fatalf("healthz: %d", a.status)
		}
		if a := e.do("GET", "/readyz", nil); a.status != 200 || strings.TrimSpace(string(a.body)) != "ready" {
			t.Fatalf("readyz: %d %s", a.status, a.body)
		}
		m := string(e.do("GET", "/metrics", nil).body)
		for _, want := range []string{
			`stint_tasks_dispatched_total{name="stint.sleep"} 1`,
			`stint_tasks{state="waiting"} 0`,
			`stint_workers{status="online"} 1`,
			`stint_store_up 1`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})
}

func TestEvents(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		all := e.openEvents("")
		id := e.dispatch(apiv1.DispatchTask{Name: "stint.sleep", Args: json.RawMessage(`{"seconds": 0.5}`)})
		mine := e.openEvents("?task=" + id.String())
		other := e.dispatch(apiv1.DispatchTask{Name: "stint.noop"})
		e.startWorker("w1")

		// The stream of one task sees it run, progress, and complete, and
		// nothing of the other task.
		var states []string
		progressed := false
		timeout := time.After(20 * time.Second)
		for done := false; !done; {
			select {
			case ev, ok := <-mine:
				if !ok {
					t.Fatal("stream ended")
				}
				if ev.name != "task" || ev.data.ID != id || ev.data.Task != apiv1.TaskHref(id) {
					t.Fatalf("event of another task: %+v", ev)
				}
				if len(states) == 0 || states[len(states)-1] != ev.data.State {
					states = append(states, ev.data.State)
				}
				if ev.data.State == "running" && len(ev.data.ProgressReports) == 1 && ev.data.ProgressReports[0].Done > 0 {
					progressed = true
				}
				done = ev.data.State == "completed"
			case <-timeout:
				t.Fatalf("no end; states %v", states)
			}
		}
		// The dispatch's own notification may reach the hub after the stream
		// subscribed, so a leading "waiting" is allowed.
		if len(states) > 0 && states[0] == "waiting" {
			states = states[1:]
		}
		if !slices.Equal(states, []string{"running", "completed"}) || !progressed {
			t.Fatalf("states %v, progress seen %v", states, progressed)
		}
		// The unfiltered stream saw both tasks dispatched and ended.
		seen := map[string]bool{}
		for !seen[id.String()+"completed"] || !seen[other.String()+"completed"] {
			select {
			case ev := <-all:
				seen[ev.data.ID.String()+ev.data.State] = true
			case <-time.After(10 * time.Second):
				t.Fatalf("unfiltered stream saw %v", seen)
			}
		}
		if !seen[id.String()+"waiting"] || !seen[other.String()+"waiting"] {
			t.Fatalf("dispatches not seen: %v", seen)
		}
		for _, q := range []string{"?task=12", "?task_group=x", "?colour=red"} {
			if a := e.do("GET", "/api/v1/events"+q, nil); a.status != 400 {
				t.Fatalf("events%s: %d", q, a.status)
			}
		}
	})
}
