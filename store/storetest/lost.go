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

// lostAfter is the missingAfter of the lost-worker tests; lostSleep is how
// long a worker stays silent in them, well past it.
const (
	lostAfter = 250 * time.Millisecond
	lostSleep = 500 * time.Millisecond
)

func testLostWorkers(t *testing.T, open Opener) {
	t.Run("EndsTheirTasks", func(t *testing.T) { testLostWorkersEnd(t, open) })
	t.Run("ConcurrentCallers", func(t *testing.T) { testLostWorkersConcurrent(t, open) })
}

func register(t *testing.T, st store.Store, name string) {
	t.Helper()
	if err := st.RegisterWorker(ctxFor(t), store.WorkerInfo{Name: name, Hostname: "host", PID: 1, Concurrency: 4}); err != nil {
		t.Fatal(err)
	}
}

// heartbeating heartbeats worker every 20 ms until the returned function is
// called.
func heartbeating(t *testing.T, st store.Store, worker string) (stop func()) {
	ctx, cancel := context.WithCancel(ctxFor(t))
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := st.Heartbeat(ctx, worker, nil); err != nil && ctx.Err() == nil {
				t.Errorf("heartbeat of %s: %v", worker, err)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

func sortedIDs(ids ...uuid.UUID) []uuid.UUID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b uuid.UUID) int { return strings.Compare(string(a[:]), string(b[:])) })
	return out
}

func testLostWorkersEnd(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	lctx, stopChanges := context.WithCancel(ctx)
	defer stopChanges()
	ch, err := st.Changes(lctx)
	if err != nil {
		t.Fatal(err)
	}
	const lost, idle, alive = "1@lost", "2@idle", "3@alive"
	register(t, st, lost)
	register(t, st, idle)
	register(t, st, alive)

	// On the lost worker: a running task, and a canceling one. Behind the
	// running one on its exclusive resource, a waiting task. On the live
	// worker, a running task that must stay so.
	run, cancel, next, other := newTask("test.lost.run", ex("lost-r"), nil), newTask("test.lost.cancel", ex("lost-c"), nil),
		newTask("test.lost.next", ex("lost-r"), nil), newTask("test.lost.other", ex("lost-o"), nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{run, cancel, next, other}); err != nil {
		t.Fatal(err)
	}
	runT, cancelT := claimOne(t, st, lost, "test.lost.run"), claimOne(t, st, lost, "test.lost.cancel")
	otherT := claimOne(t, st, alive, "test.lost.other")
	if _, err := st.Cancel(ctx, cancelT.ID); err != nil {
		t.Fatal(err)
	}
	if got := taskState(t, st, next.ID); got.State != store.StateWaiting || got.UnblockedAt != nil {
		t.Fatalf("task behind the lost run: %s, unblocked at %v", got.State, got.UnblockedAt)
	}

	// Nobody is lost yet.
	if got, err := st.DropLostWorkers(ctx, time.Minute); err != nil || len(got.Workers) != 0 || len(got.Tasks) != 0 {
		t.Fatalf("DropLostWorkers with nobody lost: %+v %v", got, err)
	}

	stop := heartbeating(t, st, alive)
	defer stop()
	time.Sleep(lostSleep)
	got, err := st.DropLostWorkers(ctx, lostAfter)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Workers, []string{lost, idle}) && !slices.Equal(got.Workers, []string{idle, lost}) {
		t.Fatalf("lost workers %v, want %s and %s", got.Workers, lost, idle)
	}
	if want := sortedIDs(runT.ID, cancelT.ID); !slices.Equal(got.Tasks, want) {
		t.Fatalf("dropped tasks %v, want %v in id order", got.Tasks, want)
	}
	awaitChanges(t, ch, "lost worker", map[uuid.UUID]store.State{runT.ID: store.StateDropped, cancelT.ID: store.StateCanceled})

	for _, c := range []struct {
		id    uuid.UUID
		state store.State
		says  string
	}{{runT.ID, store.StateDropped, "dropped"}, {cancelT.ID, store.StateCanceled, "canceled"}} {
		task := taskState(t, st, c.id)
		if task.State != c.state || task.FinishedAt == nil || task.Error == nil || task.Error.Kind != store.WorkerLostKind ||
			!strings.Contains(task.Error.Description, lost) || !strings.Contains(task.Error.Description, c.says) {
			t.Errorf("task of the lost worker: %s, finished at %v, error %+v; want %s", task.State, task.FinishedAt, task.Error, c.state)
		}
	}
	if task := taskState(t, st, otherT.ID); task.State != store.StateRunning {
		t.Errorf("task of the live worker: %s", task.State)
	}

	// The worker list holds the live worker only, and the lost one's
	// heartbeat says it is unknown.
	workers, err := st.Workers(ctx)
	if err != nil || len(workers) != 1 || workers[0].Name != alive {
		t.Fatalf("workers after the drop: %+v %v", workers, err)
	}
	if _, err := st.Heartbeat(ctx, lost, []uuid.UUID{runT.ID}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("heartbeat of a lost worker: %v, want ErrNotFound", err)
	}

	// The task behind the lost run is unblocked and claimable.
	if task := taskState(t, st, next.ID); task.State != store.StateWaiting || task.UnblockedAt == nil {
		t.Fatalf("task behind the lost run: %s, unblocked at %v", task.State, task.UnblockedAt)
	}
	nextT := claimOne(t, st, alive, "test.lost.next")

	// A late outcome, or late outputs, of the lost worker change nothing.
	done, err := st.Finish(ctx, []store.Outcome{{ID: runT.ID, Attempt: runT.Attempt, State: store.StateCompleted},
		{ID: cancelT.ID, Attempt: cancelT.Attempt, State: store.StateCanceled}})
	if err != nil || len(done) != 0 {
		t.Fatalf("late finish of the lost worker: %v %v", done, err)
	}
	if saved, err := st.SaveOutputs(ctx, runT.ID, runT.Attempt, store.Outputs{CreatedResources: []string{"x"}}); err != nil || saved {
		t.Fatalf("late outputs of the lost worker: %v %v", saved, err)
	}
	if task := taskState(t, st, runT.ID); task.State != store.StateDropped || task.Error.Kind != store.WorkerLostKind || len(task.CreatedResources) != 0 {
		t.Fatalf("dropped task after late writes: %s %+v %v", task.State, task.Error, task.CreatedResources)
	}

	// Nothing is left to drop.
	if got, err := st.DropLostWorkers(ctx, lostAfter); err != nil || len(got.Workers) != 0 || len(got.Tasks) != 0 {
		t.Fatalf("second DropLostWorkers: %+v %v", got, err)
	}
	stop()
	end(t, st, nextT, store.StateCompleted)
	end(t, st, otherT, store.StateCompleted)
	sweepClean(t, st)

	// A lost worker that comes back registers again and runs new tasks.
	register(t, st, lost)
	if _, err := st.Heartbeat(ctx, lost, nil); err != nil {
		t.Fatalf("heartbeat after registering again: %v", err)
	}
}

