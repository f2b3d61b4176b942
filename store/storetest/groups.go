package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// newGroup is a group to create, with a new id.
func newGroup(description, owner string, sealed bool) store.NewTaskGroup {
	return store.NewTaskGroup{ID: uuid.Must(uuid.NewV7()), Description: description, Owner: owner, AllTasksDispatched: sealed}
}

// into puts tasks into group g.
func into(g store.NewTaskGroup, tasks ...store.NewTask) []store.NewTask {
	for i := range tasks {
		id := g.ID
		tasks[i].TaskGroup = &id
	}
	return tasks
}

// newIDs is the ids of tasks to dispatch, in order.
func newIDs(tasks []store.NewTask) []uuid.UUID {
	out := make([]uuid.UUID, len(tasks))
	for i, t := range tasks {
		out[i] = t.ID
	}
	return out
}

// storedIDs is the ids of stored tasks, in order.
func storedIDs(tasks []*store.Task) []uuid.UUID {
	out := make([]uuid.UUID, len(tasks))
	for i, t := range tasks {
		out[i] = t.ID
	}
	return out
}

func readGroup(t *testing.T, st store.Store, id uuid.UUID) *store.TaskGroup {
	t.Helper()
	g, err := st.TaskGroup(ctxFor(t), id)
	if err != nil {
		t.Fatalf("TaskGroup %s: %v", id, err)
	}
	return g
}

// claimOne claims the one runnable task of name, as worker.
func claimOne(t *testing.T, st store.Store, worker, name string) *store.Task {
	t.Helper()
	got, err := st.Claim(ctxFor(t), store.ClaimParams{Worker: worker, Names: []string{name}, Limit: 10})
	if err != nil || len(got) != 1 {
		t.Fatalf("claim %s: %d tasks, %v", name, len(got), err)
	}
	return got[0]
}

func end(t *testing.T, st store.Store, task *store.Task, state store.State) {
	t.Helper()
	done, err := st.Finish(ctxFor(t), []store.Outcome{{ID: task.ID, Attempt: task.Attempt, State: state}})
	if err != nil || len(done) != 1 {
		t.Fatalf("finish %s as %s: %v %v", task.Name, state, done, err)
	}
}

func taskState(t *testing.T, st store.Store, id uuid.UUID) *store.Task {
	t.Helper()
	task, err := st.Task(ctxFor(t), id)
	if err != nil {
		t.Fatalf("task %s: %v", id, err)
	}
	return task
}

func sweepClean(t *testing.T, st store.Store) {
	t.Helper()
	if res, err := st.Sweep(ctxFor(t)); err != nil || res.Total() != 0 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
}

