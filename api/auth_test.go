package api_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store"
)

// callers are the five kinds of caller of the permission table, in the
// order of its columns.
var callers = []string{"none", "bad", "alice", "bob", "admin"}

// authEnv is an env with users alice and bob (role user) and root (admin),
// a registered worker, and a view of the env per caller.
type authEnv struct {
	*env
	by map[string]*env
}

func newAuthEnv(t *testing.T, eng enginetest.Engine, cfg api.Config) *authEnv {
	t.Helper()
	e := newEnv(t, eng, cfg)
	a := &authEnv{env: e, by: map[string]*env{
		"none":  e,
		"bad":   e.as("stint_000000000000_" + strings.Repeat("A", 43)),
		"alice": e.as(e.addUser("alice", store.RoleUser)),
		"bob":   e.as(e.addUser("bob", store.RoleUser)),
		"admin": e.as(e.addUser("root", store.RoleAdmin)),
	}}
	if err := e.store.RegisterWorker(e.ctx, store.WorkerInfo{Name: "w1", Hostname: "h", PID: 1, Concurrency: 1}); err != nil {
		t.Fatal(err)
	}
	return a
}

// waiting dispatches, as caller, a task that stays waiting: no worker runs.
func (a *authEnv) waiting(caller string) uuid.UUID {
	a.tb.Helper()
	return a.by[caller].dispatch(apiv1.DispatchTask{Name: "stint.noop", ExclusiveResources: []string{"r:" + caller}})
}

