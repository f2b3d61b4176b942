package storetest

import (
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// totalOf is a list's total for messages and comparisons: -1 for none.
func totalOf(n *int) int {
	if n == nil {
		return -1
	}
	return *n
}

// countedByList counts the tasks per state by listing them: a read of
// the tasks themselves (a list without a limit ends its set, so its total
// is its length), which the maintained counts must agree with.
func countedByList(t *testing.T, st store.Store) map[store.State]int {
	t.Helper()
	tasks, _, err := st.ListTasks(ctxFor(t), store.TaskFilter{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[store.State]int{}
	for _, task := range tasks {
		counts[task.State]++
	}
	return counts
}

// checkCounts compares CountByState with the tasks listed.
func checkCounts(t *testing.T, st store.Store, step string) {
	t.Helper()
	got, err := st.CountByState(ctxFor(t))
	if err != nil {
		t.Fatalf("%s: CountByState: %v", step, err)
	}
	if want := countedByList(t, st); !maps.Equal(got, want) {
		t.Fatalf("%s: CountByState %v, the tasks listed %v", step, got, want)
	}
}

// testCountsFollowTheTasks checks the counts per state, which the engines
// maintain as they write, against the tasks after every kind of write:
// dispatch (waiting and blocked), claim, completion, failure, cancel of a
// waiting and of a running task, immediate runs and skips, group cancel,
// lost workers, deletion and purge.
func testCountsFollowTheTasks(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	checkCounts(t, st, "empty store")

	a, b, c := newTask("test.count.a", ex("count-r"), nil), newTask("test.count.b", ex("count-r"), nil), newTask("test.count.c", nil, sh("count-s"))
	if _, err := st.Dispatch(ctx, []store.NewTask{a, b, c}); err != nil {
		t.Fatal(err)
	}
	single := newTask("test.count.single", nil, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{single}); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, st, "dispatch")

	ta := claimOne(t, st, "w", "test.count.a")
	tc := claimOne(t, st, "w", "test.count.c")
	checkCounts(t, st, "claim")
	end(t, st, ta, store.StateCompleted)
	checkCounts(t, st, "complete")
	tb := claimOne(t, st, "w", "test.count.b")
	end(t, st, tb, store.StateFailed)
	checkCounts(t, st, "fail")

	if err := cancelWaiting(ctx, st, single.ID); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, st, "cancel a waiting task")
	if task, err := st.Cancel(ctx, tc.ID); err != nil || task.State != store.StateCanceling {
		t.Fatalf("cancel of a running task: %+v %v", task, err)
	}
	checkCounts(t, st, "cancel a running task")
	end(t, st, tc, store.StateCompleted) // ends canceled
	checkCounts(t, st, "end a canceling task")

	register(t, st, "imm")
	run, err := st.DispatchImmediate(ctx, newTask("test.count.imm", nil, nil), store.ImmediateParams{Worker: "imm", Deferred: true})
	if err != nil || run.State != store.StateRunning {
		t.Fatalf("immediate: %+v %v", run, err)
	}
	checkCounts(t, st, "immediate run")
	end(t, st, run, store.StateCompleted)
	holder := newTask("test.count.holder", ex("count-busy"), nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{holder}); err != nil {
		t.Fatal(err)
	}
	claimOne(t, st, "w", "test.count.holder")
	skipped, err := st.DispatchImmediate(ctx, newTask("test.count.skip", ex("count-busy"), nil), store.ImmediateParams{Worker: "imm"})
	if err != nil || skipped.State != store.StateSkipped {
		t.Fatalf("immediate skip: %+v %v", skipped, err)
	}
	checkCounts(t, st, "immediate skip")

	g := newGroup("counted", "", false)
	var members []store.NewTask
	for range 3 {
		nt := newTask("test.count.group", ex("count-g"), nil)
		nt.TaskGroup = &g.ID
		members = append(members, nt)
	}
	if _, _, err := st.CreateTaskGroup(ctx, g, members); err != nil {
		t.Fatal(err)
	}
	claimOne(t, st, "w", "test.count.group")
	checkCounts(t, st, "group dispatch")
	if _, err := st.CancelTaskGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, st, "group cancel")

	// A worker that stops heartbeating: its running task ends dropped.
	lost := newTask("test.count.lost", nil, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{lost}); err != nil {
		t.Fatal(err)
	}
	register(t, st, "count-lost")
	claimOne(t, st, "count-lost", "test.count.lost")
	time.Sleep(lostSleep)
	if got, err := st.DropLostWorkers(ctx, lostAfter); err != nil || len(got.Tasks) == 0 {
		t.Fatalf("DropLostWorkers: %+v %v", got, err)
	}
	checkCounts(t, st, "lost worker")

	if err := st.DeleteTask(ctx, ta.ID); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, st, "delete")
	n, err := st.Purge(ctx, store.PurgeParams{FinishedBefore: time.Now().Add(time.Hour),
		States: []store.State{store.StateCompleted, store.StateCanceled, store.StateFailed, store.StateSkipped, store.StateDropped}, Limit: 100})
	if err != nil || n == 0 {
		t.Fatalf("purge: %d %v", n, err)
	}
	checkCounts(t, st, "purge")
}