func testCreateTaskGroup(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	changes, err := st.Changes(lctx)
	if err != nil {
		t.Fatal(err)
	}
	wakeups, err := st.Wakeups(lctx)
	if err != nil {
		t.Fatal(err)
	}
	select { // a wake-up the listener may send when it starts
	case <-wakeups:
	case <-time.After(100 * time.Millisecond):
	}

	t.Run("empty", func(t *testing.T) {
		for _, sealed := range []bool{false, true} {
			ng := newGroup("nothing yet", "alice", sealed)
			g, tasks, err := st.CreateTaskGroup(ctx, ng, nil)
			if err != nil || len(tasks) != 0 {
				t.Fatalf("create: %d tasks, %v", len(tasks), err)
			}
			read := readGroup(t, st, ng.ID)
			for _, got := range []*store.TaskGroup{g, read} {
				if got.ID != ng.ID || got.Description != "nothing yet" || got.Owner != "alice" || got.AllTasksDispatched != sealed ||
					got.CreatedAt.IsZero() || !got.CreatedAt.Equal(g.CreatedAt) || len(got.Counts) != 0 || len(got.Tasks) != 0 {
					t.Fatalf("group %+v", got)
				}
				if got.Done() != sealed {
					t.Fatalf("empty group, sealed %v: Done %v", sealed, got.Done())
				}
			}
			if time.Since(g.CreatedAt) > time.Minute || time.Until(g.CreatedAt) > time.Minute {
				t.Fatalf("created at %v", g.CreatedAt)
			}
		}
	})

	t.Run("with tasks", func(t *testing.T) {
		ng := newGroup("three", "bob", false)
		nts := into(ng,
			newTask("test.group.a", ex("gc:r"), nil),
			newTask("test.group.b", ex("gc:r"), nil),
			newTask("test.group.c", nil, nil))
		nts[0].Owner, nts[0].Args = "bob", json.RawMessage(`{"n": 1}`)
		g, tasks, err := st.CreateTaskGroup(ctx, ng, nts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(storedIDs(tasks), newIDs(nts)) {
			t.Fatalf("tasks %v, want %v", storedIDs(tasks), newIDs(nts))
		}
		for i, task := range tasks {
			stored := taskState(t, st, task.ID)
			for _, tk := range []*store.Task{task, stored} {
				if tk.State != store.StateWaiting || tk.TaskGroup == nil || *tk.TaskGroup != ng.ID || tk.Name != nts[i].Name ||
					(i > 0 && tk.Seq <= tasks[i-1].Seq) {
					t.Fatalf("task %d: %+v", i, tk)
				}
				if runnable := i != 1; (tk.UnblockedAt != nil) != runnable {
					t.Fatalf("task %d: unblocked at %v, want runnable %v", i, tk.UnblockedAt, runnable)
				}
			}
		}
		if tasks[0].Owner != "bob" || string(tasks[0].Args) != `{"n": 1}` {
			t.Fatalf("task 0 as dispatched: %+v", tasks[0])
		}
		want := map[store.State]int{store.StateWaiting: 3}
		for _, got := range []*store.TaskGroup{g, readGroup(t, st, ng.ID)} {
			if !maps.Equal(got.Counts, want) || !slices.Equal(got.Tasks, newIDs(nts)) || got.AllTasksDispatched || got.Done() {
				t.Fatalf("group %+v", got)
			}
		}
		listed, n, err := st.ListTasks(ctx, store.TaskFilter{TaskGroup: &ng.ID})
		if err != nil || totalOf(n) != 3 || len(listed) != 3 {
			t.Fatalf("ListTasks of the group: %d %d %v", len(listed), totalOf(n), err)
		}
		// Changes and wake-ups as for Dispatch.
		awaitChanges(t, changes, "create task group", map[uuid.UUID]store.State{
			nts[0].ID: store.StateWaiting, nts[1].ID: store.StateWaiting, nts[2].ID: store.StateWaiting})
		select {
		case <-wakeups:
		case <-time.After(5 * time.Second):
			t.Fatal("no wake-up after creating a group with runnable tasks")
		}
		// The tasks run as dispatched tasks do.
		a := claimOne(t, st, "w", "test.group.a")
		claimOne(t, st, "w", "test.group.c")
		if got := claimAll(t, st, []string{"test.group.b"}, 10); len(got) != 0 {
			t.Fatal("b ran beside a")
		}
		end(t, st, a, store.StateCompleted)
		claimOne(t, st, "w", "test.group.b")
		if got := readGroup(t, st, ng.ID); !maps.Equal(got.Counts, map[store.State]int{store.StateCompleted: 1, store.StateRunning: 2}) {
			t.Fatalf("counts %v", got.Counts)
		}
	})

	t.Run("a group of 1000 in one call", func(t *testing.T) {
		ng := newGroup("big", "", true)
		var nts []store.NewTask
		for i := range 1000 {
			nts = append(nts, newTask("test.group.big", ex(fmt.Sprintf("gc:big%d", i%7)), nil))
		}
		g, tasks, err := st.CreateTaskGroup(ctx, ng, into(ng, nts...))
		if err != nil || len(tasks) != 1000 {
			t.Fatalf("create: %d %v", len(tasks), err)
		}
		for _, got := range []*store.TaskGroup{g, readGroup(t, st, ng.ID)} {
			if got.Counts[store.StateWaiting] != 1000 || len(got.Counts) != 1 || !slices.Equal(got.Tasks, newIDs(nts)) {
				t.Fatalf("group of 1000: counts %v, %d tasks", got.Counts, len(got.Tasks))
			}
		}
		if runnable := claimAll(t, st, []string{"test.group.big"}, 100); len(runnable) != 7 {
			t.Fatalf("%d tasks of 7 queues runnable at once", len(runnable))
		}
	})
}

// testTaskGroupConcurrentWork creates a group of 1,000 tasks in one call,
// then claims and finishes them from two worker-like goroutines while a
// reader checks that every read of the group adds up to 1,000, in dispatch
// order, with the final tasks never fewer than at the read before.
func testTaskGroupConcurrentWork(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	const n = 1000
	const name = "test.group.work"
	ng := newGroup("work", "alice", false)
	rng := rand.New(rand.NewPCG(3, 5))
	var nts []store.NewTask
	for range n {
		var exl, shr []string
		switch r := fmt.Sprintf("gw:%d", rng.IntN(20)); rng.IntN(3) {
		case 0:
			exl = []string{r}
		case 1:
			shr = []string{r}
		}
		nts = append(nts, newTask(name, exl, shr))
	}
	if _, _, err := st.CreateTaskGroup(ctx, ng, into(ng, nts...)); err != nil {
		t.Fatal(err)
	}
	ids := newIDs(nts)

	errs := make(chan error, 100)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopWorkers := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWorkers()
	held := newHeldTasks()
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wrng := rand.New(rand.NewPCG(uint64(w), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := st.Claim(ctx, store.ClaimParams{Worker: fmt.Sprintf("w%d", w), Names: []string{name}, Limit: 1 + wrng.IntN(20)})
				if err != nil {
					report(err)
					return
				}
				for _, err := range held.hold(got) {
					report(err)
				}
				held.release(got)
				outs := completed(got)
				for i := range outs {
					outs[i].State = []store.State{store.StateCompleted, store.StateCompleted, store.StateFailed, store.StateDropped}[wrng.IntN(4)]
				}
				if _, err := st.Finish(ctx, outs); err != nil {
					report(err)
					return
				}
				if len(got) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	final := func(g *store.TaskGroup) int {
		sum := 0
		for s, c := range g.Counts {
			if s.Final() {
				sum += c
			}
		}
		return sum
	}
	// The reader: every read adds up.
	reads, lastFinal := 0, 0
	deadline := time.Now().Add(45 * time.Second)
	for {
		g, err := st.TaskGroup(ctx, ng.ID)
		if err != nil {
			t.Fatal(err)
		}
		reads++
		total := 0
		for _, c := range g.Counts {
			total += c
		}
		if total != n || !slices.Equal(g.Tasks, ids) {
			t.Fatalf("read %d: counts %v add up to %d, %d task ids", reads, g.Counts, total, len(g.Tasks))
		}
		if f := final(g); f < lastFinal {
			t.Fatalf("read %d: %d final tasks after %d", reads, f, lastFinal)
		} else {
			lastFinal = f
		}
		list, _, err := st.ListTaskGroups(ctx, store.TaskGroupFilter{Owner: "alice"})
		if err != nil || len(list) != 1 {
			t.Fatalf("ListTaskGroups: %d %v", len(list), err)
		}
		total = 0
		for _, c := range list[0].Counts {
			total += c
		}
		if total != n || list[0].Tasks != nil {
			t.Fatalf("listed group: counts %v add up to %d, tasks %v", list[0].Counts, total, list[0].Tasks)
		}
		if lastFinal == n || time.Now().After(deadline) {
			break
		}
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		time.Sleep(time.Millisecond)
	}
	stopWorkers()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if lastFinal != n {
		t.Fatalf("%d of %d tasks final after the deadline", lastFinal, n)
	}
	if reads < 3 {
		t.Logf("only %d reads while the tasks ran", reads)
	}
	g, err := st.SealTaskGroup(ctx, ng.ID)
	if err != nil || !g.Done() {
		t.Fatalf("sealed group: %+v %v", g, err)
	}
	sweepClean(t, st)
}

// testTaskGroupAllOrNothing creates groups that the store must refuse as a
// whole: no group, no task and no queue entry is left of them.
func testTaskGroupAllOrNothing(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	existingTask := newTask("test.aon.existing", nil, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{existingTask}); err != nil {
		t.Fatal(err)
	}
	existingGroup := newGroup("taken", "", false)
	if _, _, err := st.CreateTaskGroup(ctx, existingGroup, into(existingGroup, newTask("test.aon.existing", nil, nil))); err != nil {
		t.Fatal(err)
	}
	before := readGroup(t, st, existingGroup.ID)

	cases := []struct {
		name    string
		group   store.NewTaskGroup
		tasks   func(g store.NewTaskGroup, res string) []store.NewTask
		wantErr error // nil: any error
	}{
		{"a task id twice in the batch", newGroup("dup", "", false), func(g store.NewTaskGroup, res string) []store.NewTask {
			a := newTask("test.aon", ex(res), nil)
			return into(g, a, newTask("test.aon", nil, sh(res)), a)
		}, nil},
		{"the id of an existing task", newGroup("dup", "", false), func(g store.NewTaskGroup, res string) []store.NewTask {
			dup := existingTask
			dup.Name = "test.aon"
			return into(g, newTask("test.aon", ex(res), nil), dup)
		}, nil},
		{"the id of an existing group", existingGroup, func(g store.NewTaskGroup, res string) []store.NewTask {
			return into(g, newTask("test.aon", ex(res), nil))
		}, store.ErrExists},
		{"a task outside the group", newGroup("outside", "", false), func(g store.NewTaskGroup, res string) []store.NewTask {
			return append(into(g, newTask("test.aon", ex(res), nil)), newTask("test.aon", nil, nil))
		}, nil},
		{"a task of another group", newGroup("other", "", false), func(g store.NewTaskGroup, res string) []store.NewTask {
			return append(into(g, newTask("test.aon", ex(res), nil)), into(existingGroup, newTask("test.aon", nil, nil))...)
		}, nil},
		{"args that cannot be stored", newGroup("unstorable", "", false), func(g store.NewTaskGroup, res string) []store.NewTask {
			bad := newTask("test.aon", nil, nil)
			bad.Args = json.RawMessage(`{"s": "a\u0000b"}`)
			return into(g, newTask("test.aon", ex(res), nil), bad)
		}, store.ErrUnstorable},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := fmt.Sprintf("aon:%d", i)
			nts := tc.tasks(tc.group, res)
			g, tasks, err := st.CreateTaskGroup(ctx, tc.group, nts)
			if err == nil || g != nil || tasks != nil {
				t.Fatalf("created %+v with %d tasks, %v", g, len(tasks), err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if tc.group.ID == existingGroup.ID {
				if got := readGroup(t, st, existingGroup.ID); !slices.Equal(got.Tasks, before.Tasks) || got.Description != "taken" {
					t.Fatalf("the existing group changed: %+v", got)
				}
			} else if _, err := st.TaskGroup(ctx, tc.group.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("group after a failed create: %v", err)
			}
			for _, nt := range nts {
				if nt.ID == existingTask.ID {
					continue
				}
				if _, err := st.Task(ctx, nt.ID); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("task %s after a failed create: %v", nt.ID, err)
				}
			}
			if _, n, err := st.ListTasks(ctx, store.TaskFilter{TaskGroup: &tc.group.ID}); err != nil || (tc.group.ID != existingGroup.ID && totalOf(n) != 0) {
				t.Fatalf("tasks of the group: %d %v", totalOf(n), err)
			}
			// No queue entry is left: a task on the same resource runs at once.
			probe := newTask("test.aon.probe", ex(res), nil)
			got, err := st.Dispatch(ctx, []store.NewTask{probe})
			if err != nil || got[0].UnblockedAt == nil {
				t.Fatalf("a task on the resource of the failed group: %+v %v", got, err)
			}
			if b, err := st.BlockedBy(ctx, probe.ID); err != nil || len(b) != 0 {
				t.Fatalf("blocked by %v %v", b, err)
			}
		})
	}
	if task := taskState(t, st, existingTask.ID); task.Name != "test.aon.existing" || task.TaskGroup != nil {
		t.Fatalf("the existing task changed: %+v", task)
	}
	sweepClean(t, st)
}

// testTaskGroupScheduling checks that the rule of DESIGN §1 holds for the
// tasks of a group among themselves and with tasks outside it, and that
// groups created concurrently with dispatches never let conflicting tasks
// run together.
func testTaskGroupScheduling(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	t.Run("in order", func(t *testing.T) {
		labels := map[uuid.UUID]string{}
		running := map[string]*store.Task{}
		claim := func(want ...string) {
			t.Helper()
			got := claimAll(t, st, []string{"test.gs"}, 100)
			var names []string
			for _, task := range got {
				names = append(names, labels[task.ID])
				running[labels[task.ID]] = task
			}
			sort.Strings(names)
			sort.Strings(want)
			if !slices.Equal(names, want) {
				t.Fatalf("claimed %v, want %v", names, want)
			}
		}
		finish := func(label string) {
			t.Helper()
			end(t, st, running[label], store.StateCompleted)
			delete(running, label)
		}
		dispatch := func(label string, nt store.NewTask) {
			t.Helper()
			if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
				t.Fatal(err)
			}
			labels[nt.ID] = label
		}
		dispatch("before", newTask("test.gs", ex("gs:r"), nil))
		claim("before")
		ng := newGroup("ordered", "", true)
		nts := into(ng,
			newTask("test.gs", ex("gs:r"), nil),     // A
			newTask("test.gs", nil, sh("gs:r")),     // B
			newTask("test.gs", nil, sh("gs:r")),     // C
			newTask("test.gs", ex("gs:r"), nil),     // D
			newTask("test.gs", ex("gs:other"), nil)) // E
		for i, nt := range nts {
			labels[nt.ID] = string(rune('A' + i))
		}
		if _, _, err := st.CreateTaskGroup(ctx, ng, nts); err != nil {
			t.Fatal(err)
		}
		dispatch("after", newTask("test.gs", nil, sh("gs:r")))
		claim("E")
		finish("before")
		claim("A")
		finish("A")
		claim("B", "C")
		finish("B")
		claim()
		finish("C")
		claim("D")
		finish("D")
		claim("after")
		finish("after")
		finish("E")
		if g := readGroup(t, st, ng.ID); !g.Done() || g.Counts[store.StateCompleted] != 5 {
			t.Fatalf("group %+v", g)
		}
		sweepClean(t, st)
	})

	t.Run("concurrent groups and dispatches", func(t *testing.T) {
		resources := []string{"gs:c0", "gs:c1", "gs:c2", "gs:c3"}
		const name = "test.gs.concurrent"
		random := func(rng *rand.Rand) store.NewTask {
			var exl, shr []string
			for _, r := range resources {
				switch rng.IntN(4) {
				case 0:
					exl = append(exl, r)
				case 1:
					shr = append(shr, r)
				}
			}
			return newTask(name, exl, shr)
		}
		errs := make(chan error, 100)
		report := func(err error) {
			select {
			case errs <- err:
			default:
			}
		}
		var producers, claimers sync.WaitGroup
		stop := make(chan struct{})
		stopAll := sync.OnceFunc(func() { producers.Wait(); close(stop); claimers.Wait() })
		defer stopAll()
		for p := range 4 {
			producers.Add(1)
			go func() {
				defer producers.Done()
				rng := rand.New(rand.NewPCG(uint64(p), 11))
				for i := range 15 {
					var err error
					if p%2 == 0 || i%3 == 0 {
						ng := newGroup("concurrent", "", true)
						var nts []store.NewTask
						for range 1 + rng.IntN(6) {
							nts = append(nts, random(rng))
						}
						_, _, err = st.CreateTaskGroup(ctx, ng, into(ng, nts...))
					} else {
						_, err = st.Dispatch(ctx, []store.NewTask{random(rng)})
					}
					if err != nil {
						report(err)
						return
					}
				}
			}()
		}
		held := newHeldTasks()
		for c := range 2 {
			claimers.Add(1)
			go func() {
				defer claimers.Done()
				for {
					got, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{name}, Limit: 5})
					if err != nil {
						report(err)
						return
					}
					for _, err := range held.hold(got) {
						report(err)
					}
					time.Sleep(time.Duration(c+1) * time.Millisecond)
					held.release(got)
					if _, err := st.Finish(ctx, completed(got)); err != nil {
						report(err)
						return
					}
					if len(got) == 0 {
						select {
						case <-stop:
							return
						case <-time.After(2 * time.Millisecond):
						}
					}
				}
			}()
		}
		producers.Wait()
		waitAllFinal(t, ctx, st, 45*time.Second, nil)
		stopAll()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		sweepClean(t, st)
	})
}

