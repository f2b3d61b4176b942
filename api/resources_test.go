package api_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store"
)

// TestResources sets a capacity through the API, fills the resource with
// two users' tasks and reads the resources view and blocked_by as each of
// them and as an admin.
func TestResources(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		a := newAuthEnv(t, eng, api.Config{})
		admin, alice, bob := a.by["admin"], a.by["alice"], a.by["bob"]
		const name = "repo/1"
		path := "/api/v1/resources/" + url.PathEscape(name)
		var set apiv1.Resource
		admin.must("PUT", path, `{"capacity": 2}`, 200, &set)
		if set.Name != name || set.Capacity == nil || *set.Capacity != 2 || set.Href != path || set.Holders.Count != 0 {
			t.Fatalf("PUT answered %+v", set)
		}
		shared := apiv1.DispatchTask{Name: "stint.noop", SharedResources: []string{name}}
		alice1, alice2 := alice.dispatch(shared), alice.dispatch(shared)
		bob1, bob2 := bob.dispatch(shared), bob.dispatch(shared)
		if got, err := a.store.Claim(a.ctx, store.ClaimParams{Worker: "w1", Names: []string{"stint.noop"}, Limit: 10}); err != nil || len(got) != 2 {
			t.Fatalf("claimed %d tasks at capacity 2: %v", len(got), err)
		}

		list := func(who, query string) apiv1.Page[apiv1.Resource] {
			t.Helper()
			var p apiv1.Page[apiv1.Resource]
			a.by[who].must("GET", "/api/v1/resources"+query, nil, 200, &p)
			return p
		}
		p := list("alice", "")
		if *p.Count != 1 || len(p.Results) != 1 {
			t.Fatalf("alice lists %+v", p)
		}
		r := p.Results[0]
		if r.Holders.Count != 2 || r.Waiting != 2 || r.OldestWaitingSince == nil || r.Holders.Exclusive ||
			!slices.Equal(r.Holders.Tasks, []string{apiv1.TaskHref(alice1), apiv1.TaskHref(alice2)}) || r.WaitingTasks != nil {
			t.Fatalf("alice sees %+v", r)
		}
		if r := list("bob", "").Results[0]; r.Holders.Count != 2 || len(r.Holders.Tasks) != 0 || r.Waiting != 2 {
			t.Fatalf("bob sees %+v: the counts, none of alice's tasks", r)
		}
		var one apiv1.Resource
		bob.must("GET", path, nil, 200, &one)
		if one.WaitingTasks == nil || !slices.Equal(*one.WaitingTasks, []string{apiv1.TaskHref(bob1), apiv1.TaskHref(bob2)}) {
			t.Fatalf("bob's view of %s: %+v", name, one)
		}
		admin.must("GET", path, nil, 200, &one)
		if len(one.Holders.Tasks) != 2 || len(*one.WaitingTasks) != 2 {
			t.Fatalf("the admin's view of %s: %+v", name, one)
		}

		// blocked_by: the resource is full; bob does not see alice's tasks.
		var task apiv1.Task
		bob.must("GET", apiv1.TaskHref(bob1), nil, 200, &task)
		if want := []apiv1.Blocker{{Resource: name, Reason: "resource full (2 of 2)"}}; task.BlockedBy == nil || !slices.Equal(*task.BlockedBy, want) {
			t.Fatalf("bob's waiting task blocked by %+v, want %+v", task.BlockedBy, want)
		}
		admin.must("GET", apiv1.TaskHref(bob1), nil, 200, &task)
		want := []apiv1.Blocker{{Task: apiv1.TaskHref(alice1), Resource: name, Reason: "resource full (2 of 2)"},
			{Task: apiv1.TaskHref(alice2), Resource: name, Reason: "resource full (2 of 2)"}}
		if !slices.Equal(*task.BlockedBy, want) {
			t.Fatalf("as the admin, blocked by %+v, want %+v", *task.BlockedBy, want)
		}

		// Filters and orderings.
		admin.must("PUT", "/api/v1/resources/idle", `{"capacity": 7}`, 200, nil)
		alice.dispatch(apiv1.DispatchTask{Name: "stint.noop", ExclusiveResources: []string{"other"}})
		for _, c := range []struct {
			query string
			want  []string
		}{
			{"", []string{"idle", "other", name}},
			{"?busy=true", []string{"other", name}},
			{"?name__contains=o", []string{"other", name}},
			{"?name=idle", []string{"idle"}},
			{"?name=" + url.QueryEscape(name), []string{name}},
			{"?ordering=-waiting", []string{name, "idle", "other"}},
			{"?ordering=-holders&limit=1", []string{name}},
			{"?ordering=-name&limit=1&offset=1", []string{"other"}},
		} {
			p := list("admin", c.query)
			var names []string
			for _, r := range p.Results {
				names = append(names, r.Name)
			}
			if !slices.Equal(names, c.want) {
				t.Errorf("%s: %v, want %v", c.query, names, c.want)
			}
		}
		if p := list("admin", "?limit=1"); *p.Count != 3 || p.Next == nil || p.Previous != nil {
			t.Errorf("first page of one: count %v next %v previous %v", p.Count, p.Next, p.Previous)
		}

		// A name ending in a slash is its own resource; a trailing slash
		// after an encoded name is trimmed as elsewhere.
		var slash apiv1.Resource
		admin.must("PUT", "/api/v1/resources/x%2F", `{"capacity": 3}`, 200, &slash)
		if slash.Name != "x/" || slash.Href != "/api/v1/resources/x%2F" {
			t.Fatalf("PUT /resources/x%%2F set %+v", slash)
		}
		admin.must("GET", "/api/v1/resources/x", nil, 200, &slash)
		if slash.Capacity != nil {
			t.Fatalf("resource x got the capacity of x/: %+v", slash)
		}
		admin.must("GET", path+"/", nil, 200, &slash)
		if slash.Name != name {
			t.Fatalf("GET %s/ answered %+v", path, slash)
		}

		// Removing the capacity starts bob's tasks.
		admin.must("PUT", path, `{"capacity": null}`, 200, &one)
		if one.Capacity != nil || one.Holders.Count != 4 || one.Waiting != 0 {
			t.Fatalf("after removing the capacity: %+v", one)
		}
	})
}

