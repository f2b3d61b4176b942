package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// listFixture is a handful of tasks with every field that TaskFilter
// selects on, each in a distinct state, dispatched, started and finished at
// distinct times, in label order:
//
//	a: test.list.a, alice, exclusive res:1, group G; worker w1, created made:1, completed
//	b: test.list.b, bob, shared res:2, parent a; worker w2, running
//	c: test%_x, alice, shared res:3, parent a, group G; waiting
//	d: test_list_d, carol, exclusive res:3; canceled while waiting
//	e: test.list.e, no resources; worker w1, failed
//
// Started: a < b < e; finished: a < d < e.
type listFixture struct {
	st     store.Store
	tasks  map[string]*store.Task // as they are at the end
	labels map[uuid.UUID]string
	group  uuid.UUID
}

func newListFixture(t *testing.T, open Opener) *listFixture {
	st, ctx := openStore(t, open)
	fx := &listFixture{st: st, tasks: map[string]*store.Task{}, labels: map[uuid.UUID]string{}, group: uuid.Must(uuid.NewV7())}
	// Timestamps of consecutive steps must differ, at the microsecond
	// precision of the engines.
	pause := func() { time.Sleep(3 * time.Millisecond) }
	dispatch := func(label, name, owner string, ex, sh []string, parent, group *uuid.UUID) {
		nt := newTask(name, ex, sh)
		nt.Owner, nt.ParentTask, nt.TaskGroup = owner, parent, group
		if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
			t.Fatalf("dispatch %s: %v", label, err)
		}
		fx.labels[nt.ID] = label
		fx.tasks[label] = &store.Task{ID: nt.ID}
		pause()
	}
	claim := func(label, worker string) *store.Task {
		got, err := st.Claim(ctx, store.ClaimParams{Worker: worker, Names: []string{fx.name(label)}, Limit: 10})
		if err != nil || len(got) != 1 || got[0].ID != fx.tasks[label].ID {
			t.Fatalf("claim %s: %d tasks, %v", label, len(got), err)
		}
		pause()
		return got[0]
	}
	finish := func(task *store.Task, state store.State) {
		if done, err := st.Finish(ctx, []store.Outcome{{ID: task.ID, Attempt: task.Attempt, State: state}}); err != nil || len(done) != 1 {
			t.Fatalf("finish %s: %v %v", fx.labels[task.ID], done, err)
		}
		pause()
	}

	dispatch("a", "test.list.a", "alice", []string{"res:1"}, nil, nil, &fx.group)
	a := fx.tasks["a"].ID
	dispatch("b", "test.list.b", "bob", nil, []string{"res:2"}, &a, nil)
	dispatch("c", "test%_x", "alice", nil, []string{"res:3"}, &a, &fx.group)
	dispatch("d", "test_list_d", "carol", []string{"res:3"}, nil, nil, nil)
	dispatch("e", "test.list.e", "", nil, nil, nil, nil)

	runA := claim("a", "w1")
	if ok, err := st.SaveOutputs(ctx, runA.ID, runA.Attempt, store.Outputs{CreatedResources: []string{"made:1"}}); err != nil || !ok {
		t.Fatalf("save outputs of a: %v %v", ok, err)
	}
	claim("b", "w2")
	runE := claim("e", "w1")
	finish(runA, store.StateCompleted)
	if err := cancelWaiting(ctx, st, fx.tasks["d"].ID); err != nil {
		t.Fatal(err)
	}
	pause()
	finish(runE, store.StateFailed)

	for label, task := range fx.tasks {
		got, err := st.Task(ctx, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		fx.tasks[label] = got
	}
	want := map[string]store.State{"a": store.StateCompleted, "b": store.StateRunning, "c": store.StateWaiting, "d": store.StateCanceled, "e": store.StateFailed}
	for label, state := range want {
		if got := fx.tasks[label].State; got != state {
			t.Fatalf("fixture: %s is %s, want %s", label, got, state)
		}
	}
	return fx
}

func (fx *listFixture) name(label string) string {
	return map[string]string{"a": "test.list.a", "b": "test.list.b", "c": "test%_x", "d": "test_list_d", "e": "test.list.e"}[label]
}

