package api_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store"
)

// group reads a task group through the API.
func (e *env) group(href string) apiv1.TaskGroup {
	e.tb.Helper()
	var g apiv1.TaskGroup
	e.must("GET", href, nil, 200, &g)
	return g
}

// waitGroupDone polls a group until it is done.
func (e *env) waitGroupDone(href string) apiv1.TaskGroup {
	e.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		g := e.group(href)
		if g.Done {
			return g
		}
		if time.Now().After(deadline) {
			e.tb.Fatalf("group %s is not done: %+v", href, g.Counts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tasksOf(g apiv1.TaskGroup) []string {
	if g.Tasks == nil {
		return nil
	}
	return *g.Tasks
}

func TestTaskGroupLifecycle(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})

		// An empty group: 201, Location, every count zero.
		var g apiv1.TaskGroup
		a := e.must("POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{Description: "nightly sync"}, 201, &g)
		if a.header.Get("Location") != g.Href || g.Description != "nightly sync" || g.AllTasksDispatched || g.Done ||
			g.Counts["total"] != 0 || g.Counts["waiting"] != 0 || len(g.Counts) != len(store.States)+1 || g.Tasks == nil || len(*g.Tasks) != 0 {
			t.Fatalf("new group: %s %+v", a.header.Get("Location"), g)
		}

		// Tasks join it with task_group, by href or by id.
		first := e.dispatch(apiv1.DispatchTask{Name: "stint.noop", TaskGroup: g.Href, ExclusiveResources: []string{"r"}})
		second := e.dispatch(apiv1.DispatchTask{Name: "stint.noop", TaskGroup: g.ID.String(), ExclusiveResources: []string{"r"}})
		if tk := e.task(first); tk.TaskGroup == nil || *tk.TaskGroup != g.Href {
			t.Fatalf("task's group: %v", tk.TaskGroup)
		}
		g = e.group(g.Href)
		if want := []string{apiv1.TaskHref(first), apiv1.TaskHref(second)}; strings.Join(tasksOf(g), " ") != strings.Join(want, " ") ||
			g.Counts["waiting"] != 2 || g.Counts["total"] != 2 || g.Done {
			t.Fatalf("group with two tasks: %+v %v", g.Counts, tasksOf(g))
		}

		// Sealing: no more dispatches into it; idempotent; never reopened.
		e.must("PATCH", g.Href, apiv1.PatchTaskGroup{AllTasksDispatched: ptr(true)}, 200, &g)
		e.must("PATCH", g.Href, apiv1.PatchTaskGroup{AllTasksDispatched: ptr(true)}, 200, &g)
		if !g.AllTasksDispatched || g.Done || len(tasksOf(g)) != 2 {
			t.Fatalf("sealed group: %+v", g)
		}
		for _, c := range []struct {
			body   any
			detail string
		}{
			{apiv1.PatchTaskGroup{AllTasksDispatched: ptr(false)}, "all_tasks_dispatched: a group cannot be reopened"},
			{apiv1.PatchTaskGroup{}, "all_tasks_dispatched: give"},
			{apiv1.PatchTaskGroup{State: "running"}, `state: must be "canceled"`},
			{apiv1.PatchTaskGroup{State: "canceled", AllTasksDispatched: ptr(true)}, "state: give either"},
			{`{"colour": "red"}`, "colour: unknown field"},
			{`{"All_Tasks_Dispatched": true}`, "All_Tasks_Dispatched: unknown field"},
			{`{"state": "canceled", "state": "canceled"}`, "state: given twice"},
		} {
			if a := e.do("PATCH", g.Href, c.body); a.status != 400 || !strings.HasPrefix(a.detail(), c.detail) {
				t.Errorf("PATCH %v: %d %s, want 400 %q", c.body, a.status, a.body, c.detail)
			}
		}
		for _, c := range []struct {
			group     string
			immediate bool
			status    int
			detail    string
		}{
			{g.Href, false, 409, "task_group: the group has all_tasks_dispatched set"},
			{g.Href, true, 409, "task_group: the group has all_tasks_dispatched set"},
			{apiv1.TaskGroupHref(uuid.New()), false, 400, "task_group: no task group"},
			{"group-1", false, 400, `task_group: "group-1" is not an id or an href`},
		} {
			a := e.do("POST", "/api/v1/tasks", apiv1.DispatchTask{Name: "stint.noop", TaskGroup: c.group, Immediate: c.immediate})
			if a.status != c.status || !strings.HasPrefix(a.detail(), c.detail) {
				t.Errorf("dispatch into %s: %d %s, want %d %q", c.group, a.status, a.body, c.status, c.detail)
			}
		}

		// Sealed and all final: done.
		e.startWorker("w1")
		g = e.waitGroupDone(g.Href)
		if g.Counts["completed"] != 2 || g.Counts["total"] != 2 || g.Counts["waiting"] != 0 {
			t.Fatalf("done group: %+v", g.Counts)
		}
		if a := e.do("GET", apiv1.TaskGroupHref(uuid.New()), nil); a.status != 404 || !strings.Contains(a.detail(), "no task group") {
			t.Errorf("unknown group: %d %s", a.status, a.body)
		}
		if a := e.do("GET", "/api/v1/task-groups/nope", nil); a.status != 400 || !strings.HasPrefix(a.detail(), "id:") {
			t.Errorf("bad group id: %d %s", a.status, a.body)
		}
	})
}