// testCountsUnderConcurrentWrites dispatches, claims and finishes from
// several goroutines at once (each engine's connections, on PostgreSQL
// several backends writing the counts at once) and checks the counts
// against the tasks at the end.
func testCountsUnderConcurrentWrites(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	const writers, rounds = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("test.count.conc%d", w)
			for r := range rounds {
				batch := []store.NewTask{newTask(name, nil, nil), newTask(name, ex(fmt.Sprintf("conc-%d", r%3)), nil)}
				if _, err := st.Dispatch(ctx, batch); err != nil {
					errs <- err
					return
				}
				got, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{name}, Limit: 1})
				if err != nil {
					errs <- err
					return
				}
				state := store.StateCompleted
				if r%4 == 0 {
					state = store.StateFailed
				}
				for _, task := range got {
					if _, err := st.Finish(ctx, []store.Outcome{{ID: task.ID, Attempt: task.Attempt, State: state}}); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkCounts(t, st, "concurrent writes")
}

// testListTotals checks when ListTasks reports a total: exact from the
// maintained counts when the filter is by state alone or empty, exact
// from a bounded count when at most store.CountBound tasks match, and
// none beyond that. It dispatches store.CountBound+100 tasks.
func testListTotals(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	const extra = 100
	many := store.CountBound + extra
	for dispatched := 0; dispatched < many; {
		batch := make([]store.NewTask, 0, 1000)
		for len(batch) < 1000 && dispatched < many {
			name := "test.total.many"
			if dispatched%1000 < 3 {
				name = "test.total.few" // 3 of each 1,000
			}
			batch = append(batch, newTask(name, nil, nil))
			dispatched++
		}
		if _, err := st.Dispatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	few := 3 * ((many + 999) / 1000)
	got, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.total.few"}, Limit: 5})
	if err != nil || len(got) != 5 {
		t.Fatalf("claim: %d %v", len(got), err)
	}
	if _, err := st.Finish(ctx, completed(got[:2])); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    store.TaskFilter
		want int // -1: no total
	}{
		{"no filter", store.TaskFilter{}, many},
		{"no filter, newest first", store.TaskFilter{Ordering: store.OrderCreatedDesc}, many},
		{"one state", store.TaskFilter{States: []store.State{store.StateWaiting}}, many - 5},
		{"states", store.TaskFilter{States: []store.State{store.StateRunning, store.StateCompleted, store.StateRunning}}, 5},
		{"a state with none", store.TaskFilter{States: []store.State{store.StateDropped}}, 0},
		{"past the end", store.TaskFilter{States: []store.State{store.StateRunning}, Offset: 10}, 3},
		{"few match", store.TaskFilter{Name: "test.total.few"}, few},
		{"few match, by state too", store.TaskFilter{Name: "test.total.few", States: []store.State{store.StateWaiting}}, few - 5},
		{"more than the bound match", store.TaskFilter{Name: "test.total.many"}, -1},
		{"more than the bound match, by state too", store.TaskFilter{NameContains: "total", States: []store.State{store.StateWaiting}}, -1},
		{"none match", store.TaskFilter{Name: "test.total.none"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			if f.Limit == 0 {
				f.Limit = 3
			}
			tasks, total, err := st.ListTasks(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if totalOf(total) != tc.want {
				t.Fatalf("total %d, want %d", totalOf(total), tc.want)
			}
			wantLen := min(f.Limit, max(0, tc.want-f.Offset))
			if tc.want < 0 {
				wantLen = f.Limit
			}
			if len(tasks) != wantLen {
				t.Fatalf("%d tasks, want %d", len(tasks), wantLen)
			}
		})
	}
	// A page of the newest tasks comes from the index in that order.
	newest, _, err := st.ListTasks(ctx, store.TaskFilter{Ordering: store.OrderCreatedDesc, Limit: 2})
	if err != nil || len(newest) != 2 || newest[0].Seq < newest[1].Seq {
		t.Fatalf("newest: %v", err)
	}
	// A task listed by id has the state the counts say.
	if tasks, total, err := st.ListTasks(ctx, store.TaskFilter{IDs: []uuid.UUID{got[0].ID}, Limit: 1}); err != nil || len(tasks) != 1 ||
		tasks[0].State != store.StateCompleted || totalOf(total) != 1 {
		t.Fatalf("by id: %v %d %v", tasks, totalOf(total), err)
	}
}