// testTaskGroupCounts checks the counts per state and the order of a
// group's tasks, through TaskGroup and ListTaskGroups.
func testTaskGroupCounts(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	ng := newGroup("counts", "alice", false)
	var nts []store.NewTask
	for i := range 5 {
		nts = append(nts, newTask(fmt.Sprintf("test.gcount.%d", i), nil, nil))
	}
	if _, _, err := st.CreateTaskGroup(ctx, ng, into(ng, nts...)); err != nil {
		t.Fatal(err)
	}
	// A task of another group, and one of none, count for neither.
	other := newGroup("other", "alice", false)
	if _, _, err := st.CreateTaskGroup(ctx, other, into(other, newTask("test.gcount.other", nil, nil))); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Dispatch(ctx, []store.NewTask{newTask("test.gcount.none", nil, nil)}); err != nil {
		t.Fatal(err)
	}
	run := func(i int) *store.Task { return claimOne(t, st, "w", nts[i].Name) }
	end(t, st, run(0), store.StateCompleted)
	end(t, st, run(1), store.StateFailed)
	if got, err := st.Cancel(ctx, run(2).ID); err != nil || got.State != store.StateCanceling {
		t.Fatalf("cancel running: %v %v", got, err)
	}
	if err := cancelWaiting(ctx, st, nts[3].ID); err != nil {
		t.Fatal(err)
	}
	// A task dispatched into the group later joins it, last.
	late := newTask("test.gcount.late", nil, nil)
	late.TaskGroup = &ng.ID
	if _, err := st.Dispatch(ctx, []store.NewTask{late}); err != nil {
		t.Fatal(err)
	}
	want := map[store.State]int{store.StateCompleted: 1, store.StateFailed: 1, store.StateCanceling: 1,
		store.StateCanceled: 1, store.StateWaiting: 2}
	wantIDs := append(newIDs(nts), late.ID)
	g := readGroup(t, st, ng.ID)
	if !maps.Equal(g.Counts, want) || !slices.Equal(g.Tasks, wantIDs) {
		t.Fatalf("group: counts %v, tasks %v; want %v, %v", g.Counts, g.Tasks, want, wantIDs)
	}
	list, total, err := st.ListTaskGroups(ctx, store.TaskGroupFilter{})
	if err != nil || totalOf(total) != 2 || len(list) != 2 {
		t.Fatalf("ListTaskGroups: %d groups, total %d, %v", len(list), totalOf(total), err)
	}
	byID := map[uuid.UUID]*store.TaskGroup{list[0].ID: list[0], list[1].ID: list[1]}
	if got := byID[ng.ID]; got == nil || !maps.Equal(got.Counts, want) || got.Tasks != nil {
		t.Fatalf("listed group %+v, want counts %v and no tasks", got, want)
	}
	if got := byID[other.ID]; got == nil || !maps.Equal(got.Counts, map[store.State]int{store.StateWaiting: 1}) {
		t.Fatalf("listed other group %+v", got)
	}
}