func TestTaskGroupDispatchesTasksAllOrNothing(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		tasks := []apiv1.DispatchTask{
			{Name: "stint.sleep", Args: json.RawMessage(`{"seconds": 0.1}`), ExclusiveResources: []string{"repo:1"}},
			{Name: "stint.noop", SharedResources: []string{"repo:1"}},
			{Name: "stint.noop"},
		}
		var ref apiv1.TaskGroupRef
		a := e.must("POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{Description: "three", Tasks: &tasks}, 202, &ref)
		three := ref.TaskGroup
		if a.header.Get("Location") != ref.TaskGroup {
			t.Fatalf("Location %q, body %q", a.header.Get("Location"), ref.TaskGroup)
		}
		g := e.group(ref.TaskGroup)
		if !g.AllTasksDispatched || g.Counts["total"] != 3 || len(tasksOf(g)) != 3 {
			t.Fatalf("group of three: %+v", g)
		}
		id, _ := apiv1.ParseTaskRef(tasksOf(g)[1])
		if tk := e.task(id); tk.Name != "stint.noop" || tk.BlockedBy == nil || len(*tk.BlockedBy) != 1 || (*tk.BlockedBy)[0].Task != tasksOf(g)[0] {
			t.Fatalf("the second task should wait for the first: %+v", tk.BlockedBy)
		}
		// A group dispatched with tasks may stay open when asked.
		open := e.must("POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{Tasks: &[]apiv1.DispatchTask{}, AllTasksDispatched: ptr(false)}, 202, &ref)
		if g := e.group(open.header.Get("Location")); g.AllTasksDispatched || g.Counts["total"] != 0 {
			t.Fatalf("open group: %+v", g)
		}

		var before apiv1.Page[apiv1.TaskGroup]
		e.must("GET", "/api/v1/task-groups", nil, 200, &before)
		var tasksBefore apiv1.Page[apiv1.Task]
		e.must("GET", "/api/v1/tasks", nil, 200, &tasksBefore)
		for _, c := range []struct {
			tasks  []apiv1.DispatchTask
			detail string
		}{
			{[]apiv1.DispatchTask{{Name: "stint.noop"}, {Name: "no.such.task"}}, `tasks[1].name: unknown task name "no.such.task"`},
			{[]apiv1.DispatchTask{{Name: "stint.noop"}, {Name: "stint.noop"}, {Name: "stint.sleep", Args: json.RawMessage(`{"seconds": "x"}`)}}, "tasks[2].args:"},
			{[]apiv1.DispatchTask{{Name: "stint.noop", ExclusiveResources: []string{""}}}, "tasks[0].exclusive_resources"},
			{[]apiv1.DispatchTask{{Name: "stint.noop", TaskGroup: ref.TaskGroup}}, "tasks[0].task_group: leave it out"},
			{[]apiv1.DispatchTask{{Name: "stint.noop", Immediate: true}}, "tasks[0].immediate:"},
		} {
			a := e.do("POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{Tasks: &c.tasks})
			if a.status != 400 || !strings.HasPrefix(a.detail(), c.detail) {
				t.Errorf("%+v: %d %s, want 400 %q", c.tasks, a.status, a.body, c.detail)
			}
		}
		for _, body := range []any{apiv1.CreateTaskGroup{Description: strings.Repeat("d", 4097)}, `{"description": "a\u0000b"}`,
			`{"description": "sync \u202eall"}`, `{"description": "two\nlines"}`} {
			if a := e.do("POST", "/api/v1/task-groups", body); a.status != 400 || !strings.HasPrefix(a.detail(), "description:") {
				t.Errorf("bad description: %d %s", a.status, a.body)
			}
		}
		// Names match exactly and are given once, in the tasks too.
		for body, detail := range map[string]string{
			`{"Description": "d"}`:                                          "Description: unknown field",
			`{"description": "a", "description": "b"}`:                      "description: given twice",
			`{"tasks": [{"name": "stint.noop"}, {"NAME": "stint.noop"}]}`:   "tasks[1].NAME: unknown field",
			`{"tasks": [{"name": "stint.noop", "name": "stint.sleep"}]}`:    "tasks[0].name: given twice",
			`{"tasks": [{"name": "stint.noop"}], "tasks": [{"name": "x"}]}`: "tasks: given twice",
			`{"tasks": [{"name": "test.echo", "args": {"k": 1, "k": 1}}]}`:  "tasks[0].args.k: given twice",
		} {
			if a := e.do("POST", "/api/v1/task-groups", body); a.status != 400 || !strings.HasPrefix(a.detail(), detail) {
				t.Errorf("%s: %d %s, want 400 %q", body, a.status, a.body, detail)
			}
		}
		var after apiv1.Page[apiv1.TaskGroup]
		e.must("GET", "/api/v1/task-groups", nil, 200, &after)
		var tasksAfter apiv1.Page[apiv1.Task]
		e.must("GET", "/api/v1/tasks", nil, 200, &tasksAfter)
		if countOf(after.Count) != countOf(before.Count) || countOf(tasksAfter.Count) != countOf(tasksBefore.Count) {
			t.Fatalf("refused requests left groups (%d → %d) or tasks (%d → %d)", countOf(before.Count), countOf(after.Count), countOf(tasksBefore.Count), countOf(tasksAfter.Count))
		}

		e.startWorker("w1")
		if g := e.waitGroupDone(three); g.Counts["completed"] != 3 || g.Counts["total"] != 3 {
			t.Fatalf("the group of three: %+v", g.Counts)
		}
	})
}

// TestThousandTaskGroup dispatches 1,000 tasks in one request; while a
// worker runs them, every read of the group adds up to 1,000, and it ends
// done with every task completed.
func TestThousandTaskGroup(t *testing.T) {
	t.Parallel() // a server and a database of its own
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		tasks := make([]apiv1.DispatchTask, 1000)
		for i := range tasks {
			tasks[i] = apiv1.DispatchTask{Name: "stint.noop", ExclusiveResources: []string{"repo:" + strconv.Itoa(i%10)}, SharedResources: []string{"remote"}}
		}
		var ref apiv1.TaskGroupRef
		e.must("POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{Description: "a thousand", Tasks: &tasks}, 202, &ref)
		e.startWorker("w1")
		reads := 0
		for deadline := time.Now().Add(60 * time.Second); ; reads++ {
			g := e.group(ref.TaskGroup)
			sum := 0
			for state, n := range g.Counts {
				if state != "total" {
					sum += n
				}
			}
			if sum != 1000 || g.Counts["total"] != 1000 || len(tasksOf(g)) != 1000 {
				t.Fatalf("read %d: counts add up to %d (total %d, %d tasks): %v", reads, sum, g.Counts["total"], len(tasksOf(g)), g.Counts)
			}
			if g.Done {
				if g.Counts["completed"] != 1000 {
					t.Fatalf("done with %v", g.Counts)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not done after 60 s: %v", g.Counts)
			}
		}
		t.Logf("%d reads while the group ran", reads)
	})
}

func TestTaskGroupCancelAndList(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		tasks := []apiv1.DispatchTask{
			{Name: "stint.sleep", Args: json.RawMessage(`{"seconds": 30}`), ExclusiveResources: []string{"r"}},
			{Name: "stint.sleep", Args: json.RawMessage(`{"seconds": 30}`), ExclusiveResources: []string{"r"}},
			{Name: "stint.noop", ExclusiveResources: []string{"other"}},
		}
		var ref apiv1.TaskGroupRef
		e.must("POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{Description: "to cancel", Tasks: &tasks}, 202, &ref)
		e.startWorker("w1")
		// The first sleeps, the noop completes, the second waits.
		first, _ := apiv1.ParseTaskRef(tasksOf(e.group(ref.TaskGroup))[0])
		e.waitState(first, "running")
		noop, _ := apiv1.ParseTaskRef(tasksOf(e.group(ref.TaskGroup))[2])
		e.waitState(noop, "completed")
		// A task outside the group waits behind the group's on r.
		outside := e.dispatch(apiv1.DispatchTask{Name: "stint.noop", ExclusiveResources: []string{"r"}})

		events := e.openEvents("?task_group=" + ref.TaskGroup)
		var g apiv1.TaskGroup
		e.must("PATCH", ref.TaskGroup, apiv1.PatchTaskGroup{State: "canceled"}, 200, &g)
		if !g.AllTasksDispatched || g.Counts["completed"] != 1 || g.Counts["canceled"]+g.Counts["canceling"] != 2 {
			t.Fatalf("after cancel: %+v", g.Counts)
		}
		g = e.waitGroupDone(ref.TaskGroup)
		if g.Counts["canceled"] != 2 || g.Counts["completed"] != 1 {
			t.Fatalf("canceled group: %+v", g.Counts)
		}
		e.waitState(outside, "completed")
		seen := map[string]bool{}
		for deadline := time.After(10 * time.Second); len(seen) < 2; {
			select {
			case ev := <-events:
				if ev.data.TaskGroup == nil || *ev.data.TaskGroup != ref.TaskGroup {
					t.Fatalf("event of another group: %+v", ev.data)
				}
				if ev.data.State == "canceled" {
					seen[ev.data.Task] = true
				}
			case <-deadline:
				t.Fatalf("saw %d cancels on the group's stream", len(seen))
			}
		}

		// Lists: newest first, filtered, paged.
		var empty apiv1.TaskGroup
		e.must("POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{Description: "newest"}, 201, &empty)
		var list apiv1.Page[apiv1.TaskGroup]
		e.must("GET", "/api/v1/task-groups", nil, 200, &list)
		if countOf(list.Count) != 2 || list.Results[0].Href != empty.Href || list.Results[1].Href != ref.TaskGroup || list.Results[0].Tasks != nil {
			t.Fatalf("groups: %+v", list)
		}
		e.must("GET", "/api/v1/task-groups?all_tasks_dispatched=false", nil, 200, &list)
		if countOf(list.Count) != 1 || list.Results[0].Href != empty.Href {
			t.Fatalf("open groups: %+v", list)
		}
		e.must("GET", "/api/v1/task-groups?limit=1&offset=1", nil, 200, &list)
		if countOf(list.Count) != 2 || len(list.Results) != 1 || list.Results[0].Href != ref.TaskGroup || list.Next != nil || list.Previous == nil {
			t.Fatalf("second page: %+v", list)
		}
		for query, detail := range map[string]string{
			"?all_tasks_dispatched=maybe": "all_tasks_dispatched: must be true or false",
			"?state=waiting":              "state: unknown query parameter",
			"?limit=0":                    "limit:",
			"?offset=9223372036854775807": "offset:",
			"?offset=1000000001":          "offset:",
		} {
			if a := e.do("GET", "/api/v1/task-groups"+query, nil); a.status != 400 || !strings.HasPrefix(a.detail(), detail) {
				t.Errorf("%s: %d %s, want 400 %q", query, a.status, a.body, detail)
			}
		}
	})
}

func TestGroupPermissions(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		a := newAuthEnv(t, eng, api.Config{})
		var alices, bobs apiv1.TaskGroup
		a.by["alice"].must("POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{Description: "alice's"}, 201, &alices)
		a.by["bob"].must("POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{Description: "bob's"}, 201, &bobs)
		if alices.Owner != "alice" || bobs.Owner != "bob" {
			t.Fatalf("owners %q %q", alices.Owner, bobs.Owner)
		}
		for _, c := range []struct {
			who, method, path string
			body              any
			want              int
		}{
			{"bob", "GET", alices.Href, nil, 404},
			{"bob", "PATCH", alices.Href, apiv1.PatchTaskGroup{AllTasksDispatched: ptr(true)}, 404},
			{"bob", "PATCH", alices.Href, apiv1.PatchTaskGroup{State: "canceled"}, 404},
			{"bob", "POST", "/api/v1/tasks", apiv1.DispatchTask{Name: "stint.noop", TaskGroup: alices.Href}, 400},
			{"admin", "GET", alices.Href, nil, 200},
			{"alice", "POST", "/api/v1/tasks", apiv1.DispatchTask{Name: "stint.noop", TaskGroup: alices.Href}, 202},
			// A group's tasks are its owner's: an admin's task in alice's
			// group would be one she counts and cancels but cannot read.
			{"admin", "POST", "/api/v1/tasks", apiv1.DispatchTask{Name: "stint.noop", TaskGroup: alices.Href}, 403},
			{"admin", "POST", "/api/v1/tasks", apiv1.DispatchTask{Name: "stint.noop", TaskGroup: alices.Href, Immediate: true}, 403},
			{"alice", "PATCH", alices.Href, apiv1.PatchTaskGroup{State: "canceled"}, 200},
			{"none", "GET", alices.Href, nil, 401},
		} {
			if got := a.by[c.who].do(c.method, c.path, c.body); got.status != c.want {
				t.Errorf("%s %s as %s: %d, want %d: %s", c.method, c.path, c.who, got.status, c.want, got.body)
			}
		}
		// Everything alice's cancel touched is hers.
		var canceled apiv1.TaskGroup
		a.by["alice"].must("GET", alices.Href, nil, 200, &canceled)
		if canceled.Counts["total"] != 1 || len(*canceled.Tasks) != 1 {
			t.Errorf("alice's group: %+v", canceled)
		}
		for _, href := range *canceled.Tasks {
			a.by["alice"].must("GET", href, nil, 200, nil)
		}
		if got := a.by["admin"].do("POST", "/api/v1/tasks", apiv1.DispatchTask{Name: "stint.noop", TaskGroup: bobs.Href}); got.status != 403 ||
			got.detail() != `task_group: group `+bobs.ID.String()+` belongs to "bob": only its owner dispatches into it` {
			t.Errorf("admin into bob's group: %d %s", got.status, got.body)
		}
		hrefs := func(who, query string) []string {
			var list apiv1.Page[apiv1.TaskGroup]
			a.by[who].must("GET", "/api/v1/task-groups"+query, nil, 200, &list)
			var out []string
			for _, g := range list.Results {
				out = append(out, g.Owner)
			}
			return out
		}
		for _, c := range []struct {
			who, query, want string
		}{
			{"alice", "", "alice"},
			{"bob", "", "bob"},
			{"bob", "?owner=alice", ""},
			{"admin", "", "bob alice"},
			{"admin", "?owner=alice", "alice"},
		} {
			if got := strings.Join(hrefs(c.who, c.query), " "); got != c.want {
				t.Errorf("groups of %s%s: %q, want %q", c.who, c.query, got, c.want)
			}
		}

		strict := newAuthEnv(t, eng, api.Config{CancelPolicy: api.CancelAdminOnly})
		var g apiv1.TaskGroup
		strict.by["alice"].must("POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{}, 201, &g)
		strict.by["alice"].must("PATCH", g.Href, apiv1.PatchTaskGroup{State: "canceled"}, 403, nil)
		strict.by["alice"].must("PATCH", g.Href, apiv1.PatchTaskGroup{AllTasksDispatched: ptr(true)}, 200, nil)
		strict.by["admin"].must("PATCH", g.Href, apiv1.PatchTaskGroup{State: "canceled"}, 200, nil)
	})
}

func TestImmediateDispatch(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true, ImmediateWorker: "api-node"})
		// Free resources: run inline, final when the answer comes.
		id := e.dispatch(apiv1.DispatchTask{Name: "test.echo", Args: json.RawMessage(`{"x": 1}`), ExclusiveResources: []string{"repo:1"}, Immediate: true})
		tk := e.task(id)
		if tk.State != "completed" || string(tk.Result) != `{"x":1}` || tk.Worker == nil || tk.Worker.Name != "api-node" || tk.StartedAt == nil {
			t.Fatalf("immediate task: %s %s %+v", tk.State, tk.Result, tk.Worker)
		}
		failed := e.dispatch(apiv1.DispatchTask{Name: "stint.sleep", Args: json.RawMessage(`{"seconds": 0, "fail": true}`), Immediate: true})
		if tk := e.task(failed); tk.State != "failed" || tk.Error == nil {
			t.Fatalf("failing immediate task: %s %+v", tk.State, tk.Error)
		}

		// Busy resources: the earlier task waits (no worker yet).
		blocker := e.dispatch(apiv1.DispatchTask{Name: "stint.noop", ExclusiveResources: []string{"busy"}})
		deferred := e.dispatch(apiv1.DispatchTask{Name: "stint.noop", SharedResources: []string{"busy"}, Immediate: true})
		skipped := e.dispatch(apiv1.DispatchTask{Name: "stint.noop", SharedResources: []string{"busy"}, Immediate: true, Deferred: ptr(false)})
		if tk := e.task(deferred); tk.State != "waiting" {
			t.Fatalf("deferred immediate task: %s", tk.State)
		}
		if tk := e.task(skipped); tk.State != "skipped" || tk.FinishedAt == nil || tk.StartedAt != nil {
			t.Fatalf("skipped immediate task: %+v", tk)
		}
		behind := e.dispatch(apiv1.DispatchTask{Name: "stint.noop", ExclusiveResources: []string{"busy"}})
		e.startWorker("w1")
		for _, id := range []uuid.UUID{blocker, deferred, behind} {
			e.waitState(id, "completed")
		}
		if a := e.do("POST", "/api/v1/tasks", apiv1.DispatchTask{Name: "stint.noop", Deferred: ptr(false)}); a.status != 400 || !strings.HasPrefix(a.detail(), "deferred: false needs immediate") {
			t.Errorf("deferred without immediate: %d %s", a.status, a.body)
		}
	})
}