// TestPermissions is the table of every endpoint × every kind of caller:
// the exact status, and that lists hold only what the caller may see.
func TestPermissions(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		a := newAuthEnv(t, eng, api.Config{})
		aliceTask, bobTask := a.waiting("alice"), a.waiting("bob")
		task := func(id uuid.UUID) string { return "/api/v1/tasks/" + id.String() }
		var aliceGroup apiv1.TaskGroup
		a.by["alice"].must("POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{}, 201, &aliceGroup)

		type endpoint struct {
			method, path string
			body         func(caller string) any
			want         [5]int // by callers: none, bad, alice, bob, admin
		}
		cancel := func(string) any { return apiv1.PatchTask{State: "canceled"} }
		purgeBody := apiv1.DispatchTask{Name: "stint.purge", Args: json.RawMessage(`{"finished_before": "2020-01-01T00:00:00Z", "states": ["completed"]}`)}
		endpoints := []endpoint{
			{"POST", "/api/v1/tasks", func(string) any { return apiv1.DispatchTask{Name: "stint.noop"} }, [5]int{401, 401, 202, 202, 202}},
			{"GET", "/api/v1/tasks", nil, [5]int{401, 401, 200, 200, 200}},
			{"GET", task(aliceTask), nil, [5]int{401, 401, 200, 404, 200}},
			{"GET", task(bobTask), nil, [5]int{401, 401, 404, 200, 200}},
			{"GET", task(uuid.New()), nil, [5]int{401, 401, 404, 404, 404}},
			// alice's task is canceled just below: the owner and the admin get
			// 409 (final), bob 404 (not 409: he may not know it exists).
			{"PATCH", task(aliceTask), cancel, [5]int{401, 401, 409, 404, 409}},
			{"GET", "/api/v1/workers", nil, [5]int{401, 401, 403, 403, 200}},
			{"GET", "/api/v1/workers/w1", nil, [5]int{401, 401, 403, 403, 200}},
			{"GET", "/api/v1/workers/nobody", nil, [5]int{401, 401, 403, 403, 404}},
			{"GET", "/api/v1/events", nil, [5]int{401, 401, 200, 200, 200}},
			{"POST", "/api/v1/task-groups", func(string) any { return apiv1.CreateTaskGroup{} }, [5]int{401, 401, 201, 201, 201}},
			{"GET", "/api/v1/task-groups", nil, [5]int{401, 401, 200, 200, 200}},
			{"GET", aliceGroup.Href, nil, [5]int{401, 401, 200, 404, 200}},
			// Only its owner dispatches into a group (bob does not see it).
			{"POST", "/api/v1/tasks", func(string) any { return apiv1.DispatchTask{Name: "stint.noop", TaskGroup: aliceGroup.Href} }, [5]int{401, 401, 202, 400, 403}},
			{"PATCH", aliceGroup.Href, func(string) any { return apiv1.PatchTaskGroup{AllTasksDispatched: ptr(true)} }, [5]int{401, 401, 200, 404, 200}},
			// alice's task, canceled above, is deleted by alice: gone for the admin.
			{"DELETE", task(aliceTask), nil, [5]int{401, 401, 204, 404, 404}},
			{"POST", "/api/v1/tasks/purge", func(string) any { return apiv1.PurgeTasks{} }, [5]int{401, 401, 403, 403, 202}},
			// A built-in task type that acts on every user's tasks is for
			// admins however it is dispatched.
			{"POST", "/api/v1/tasks", func(string) any { return purgeBody }, [5]int{401, 401, 403, 403, 202}},
			{"POST", "/api/v1/tasks", func(string) any {
				return apiv1.DispatchTask{Name: "stint.purge", Args: purgeBody.Args, Immediate: true, Deferred: ptr(false)}
			}, [5]int{401, 401, 403, 403, 202}},
			{"POST", "/api/v1/task-groups", func(string) any {
				return apiv1.CreateTaskGroup{Tasks: &[]apiv1.DispatchTask{{Name: "stint.noop"}, purgeBody}}
			}, [5]int{401, 401, 403, 403, 202}},
			{"GET", "/api/v1/me", nil, [5]int{401, 401, 200, 200, 200}},
			{"GET", "/api/v1/status", nil, [5]int{200, 200, 200, 200, 200}},
			{"GET", "/api/v1/openapi.json", nil, [5]int{200, 200, 200, 200, 200}},
		}
		// Canceling is checked on waiting tasks in TestCancelPermissions.
		a.by["admin"].must("PATCH", task(aliceTask), apiv1.PatchTask{State: "canceled"}, 200, nil)
		for _, ep := range endpoints {
			for i, who := range callers {
				want := ep.want[i]
				var body any
				if ep.body != nil {
					body = ep.body(who)
				}
				var got int
				if ep.path == "/api/v1/events" && want == 200 {
					a.by[who].openEvents("") // fails the test unless 200 and a stream
					got = 200
				} else {
					got = a.by[who].do(ep.method, ep.path, body).status
				}
				if got != want {
					t.Errorf("%s %s as %s: %d, want %d", ep.method, ep.path, who, got, want)
				}
			}
		}

		// Lists: each user sees only its own tasks, the admin all of them.
		owners := func(who, query string) map[string]int {
			var page apiv1.Page[apiv1.Task]
			a.by[who].must("GET", "/api/v1/tasks"+query, nil, 200, &page)
			seen := map[string]int{}
			for _, tk := range page.Results {
				seen[tk.Owner]++
			}
			if countOf(page.Count) != len(page.Results) {
				t.Errorf("%s: count %d for %d results", who, countOf(page.Count), len(page.Results))
			}
			return seen
		}
		for _, c := range []struct {
			who, query string
			want       map[string]int
		}{
			// Each: the waiting one (alice deleted hers) and one from the
			// POST row, alice's also the one in her group; the admin's also
			// the four purge tasks (POST
			// /tasks/purge, POST /tasks, immediate, in a group) and the
			// group's stint.noop.
			{"alice", "", map[string]int{"alice": 2}},
			{"bob", "", map[string]int{"bob": 2}},
			{"admin", "", map[string]int{"alice": 2, "bob": 2, "root": 6}},
			{"alice", "?owner=bob", map[string]int{}},
			{"alice", "?owner=alice", map[string]int{"alice": 2}},
			{"admin", "?owner=bob", map[string]int{"bob": 2}},
		} {
			if got := owners(c.who, c.query); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("GET /api/v1/tasks%s as %s: owners %v, want %v", c.query, c.who, got, c.want)
			}
		}
		var workers apiv1.Page[apiv1.Worker]
		a.by["admin"].must("GET", "/api/v1/workers", nil, 200, &workers)
		if countOf(workers.Count) != 1 || workers.Results[0].Name != "w1" {
			t.Errorf("workers as admin: %+v", workers)
		}
	})
}