// list returns the labels of the tasks f selects, in order, and the count.
func (fx *listFixture) list(t *testing.T, f store.TaskFilter) (string, int) {
	t.Helper()
	tasks, count, err := fx.st.ListTasks(ctxFor(t), f)
	if err != nil {
		t.Fatalf("ListTasks(%+v): %v", f, err)
	}
	var labels []string
	for _, task := range tasks {
		label, ok := fx.labels[task.ID]
		if !ok {
			t.Fatalf("ListTasks returned an unknown task %s", task.ID)
		}
		labels = append(labels, label)
	}
	return strings.Join(labels, " "), totalOf(count)
}

func testListTasks(t *testing.T, open Opener) {
	fx := newListFixture(t, open)
	tk := func(label string) *store.Task { return fx.tasks[label] }
	id := func(label string) *uuid.UUID { return &tk(label).ID }
	unknown := uuid.Must(uuid.NewV7())
	states := func(s ...store.State) []store.State { return s }

	// want is the labels selected, in created order.
	cases := []struct {
		name string
		f    store.TaskFilter
		want string
	}{
		{"no filter", store.TaskFilter{}, "a b c d e"},
		{"one state", store.TaskFilter{States: states(store.StateRunning)}, "b"},
		{"several states", store.TaskFilter{States: states(store.StateCompleted, store.StateFailed)}, "a e"},
		{"state without tasks", store.TaskFilter{States: states(store.StateCanceling)}, ""},
		{"name", store.TaskFilter{Name: "test.list.a"}, "a"},
		{"name is exact", store.TaskFilter{Name: "test.list"}, ""},
		{"name contains", store.TaskFilter{NameContains: "list"}, "a b d e"},
		{"name contains is case-sensitive", store.TaskFilter{NameContains: "LIST"}, ""},
		{"name contains a literal %", store.TaskFilter{NameContains: "%"}, "c"},
		{"name contains a literal _", store.TaskFilter{NameContains: "_"}, "c d"},
		{"name contains a literal %_", store.TaskFilter{NameContains: "%_"}, "c"},
		{"name contains a backslash", store.TaskFilter{NameContains: `\`}, ""},
		{"worker", store.TaskFilter{Worker: "w1"}, "a e"},
		{"other worker", store.TaskFilter{Worker: "w2"}, "b"},
		{"owner", store.TaskFilter{Owner: "alice"}, "a c"},
		{"parent task", store.TaskFilter{ParentTask: id("a")}, "b c"},
		{"parent task without children", store.TaskFilter{ParentTask: id("b")}, ""},
		{"unknown parent task", store.TaskFilter{ParentTask: &unknown}, ""},
		{"task group", store.TaskFilter{TaskGroup: &fx.group}, "a c"},
		{"unknown task group", store.TaskFilter{TaskGroup: &unknown}, ""},
		{"exclusive resource", store.TaskFilter{ExclusiveResource: "res:3"}, "d"},
		{"exclusive resource held shared", store.TaskFilter{ExclusiveResource: "res:2"}, ""},
		{"shared resource", store.TaskFilter{SharedResource: "res:3"}, "c"},
		{"shared resource held exclusively", store.TaskFilter{SharedResource: "res:1"}, ""},
		{"reserved resource, both kinds", store.TaskFilter{ReservedResource: "res:3"}, "c d"},
		{"reserved resource, exclusive", store.TaskFilter{ReservedResource: "res:1"}, "a"},
		{"reserved resource, shared", store.TaskFilter{ReservedResource: "res:2"}, "b"},
		{"reserved resource is exact", store.TaskFilter{ReservedResource: "res"}, ""},
		{"created resource", store.TaskFilter{CreatedResource: "made:1"}, "a"},
		{"created resource is not reserved", store.TaskFilter{ReservedResource: "made:1"}, ""},
		{"created from, inclusive", store.TaskFilter{CreatedGTE: &tk("c").CreatedAt}, "c d e"},
		{"created until, inclusive", store.TaskFilter{CreatedLTE: &tk("b").CreatedAt}, "a b"},
		{"created between", store.TaskFilter{CreatedGTE: &tk("b").CreatedAt, CreatedLTE: &tk("d").CreatedAt}, "b c d"},
		{"started from, inclusive", store.TaskFilter{StartedGTE: tk("b").StartedAt}, "b e"},
		{"started until, inclusive", store.TaskFilter{StartedLTE: tk("b").StartedAt}, "a b"},
		{"finished from, inclusive", store.TaskFilter{FinishedGTE: tk("d").FinishedAt}, "d e"},
		{"finished until, inclusive", store.TaskFilter{FinishedLTE: tk("d").FinishedAt}, "a d"},
		{"finished in an empty range", store.TaskFilter{FinishedGTE: tk("e").FinishedAt, FinishedLTE: tk("a").FinishedAt}, ""},
		{"states and worker and owner", store.TaskFilter{States: states(store.StateCompleted, store.StateFailed), Worker: "w1", Owner: "alice"}, "a"},
		{"reserved resource and state", store.TaskFilter{ReservedResource: "res:3", States: states(store.StateWaiting)}, "c"},
		{"name contains and parent", store.TaskFilter{NameContains: "list", ParentTask: id("a")}, "b"},
		{"group and state", store.TaskFilter{TaskGroup: &fx.group, States: states(store.StateWaiting)}, "c"},
		{"owner, created and exclusive resource", store.TaskFilter{Owner: "alice", CreatedResource: "made:1", ExclusiveResource: "res:1"}, "a"},
		{"worker and started range", store.TaskFilter{Worker: "w1", StartedGTE: tk("b").StartedAt}, "e"},
		{"disjoint filters", store.TaskFilter{Owner: "bob", Worker: "w1"}, ""},
		{"every field at once", store.TaskFilter{
			States: states(store.StateWaiting), Name: "test%_x", NameContains: "%", Owner: "alice",
			ParentTask: id("a"), TaskGroup: &fx.group, SharedResource: "res:3", ReservedResource: "res:3",
			CreatedGTE: &tk("c").CreatedAt, CreatedLTE: &tk("c").CreatedAt,
		}, "c"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, count := fx.list(t, tc.f)
			if got != tc.want {
				t.Errorf("got [%s], want [%s]", got, tc.want)
			}
			if n := len(strings.Fields(tc.want)); count != n {
				t.Errorf("count %d, want %d", count, n)
			}
		})
	}

	t.Run("orderings", func(t *testing.T) {
		// Tasks not started or not finished sort last in both directions,
		// among themselves in dispatch order (reversed for descending).
		orderings := []struct {
			o    store.Ordering
			want string
		}{
			{"", "a b c d e"},
			{store.OrderCreated, "a b c d e"},
			{store.OrderCreatedDesc, "e d c b a"},
			{store.OrderStarted, "a b e c d"},
			{store.OrderStartedDesc, "e b a d c"},
			{store.OrderFinished, "a d e b c"},
			{store.OrderFinishedDesc, "e d a c b"},
			// None of these is scheduled: all last, in dispatch order
			// (testListScheduled orders scheduled ones).
			{store.OrderScheduled, "a b c d e"},
			{store.OrderScheduledDesc, "e d c b a"},
		}
		seen := map[store.Ordering]bool{}
		for _, tc := range orderings {
			seen[tc.o] = true
			if got, count := fx.list(t, store.TaskFilter{Ordering: tc.o}); got != tc.want || count != 5 {
				t.Errorf("ordering %q: got [%s] (count %d), want [%s]", tc.o, got, count, tc.want)
			}
		}
		for _, o := range store.Orderings {
			if !seen[o] {
				t.Errorf("ordering %q is not tested", o)
			}
		}
		// With a filter, ordering applies to the filtered set.
		if got, _ := fx.list(t, store.TaskFilter{Owner: "alice", Ordering: store.OrderStartedDesc}); got != "a c" {
			t.Errorf("alice's tasks by -started_at: [%s], want [a c]", got)
		}
	})

	t.Run("pages", func(t *testing.T) {
		pages := []struct {
			f     store.TaskFilter
			want  string
			count int
		}{
			{store.TaskFilter{Limit: 2}, "a b", 5},
			{store.TaskFilter{Limit: 2, Offset: 2}, "c d", 5},
			{store.TaskFilter{Limit: 2, Offset: 4}, "e", 5},
			{store.TaskFilter{Limit: 2, Offset: 5}, "", 5},
			{store.TaskFilter{Limit: 2, Offset: 50}, "", 5},
			{store.TaskFilter{Limit: 5}, "a b c d e", 5},
			{store.TaskFilter{Limit: 100}, "a b c d e", 5},
			{store.TaskFilter{Offset: 3}, "d e", 5},
			{store.TaskFilter{Offset: 9}, "", 5},
			{store.TaskFilter{Limit: 2, Offset: 1, Ordering: store.OrderCreatedDesc}, "d c", 5},
			{store.TaskFilter{Limit: 3, Ordering: store.OrderFinished}, "a d e", 5},
			{store.TaskFilter{Limit: 1, Offset: 1, Owner: "alice"}, "c", 2},
			{store.TaskFilter{Limit: 1, Offset: 2, Owner: "alice"}, "", 2},
			{store.TaskFilter{Limit: 1, Owner: "nobody"}, "", 0},
		}
		for _, p := range pages {
			if got, count := fx.list(t, p.f); got != p.want || count != p.count {
				t.Errorf("page %+v: got [%s] count %d, want [%s] count %d", p.f, got, count, p.want, p.count)
			}
		}
	})

	t.Run("tasks are whole", func(t *testing.T) {
		tasks, _, err := fx.st.ListTasks(ctxFor(t), store.TaskFilter{Name: "test.list.a"})
		if err != nil || len(tasks) != 1 {
			t.Fatal(len(tasks), err)
		}
		got, want := tasks[0], tk("a")
		if got.ID != want.ID || got.Seq != want.Seq || got.State != want.State || got.Owner != "alice" || got.Worker != "w1" ||
			!slices.Equal(got.ExclusiveResources, []string{"res:1"}) || !slices.Equal(got.CreatedResources, []string{"made:1"}) ||
			got.TaskGroup == nil || *got.TaskGroup != fx.group || got.FinishedAt == nil || !got.FinishedAt.Equal(*want.FinishedAt) {
			t.Fatalf("listed %+v, want %+v", got, want)
		}
	})

	t.Run("children are read with the task", func(t *testing.T) {
		ctx := ctxFor(t)
		want := []uuid.UUID{tk("b").ID, tk("c").ID}
		got, err := fx.st.Task(ctx, tk("a").ID)
		if err != nil || !slices.Equal(got.ChildTasks, want) {
			t.Fatalf("Task: children %v (%v), want [b c]", got.ChildTasks, err)
		}
		listed, _, err := fx.st.ListTasks(ctx, store.TaskFilter{Ordering: store.OrderCreated})
		if err != nil || len(listed) != len(fx.tasks) {
			t.Fatalf("ListTasks: %d tasks, %v", len(listed), err)
		}
		for _, l := range listed {
			if w := map[bool][]uuid.UUID{true: want}[l.ID == tk("a").ID]; !slices.Equal(l.ChildTasks, w) {
				t.Fatalf("ListTasks: children of %s %v, want %v", fx.labels[l.ID], l.ChildTasks, w)
			}
		}
		// a is final: Cancel answers it as it is, with its children.
		canceled, err := fx.st.Cancel(ctx, tk("a").ID)
		if !errors.Is(err, store.ErrFinal) || canceled == nil || !slices.Equal(canceled.ChildTasks, want) {
			t.Fatalf("Cancel: %+v, %v; want a with children [b c] and ErrFinal", canceled, err)
		}
	})

	// Concurrent reads may be answered together (the PostgreSQL store
	// gathers them into one statement): each still gets its own task, a
	// Task of its own even when others read the same one at once, and
	// ErrNotFound for one that does not exist.
	t.Run("concurrent reads each get their own task", func(t *testing.T) {
		ctx := ctxFor(t)
		labels := []string{"a", "b", "c", "d", "e", "a", "a", ""}
		var wg sync.WaitGroup
		errs := make(chan error, 64*len(labels))
		for g := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := range len(labels) {
					label := labels[(g+round)%len(labels)]
					want := unknown
					if label != "" {
						want = tk(label).ID
					}
					got, err := fx.st.Task(ctx, want)
					switch {
					case label == "" && !errors.Is(err, store.ErrNotFound):
						errs <- fmt.Errorf("an unknown task: %v, %v; want ErrNotFound", got, err)
					case label == "":
					case err != nil:
						errs <- fmt.Errorf("task %s: %v", label, err)
					case got.ID != want || got.Name != fx.name(label) || (label == "a") != (len(got.ChildTasks) == 2):
						errs <- fmt.Errorf("task %s: got %s %s children %v", label, fx.labels[got.ID], got.Name, got.ChildTasks)
					default:
						got.Name = "changed by its reader" // another reader's Task must not change (-race)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// testListTies checks that tasks with equal timestamps list in dispatch
// order (reversed for descending orderings): a batch may share one
// creation time, and unstarted tasks share a NULL start.
func testListTies(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	var batch []store.NewTask
	for range 6 {
		batch = append(batch, newTask("test.ties", nil, nil))
	}
	if _, err := st.Dispatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for _, nt := range batch {
		ids = append(ids, nt.ID)
	}
	reversed := slices.Clone(ids)
	slices.Reverse(reversed)
	for _, o := range store.Orderings {
		want := ids
		if strings.HasPrefix(string(o), "-") {
			want = reversed
		}
		tasks, count, err := st.ListTasks(ctx, store.TaskFilter{Ordering: o})
		if err != nil {
			t.Fatal(err)
		}
		var got []uuid.UUID
		for _, task := range tasks {
			got = append(got, task.ID)
		}
		if !slices.Equal(got, want) || totalOf(count) != len(ids) {
			t.Errorf("ordering %q: got %v (count %d), want %v", o, got, totalOf(count), want)
		}
		// Pages of ties neither repeat nor skip tasks.
		var paged []uuid.UUID
		for offset := 0; offset < len(ids); offset += 4 {
			page, _, err := st.ListTasks(ctx, store.TaskFilter{Ordering: o, Limit: 4, Offset: offset})
			if err != nil {
				t.Fatal(err)
			}
			for _, task := range page {
				paged = append(paged, task.ID)
			}
		}
		if !slices.Equal(paged, want) {
			t.Errorf("ordering %q in pages: got %v, want %v", o, paged, want)
		}
	}
}

func testWorkerCurrentTasks(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	for _, w := range []store.WorkerInfo{
		{Name: "busy", Hostname: "h1", PID: 10, Versions: map[string]string{"core": "2.0.0"}, Concurrency: 8},
		{Name: "idle", Hostname: "h2", PID: 20, Concurrency: 1},
	} {
		if err := st.RegisterWorker(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	var batch []store.NewTask
	for range 4 {
		batch = append(batch, newTask("test.current", nil, nil))
	}
	if _, err := st.Dispatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	claim := func(worker string, n int) []*store.Task {
		got, err := st.Claim(ctx, store.ClaimParams{Worker: worker, Names: []string{"test.current"}, Limit: n})
		if err != nil || len(got) != n {
			t.Fatalf("claim by %s: %d tasks, %v", worker, len(got), err)
		}
		return got
	}
	busy := claim("busy", 3)
	other := claim("unregistered", 1) // tasks of other workers are not "busy"'s
	check := func(step string, want ...*store.Task) {
		t.Helper()
		var wantIDs []uuid.UUID
		for _, task := range want {
			wantIDs = append(wantIDs, task.ID)
		}
		w, err := st.Worker(ctx, "busy")
		if err != nil {
			t.Fatalf("%s: Worker: %v", step, err)
		}
		if w.Name != "busy" || w.Hostname != "h1" || w.PID != 10 || w.Concurrency != 8 || w.Versions["core"] != "2.0.0" ||
			w.Missing || w.StartedAt.IsZero() || w.LastHeartbeat.IsZero() {
			t.Fatalf("%s: Worker: %+v", step, w)
		}
		if !slices.Equal(w.CurrentTasks, wantIDs) {
			t.Fatalf("%s: Worker current tasks %v, want %v", step, w.CurrentTasks, wantIDs)
		}
		list, err := st.Workers(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "busy" || list[1].Name != "idle" {
			t.Fatalf("%s: Workers %+v %v", step, list, err)
		}
		if !slices.Equal(list[0].CurrentTasks, wantIDs) {
			t.Fatalf("%s: Workers current tasks %v, want %v", step, list[0].CurrentTasks, wantIDs)
		}
		if len(list[1].CurrentTasks) != 0 {
			t.Fatalf("%s: idle worker runs %v", step, list[1].CurrentTasks)
		}
	}
	check("after claim", busy...)
	// A canceling task is still current; a finished one is not.
	if got, err := st.Cancel(ctx, busy[1].ID); err != nil || got.State != store.StateCanceling {
		t.Fatalf("cancel: %v %v", got, err)
	}
	check("after cancel", busy...)
	if _, err := st.Finish(ctx, []store.Outcome{{ID: busy[0].ID, Attempt: busy[0].Attempt, State: store.StateCompleted}}); err != nil {
		t.Fatal(err)
	}
	check("after a finish", busy[1], busy[2])
	var outs []store.Outcome
	for _, task := range append(busy[1:], other...) {
		outs = append(outs, store.Outcome{ID: task.ID, Attempt: task.Attempt, State: store.StateCompleted})
	}
	if _, err := st.Finish(ctx, outs); err != nil {
		t.Fatal(err)
	}
	check("after all finished")

	if _, err := st.Worker(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown worker: %v", err)
	}
	if err := st.RemoveWorker(ctx, "idle"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Worker(ctx, "idle"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removed worker: %v", err)
	}
}

// changeWait is how long a change may take to arrive.
const changeWait = 5 * time.Second

// awaitChanges reads ch until every task of want has been reported in its
// wanted state, ignoring other changes, or fails after changeWait.
func awaitChanges(t *testing.T, ch <-chan []store.TaskChange, what string, want map[uuid.UUID]store.State) {
	t.Helper()
	left := len(want)
	seen := map[uuid.UUID]bool{}
	deadline := time.After(changeWait)
	for left > 0 {
		select {
		case batch, ok := <-ch:
			if !ok {
				t.Fatalf("%s: the channel of changes closed", what)
			}
			for _, c := range batch {
				if st, ok := want[c.ID]; ok && st == c.State && !seen[c.ID] {
					seen[c.ID] = true
					left--
				}
			}
		case <-deadline:
			t.Fatalf("%s: %d of %d changes did not arrive within %v", what, left, len(want), changeWait)
		}
	}
}

func awaitChange(t *testing.T, ch <-chan []store.TaskChange, what string, id uuid.UUID, state store.State) {
	t.Helper()
	awaitChanges(t, ch, what, map[uuid.UUID]store.State{id: state})
}

func testChanges(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	ch, err := st.Changes(lctx)
	if err != nil {
		t.Fatal(err)
	}

	// One task through every change.
	nt := newTask("test.changes", []string{"cr"}, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
		t.Fatal(err)
	}
	awaitChange(t, ch, "dispatch", nt.ID, store.StateWaiting)
	claimed, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.changes"}, Limit: 1})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %d %v", len(claimed), err)
	}
	run := claimed[0]
	awaitChange(t, ch, "claim", nt.ID, store.StateRunning)
	total := int64(3)
	out := store.Outputs{ProgressReports: []store.ProgressReport{{Code: "p", Message: "Working", State: "running", Total: &total, Done: 1}}}
	if ok, err := st.SaveOutputs(ctx, run.ID, run.Attempt, out); err != nil || !ok {
		t.Fatalf("save outputs: %v %v", ok, err)
	}
	awaitChange(t, ch, "progress", nt.ID, store.StateRunning)
	if _, err := st.Cancel(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	awaitChange(t, ch, "cancel of a running task", nt.ID, store.StateCanceling)
	if done, err := st.Finish(ctx, []store.Outcome{{ID: run.ID, Attempt: run.Attempt, State: store.StateCompleted}}); err != nil || len(done) != 1 {
		t.Fatalf("finish: %v %v", done, err)
	}
	awaitChange(t, ch, "finish of a canceling task", nt.ID, store.StateCanceled)

	// A waiting task canceled.
	waiting := newTask("test.changes", nil, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{waiting}); err != nil {
		t.Fatal(err)
	}
	awaitChange(t, ch, "dispatch", waiting.ID, store.StateWaiting)
	if _, err := st.Cancel(ctx, waiting.ID); err != nil {
		t.Fatal(err)
	}
	awaitChange(t, ch, "cancel of a waiting task", waiting.ID, store.StateCanceled)

	// Every final state a run reports.
	var finals []store.NewTask
	for range 3 {
		finals = append(finals, newTask("test.changes.final", nil, nil))
	}
	if _, err := st.Dispatch(ctx, finals); err != nil {
		t.Fatal(err)
	}
	runs, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.changes.final"}, Limit: 3})
	if err != nil || len(runs) != 3 {
		t.Fatalf("claim: %d %v", len(runs), err)
	}
	wantFinal := map[uuid.UUID]store.State{}
	var outcomes []store.Outcome
	for i, state := range []store.State{store.StateCompleted, store.StateFailed, store.StateDropped} {
		wantFinal[runs[i].ID] = state
		outcomes = append(outcomes, store.Outcome{ID: runs[i].ID, Attempt: runs[i].Attempt, State: state})
	}
	if _, err := st.Finish(ctx, outcomes); err != nil {
		t.Fatal(err)
	}
	awaitChanges(t, ch, "finish with each final state", wantFinal)

	// A large batch arrives whole at every step.
	const n = 500
	var batch []store.NewTask
	for range n {
		batch = append(batch, newTask("test.changes.batch", nil, nil))
	}
	if _, err := st.Dispatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	want := func(state store.State) map[uuid.UUID]store.State {
		m := map[uuid.UUID]store.State{}
		for _, nt := range batch {
			m[nt.ID] = state
		}
		return m
	}
	awaitChanges(t, ch, "dispatch of a batch", want(store.StateWaiting))
	runs, err = st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.changes.batch"}, Limit: n})
	if err != nil || len(runs) != n {
		t.Fatalf("claim of a batch: %d %v", len(runs), err)
	}
	awaitChanges(t, ch, "claim of a batch", want(store.StateRunning))
	outcomes = outcomes[:0]
	for _, r := range runs {
		outcomes = append(outcomes, store.Outcome{ID: r.ID, Attempt: r.Attempt, State: store.StateCompleted})
	}
	if done, err := st.Finish(ctx, outcomes); err != nil || len(done) != n {
		t.Fatalf("finish of a batch: %d %v", len(done), err)
	}
	awaitChanges(t, ch, "finish of a batch", want(store.StateCompleted))

	// The channel closes when the context ends.
	stop()
	deadline := time.After(changeWait)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the channel of changes did not close after its context ended")
		}
	}
}

// testChangesSlowReader changes many tasks while a listener does not read:
// the writers must not wait for it, and when it reads again it learns the
// latest state of every task, or is told by an empty batch that it lost
// changes.
func testChangesSlowReader(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	ch, err := st.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	var ids []uuid.UUID
	for i := range n {
		nt := newTask("test.slow", nil, nil)
		if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
			t.Fatalf("dispatch %d: %v", i, err)
		}
		ids = append(ids, nt.ID)
	}
	for {
		runs, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.slow"}, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == 0 {
			break
		}
		var outcomes []store.Outcome
		for _, r := range runs {
			outcomes = append(outcomes, store.Outcome{ID: r.ID, Attempt: r.Attempt, State: store.StateCompleted})
		}
		if _, err := st.Finish(ctx, outcomes); err != nil {
			t.Fatal(err)
		}
	}
	left := map[uuid.UUID]bool{}
	for _, id := range ids {
		left[id] = true
	}
	deadline := time.After(changeWait)
	for len(left) > 0 {
		select {
		case batch := <-ch:
			if len(batch) == 0 {
				return // changes were lost, and the reader is told
			}
			for _, c := range batch {
				if c.State == store.StateCompleted {
					delete(left, c.ID)
				}
			}
		case <-deadline:
			t.Fatalf("%d tasks' completions neither arrived nor were reported lost", len(left))
		}
	}
}

// testListByIDs selects tasks by id: unknown ids select nothing, and the
// order is the filter's ordering, not the order of the ids.
func testListByIDs(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	var batch []store.NewTask
	for range 5 {
		batch = append(batch, newTask("test.ids", nil, nil))
	}
	if _, err := st.Dispatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	unknown := uuid.Must(uuid.NewV7())
	tasks, count, err := st.ListTasks(ctx, store.TaskFilter{IDs: []uuid.UUID{batch[3].ID, batch[1].ID, unknown}})
	if err != nil || totalOf(count) != 2 || len(tasks) != 2 || tasks[0].ID != batch[1].ID || tasks[1].ID != batch[3].ID {
		t.Fatalf("ListTasks by ids: %d tasks, count %d, %v", len(tasks), totalOf(count), err)
	}
	tasks, count, err = st.ListTasks(ctx, store.TaskFilter{IDs: []uuid.UUID{unknown}})
	if err != nil || totalOf(count) != 0 || len(tasks) != 0 {
		t.Fatalf("ListTasks by an unknown id: %d tasks, count %d, %v", len(tasks), totalOf(count), err)
	}
}

// testListEveryFilterField lists with each filter field alone: the engine
// translates every field store.TaskFilter.Terms can make (a field added
// there and not here, or not in an engine, fails).
func testListEveryFilterField(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	task := newTask("test.filter", []string{"x"}, []string{"y"})
	if _, err := st.Dispatch(ctx, []store.NewTask{task}); err != nil {
		t.Fatal(err)
	}
	id := task.ID
	hour := time.Now().Add(-time.Hour)
	filters := map[store.FilterField]store.TaskFilter{
		store.FilterIDs:               {IDs: []uuid.UUID{id}},
		store.FilterStates:            {States: []store.State{store.StateWaiting}},
		store.FilterName:              {Name: "test.filter"},
		store.FilterNameContains:      {NameContains: "filter"},
		store.FilterWorker:            {Worker: "nobody"},
		store.FilterOwner:             {Owner: "nobody"},
		store.FilterParentTask:        {ParentTask: &id},
		store.FilterTaskGroup:         {TaskGroup: &id},
		store.FilterExclusiveResource: {ExclusiveResource: "x"},
		store.FilterSharedResource:    {SharedResource: "y"},
		store.FilterReservedResource:  {ReservedResource: "x"},
		store.FilterCreatedResource:   {CreatedResource: "z"},
		store.FilterCreatedGTE:        {CreatedGTE: &hour},
		store.FilterCreatedLTE:        {CreatedLTE: &hour},
		store.FilterStartedGTE:        {StartedGTE: &hour},
		store.FilterStartedLTE:        {StartedLTE: &hour},
		store.FilterFinishedGTE:       {FinishedGTE: &hour},
		store.FilterFinishedLTE:       {FinishedLTE: &hour},
		store.FilterScheduledGTE:      {ScheduledGTE: &hour},
		store.FilterScheduledLTE:      {ScheduledLTE: &hour},
	}
	// What each finds of the one waiting task.
	finds := map[store.FilterField]bool{store.FilterIDs: true, store.FilterStates: true, store.FilterName: true,
		store.FilterNameContains: true, store.FilterExclusiveResource: true, store.FilterSharedResource: true,
		store.FilterReservedResource: true, store.FilterCreatedGTE: true}
	for _, field := range store.FilterFields() {
		f, ok := filters[field]
		if !ok {
			t.Errorf("filter field %d: no filter of it here; add one", field)
			continue
		}
		if terms := f.Terms(); len(terms) != 1 || terms[0].Field != field {
			t.Errorf("filter field %d: the filter here makes %+v", field, terms)
			continue
		}
		tasks, _, err := st.ListTasks(ctx, f)
		if err != nil {
			t.Errorf("filter field %d: %v", field, err)
			continue
		}
		if found := len(tasks) == 1; found != finds[field] {
			t.Errorf("filter field %d: found the task %v, want %v", field, found, finds[field])
		}
	}
}