func TestDeleteAndPurge(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		a := newAuthEnv(t, eng, api.Config{})
		alice := a.by["alice"]
		waiting := a.waiting("alice")
		done := alice.dispatch(apiv1.DispatchTask{Name: "stint.noop", Immediate: true})
		if got := alice.do("DELETE", "/api/v1/tasks/"+waiting.String(), nil); got.status != 409 || !strings.Contains(got.detail(), "not final") {
			t.Errorf("delete a waiting task: %d %s", got.status, got.body)
		}
		if got := a.by["bob"].do("DELETE", "/api/v1/tasks/"+done.String(), nil); got.status != 404 {
			t.Errorf("bob deletes alice's task: %d %s", got.status, got.body)
		}
		alice.must("DELETE", "/api/v1/tasks/"+done.String(), nil, 204, nil)
		alice.must("GET", "/api/v1/tasks/"+done.String(), nil, 404, nil)
		alice.must("DELETE", "/api/v1/tasks/"+done.String(), nil, 404, nil)

		// Purge: admins only; bad bodies are 400s.
		if got := alice.do("POST", "/api/v1/tasks/purge", apiv1.PurgeTasks{}); got.status != 403 {
			t.Errorf("alice purges: %d %s", got.status, got.body)
		}
		admin := a.by["admin"]
		for _, c := range []struct {
			body   any
			detail string
		}{
			{apiv1.PurgeTasks{States: []string{"waiting"}}, `states: "waiting" is not a final state`},
			{apiv1.PurgeTasks{States: []string{"done"}}, `states: "done" is not a final state`},
			{`{"states": []}`, "states: name at least one"},
			{`{"finished_before": "yesterday"}`, "finished_before:"},
			{`{"States": ["failed"]}`, "States: unknown field"},
			{`{"states": ["failed"], "states": ["completed"]}`, "states: given twice"},
		} {
			if got := admin.do("POST", "/api/v1/tasks/purge", c.body); got.status != 400 || !strings.HasPrefix(got.detail(), c.detail) {
				t.Errorf("purge %v: %d %s, want 400 %q", c.body, got.status, got.body, c.detail)
			}
		}

		// Old completed and failed tasks go; the waiting one, a canceled one
		// and those that finished after the cut stay.
		var old []uuid.UUID
		for range 3 {
			old = append(old, alice.dispatch(apiv1.DispatchTask{Name: "stint.noop", Immediate: true}))
		}
		oldFailed := alice.dispatch(apiv1.DispatchTask{Name: "stint.sleep", Args: json.RawMessage(`{"seconds": 0, "fail": true}`), Immediate: true})
		canceled := a.waiting("alice")
		alice.must("PATCH", "/api/v1/tasks/"+canceled.String(), apiv1.PatchTask{State: "canceled"}, 200, nil)
		time.Sleep(20 * time.Millisecond)
		cut := time.Now().UTC()
		time.Sleep(20 * time.Millisecond)
		recent := alice.dispatch(apiv1.DispatchTask{Name: "stint.noop", Immediate: true})

		var ref apiv1.TaskRef
		admin.must("POST", "/api/v1/tasks/purge", apiv1.PurgeTasks{FinishedBefore: &apiv1.Time{Time: cut}, States: []string{"completed", "failed"}}, 202, &ref)
		purge, _ := apiv1.ParseTaskRef(ref.Task)
		if tk := admin.task(purge); tk.Name != "stint.purge" || tk.Owner != "root" || strings.Join(tk.ExclusiveResources, ",") != "stint:purge" {
			t.Fatalf("purge task: %+v", tk)
		}
		a.startWorker("w2")
		tk := admin.waitState(purge, "completed")
		if string(tk.Result) != `{"deleted":4}` {
			t.Errorf("purge result %s, want 4 deleted", tk.Result)
		}
		for _, id := range append(old, oldFailed) {
			admin.must("GET", "/api/v1/tasks/"+id.String(), nil, 404, nil)
		}
		for _, id := range []uuid.UUID{waiting, canceled, recent} {
			admin.must("GET", "/api/v1/tasks/"+id.String(), nil, 200, nil)
		}
	})
}