func testTaskGroupDone(t *testing.T, open Opener) {
	cases := []struct {
		name   string
		sealed bool
		counts map[store.State]int
		want   bool
	}{
		{"open and empty", false, nil, false},
		{"sealed and empty", true, map[store.State]int{}, true},
		{"open, all final", false, map[store.State]int{store.StateCompleted: 2}, false},
		{"sealed, all final", true, map[store.State]int{store.StateCompleted: 2, store.StateFailed: 1, store.StateCanceled: 1,
			store.StateSkipped: 1, store.StateDropped: 1}, true},
		{"sealed, one waiting", true, map[store.State]int{store.StateCompleted: 2, store.StateWaiting: 1}, false},
		{"sealed, one running", true, map[store.State]int{store.StateRunning: 1}, false},
		{"sealed, one canceling", true, map[store.State]int{store.StateCanceled: 3, store.StateCanceling: 1}, false},
		{"sealed, a zero count of an incomplete state", true, map[store.State]int{store.StateWaiting: 0, store.StateCompleted: 1}, true},
	}
	for _, tc := range cases {
		g := &store.TaskGroup{AllTasksDispatched: tc.sealed, Counts: tc.counts}
		if got := g.Done(); got != tc.want {
			t.Errorf("%s: Done %v, want %v", tc.name, got, tc.want)
		}
	}
	// And through a store: done once sealed and every task final.
	st, ctx := openStore(t, open)
	ng := newGroup("done", "", false)
	if _, _, err := st.CreateTaskGroup(ctx, ng, into(ng, newTask("test.gdone", nil, nil))); err != nil {
		t.Fatal(err)
	}
	task := claimOne(t, st, "w", "test.gdone")
	if readGroup(t, st, ng.ID).Done() {
		t.Fatal("done while open and running")
	}
	end(t, st, task, store.StateCompleted)
	if readGroup(t, st, ng.ID).Done() {
		t.Fatal("done while open")
	}
	if g, err := st.SealTaskGroup(ctx, ng.ID); err != nil || !g.Done() {
		t.Fatalf("sealed: %+v %v", g, err)
	}
}

