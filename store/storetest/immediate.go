package storetest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/stint-dev/stint/store"
)

// immediateWorker is the name immediate runs are claimed under in these
// tests: the worker of an API process.
const immediateWorker = "api@host"

func testDispatchImmediate(t *testing.T, open Opener) {
	t.Run("FreeResourcesRunAtOnce", func(t *testing.T) { testImmediateRuns(t, open) })
	t.Run("BusyDeferredWaits", func(t *testing.T) { testImmediateDeferred(t, open) })
	t.Run("BusyNotDeferredIsSkipped", func(t *testing.T) { testImmediateSkipped(t, open) })
	t.Run("ConcurrentOnOneResource", func(t *testing.T) { testImmediateConcurrent(t, open) })
	t.Run("Versions", func(t *testing.T) { testImmediateVersions(t, open) })
}

// claimNames claims, as worker "w", what runs now among tasks of names.
func claimNames(t *testing.T, st store.Store, names ...string) []*store.Task {
	t.Helper()
	got, err := st.Claim(ctxFor(t), store.ClaimParams{Worker: "w", Names: names, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func finishTask(t *testing.T, st store.Store, task *store.Task, state store.State) {
	t.Helper()
	done, err := st.Finish(ctxFor(t), []store.Outcome{{ID: task.ID, Attempt: task.Attempt, State: state, Result: json.RawMessage(`"ok"`)}})
	if err != nil || len(done) != 1 {
		t.Fatalf("finish %s: %v %v", task.ID, done, err)
	}
}

func testImmediateRuns(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	changes, err := st.Changes(lctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, nt := range []store.NewTask{
		newTask("test.imm", []string{"r"}, []string{"s"}),
		newTask("test.imm", nil, []string{"s"}), // beside the first: both shared on s
		newTask("test.imm", nil, nil),
	} {
		nt.Owner = "alice"
		got, err := st.DispatchImmediate(ctx, nt, store.ImmediateParams{Worker: immediateWorker})
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != nt.ID || got.State != store.StateRunning || got.Worker != immediateWorker || got.Attempt < 1 ||
			got.StartedAt == nil || got.UnblockedAt == nil || got.FinishedAt != nil || got.Owner != "alice" {
			t.Fatalf("immediate dispatch on free resources: %+v", got)
		}
		awaitChange(t, changes, "immediate run", nt.ID, store.StateRunning)
		stored, err := st.Task(ctx, nt.ID)
		if err != nil || stored.State != store.StateRunning || stored.Attempt != got.Attempt {
			t.Fatalf("stored task %+v %v", stored, err)
		}
		// A worker does not claim it again.
		if again := claimNames(t, st, "test.imm"); len(again) != 0 {
			t.Fatalf("a worker claimed the immediate task: %v", idsOf(again))
		}
	}
	// The first holds r: a task on r waits for it, and runs once it ends.
	behind := newTask("test.imm.behind", []string{"r"}, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{behind}); err != nil {
		t.Fatal(err)
	}
	if got := claimNames(t, st, "test.imm.behind"); len(got) != 0 {
		t.Fatal("a task ran beside an immediate task holding its resource")
	}
	running, _, err := st.ListTasks(ctx, store.TaskFilter{Name: "test.imm"})
	if err != nil || len(running) != 3 {
		t.Fatalf("list: %d %v", len(running), err)
	}
	for _, r := range running {
		finishTask(t, st, r, store.StateCompleted)
		got, err := st.Task(ctx, r.ID)
		if err != nil || got.State != store.StateCompleted || got.FinishedAt == nil || string(got.Result) != `"ok"` {
			t.Fatalf("finished immediate task %+v %v", got, err)
		}
	}
	b := claimNames(t, st, "test.imm.behind")
	if len(b) != 1 || b[0].ID != behind.ID {
		t.Fatalf("the task behind the immediate one: claimed %v", idsOf(b))
	}
	finishTask(t, st, b[0], store.StateCompleted)
	sweepClean(t, st)
}

// blockOn dispatches and claims a task holding resources exclusively.
func blockOn(t *testing.T, st store.Store, name string, exclusive ...string) *store.Task {
	t.Helper()
	nt := newTask(name, exclusive, nil)
	if _, err := st.Dispatch(ctxFor(t), []store.NewTask{nt}); err != nil {
		t.Fatal(err)
	}
	got := claimNames(t, st, name)
	if len(got) != 1 || got[0].ID != nt.ID {
		t.Fatalf("blocker: claimed %v", idsOf(got))
	}
	return got[0]
}

func testImmediateDeferred(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	blocker := blockOn(t, st, "test.blocker", "r")
	for _, res := range []struct{ ex, sh []string }{{[]string{"r"}, nil}, {nil, []string{"r"}}} {
		nt := newTask("test.imm", res.ex, res.sh)
		got, err := st.DispatchImmediate(ctx, nt, store.ImmediateParams{Worker: immediateWorker, Deferred: true})
		if err != nil {
			t.Fatal(err)
		}
		if got.State != store.StateWaiting || got.Worker != "" || got.Attempt != 0 || got.StartedAt != nil ||
			got.UnblockedAt != nil || got.FinishedAt != nil {
			t.Fatalf("deferred immediate dispatch on a busy resource: %+v", got)
		}
		// Queued like any task: behind the blocker (and the second behind
		// the first as well).
		blockers, err := st.BlockedBy(ctx, nt.ID)
		if err != nil || len(blockers) == 0 || blockers[0].Task != blocker.ID || blockers[0].Resource != "r" {
			t.Fatalf("blocked by %+v %v", blockers, err)
		}
	}
	if got := claimNames(t, st, "test.imm"); len(got) != 0 {
		t.Fatalf("claimed %v while the blocker runs", idsOf(got))
	}
	// It runs later, through a normal claim, in dispatch order.
	finishTask(t, st, blocker, store.StateCompleted)
	first := claimNames(t, st, "test.imm")
	if len(first) != 1 || first[0].ExclusiveResources[0] != "r" {
		t.Fatalf("after the blocker: claimed %v", idsOf(first))
	}
	finishTask(t, st, first[0], store.StateCompleted)
	second := claimNames(t, st, "test.imm")
	if len(second) != 1 || second[0].SharedResources[0] != "r" {
		t.Fatalf("after the first: claimed %v", idsOf(second))
	}
	finishTask(t, st, second[0], store.StateCompleted)
	sweepClean(t, st)
}

func testImmediateSkipped(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	changes, err := st.Changes(lctx)
	if err != nil {
		t.Fatal(err)
	}
	blocker := blockOn(t, st, "test.blocker", "r")
	// Busy on r, free on s: it is skipped, and leaves s's queue too.
	nt := newTask("test.imm", []string{"r", "s"}, nil)
	got, err := st.DispatchImmediate(ctx, nt, store.ImmediateParams{Worker: immediateWorker, Deferred: false})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.StateSkipped || got.FinishedAt == nil || got.StartedAt != nil || got.Worker != "" || got.Attempt != 0 {
		t.Fatalf("immediate dispatch on a busy resource, not deferred: %+v", got)
	}
	awaitChange(t, changes, "skip", nt.ID, store.StateSkipped)
	if stored, err := st.Task(ctx, nt.ID); err != nil || stored.State != store.StateSkipped {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	if _, err := st.Cancel(ctx, nt.ID); err == nil {
		t.Fatal("a skipped task could be canceled")
	}
	// Nothing behind it waits for it: a task on s runs at once, and one on
	// r waits for the blocker only.
	onS, onR := newTask("test.after", []string{"s"}, nil), newTask("test.after", []string{"r"}, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{onS, onR}); err != nil {
		t.Fatal(err)
	}
	blockers, err := st.BlockedBy(ctx, onR.ID)
	if err != nil || len(blockers) != 1 || blockers[0].Task != blocker.ID {
		t.Fatalf("the task on r is blocked by %+v %v, want the blocker only", blockers, err)
	}
	got1 := claimNames(t, st, "test.after")
	if len(got1) != 1 || got1[0].ID != onS.ID {
		t.Fatalf("after a skip: claimed %v, want the task on s", idsOf(got1))
	}
	finishTask(t, st, blocker, store.StateCompleted)
	got2 := claimNames(t, st, "test.after")
	if len(got2) != 1 || got2[0].ID != onR.ID {
		t.Fatalf("after the blocker: claimed %v, want the task on r", idsOf(got2))
	}
	finishTask(t, st, got1[0], store.StateCompleted)
	finishTask(t, st, got2[0], store.StateCompleted)
	sweepClean(t, st)
}

// testImmediateConcurrent dispatches immediate tasks on one exclusive
// resource from many goroutines at once: exactly one of each round runs,
// the deferred others wait and the rest are skipped, and the waiting ones
// then run one at a time.
func testImmediateConcurrent(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	const rounds, n = 5, 8
	for round := range rounds {
		results := make([]*store.Task, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				nt := newTask("test.hot", []string{"hot"}, nil)
				got, err := st.DispatchImmediate(ctx, nt, store.ImmediateParams{Worker: immediateWorker, Deferred: i%2 == 0})
				if err != nil {
					t.Error(err)
					return
				}
				results[i] = got
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		var running []*store.Task
		waiting := 0
		for i, r := range results {
			switch {
			case r.State == store.StateRunning:
				running = append(running, r)
			case r.State == store.StateWaiting && i%2 == 0:
				waiting++
			case r.State == store.StateSkipped && i%2 == 1:
			default:
				t.Fatalf("round %d: task %d (deferred %v) is %s", round, i, i%2 == 0, r.State)
			}
		}
		if len(running) != 1 {
			t.Fatalf("round %d: %d immediate tasks run on one exclusive resource at once", round, len(running))
		}
		finishTask(t, st, running[0], store.StateCompleted)
		for waiting > 0 {
			got := claimNames(t, st, "test.hot")
			if len(got) != 1 {
				t.Fatalf("round %d: claimed %d tasks on one exclusive resource", round, len(got))
			}
			finishTask(t, st, got[0], store.StateCompleted)
			waiting--
		}
		if got := claimNames(t, st, "test.hot"); len(got) != 0 {
			t.Fatalf("round %d: %d tasks left", round, len(got))
		}
	}
	sweepClean(t, st)
}

// testImmediateVersions: the inline runner is a worker like any other, so
// a task whose requirement its registered versions do not meet is not run
// inline.
func testImmediateVersions(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	register := func(version string) {
		t.Helper()
		if err := st.RegisterWorker(ctx, store.WorkerInfo{Name: immediateWorker, Hostname: "host", PID: 1,
			Versions: map[string]string{"myplugin": version}, Concurrency: 1}); err != nil {
			t.Fatal(err)
		}
	}
	immediate := func(deferred bool) *store.Task {
		t.Helper()
		nt := newTask("test.imm", nil, nil)
		nt.Versions = map[string]string{"myplugin": "2.0"}
		got, err := st.DispatchImmediate(ctx, nt, store.ImmediateParams{Worker: immediateWorker, Deferred: deferred})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// Not registered: it provides nothing.
	if got := immediate(false); got.State != store.StateSkipped {
		t.Fatalf("unregistered inline worker: %s", got.State)
	}
	register("1.9")
	if got := immediate(false); got.State != store.StateSkipped {
		t.Fatalf("inline worker with myplugin 1.9: %s", got.State)
	}
	waiting := immediate(true)
	if waiting.State != store.StateWaiting || waiting.UnblockedAt == nil {
		t.Fatalf("deferred, inline worker with myplugin 1.9: %+v", waiting)
	}
	register("2.1")
	got := immediate(false)
	if got.State != store.StateRunning {
		t.Fatalf("inline worker with myplugin 2.1: %s", got.State)
	}
	finishTask(t, st, got, store.StateCompleted)
	// The deferred one is left to workers that satisfy it.
	claimed, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.imm"}, Limit: 10,
		Versions: map[string]string{"myplugin": "2.0.0"}})
	if err != nil || len(claimed) != 1 || claimed[0].ID != waiting.ID {
		t.Fatalf("claim of the deferred task: %v %v", idsOf(claimed), err)
	}
	finishTask(t, st, claimed[0], store.StateCompleted)
}