// TestAdminOnlyTaskTypes: stint.purge acts on every user's tasks, so only
// an admin dispatches it, directly, in a group, or as the child of a task
// the admin owns; and every stint.purge holds stint:purge, however it was
// dispatched, so that two never run at once.
func TestAdminOnlyTaskTypes(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		a := newAuthEnv(t, eng, api.Config{})
		args := json.RawMessage(`{"finished_before": "2020-01-01T00:00:00Z", "states": ["completed"]}`)
		purge := apiv1.DispatchTask{Name: "stint.purge", Args: args}
		for _, c := range []struct {
			path   string
			body   any
			detail string
		}{
			{"/api/v1/tasks", purge, "name: task stint.purge is for admins only"},
			{"/api/v1/tasks", apiv1.DispatchTask{Name: "stint.purge", Args: args, Immediate: true}, "name: task stint.purge is for admins only"},
			{"/api/v1/task-groups", apiv1.CreateTaskGroup{Tasks: &[]apiv1.DispatchTask{{Name: "stint.noop"}, purge}}, "tasks[1].name: task stint.purge is for admins only"},
		} {
			if got := a.by["alice"].do("POST", c.path, c.body); got.status != 403 || !strings.HasPrefix(got.detail(), c.detail) {
				t.Errorf("alice: POST %s %s: %d %s, want 403 %q", c.path, mustJSON(c.body), got.status, got.body, c.detail)
			}
		}
		var groups apiv1.Page[apiv1.TaskGroup]
		if a.by["alice"].must("GET", "/api/v1/task-groups", nil, 200, &groups); countOf(groups.Count) != 0 {
			t.Errorf("a refused group was created: %+v", groups)
		}

		// The admin's purge holds stint:purge beside what it asked for, and
		// the next purge waits for it.
		admin := a.by["admin"]
		first := admin.dispatch(apiv1.DispatchTask{Name: "stint.purge", Args: args, ExclusiveResources: []string{"x"}})
		if tk := admin.task(first); strings.Join(tk.ExclusiveResources, ",") != "stint:purge,x" || tk.Owner != "root" {
			t.Fatalf("the admin's purge: %+v", tk)
		}
		var ref apiv1.TaskRef
		admin.must("POST", "/api/v1/tasks/purge", apiv1.PurgeTasks{}, 202, &ref)
		second := admin.task(mustRef(t, ref.Task))
		if second.BlockedBy == nil || len(*second.BlockedBy) != 1 || (*second.BlockedBy)[0].Task != apiv1.TaskHref(first) ||
			(*second.BlockedBy)[0].Resource != "stint:purge" {
			t.Fatalf("the second purge is blocked by %+v, want the first on stint:purge", second.BlockedBy)
		}

		// A child has its parent's owner: alice's task cannot dispatch a
		// purge, the admin's can.
		a.startWorker("w1")
		spawn := apiv1.DispatchTask{Name: "test.spawn", Args: json.RawMessage(`{"name": "stint.purge", "args": ` + string(args) + `}`)}
		refused := a.by["alice"].waitState(a.by["alice"].dispatch(spawn), "failed")
		if refused.Error == nil || !strings.Contains(refused.Error.Description, "name: task stint.purge is for admins only") || len(refused.ChildTasks) != 0 {
			t.Errorf("alice's task dispatching a purge: %+v, %+v", refused.Error, refused.ChildTasks)
		}
		spawned := admin.waitState(admin.dispatch(spawn), "completed")
		if len(spawned.ChildTasks) != 1 {
			t.Fatalf("the admin's task dispatching a purge: %+v %s", spawned.ChildTasks, spawned.Result)
		}
		child := admin.task(mustRef(t, spawned.ChildTasks[0]))
		if child.Name != "stint.purge" || child.Owner != "root" || strings.Join(child.ExclusiveResources, ",") != "stint:purge" {
			t.Errorf("the child purge: %+v", child)
		}
	})
}

