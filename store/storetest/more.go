package storetest

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

func testDispatchFields(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	parent, group := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	nt := newTask("test.fields", []string{"a", "b"}, []string{"c"})
	nt.Args = json.RawMessage(`{"n": 1}`)
	nt.Owner = "alice"
	nt.Versions = map[string]string{"plugin": "1.2.0"}
	nt.ParentTask, nt.TaskGroup = &parent, &group
	got, err := st.Dispatch(ctx, []store.NewTask{nt})
	if err != nil {
		t.Fatal(err)
	}
	task, err := st.Task(ctx, nt.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range []*store.Task{got[0], task} {
		if tk.ID != nt.ID || tk.Name != "test.fields" || tk.State != store.StateWaiting || tk.Owner != "alice" {
			t.Fatalf("task %+v", tk)
		}
		var args map[string]int
		if err := json.Unmarshal(tk.Args, &args); err != nil || args["n"] != 1 {
			t.Fatalf("args %s: %v", tk.Args, err)
		}
		if !slices.Equal(tk.ExclusiveResources, []string{"a", "b"}) || !slices.Equal(tk.SharedResources, []string{"c"}) {
			t.Fatalf("resources %v %v", tk.ExclusiveResources, tk.SharedResources)
		}
		if tk.Versions["plugin"] != "1.2.0" || *tk.ParentTask != parent || *tk.TaskGroup != group {
			t.Fatalf("versions/parent/group %+v", tk)
		}
		if tk.UnblockedAt == nil || tk.StartedAt != nil || tk.FinishedAt != nil || tk.CreatedAt.IsZero() {
			t.Fatalf("timestamps %+v", tk)
		}
	}
	if _, err := st.Task(ctx, uuid.Must(uuid.NewV7())); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	// A batch keeps its order and all tasks get increasing sequence numbers.
	var batch []store.NewTask
	for range 50 {
		batch = append(batch, newTask("test.fields", nil, []string{"x"}))
	}
	tasks, err := st.Dispatch(ctx, batch)
	if err != nil || len(tasks) != 50 {
		t.Fatal(len(tasks), err)
	}
	for i := range tasks {
		if tasks[i].ID != batch[i].ID || (i > 0 && tasks[i].Seq <= tasks[i-1].Seq) {
			t.Fatalf("batch order broken at %d", i)
		}
	}
}

func claimAll(t *testing.T, st store.Store, names []string, limit int) []*store.Task {
	t.Helper()
	got, err := st.Claim(ctxFor(t), store.ClaimParams{Worker: "w1", Names: names, Limit: limit})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func testClaimOrder(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	var batch []store.NewTask
	for range 10 {
		batch = append(batch, newTask("test.a", nil, nil))
	}
	if _, err := st.Dispatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	first := claimAll(t, st, []string{"test.a"}, 4)
	rest := claimAll(t, st, []string{"test.a"}, 100)
	if len(first) != 4 || len(rest) != 6 {
		t.Fatalf("claimed %d then %d", len(first), len(rest))
	}
	for i, task := range append(first, rest...) {
		if task.ID != batch[i].ID {
			t.Fatalf("claim %d out of order", i)
		}
		if task.State != store.StateRunning || task.Worker != "w1" || task.Attempt != 1 || task.StartedAt == nil {
			t.Fatalf("claimed task %+v", task)
		}
	}
	if again := claimAll(t, st, []string{"test.a"}, 100); len(again) != 0 {
		t.Fatalf("claimed %d running tasks again", len(again))
	}
}

func testClaimNames(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	if _, err := st.Dispatch(ctx, []store.NewTask{newTask("test.a", nil, nil), newTask("test.b", nil, nil)}); err != nil {
		t.Fatal(err)
	}
	got := claimAll(t, st, []string{"test.b", "test.c"}, 10)
	if len(got) != 1 || got[0].Name != "test.b" {
		t.Fatalf("claimed %v", got)
	}
}

func testFencing(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	nt := newTask("test.a", []string{"r"}, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
		t.Fatal(err)
	}
	task := claimAll(t, st, []string{"test.a"}, 1)[0]
	stale := task.Attempt - 1
	if ok, err := st.SaveOutputs(ctx, task.ID, stale, store.Outputs{CreatedResources: []string{"x"}}); err != nil || ok {
		t.Fatalf("stale SaveOutputs: %v %v", ok, err)
	}
	done, err := st.Finish(ctx, []store.Outcome{{ID: task.ID, Attempt: stale, State: store.StateCompleted}})
	if err != nil || len(done) != 0 {
		t.Fatalf("stale finish: %v %v", done, err)
	}
	if got, _ := st.Task(ctx, task.ID); got.State != store.StateRunning || len(got.CreatedResources) != 0 {
		t.Fatalf("stale writes changed the task: %+v", got)
	}
	if ok, err := st.SaveOutputs(ctx, task.ID, task.Attempt, store.Outputs{CreatedResources: []string{"x"}}); err != nil || !ok {
		t.Fatalf("SaveOutputs: %v %v", ok, err)
	}
	done, err = st.Finish(ctx, []store.Outcome{{ID: task.ID, Attempt: task.Attempt, State: store.StateCompleted}})
	if err != nil || len(done) != 1 {
		t.Fatalf("finish: %v %v", done, err)
	}
	// A second finish of the same run changes nothing.
	done, err = st.Finish(ctx, []store.Outcome{{ID: task.ID, Attempt: task.Attempt, State: store.StateFailed}})
	if err != nil || len(done) != 0 {
		t.Fatalf("second finish: %v %v", done, err)
	}
	if got, _ := st.Task(ctx, task.ID); got.State != store.StateCompleted || !slices.Equal(got.CreatedResources, []string{"x"}) {
		t.Fatalf("task after finish: %+v", got)
	}
}

func testFinishOutcome(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	a, b, c := newTask("test.a", nil, nil), newTask("test.a", nil, nil), newTask("test.a", []string{"r"}, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{a, b, c}); err != nil {
		t.Fatal(err)
	}
	tasks := claimAll(t, st, []string{"test.a"}, 3)
	progressTotal := int64(10)
	out := store.Outputs{
		NonFatalErrors:   []store.TaskError{{Kind: "warn", Description: "skipped one"}},
		ProgressReports:  []store.ProgressReport{{Code: "p", Message: "Doing", State: "running", Total: &progressTotal, Done: 3}},
		CreatedResources: []string{"file:1"},
	}
	if ok, err := st.SaveOutputs(ctx, tasks[1].ID, tasks[1].Attempt, out); !ok || err != nil {
		t.Fatal(ok, err)
	}
	// Canceling c before it finishes: whatever it returns, it ends canceled.
	if got, err := st.Cancel(ctx, c.ID); err != nil || got.State != store.StateCanceling {
		t.Fatalf("cancel running: %v %v", got, err)
	}
	if got, err := st.Cancel(ctx, c.ID); err != nil || got.State != store.StateCanceling {
		t.Fatalf("cancel canceling: %v %v", got, err)
	}
	done, err := st.Finish(ctx, []store.Outcome{
		{ID: a.ID, Attempt: tasks[0].Attempt, State: store.StateCompleted, Result: json.RawMessage(`{"ok":true}`)},
		{ID: b.ID, Attempt: tasks[1].Attempt, State: store.StateFailed, Error: &store.TaskError{Kind: "panic", Description: "boom", Traceback: "stack"}},
		{ID: c.ID, Attempt: tasks[2].Attempt, State: store.StateCompleted},
	})
	if err != nil || len(done) != 3 {
		t.Fatalf("finish: %v %v", done, err)
	}
	ga, _ := st.Task(ctx, a.ID)
	gb, _ := st.Task(ctx, b.ID)
	gc, _ := st.Task(ctx, c.ID)
	if ga.State != store.StateCompleted || string(ga.Result) != `{"ok": true}` || ga.FinishedAt == nil || ga.Error != nil {
		t.Fatalf("a: %+v result %s", ga, ga.Result)
	}
	if gb.State != store.StateFailed || gb.Error == nil || gb.Error.Kind != "panic" || gb.Error.Traceback != "stack" || gb.Result != nil {
		t.Fatalf("b: %+v", gb)
	}
	if len(gb.NonFatalErrors) != 1 || gb.ProgressReports[0].Done != 3 || *gb.ProgressReports[0].Total != 10 || gb.CreatedResources[0] != "file:1" {
		t.Fatalf("b outputs: %+v", gb.Outputs)
	}
	if gc.State != store.StateCanceled {
		t.Fatalf("c: %s, want canceled", gc.State)
	}
	if _, err := st.Cancel(ctx, a.ID); !errors.Is(err, store.ErrFinal) {
		t.Fatalf("cancel of a final task: %v", err)
	}
	if _, err := st.Cancel(ctx, uuid.Must(uuid.NewV7())); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cancel of an unknown task: %v", err)
	}
}

func testBlockedBy(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	a := newTask("test.a", []string{"r1"}, nil)
	b := newTask("test.a", nil, []string{"r2"})
	c := newTask("test.a", []string{"r1"}, []string{"r2", "r3"})
	d := newTask("test.a", []string{"r2"}, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{a, b, c, d}); err != nil {
		t.Fatal(err)
	}
	got, err := st.BlockedBy(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != (store.Blocker{Task: a.ID, Resource: "r1"}) {
		t.Fatalf("c blocked by %+v", got)
	}
	got, err = st.BlockedBy(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Blocker{{Task: b.ID, Resource: "r2"}, {Task: c.ID, Resource: "r2"}}
	if !slices.Equal(got, want) {
		t.Fatalf("d blocked by %+v, want %+v", got, want)
	}
	if got, err := st.BlockedBy(ctx, a.ID); err != nil || len(got) != 0 {
		t.Fatalf("a blocked by %+v %v", got, err)
	}
}

func testWorkers(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	w := store.WorkerInfo{Name: "1@host", Hostname: "host", PID: 1, Versions: map[string]string{"core": "1.0.0"}, Concurrency: 4}
	if err := st.RegisterWorker(ctx, w); err != nil {
		t.Fatal(err)
	}
	list, err := st.Workers(ctx)
	if err != nil || len(list) != 1 {
		t.Fatal(list, err)
	}
	if got := list[0]; got.Name != w.Name || got.Hostname != "host" || got.PID != 1 || got.Concurrency != 4 || got.Versions["core"] != "1.0.0" || got.Missing {
		t.Fatalf("worker %+v", got)
	}
	before := list[0].LastHeartbeat
	nt := newTask("test.a", nil, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
		t.Fatal(err)
	}
	task := claimAll(t, st, []string{"test.a"}, 1)[0]
	if _, err := st.Cancel(ctx, task.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	reply, err := st.Heartbeat(ctx, w.Name, []uuid.UUID{task.ID})
	states := reply.States
	if err != nil || states[task.ID] != store.StateCanceling {
		t.Fatalf("heartbeat states %v %v", states, err)
	}
	list, _ = st.Workers(ctx)
	if !list[0].LastHeartbeat.After(before) {
		t.Fatalf("heartbeat did not advance: %v then %v", before, list[0].LastHeartbeat)
	}
	if err := st.RemoveWorker(ctx, w.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Heartbeat(ctx, w.Name, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("heartbeat of a removed worker: %v", err)
	}
}

// testSweepClean runs many random tasks through dispatch, claim, cancel and
// finish from several goroutines at once, checks that conflicting tasks
// never ran together and that every task ends, and that the sweep then
// finds nothing to repair.
func testSweepClean(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	resources := []string{"r0", "r1", "r2", "r3"}
	const dispatchers, perDispatcher = 4, 60
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for d := range dispatchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(d), 7))
			for range perDispatcher {
				var exl, shr []string
				for _, r := range resources {
					switch rng.IntN(4) {
					case 0:
						exl = append(exl, r)
					case 1:
						shr = append(shr, r)
					}
				}
				nt := newTask("test.a", exl, shr)
				if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
					errs <- err
					return
				}
				if rng.IntN(10) == 0 {
					if _, err := st.Cancel(ctx, nt.ID); err != nil && !errors.Is(err, store.ErrFinal) {
						errs <- err
						return
					}
				}
			}
		}()
	}
	// Two claimers run what is runnable, checking that nothing they hold
	// conflicts with what the other holds.
	held := newHeldTasks()
	stop := make(chan struct{})
	var claimers sync.WaitGroup
	for c := range 2 {
		claimers.Add(1)
		go func() {
			defer claimers.Done()
			for {
				got, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.a"}, Limit: 5})
				if err != nil {
					errs <- err
					return
				}
				for _, err := range held.hold(got) {
					errs <- err
				}
				time.Sleep(time.Duration(c+1) * time.Millisecond)
				held.release(got)
				if _, err := st.Finish(ctx, completed(got)); err != nil {
					errs <- err
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
	wg.Wait()
	waitAllFinal(t, ctx, st, 45*time.Second, nil)
	close(stop)
	claimers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	res, err := st.Sweep(ctx)
	if err != nil || res.Total() != 0 {
		t.Fatalf("sweep after the run: %+v %v", res, err)
	}
}

func testWakeups(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	ch, err := st.Wakeups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Drain a wake-up that the listener may send when it starts.
	select {
	case <-ch:
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := st.Dispatch(ctx, []store.NewTask{newTask("test.a", []string{"r"}, nil)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up after dispatching a runnable task")
	}
	// A blocked task wakes nobody at dispatch, but does when it unblocks.
	blocked := newTask("test.a", []string{"r"}, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{blocked}); err != nil {
		t.Fatal(err)
	}
	first := claimAll(t, st, []string{"test.a"}, 10)
	if len(first) != 1 {
		t.Fatalf("claimed %d", len(first))
	}
	select {
	case <-ch:
		t.Fatal("wake-up for a blocked task")
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := st.Finish(ctx, []store.Outcome{{ID: first[0].ID, Attempt: first[0].Attempt, State: store.StateCompleted}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up after unblocking a task")
	}
}

// testDeepQueue checks that a long queue on one resource does not change
// which tasks run elsewhere, and drains in order.
func testDeepQueue(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	var batch []store.NewTask
	head := newTask("test.a", []string{"deep"}, nil)
	batch = append(batch, head)
	for i := range 2000 {
		if i%2 == 0 {
			batch = append(batch, newTask("test.a", []string{"deep"}, nil))
		} else {
			batch = append(batch, newTask("test.a", nil, []string{"deep"}))
		}
	}
	if _, err := st.Dispatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	other := newTask("test.a", []string{"elsewhere"}, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{other}); err != nil {
		t.Fatal(err)
	}
	got := claimAll(t, st, []string{"test.a"}, 100)
	if len(got) != 2 || got[0].ID != head.ID || got[1].ID != other.ID {
		t.Fatalf("claimed %d tasks", len(got))
	}
	// Drain the deep queue: exactly one task of it runs at a time, in order.
	next := 1
	running := got[:1]
	for len(running) > 0 {
		if running[0].ID != batch[next-1].ID {
			t.Fatalf("task %d ran out of order", next-1)
		}
		if _, err := st.Finish(ctx, []store.Outcome{{ID: running[0].ID, Attempt: running[0].Attempt, State: store.StateCompleted}}); err != nil {
			t.Fatal(err)
		}
		running = claimAll(t, st, []string{"test.a"}, 100)
		if len(running) > 1 {
			t.Fatalf("%d tasks of the deep queue ran at once", len(running))
		}
		next++
		if next > 60 {
			break
		}
	}
}