// testLostWorkersConcurrent drops several lost workers from many callers at
// once: each task is ended, and each worker reported, exactly once.
func testLostWorkersConcurrent(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	const workers, perWorker, callers = 4, 5, 8
	var running []uuid.UUID
	var behind []store.NewTask
	var names []string
	// Every worker's runs are dispatched first, then claimed, then the
	// tasks behind them dispatched: the exclusive tasks behind the shared
	// runs on lc-shared would hold up shared runs dispatched after them.
	var dispatched []store.NewTask
	for w := range workers {
		names = append(names, fmt.Sprintf("%d@lost", w))
		register(t, st, names[w])
		for k := range perWorker {
			res := fmt.Sprintf("lc-%d-%d", w, k)
			if k%2 == 0 {
				dispatched = append(dispatched, newTask("test.lostc.run", ex(res), nil))
			} else {
				dispatched = append(dispatched, newTask("test.lostc.run", nil, sh(res, "lc-shared")))
			}
		}
	}
	if _, err := st.Dispatch(ctx, dispatched); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		claimed, err := st.Claim(ctx, store.ClaimParams{Worker: name, Names: []string{"test.lostc.run"}, Limit: perWorker})
		if err != nil || len(claimed) != perWorker {
			t.Fatalf("claim for %s: %d tasks, %v", name, len(claimed), err)
		}
		for i, c := range claimed {
			running = append(running, c.ID)
			if i == 0 {
				if _, err := st.Cancel(ctx, c.ID); err != nil {
					t.Fatal(err)
				}
			}
			// Behind each run, a waiting task on its exclusive resource,
			// or on lc-shared.
			nt := newTask("test.lostc.next", c.ExclusiveResources, nil)
			if len(c.SharedResources) > 0 {
				nt = newTask("test.lostc.next", ex("lc-shared"), nil)
			}
			behind = append(behind, nt)
		}
	}
	if _, err := st.Dispatch(ctx, behind); err != nil {
		t.Fatal(err)
	}
	time.Sleep(lostSleep)

	results := make([]store.LostWorkers, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var err error
			if results[i], err = st.DropLostWorkers(ctx, lostAfter); err != nil {
				t.Errorf("caller %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	taskSeen := map[uuid.UUID]int{}
	workerSeen := map[string]int{}
	for _, r := range results {
		for _, id := range r.Tasks {
			taskSeen[id]++
		}
		for _, w := range r.Workers {
			workerSeen[w]++
		}
	}
	for _, id := range running {
		if taskSeen[id] != 1 {
			t.Errorf("task %s reported by %d callers", id, taskSeen[id])
		}
		if task := taskState(t, st, id); task.State != store.StateDropped && task.State != store.StateCanceled {
			t.Errorf("task %s of a lost worker is %s", id, task.State)
		}
	}
	if len(taskSeen) != len(running) {
		t.Errorf("%d tasks reported, want %d", len(taskSeen), len(running))
	}
	for _, name := range names {
		if workerSeen[name] != 1 {
			t.Errorf("worker %s reported by %d callers", name, workerSeen[name])
		}
	}
	if list, err := st.Workers(ctx); err != nil || len(list) != 0 {
		t.Fatalf("workers left: %+v %v", list, err)
	}
	// Everything that waited behind the lost runs now runs, in turn.
	ran := 0
	for ran < len(behind) {
		claimed, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.lostc.next"}, Limit: 100})
		if err != nil || len(claimed) == 0 {
			t.Fatalf("claim behind the lost runs: %d claimed, %d of %d ran, %v", len(claimed), ran, len(behind), err)
		}
		for _, c := range claimed {
			end(t, st, c, store.StateCompleted)
		}
		ran += len(claimed)
	}
	sweepClean(t, st)
}

// Cancels signals the cancel of a running task, alone or through its
// group, and nothing else: not a dispatch, a claim, a finish, or the cancel
// of a waiting task.
func testCancels(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	ch, err := st.Cancels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Drain a signal that the listener may send when it starts.
	select {
	case <-ch:
	case <-time.After(100 * time.Millisecond):
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case <-ch:
			t.Fatalf("a cancel signal after %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
	signaled := func(what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("no cancel signal after %s", what)
		}
	}
	running, waiting := newTask("test.a", []string{"r"}, nil), newTask("test.a", []string{"r"}, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{running, waiting}); err != nil {
		t.Fatal(err)
	}
	claimed := claimAll(t, st, []string{"test.a"}, 10)
	if len(claimed) != 1 {
		t.Fatalf("claimed %d", len(claimed))
	}
	quiet("a dispatch and a claim")
	if _, err := st.Cancel(ctx, waiting.ID); err != nil {
		t.Fatal(err)
	}
	quiet("canceling a waiting task")
	if _, err := st.Cancel(ctx, running.ID); err != nil {
		t.Fatal(err)
	}
	signaled("canceling a running task")
	if _, err := st.Finish(ctx, []store.Outcome{{ID: running.ID, Attempt: claimed[0].Attempt, State: store.StateCanceled}}); err != nil {
		t.Fatal(err)
	}
	quiet("a finish")

	gid := uuid.Must(uuid.NewV7())
	member := newTask("test.a", nil, nil)
	member.TaskGroup = &gid
	if _, _, err := st.CreateTaskGroup(ctx, store.NewTaskGroup{ID: gid}, []store.NewTask{member}); err != nil {
		t.Fatal(err)
	}
	if got := claimAll(t, st, []string{"test.a"}, 10); len(got) != 1 {
		t.Fatalf("claimed %d of the group", len(got))
	}
	if _, err := st.CancelTaskGroup(ctx, gid); err != nil {
		t.Fatal(err)
	}
	signaled("canceling a group with a running task")
}

// A task running under a worker that is not in the list (it was found lost
// while its claim was in flight, and died) is an orphan: it ends dropped
// once it has run longer than missingAfter, not before, and the task
// behind it runs.
func testOrphanRuns(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	if err := st.RegisterWorker(ctx, store.WorkerInfo{Name: "w1", Concurrency: 1}); err != nil {
		t.Fatal(err)
	}
	orphan, behind := newTask("test.a", []string{"r"}, nil), newTask("test.a", []string{"r"}, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{orphan, behind}); err != nil {
		t.Fatal(err)
	}
	if got := claimAll(t, st, []string{"test.a"}, 10); len(got) != 1 || got[0].ID != orphan.ID {
		t.Fatalf("claimed %v", got)
	}
	started := time.Now()
	if err := st.RemoveWorker(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	const missingAfter = 500 * time.Millisecond
	if lost, err := st.DropLostWorkers(ctx, missingAfter); err != nil || len(lost.Tasks) != 0 {
		t.Fatalf("an orphan that just started was dropped: %+v %v", lost, err)
	}
	time.Sleep(missingAfter - time.Since(started) + 50*time.Millisecond)
	lost, err := st.DropLostWorkers(ctx, missingAfter)
	if err != nil || !slices.Equal(lost.Workers, []string{"w1"}) || !slices.Equal(lost.Tasks, []uuid.UUID{orphan.ID}) {
		t.Fatalf("orphan: %+v %v", lost, err)
	}
	got, err := st.Task(ctx, orphan.ID)
	if err != nil || got.State != store.StateDropped || got.Error == nil || got.Error.Kind != store.WorkerLostKind ||
		!strings.Contains(got.Error.Description, "worker w1 is not in the worker list") {
		t.Fatalf("orphan task: %+v %v", got, err)
	}
	if again, err := st.DropLostWorkers(ctx, missingAfter); err != nil || len(again.Workers)+len(again.Tasks) != 0 {
		t.Fatalf("a second call: %+v %v", again, err)
	}
	if got := claimAll(t, st, []string{"test.a"}, 10); len(got) != 1 || got[0].ID != behind.ID {
		t.Fatalf("the task behind the orphan: %v", got)
	}
}

// testHeartbeatUnknown: a heartbeat returns, beside the states of the
// tasks it names, the tasks running or canceling under the worker's name
// that it does not name (a claim whose answer was lost), with the attempt
// of their claim, oldest first; nothing of other workers, nor final tasks.
func testHeartbeatUnknown(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	register(t, st, "w1")
	register(t, st, "w2")
	var nts []store.NewTask
	for range 4 {
		nts = append(nts, store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.a"})
	}
	if _, err := st.Dispatch(ctx, nts); err != nil {
		t.Fatal(err)
	}
	mine := claimAll(t, st, []string{"test.a"}, 3) // as w1
	other, err := st.Claim(ctx, store.ClaimParams{Worker: "w2", Names: []string{"test.a"}, Limit: 1})
	if err != nil || len(other) != 1 {
		t.Fatalf("claim as w2: %v %v", other, err)
	}
	if _, err := st.Cancel(ctx, mine[2].ID); err != nil {
		t.Fatal(err)
	}

	reply, err := st.Heartbeat(ctx, "w1", []uuid.UUID{mine[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(reply.States) != 1 || reply.States[mine[0].ID] != store.StateRunning {
		t.Errorf("states: %v", reply.States)
	}
	want := []store.HeldTask{
		{ID: mine[1].ID, Attempt: mine[1].Attempt, State: store.StateRunning},
		{ID: mine[2].ID, Attempt: mine[2].Attempt, State: store.StateCanceling},
	}
	if !slices.Equal(reply.Unknown, want) {
		t.Errorf("unknown held tasks: %+v, want %+v", reply.Unknown, want)
	}

	// Ended tasks are held by no one.
	if _, err := st.Finish(ctx, []store.Outcome{{ID: mine[1].ID, Attempt: mine[1].Attempt, State: store.StateCompleted},
		{ID: mine[2].ID, Attempt: mine[2].Attempt, State: store.StateCanceled}}); err != nil {
		t.Fatal(err)
	}
	reply, err = st.Heartbeat(ctx, "w1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []store.HeldTask{{ID: mine[0].ID, Attempt: mine[0].Attempt, State: store.StateRunning}}; !slices.Equal(reply.Unknown, want) {
		t.Errorf("after finishing two: unknown held tasks %+v, want %+v", reply.Unknown, want)
	}
	reply, err = st.Heartbeat(ctx, "w1", []uuid.UUID{mine[0].ID, mine[1].ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(reply.Unknown) != 0 || reply.States[mine[1].ID] != store.StateCompleted {
		t.Errorf("all named: unknown %+v, states %v", reply.Unknown, reply.States)
	}
}