func mustRef(t *testing.T, href string) uuid.UUID {
	t.Helper()
	id, err := apiv1.ParseTaskRef(href)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestCancelPermissions checks who may cancel under both cancel policies.
func TestCancelPermissions(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		for _, c := range []struct {
			policy api.CancelPolicy
			want   map[string]int // status of canceling a waiting task of alice's
		}{
			{api.CancelOwner, map[string]int{"none": 401, "bad": 401, "alice": 200, "bob": 404, "admin": 200}},
			{api.CancelAdminOnly, map[string]int{"none": 401, "bad": 401, "alice": 403, "bob": 403, "admin": 200}},
		} {
			t.Run(string(c.policy), func(t *testing.T) {
				a := newAuthEnv(t, eng, api.Config{CancelPolicy: c.policy})
				for _, who := range callers {
					id := a.waiting("alice")
					got := a.by[who].do("PATCH", "/api/v1/tasks/"+id.String(), apiv1.PatchTask{State: "canceled"})
					if got.status != c.want[who] {
						t.Errorf("cancel as %s: %d, want %d: %s", who, got.status, c.want[who], got.body)
					}
					state := a.by["alice"].task(id).State
					if wantState := map[bool]string{true: "canceled", false: "waiting"}[got.status == 200]; state != wantState {
						t.Errorf("after cancel as %s (%d): task is %s, want %s", who, got.status, state, wantState)
					}
				}
			})
		}
		e := newEnv(t, eng, api.Config{})
		if _, err := api.New(api.Config{Store: e.store, Registry: e.reg, CancelPolicy: "everyone"}); err == nil || !strings.Contains(err.Error(), "CancelPolicy") {
			t.Errorf("an unknown cancel policy: %v", err)
		}
	})
}

// TestEventsShowOnlyWhatTheCallerMaySee follows alice's and bob's tasks on
// their streams and the admin's.
func TestEventsShowOnlyWhatTheCallerMaySee(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		a := newAuthEnv(t, eng, api.Config{})
		streams := map[string]<-chan sseEvent{}
		for _, who := range []string{"alice", "bob", "admin"} {
			streams[who] = a.by[who].openEvents("")
		}
		aliceTask, bobTask := a.waiting("alice"), a.waiting("bob")
		// bob naming alice's task explicitly still sees nothing of it.
		bobSpying := a.by["bob"].openEvents("?task=" + aliceTask.String())
		a.by["alice"].must("PATCH", "/api/v1/tasks/"+aliceTask.String(), apiv1.PatchTask{State: "canceled"}, 200, nil)
		a.by["bob"].must("PATCH", "/api/v1/tasks/"+bobTask.String(), apiv1.PatchTask{State: "canceled"}, 200, nil)

		// Read each stream until it showed the last event it should, then
		// check it saw nothing else.
		collect := func(who string, until map[uuid.UUID]bool) map[uuid.UUID][]string {
			seen := map[uuid.UUID][]string{}
			deadline := time.After(10 * time.Second)
			for len(until) > 0 {
				select {
				case ev, ok := <-streams[who]:
					if !ok {
						t.Fatalf("%s's stream ended", who)
					}
					seen[ev.data.ID] = append(seen[ev.data.ID], ev.data.State)
					if ev.data.State == "canceled" {
						delete(until, ev.data.ID)
					}
				case <-deadline:
					t.Fatalf("%s's stream: still waiting for %v; saw %v", who, until, seen)
				}
			}
			return seen
		}
		for who, want := range map[string][]uuid.UUID{"alice": {aliceTask}, "bob": {bobTask}, "admin": {aliceTask, bobTask}} {
			until := map[uuid.UUID]bool{}
			for _, id := range want {
				until[id] = true
			}
			seen := collect(who, until)
			for id := range seen {
				if !slices.Contains(want, id) {
					t.Errorf("%s's stream showed task %s", who, id)
				}
			}
		}
		// bob's own stream showed bob's cancel, after alice's: by then the
		// hub had handled alice's, and the spying stream had nothing.
		select {
		case ev := <-bobSpying:
			t.Errorf("bob's stream of alice's task showed %+v", ev)
		default:
		}
	})
}