// TestResourcesBadInput: every bad request is a 4xx naming what is wrong,
// and changes nothing.
func TestResourcesBadInput(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		a := newAuthEnv(t, eng, api.Config{})
		long := "/api/v1/resources/" + strings.Repeat("r", 1025)
		for _, c := range []struct {
			who, method, path, body string
			status                  int
			detail                  string
		}{
			{"alice", "PUT", "/api/v1/resources/r", `{"capacity": 2}`, 403, "only admins may set capacities"},
			{"none", "PUT", "/api/v1/resources/r", `{"capacity": 2}`, 401, ""},
			{"admin", "PUT", "/api/v1/resources/r", `{"capacity": 0}`, 400, "capacity: 0 is not a number from 1 to 1000000"},
			{"admin", "PUT", "/api/v1/resources/r", `{"capacity": -3}`, 400, "capacity: -3 is not"},
			{"admin", "PUT", "/api/v1/resources/r", `{"capacity": 1.5}`, 400, "capacity: 1.5 is not"},
			{"admin", "PUT", "/api/v1/resources/r", `{"capacity": "4"}`, 400, `capacity: "4" is not`},
			{"admin", "PUT", "/api/v1/resources/r", `{"capacity": 1000001}`, 400, "capacity: 1000001 is not"},
			{"admin", "PUT", "/api/v1/resources/r", `{"capacity": 99999999999999999999}`, 400, "capacity: 99999999999999999999 is not"},
			{"admin", "PUT", "/api/v1/resources/r", `{}`, 400, "capacity: is required"},
			{"admin", "PUT", "/api/v1/resources/r", `{"capacity": 2, "size": 1}`, 400, "size: unknown field"},
			{"admin", "PUT", "/api/v1/resources/r", `[2]`, 400, "must be a JSON object"},
			{"admin", "PUT", long, `{"capacity": 2}`, 400, "name: resource is 1025 bytes, more than 1024"},
			{"admin", "GET", long, ``, 400, "name: resource is 1025 bytes"},
			{"admin", "GET", "/api/v1/resources?ordering=size", ``, 400, `ordering: "size" is not an ordering`},
			{"admin", "GET", "/api/v1/resources?busy=maybe", ``, 400, "busy: must be true or false"},
			{"admin", "GET", "/api/v1/resources?name=", ``, 400, "name: is empty"},
			{"admin", "GET", "/api/v1/resources?limit=0", ``, 400, "limit:"},
			{"admin", "GET", "/api/v1/resources?state=waiting", ``, 400, "state: unknown query parameter"},
		} {
			var body any
			if c.body != "" {
				body = c.body
			}
			got := a.by[c.who].do(c.method, c.path, body)
			if got.status != c.status || !strings.Contains(got.detail(), c.detail) {
				t.Errorf("%s %.60s %s as %s: %d %q, want %d %q", c.method, c.path, c.body, c.who, got.status, got.detail(), c.status, c.detail)
			}
		}
		var p apiv1.Page[apiv1.Resource]
		a.by["admin"].must("GET", "/api/v1/resources", nil, 200, &p)
		if *p.Count != 0 {
			t.Fatalf("bad requests left resources: %+v", p.Results)
		}
	})
}

// TestResourceMetrics: a scrape reports the 20 longest queues one by one,
// and every queue together.
func TestResourceMetrics(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		waitingTotal := 0
		for i := range 25 {
			name := fmt.Sprintf("hot-%02d", i)
			// One exclusive holder, then i+1 waiting tasks.
			var tasks []apiv1.DispatchTask
			for range i + 2 {
				tasks = append(tasks, apiv1.DispatchTask{Name: "stint.noop", ExclusiveResources: []string{name}})
			}
			e.must("POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{Tasks: &tasks}, 202, nil)
			waitingTotal += i + 1
		}
		m := string(e.do("GET", "/metrics", nil).body)
		var series []string
		for _, line := range strings.Split(m, "\n") {
			if strings.HasPrefix(line, "stint_resource_waiting_tasks{") {
				series = append(series, line)
			}
		}
		if len(series) != 20 {
			t.Fatalf("%d series of stint_resource_waiting_tasks, want 20:\n%s", len(series), strings.Join(series, "\n"))
		}
		for _, want := range []string{
			`stint_resource_waiting_tasks{resource="hot-24"} 25`,
			`stint_resource_waiting_tasks{resource="hot-05"} 6`,
			fmt.Sprintf("stint_resources_waiting_tasks %d", waitingTotal),
			"stint_resources_busy 25",
		} {
			if !strings.Contains(m, want+"\n") {
				t.Errorf("metrics lack %q", want)
			}
		}
		if strings.Contains(m, `resource="hot-04"`) {
			t.Error("a queue shorter than the 20 longest is reported")
		}
	})
}