func TestBlockedByVersions(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		id := e.dispatch(apiv1.DispatchTask{Name: "stint.noop", Versions: map[string]string{"myplugin": "2.0"}})
		reason := func() string {
			tk := e.task(id)
			if tk.BlockedBy == nil {
				t.Fatalf("a %s task without blocked_by", tk.State)
			}
			var out []string
			for _, b := range *tk.BlockedBy {
				out = append(out, b.Reason)
			}
			return strings.Join(out, "; ")
		}
		if got := reason(); got != "no online worker provides myplugin>=2.0" {
			t.Fatalf("no worker: blocked_by %q", got)
		}
		register := func(name, version string) {
			if err := e.store.RegisterWorker(e.ctx, store.WorkerInfo{Name: name, Hostname: "h", PID: 1, Concurrency: 1,
				Versions: map[string]string{"myplugin": version}}); err != nil {
				t.Fatal(err)
			}
		}
		register("old", "1.9")
		if got := reason(); got != "no online worker provides myplugin>=2.0" {
			t.Fatalf("a 1.9 worker: blocked_by %q", got)
		}
		register("new", "2.1")
		if got := reason(); got != "" {
			t.Fatalf("a 2.1 worker: blocked_by %q", got)
		}
		if a := e.do("POST", "/api/v1/tasks", apiv1.DispatchTask{Name: "stint.noop", Versions: map[string]string{"myplugin": "two"}}); a.status != 400 || !strings.HasPrefix(a.detail(), "versions") {
			t.Errorf("a bad version: %d %s", a.status, a.body)
		}
	})
}