// TestRevokedTokenRefusedAtOnce revokes a token and removes a user while
// they are in use, on a node that reads the store on every request
// (TokenCacheTTL < 0): the next request is a 401, and an open stream ends.
func TestRevokedTokenRefusedAtOnce(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		a := newAuthEnv(t, eng, api.Config{TokenCacheTTL: -1})
		second := a.addToken("alice")
		alice2 := a.as(second.Secret)
		alice2.must("GET", "/api/v1/tasks", nil, 200, nil)
		stream := alice2.openEvents("")

		if err := a.store.RevokeToken(a.ctx, second.ID); err != nil {
			t.Fatal(err)
		}
		if got := alice2.do("GET", "/api/v1/tasks", nil); got.status != 401 || got.header.Get("WWW-Authenticate") != `Bearer realm="stint", error="invalid_token"` {
			t.Errorf("a revoked token: %d %q %s", got.status, got.header.Get("WWW-Authenticate"), got.body)
		}
		a.by["alice"].must("GET", "/api/v1/tasks", nil, 200, nil) // her other token still works
		select {
		case _, ok := <-stream:
			if ok {
				t.Error("the revoked token's stream showed an event")
			}
		case <-time.After(5 * time.Second):
			t.Error("the revoked token's stream is still open")
		}

		if err := a.store.DeleteUser(a.ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		if got := a.by["bob"].do("GET", "/api/v1/tasks", nil); got.status != 401 {
			t.Errorf("a removed user's token: %d %s", got.status, got.body)
		}
	})
}

// TestRevokedTokenRefusedWithinTheCacheTTL: by default a node trusts a
// token that checked out for DefaultTokenCacheTTL, so a revoked token
// still works just after its revocation and is refused once that time has
// passed; a wrong secret for a cached token's id is refused at once.
func TestRevokedTokenRefusedWithinTheCacheTTL(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		a := newAuthEnv(t, eng, api.Config{})
		second := a.addToken("alice")
		alice2 := a.as(second.Secret)
		alice2.must("GET", "/api/v1/tasks", nil, 200, nil)
		id, _, _ := strings.Cut(strings.TrimPrefix(second.Secret, "stint_"), "_")
		if got := a.as("stint_"+id+"_"+strings.Repeat("A", 43)).do("GET", "/api/v1/tasks", nil); got.status != 401 {
			t.Errorf("a cached token's id with a wrong secret: %d %s", got.status, got.body)
		}

		revoked := time.Now()
		if err := a.store.RevokeToken(a.ctx, second.ID); err != nil {
			t.Fatal(err)
		}
		if got := alice2.do("GET", "/api/v1/tasks", nil); got.status != 200 && time.Since(revoked) < api.DefaultTokenCacheTTL/2 {
			t.Errorf("just after its revocation, the cached token got %d: is it cached?", got.status)
		}
		for {
			got := alice2.do("GET", "/api/v1/tasks", nil)
			if got.status == 401 {
				break
			}
			if time.Since(revoked) > api.DefaultTokenCacheTTL+2*time.Second {
				t.Fatalf("the revoked token still gets %d %s after %v", got.status, got.body, time.Since(revoked))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if since := time.Since(revoked); since < api.DefaultTokenCacheTTL/2 {
			t.Errorf("the revoked token was refused after %v: nothing was cached", since)
		}
	})
}