func testListTaskGroups(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	specs := []struct {
		label, owner string
		sealed       bool
		tasks        int
	}{
		{"g1", "alice", false, 2}, {"g2", "bob", true, 0}, {"g3", "alice", true, 1}, {"g4", "carol", false, 0}, {"g5", "alice", false, 3},
	}
	labels := map[uuid.UUID]string{}
	for _, s := range specs {
		ng := newGroup("group "+s.label, s.owner, s.sealed)
		var nts []store.NewTask
		for range s.tasks {
			nts = append(nts, newTask("test.glist", nil, nil))
		}
		if _, _, err := st.CreateTaskGroup(ctx, ng, into(ng, nts...)); err != nil {
			t.Fatal(err)
		}
		labels[ng.ID] = s.label
		time.Sleep(3 * time.Millisecond) // distinct creation times
	}
	yes, no := true, false
	cases := []struct {
		name  string
		f     store.TaskGroupFilter
		want  string
		total int
	}{
		{"all, newest first", store.TaskGroupFilter{}, "g5 g4 g3 g2 g1", 5},
		{"owner", store.TaskGroupFilter{Owner: "alice"}, "g5 g3 g1", 3},
		{"owner without groups", store.TaskGroupFilter{Owner: "nobody"}, "", 0},
		{"sealed", store.TaskGroupFilter{AllTasksDispatched: &yes}, "g3 g2", 2},
		{"not sealed", store.TaskGroupFilter{AllTasksDispatched: &no}, "g5 g4 g1", 3},
		{"owner and not sealed", store.TaskGroupFilter{Owner: "alice", AllTasksDispatched: &no}, "g5 g1", 2},
		{"owner and sealed", store.TaskGroupFilter{Owner: "bob", AllTasksDispatched: &yes}, "g2", 1},
		{"first page", store.TaskGroupFilter{Limit: 2}, "g5 g4", 5},
		{"second page", store.TaskGroupFilter{Limit: 2, Offset: 2}, "g3 g2", 5},
		{"last page", store.TaskGroupFilter{Limit: 2, Offset: 4}, "g1", 5},
		{"past the end", store.TaskGroupFilter{Limit: 2, Offset: 5}, "", 5},
		{"far past the end", store.TaskGroupFilter{Limit: 2, Offset: 50}, "", 5},
		{"offset only", store.TaskGroupFilter{Offset: 3}, "g2 g1", 5},
		{"exact page", store.TaskGroupFilter{Limit: 5}, "g5 g4 g3 g2 g1", 5},
		{"page of a filter", store.TaskGroupFilter{Owner: "alice", Limit: 1, Offset: 1}, "g3", 3},
		{"page of a filter past its end", store.TaskGroupFilter{Owner: "alice", Limit: 1, Offset: 3}, "", 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			list, total, err := st.ListTaskGroups(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, g := range list {
				got = append(got, labels[g.ID])
				whole := readGroup(t, st, g.ID)
				if g.Tasks != nil || !maps.Equal(g.Counts, whole.Counts) || g.Counts == nil || g.Owner != whole.Owner ||
					g.Description != whole.Description || g.AllTasksDispatched != whole.AllTasksDispatched || !g.CreatedAt.Equal(whole.CreatedAt) {
					t.Fatalf("listed %+v, read %+v", g, whole)
				}
			}
			if strings.Join(got, " ") != tc.want || totalOf(total) != tc.total {
				t.Fatalf("got [%s] total %d, want [%s] total %d", strings.Join(got, " "), totalOf(total), tc.want, tc.total)
			}
		})
	}
	if _, _, err := st.ListTaskGroups(ctx, store.TaskGroupFilter{Limit: -1}); err == nil {
		t.Error("a negative limit was accepted")
	}
	if _, _, err := st.ListTaskGroups(ctx, store.TaskGroupFilter{Offset: -1}); err == nil {
		t.Error("a negative offset was accepted")
	}
}

func testSealTaskGroup(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	ng := newGroup("seal", "alice", false)
	if _, _, err := st.CreateTaskGroup(ctx, ng, into(ng, newTask("test.gseal", nil, nil))); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // sealing again changes nothing
		g, err := st.SealTaskGroup(ctx, ng.ID)
		if err != nil || !g.AllTasksDispatched || g.Counts[store.StateWaiting] != 1 || len(g.Tasks) != 1 || g.Description != "seal" {
			t.Fatalf("seal %d: %+v %v", i, g, err)
		}
		if g := readGroup(t, st, ng.ID); !g.AllTasksDispatched || g.Done() {
			t.Fatalf("after seal %d: %+v", i, g)
		}
	}
	// Sealing does not touch the tasks.
	if task := claimOne(t, st, "w", "test.gseal"); task.TaskGroup == nil || *task.TaskGroup != ng.ID {
		t.Fatalf("task %+v", task)
	}
}

func testTaskGroupNotFound(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	unknown := uuid.Must(uuid.NewV7())
	// A task that names a group nobody created does not make it exist.
	orphan := newTask("test.gnf", nil, nil)
	orphan.TaskGroup = &unknown
	if _, err := st.Dispatch(ctx, []store.NewTask{orphan}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"TaskGroup", func() error { _, err := st.TaskGroup(ctx, unknown); return err }},
		{"SealTaskGroup", func() error { _, err := st.SealTaskGroup(ctx, unknown); return err }},
		{"CancelTaskGroup", func() error { _, err := st.CancelTaskGroup(ctx, unknown); return err }},
		{"DeleteTask", func() error { return st.DeleteTask(ctx, unknown) }},
	} {
		if err := tc.call(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of an unknown id: %v, want ErrNotFound", tc.name, err)
		}
	}
	if task := taskState(t, st, orphan.ID); task.State != store.StateWaiting {
		t.Fatalf("the task naming the unknown group: %+v", task)
	}
}