// TestChildTasks: a task that dispatches three children lists them, they
// name it, and they inherit its owner and group.
func TestChildTasks(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		a := newAuthEnv(t, eng, api.Config{})
		alice := a.by["alice"]
		var g apiv1.TaskGroup
		alice.must("POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{Description: "family"}, 201, &g)
		parent := alice.dispatch(apiv1.DispatchTask{Name: "test.parent", Args: json.RawMessage(`{"children": 3}`), TaskGroup: g.Href})
		a.startWorker("w1")
		p := alice.waitState(parent, "completed")
		var ids []uuid.UUID
		if err := json.Unmarshal(p.Result, &ids); err != nil || len(ids) != 3 {
			t.Fatalf("parent result %s: %v", p.Result, err)
		}
		want := []string{apiv1.TaskHref(ids[0]), apiv1.TaskHref(ids[1]), apiv1.TaskHref(ids[2])}
		if strings.Join(p.ChildTasks, " ") != strings.Join(want, " ") || p.ParentTask != nil {
			t.Fatalf("parent's children %v, want %v", p.ChildTasks, want)
		}
		for _, id := range ids {
			c := alice.waitState(id, "completed")
			if c.ParentTask == nil || *c.ParentTask != p.Href || c.Owner != "alice" || c.TaskGroup == nil || *c.TaskGroup != g.Href || len(c.ChildTasks) != 0 {
				t.Fatalf("child %s: parent %v owner %q group %v", id, c.ParentTask, c.Owner, c.TaskGroup)
			}
		}
		var children apiv1.Page[apiv1.Task]
		alice.must("GET", "/api/v1/tasks?parent_task="+parent.String(), nil, 200, &children)
		if countOf(children.Count) != 3 {
			t.Fatalf("parent_task filter: %d children", countOf(children.Count))
		}
		if g := alice.group(g.Href); g.Counts["total"] != 4 || g.Counts["completed"] != 4 {
			t.Fatalf("the group holds the parent and its children: %+v", g.Counts)
		}
		a.by["bob"].must("GET", "/api/v1/tasks/"+ids[0].String(), nil, 404, nil)
	})
}

func ptr[T any](v T) *T { return &v }