// TestBadAuthorizationHeaders checks each way an Authorization header can
// be wrong: a 401 whose detail says what is wrong without quoting it.
func TestBadAuthorizationHeaders(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		a := newAuthEnv(t, eng, api.Config{})
		valid := a.addToken("alice")
		id, _, _ := strings.Cut(strings.TrimPrefix(valid.Secret, "stint_"), "_")
		for _, c := range []struct{ header, detail string }{
			{"Basic YWxpY2U6c2VjcmV0c2VjcmV0c2VjcmV0", "expected Bearer"},
			{"Bearer", "expected Bearer"},
			{"Bearer not-a-stint-token-at-all", "malformed"},
			{"Bearer stint_" + id + "_" + strings.Repeat("A", 43), "not valid"}, // a known id, a wrong secret
			{"Bearer " + valid.Secret + "x", "malformed"},
			{"bearer " + valid.Secret, ""}, // the scheme is case-insensitive
		} {
			got := a.withAuthorization(c.header).do("GET", "/api/v1/tasks", nil)
			if c.detail == "" {
				if got.status != 200 {
					t.Errorf("%q: %d %s", c.header, got.status, got.body)
				}
				continue
			}
			if got.status != 401 || !strings.Contains(got.detail(), c.detail) {
				t.Errorf("%q: %d %s, want 401 with %q", c.header, got.status, got.body, c.detail)
			}
		}
	})
}

// TestOpenMode checks the server with no users: open to requests without
// a token when allowed, closed otherwise, and closed by the first user.
func TestOpenMode(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		closed := newEnv(t, eng, api.Config{})
		if got := closed.do("GET", "/api/v1/tasks", nil); got.status != 401 || !strings.Contains(got.detail(), "stint user add") {
			t.Errorf("no users, not open: %d %s", got.status, got.body)
		}

		open := newEnv(t, eng, api.Config{AllowOpen: true})
		id := open.dispatch(apiv1.DispatchTask{Name: "stint.noop"})
		if tk := open.task(id); tk.Owner != "" {
			t.Errorf("a task of open mode has owner %q", tk.Owner)
		}
		open.must("GET", "/api/v1/workers", nil, 200, nil) // the anonymous caller is an admin
		stream := open.openEvents("")

		token := open.addUser("alice", store.RoleUser)
		if got := open.do("GET", "/api/v1/tasks", nil); got.status != 401 || !strings.Contains(got.detail(), "authentication required") {
			t.Errorf("open mode after the first user: %d %s", got.status, got.body)
		}
		select {
		case _, ok := <-stream:
			if ok {
				t.Error("the open stream showed an event")
			}
		case <-time.After(5 * time.Second):
			t.Error("the open stream is still open after the first user")
		}
		var page apiv1.Page[apiv1.Task]
		open.as(token).must("GET", "/api/v1/tasks", nil, 200, &page)
		if countOf(page.Count) != 0 {
			t.Errorf("alice sees the anonymous tasks: %s", mustJSON(page))
		}
		open.must("GET", "/api/v1/status", nil, 200, nil) // still public
	})
}

// TestMe: each caller learns who it is and the cancel policy.
func TestMe(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		a := newAuthEnv(t, eng, api.Config{CancelPolicy: api.CancelAdminOnly})
		for who, want := range map[string]apiv1.Me{
			"alice": {User: "alice", Role: "user", CancelPolicy: "admin-only"},
			"admin": {User: "root", Role: "admin", CancelPolicy: "admin-only"},
		} {
			var got apiv1.Me
			a.by[who].must("GET", "/api/v1/me", nil, 200, &got)
			if got != want {
				t.Errorf("me as %s: %+v, want %+v", who, got, want)
			}
		}
		open := newEnv(t, eng, api.Config{AllowOpen: true})
		var got apiv1.Me
		open.must("GET", "/api/v1/me", nil, 200, &got)
		if want := (apiv1.Me{Role: "admin", Open: true, CancelPolicy: "owner"}); got != want {
			t.Errorf("me in open mode: %+v, want %+v", got, want)
		}
	})
}

func mustJSON(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}