// testCancelTaskGroup cancels a group with tasks in every state: waiting
// ones end canceled and leave their queues (unblocking tasks behind them,
// in other groups too), running ones become canceling and their worker
// learns it, canceling and final ones are left as they are.
func testCancelTaskGroup(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	changes, err := st.Changes(lctx)
	if err != nil {
		t.Fatal(err)
	}
	const worker = "cg@host"
	if err := st.RegisterWorker(ctx, store.WorkerInfo{Name: worker, Hostname: "host", PID: 1, Concurrency: 4}); err != nil {
		t.Fatal(err)
	}
	outside := newTask("test.cg.outside", ex("cg:a"), nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{outside}); err != nil {
		t.Fatal(err)
	}
	outsideRun := claimOne(t, st, worker, "test.cg.outside")

	ng := newGroup("cancel me", "alice", false)
	nts := into(ng,
		newTask("test.cg.done", nil, nil),
		newTask("test.cg.run", nil, nil),
		newTask("test.cg.canceling", nil, nil),
		newTask("test.cg.blocked", ex("cg:a"), nil),  // waits behind outside
		newTask("test.cg.runnable", ex("cg:b"), nil)) // waits for a worker
	if _, _, err := st.CreateTaskGroup(ctx, ng, nts); err != nil {
		t.Fatal(err)
	}
	done, run, canceling, blocked, runnable := nts[0], nts[1], nts[2], nts[3], nts[4]
	end(t, st, claimOne(t, st, worker, "test.cg.done"), store.StateCompleted)
	runRun := claimOne(t, st, worker, "test.cg.run")
	cancelingRun := claimOne(t, st, worker, "test.cg.canceling")
	if _, err := st.Cancel(ctx, canceling.ID); err != nil {
		t.Fatal(err)
	}
	doneBefore := taskState(t, st, done.ID)
	// Followers in another group: one behind the runnable task, one behind
	// the blocked task and outside.
	fg := newGroup("followers", "bob", false)
	followers := into(fg, newTask("test.cg.follow", ex("cg:b"), nil), newTask("test.cg.follow2", nil, sh("cg:a")))
	if _, _, err := st.CreateTaskGroup(ctx, fg, followers); err != nil {
		t.Fatal(err)
	}
	if b, _ := st.BlockedBy(ctx, followers[0].ID); len(b) != 1 || b[0].Task != runnable.ID {
		t.Fatalf("the follower is blocked by %v", b)
	}

	g, err := st.CancelTaskGroup(ctx, ng.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[store.State]int{store.StateCompleted: 1, store.StateCanceling: 2, store.StateCanceled: 2}
	if !g.AllTasksDispatched || !maps.Equal(g.Counts, want) || !slices.Equal(g.Tasks, newIDs(nts)) || g.Done() {
		t.Fatalf("canceled group %+v, want counts %v", g, want)
	}
	for _, tc := range []struct {
		id    uuid.UUID
		state store.State
	}{{done.ID, store.StateCompleted}, {run.ID, store.StateCanceling}, {canceling.ID, store.StateCanceling},
		{blocked.ID, store.StateCanceled}, {runnable.ID, store.StateCanceled}} {
		task := taskState(t, st, tc.id)
		if task.State != tc.state {
			t.Errorf("%s: %s, want %s", task.Name, task.State, tc.state)
		}
		if (task.FinishedAt != nil) != tc.state.Final() {
			t.Errorf("%s: finished at %v", task.Name, task.FinishedAt)
		}
	}
	if task := taskState(t, st, done.ID); !task.UpdatedAt.Equal(doneBefore.UpdatedAt) || !task.FinishedAt.Equal(*doneBefore.FinishedAt) {
		t.Errorf("the final task was touched: %+v", task)
	}
	awaitChanges(t, changes, "cancel of a group", map[uuid.UUID]store.State{
		run.ID: store.StateCanceling, blocked.ID: store.StateCanceled, runnable.ID: store.StateCanceled})
	// The worker learns it at its heartbeat, if not before.
	reply, err := st.Heartbeat(ctx, worker, []uuid.UUID{runRun.ID, cancelingRun.ID})
	states := reply.States
	if err != nil || states[run.ID] != store.StateCanceling || states[canceling.ID] != store.StateCanceling {
		t.Fatalf("heartbeat: %v %v", states, err)
	}
	// The follower of the canceled task runs; the one also behind outside
	// still waits for it.
	if task := taskState(t, st, followers[0].ID); task.UnblockedAt == nil {
		t.Fatalf("the follower of a canceled task is still blocked: %+v", task)
	}
	claimOne(t, st, worker, "test.cg.follow")
	if b, err := st.BlockedBy(ctx, followers[1].ID); err != nil || len(b) != 1 || b[0].Task != outside.ID {
		t.Fatalf("the second follower is blocked by %v %v, want outside only", b, err)
	}
	if g := readGroup(t, st, fg.ID); g.AllTasksDispatched || g.Counts[store.StateRunning] != 1 || g.Counts[store.StateWaiting] != 1 {
		t.Fatalf("the followers' group was touched: %+v", g)
	}

	// Canceling again changes nothing.
	again, err := st.CancelTaskGroup(ctx, ng.ID)
	if err != nil || !maps.Equal(again.Counts, want) {
		t.Fatalf("second cancel: %+v %v", again, err)
	}
	// The runs end canceled, whatever they report, and the group is done.
	end(t, st, runRun, store.StateCompleted)
	end(t, st, cancelingRun, store.StateFailed)
	g = readGroup(t, st, ng.ID)
	if !g.Done() || !maps.Equal(g.Counts, map[store.State]int{store.StateCompleted: 1, store.StateCanceled: 4}) {
		t.Fatalf("group after the runs ended: %+v", g)
	}
	end(t, st, outsideRun, store.StateCompleted)
	claimOne(t, st, worker, "test.cg.follow2")
	sweepClean(t, st)
}

// testCancelTaskGroupRaces cancels groups while a worker claims and
// finishes their tasks: the cancel never fails because a task moved on,
// and once it returns no task of the group is waiting or running.
func testCancelTaskGroupRaces(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	const name = "test.cgrace"
	stop := make(chan struct{})
	errs := make(chan error, 10)
	var wg sync.WaitGroup
	stopWorkers := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWorkers()
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := st.Claim(ctx, store.ClaimParams{Worker: fmt.Sprintf("w%d", w), Names: []string{name}, Limit: 3})
				if err != nil {
					errs <- err
					return
				}
				if _, err := st.Finish(ctx, completed(got)); err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					time.Sleep(200 * time.Microsecond)
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		ng := newGroup("race", "", false)
		var nts []store.NewTask
		for i := range 30 {
			var exl []string
			if i%3 == 0 {
				exl = ex(fmt.Sprintf("cgr:%d", rng.IntN(4)))
			}
			nts = append(nts, newTask(name, exl, nil))
		}
		if _, _, err := st.CreateTaskGroup(ctx, ng, into(ng, nts...)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		g, err := st.CancelTaskGroup(ctx, ng.ID)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if g.Counts[store.StateWaiting]+g.Counts[store.StateRunning] != 0 || !g.AllTasksDispatched {
			t.Fatalf("round %d: after the cancel: %+v", round, g)
		}
	}
	// Every task ends: the worker finishes the canceling ones.
	waitAllFinal(t, ctx, st, 30*time.Second, errs)
	stopWorkers()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	sweepClean(t, st)
}

func testDeleteTask(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	ng := newGroup("delete", "", false)
	names := []string{"completed", "failed", "dropped", "canceled", "waiting", "running", "canceling"}
	var nts []store.NewTask
	for _, n := range names {
		nts = append(nts, newTask("test.del."+n, nil, nil))
	}
	if _, _, err := st.CreateTaskGroup(ctx, ng, into(ng, nts...)); err != nil {
		t.Fatal(err)
	}
	id := map[string]uuid.UUID{}
	for i, n := range names {
		id[n] = nts[i].ID
	}
	end(t, st, claimOne(t, st, "w", "test.del.completed"), store.StateCompleted)
	end(t, st, claimOne(t, st, "w", "test.del.failed"), store.StateFailed)
	end(t, st, claimOne(t, st, "w", "test.del.dropped"), store.StateDropped)
	if err := cancelWaiting(ctx, st, id["canceled"]); err != nil {
		t.Fatal(err)
	}
	claimOne(t, st, "w", "test.del.running")
	claimOne(t, st, "w", "test.del.canceling")
	if _, err := st.Cancel(ctx, id["canceling"]); err != nil {
		t.Fatal(err)
	}
	unknown := uuid.Must(uuid.NewV7())
	cases := []struct {
		name string
		id   uuid.UUID
		want error
	}{
		{"completed", id["completed"], nil},
		{"failed", id["failed"], nil},
		{"dropped", id["dropped"], nil},
		{"canceled", id["canceled"], nil},
		{"waiting", id["waiting"], store.ErrNotFinal},
		{"running", id["running"], store.ErrNotFinal},
		{"canceling", id["canceling"], store.ErrNotFinal},
		{"unknown", unknown, store.ErrNotFound},
		{"completed, again", id["completed"], store.ErrNotFound},
	}
	for _, tc := range cases {
		if err := st.DeleteTask(ctx, tc.id); !errors.Is(err, tc.want) {
			t.Errorf("delete %s: %v, want %v", tc.name, err, tc.want)
			continue
		}
		_, err := st.Task(ctx, tc.id)
		if gone := errors.Is(err, store.ErrNotFound); gone != (tc.want != store.ErrNotFinal) {
			t.Errorf("after delete %s: Task: %v", tc.name, err)
		}
	}
	g := readGroup(t, st, ng.ID)
	want := map[store.State]int{store.StateWaiting: 1, store.StateRunning: 1, store.StateCanceling: 1}
	if !maps.Equal(g.Counts, want) || !slices.Equal(g.Tasks, []uuid.UUID{id["waiting"], id["running"], id["canceling"]}) {
		t.Fatalf("group after the deletes: %+v", g)
	}
	if got := taskState(t, st, id["canceling"]); got.State != store.StateCanceling {
		t.Fatalf("a refused delete changed the task: %+v", got)
	}
	sweepClean(t, st)
}

// testPurge deletes finished tasks by state and age, oldest first, a
// limited number at a time.
func testPurge(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	// Tasks that finish in label order, at distinct times, then two that
	// are not final.
	order := []struct {
		label string
		state store.State
	}{
		{"c1", store.StateCompleted}, {"f1", store.StateFailed}, {"c2", store.StateCompleted}, {"x1", store.StateCanceled},
		{"c3", store.StateCompleted}, {"d1", store.StateDropped}, {"c4", store.StateCompleted},
	}
	tasks := map[string]*store.Task{}
	for _, o := range order {
		nt := newTask("test.purge."+o.label, nil, nil)
		if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
			t.Fatal(err)
		}
		if o.state == store.StateCanceled {
			if err := cancelWaiting(ctx, st, nt.ID); err != nil {
				t.Fatal(err)
			}
		} else {
			end(t, st, claimOne(t, st, "w", nt.Name), o.state)
		}
		tasks[o.label] = taskState(t, st, nt.ID)
		time.Sleep(3 * time.Millisecond)
	}
	waiting, running := newTask("test.purge.w", nil, nil), newTask("test.purge.r", nil, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{waiting, running}); err != nil {
		t.Fatal(err)
	}
	claimOne(t, st, "w", "test.purge.r")
	tasks["w"], tasks["r"] = taskState(t, st, waiting.ID), taskState(t, st, running.ID)
	for _, o := range order {
		if tasks[o.label].FinishedAt == nil || tasks[o.label].State != o.state {
			t.Fatalf("fixture: %s: %+v", o.label, tasks[o.label])
		}
	}
	future := time.Now().Add(time.Hour)
	remaining := func() string {
		var left []string
		for _, label := range []string{"c1", "f1", "c2", "x1", "c3", "d1", "c4", "w", "r"} {
			_, err := st.Task(ctx, tasks[label].ID)
			if err == nil {
				left = append(left, label)
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
		}
		return strings.Join(left, " ")
	}
	states := func(s ...store.State) []store.State { return s }
	steps := []struct {
		name    string
		p       store.PurgeParams
		wantErr bool
		deleted int
		left    string
	}{
		{"a non-final state", store.PurgeParams{States: states(store.StateWaiting), FinishedBefore: future, Limit: 10}, true, 0, "c1 f1 c2 x1 c3 d1 c4 w r"},
		{"a non-final state among final ones", store.PurgeParams{States: states(store.StateCompleted, store.StateRunning), FinishedBefore: future, Limit: 10}, true, 0, "c1 f1 c2 x1 c3 d1 c4 w r"},
		{"no limit", store.PurgeParams{States: states(store.StateCompleted), FinishedBefore: future}, true, 0, "c1 f1 c2 x1 c3 d1 c4 w r"},
		{"no states", store.PurgeParams{FinishedBefore: future, Limit: 10}, false, 0, "c1 f1 c2 x1 c3 d1 c4 w r"},
		{"the oldest of a state", store.PurgeParams{States: states(store.StateCompleted), FinishedBefore: *tasks["c3"].FinishedAt, Limit: 1}, false, 1, "f1 c2 x1 c3 d1 c4 w r"},
		{"strictly before", store.PurgeParams{States: states(store.StateCompleted), FinishedBefore: *tasks["c3"].FinishedAt, Limit: 10}, false, 1, "f1 x1 c3 d1 c4 w r"},
		{"oldest first across states", store.PurgeParams{States: states(store.StateCanceled, store.StateFailed), FinishedBefore: future, Limit: 1}, false, 1, "x1 c3 d1 c4 w r"},
		{"a state named twice", store.PurgeParams{States: states(store.StateCanceled, store.StateFailed, store.StateCanceled), FinishedBefore: future, Limit: 5}, false, 1, "c3 d1 c4 w r"},
		{"only the states asked", store.PurgeParams{States: states(store.StateSkipped, store.StateFailed), FinishedBefore: future, Limit: 5}, false, 0, "c3 d1 c4 w r"},
		{"the limit across states", store.PurgeParams{States: states(store.StateDropped, store.StateCompleted), FinishedBefore: future, Limit: 2}, false, 2, "c4 w r"},
		{"nothing before the time", store.PurgeParams{States: states(store.StateCompleted), FinishedBefore: *tasks["c4"].FinishedAt, Limit: 5}, false, 0, "c4 w r"},
		{"every final state", store.PurgeParams{States: states(store.StateCompleted, store.StateFailed, store.StateCanceled, store.StateSkipped, store.StateDropped), FinishedBefore: future, Limit: 5}, false, 1, "w r"},
	}
	for _, s := range steps {
		n, err := st.Purge(ctx, s.p)
		if (err != nil) != s.wantErr || n != s.deleted {
			t.Fatalf("%s: deleted %d, %v; want %d, error %v", s.name, n, err, s.deleted, s.wantErr)
		}
		if left := remaining(); left != s.left {
			t.Fatalf("%s: left [%s], want [%s]", s.name, left, s.left)
		}
	}
	if w, r := taskState(t, st, waiting.ID), taskState(t, st, running.ID); w.State != store.StateWaiting || r.State != store.StateRunning {
		t.Fatalf("purge touched incomplete tasks: %s %s", w.State, r.State)
	}

	// A caller loops until a call deletes less than the limit: each call
	// takes the oldest left.
	var batch []store.NewTask
	for range 25 {
		batch = append(batch, newTask("test.purge.many", nil, nil))
	}
	if _, err := st.Dispatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		got, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.purge.many"}, Limit: 5})
		if err != nil || len(got) != 5 {
			t.Fatalf("claim: %d %v", len(got), err)
		}
		var outs []store.Outcome
		for _, g := range got {
			outs = append(outs, store.Outcome{ID: g.ID, Attempt: g.Attempt, State: store.StateCompleted})
		}
		if _, err := st.Finish(ctx, outs); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	finished := map[uuid.UUID]time.Time{}
	for _, nt := range batch {
		finished[nt.ID] = *taskState(t, st, nt.ID).FinishedAt
	}
	p := store.PurgeParams{States: states(store.StateCompleted), FinishedBefore: future, Limit: 10}
	var calls []int
	for {
		before, _, err := st.ListTasks(ctx, store.TaskFilter{Name: "test.purge.many"})
		if err != nil {
			t.Fatal(err)
		}
		n, err := st.Purge(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, n)
		after, _, err := st.ListTasks(ctx, store.TaskFilter{Name: "test.purge.many"})
		if err != nil {
			t.Fatal(err)
		}
		if len(before)-len(after) != n {
			t.Fatalf("purge reported %d, deleted %d", n, len(before)-len(after))
		}
		// Every task deleted finished no later than every task left.
		left := map[uuid.UUID]bool{}
		for _, task := range after {
			left[task.ID] = true
		}
		for _, gone := range before {
			if left[gone.ID] {
				continue
			}
			for _, kept := range after {
				if finished[gone.ID].After(finished[kept.ID]) {
					t.Fatalf("purged a task that finished at %v before one that finished at %v", finished[gone.ID], finished[kept.ID])
				}
			}
		}
		if n < p.Limit {
			break
		}
	}
	if !slices.Equal(calls, []int{10, 10, 5}) {
		t.Fatalf("purge calls deleted %v, want [10 10 5]", calls)
	}
	if n, err := st.Purge(ctx, p); err != nil || n != 0 {
		t.Fatalf("purge of nothing: %d %v", n, err)
	}
	if left := remaining(); left != "w r" {
		t.Fatalf("left [%s]", left)
	}
	sweepClean(t, st)
}

// testSealIsAtomicWithDispatch checks that sealing a group and dispatching
// into it are serialised: a dispatch into a sealed group is refused with
// ErrSealed (a child of an incomplete task of the group excepted), and,
// when both race, every task whose dispatch succeeded is among the tasks
// the seal returned, so none joined the group after the seal.
func testSealIsAtomicWithDispatch(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	const name = "test.sealrace"

	// The rule, one call at a time.
	ng := newGroup("sealed", "alice", false)
	if _, _, err := st.CreateTaskGroup(ctx, ng, into(ng, newTask(name+".parent", nil, nil), newTask(name, nil, nil))); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SealTaskGroup(ctx, ng.ID); err != nil {
		t.Fatal(err)
	}
	late := into(ng, newTask(name, nil, nil))
	if _, err := st.Dispatch(ctx, late); !errors.Is(err, store.ErrSealed) {
		t.Fatalf("dispatch into a sealed group: %v, want ErrSealed", err)
	}
	// One task of a batch naming a sealed group refuses the whole batch.
	batch := append([]store.NewTask{newTask(name, nil, nil)}, into(ng, newTask(name, nil, nil))...)
	if _, err := st.Dispatch(ctx, batch); !errors.Is(err, store.ErrSealed) {
		t.Fatalf("a batch with a task in a sealed group: %v, want ErrSealed", err)
	}
	imm := into(ng, newTask(name, nil, nil))[0]
	if _, err := st.DispatchImmediate(ctx, imm, store.ImmediateParams{Worker: "api@host", Deferred: true}); !errors.Is(err, store.ErrSealed) {
		t.Fatalf("immediate dispatch into a sealed group: %v, want ErrSealed", err)
	}
	for _, nt := range append(append(late, batch...), imm) {
		if _, err := st.Task(ctx, nt.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a refused task %s was stored: %v", nt.ID, err)
		}
	}
	// A running task of the group still dispatches children into it; a
	// child of a task outside the group does not get in.
	parent := claimOne(t, st, "w", name+".parent")
	child := newTask(name+".child", nil, nil)
	child.ParentTask, child.TaskGroup = &parent.ID, &ng.ID
	if _, err := st.Dispatch(ctx, []store.NewTask{child}); err != nil {
		t.Fatalf("a child of a running task of the sealed group: %v", err)
	}
	outsider := newTask(name+".outside", nil, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{outsider}); err != nil {
		t.Fatal(err)
	}
	stray := newTask(name+".child", nil, nil)
	stray.ParentTask, stray.TaskGroup = &outsider.ID, &ng.ID
	if _, err := st.Dispatch(ctx, []store.NewTask{stray}); !errors.Is(err, store.ErrSealed) {
		t.Fatalf("a child of a task outside the sealed group: %v, want ErrSealed", err)
	}
	// Once its parent is final, a child does not get in either: the group
	// may be done.
	end(t, st, parent, store.StateCompleted)
	orphan := newTask(name+".child", nil, nil)
	orphan.ParentTask, orphan.TaskGroup = &parent.ID, &ng.ID
	if _, err := st.Dispatch(ctx, []store.NewTask{orphan}); !errors.Is(err, store.ErrSealed) {
		t.Fatalf("a child of a final task of the sealed group: %v, want ErrSealed", err)
	}
	if g := readGroup(t, st, ng.ID); len(g.Tasks) != 3 {
		t.Fatalf("the sealed group holds %d tasks, want 3: %+v", len(g.Tasks), g)
	}
	// A group created sealed takes its own tasks, and no more.
	sealed := newGroup("created sealed", "", true)
	if _, _, err := st.CreateTaskGroup(ctx, sealed, into(sealed, newTask(name, nil, nil))); err != nil {
		t.Fatalf("a group created sealed with its tasks: %v", err)
	}
	if _, err := st.Dispatch(ctx, into(sealed, newTask(name, nil, nil))); !errors.Is(err, store.ErrSealed) {
		t.Fatalf("dispatch into a group created sealed: %v, want ErrSealed", err)
	}

	// The race: dispatchers and a seal at once, many times.
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 40 {
		ng := newGroup("race", "", false)
		if _, _, err := st.CreateTaskGroup(ctx, ng, nil); err != nil {
			t.Fatal(err)
		}
		var (
			mu       sync.Mutex
			accepted []uuid.UUID
			wg       sync.WaitGroup
			errs     = make(chan error, 8)
		)
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 50 {
					nt := into(ng, newTask(name, ex(fmt.Sprintf("seal:%d", rand.IntN(3))), nil))
					_, err := st.Dispatch(ctx, nt)
					if errors.Is(err, store.ErrSealed) {
						return
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					accepted = append(accepted, nt[0].ID)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		g, err := st.SealTaskGroup(ctx, ng.ID)
		if err != nil {
			t.Fatalf("round %d: seal: %v", round, err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: dispatch: %v", round, err)
		}
		for _, id := range accepted {
			if !slices.Contains(g.Tasks, id) {
				t.Fatalf("round %d: task %s was dispatched into the group after the seal, which returned %d tasks", round, id, len(g.Tasks))
			}
		}
		if after := readGroup(t, st, ng.ID); !slices.Equal(after.Tasks, g.Tasks) || len(g.Tasks) != len(accepted) {
			t.Fatalf("round %d: the group holds %d tasks, the seal returned %d, %d dispatches succeeded", round, len(after.Tasks), len(g.Tasks), len(accepted))
		}
	}
}
