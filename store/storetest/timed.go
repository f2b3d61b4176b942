package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// Tasks in time: scheduled tasks, retries and unique keys.
//
// Times are compared by the store's clock wherever the store says what its
// clock read (the task's CreatedAt, UpdatedAt, an attempt's FinishedAt):
// lower bounds are strict (nothing is ever enqueued before its time), upper
// bounds generous (the suite runs on slow machines, under the race
// detector).

// earlyMargin is how much earlier than a task's time the test's clock must
// read for the test to expect the task not to be due yet: the store's clock
// may be a little ahead of the test's.
const earlyMargin = 50 * time.Millisecond

// dueWait bounds how long after its time a scheduled task may take to be
// enqueued by repeated calls of EnqueueDue.
const dueWait = 10 * time.Second

func after(d time.Duration) *time.Time {
	t := time.Now().Add(d)
	return &t
}

// sameTime reports whether a and b are both nil or the same time at the
// engines' precision (microseconds).
func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	d := a.Sub(*b)
	return d < time.Microsecond && d > -time.Microsecond
}

func enqueueDue(t *testing.T, st store.Store, limit int) store.DueTasks {
	t.Helper()
	res, err := st.EnqueueDue(ctxFor(t), limit)
	if err != nil {
		t.Fatalf("EnqueueDue(%d): %v", limit, err)
	}
	return res
}

// awaitDue takes a scheduled task to waiting: before its time (with a
// margin), EnqueueDue must not enqueue it and must say that a task is due
// later, at most as long from now as the task was scheduled for; from its
// time on, EnqueueDue is called until the task is waiting, and the task
// must have become waiting (UpdatedAt, by the store's clock) at its time
// or after. It returns the task as it is then.
func awaitDue(t *testing.T, st store.Store, id uuid.UUID) *store.Task {
	t.Helper()
	task := taskState(t, st, id)
	if task.State != store.StateScheduled || task.ScheduledAt == nil {
		t.Fatalf("task %s is %s, scheduled at %v; want scheduled", id, task.State, task.ScheduledAt)
	}
	due, scheduled := *task.ScheduledAt, task.UpdatedAt
	res := enqueueDue(t, st, 100)
	if time.Now().Before(due.Add(-earlyMargin)) {
		// The call ended well before the task's time.
		if res.Enqueued != 0 {
			t.Fatalf("EnqueueDue before the task's time (%v) enqueued %d", due, res.Enqueued)
		}
		if res.NextIn <= 0 || res.NextIn > due.Sub(scheduled) {
			t.Fatalf("EnqueueDue before the task's time: next in %v, want in (0, %v]", res.NextIn, due.Sub(scheduled))
		}
		if task := taskState(t, st, id); task.State != store.StateScheduled {
			t.Fatalf("task %s is %s before its time", id, task.State)
		}
	}
	deadline := time.Now().Add(time.Until(due) + dueWait)
	for {
		task = taskState(t, st, id)
		if task.State != store.StateScheduled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s, due at %v, still scheduled %v after", id, due, dueWait)
		}
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		} else {
			time.Sleep(5 * time.Millisecond)
		}
		enqueueDue(t, st, 100)
	}
	if task.State != store.StateWaiting {
		t.Fatalf("task %s, due, is %s; want waiting", id, task.State)
	}
	if task.UpdatedAt.Before(due) {
		t.Fatalf("task %s became waiting at %v, before its time %v", id, task.UpdatedAt, due)
	}
	if !sameTime(task.ScheduledAt, &due) {
		t.Fatalf("task %s: scheduled at %v once waiting, was %v", id, task.ScheduledAt, due)
	}
	return task
}

// noClaim checks that nothing of names is claimable.
func noClaim(t *testing.T, st store.Store, what string, names ...string) {
	t.Helper()
	if got := claimAll(t, st, names, 100); len(got) != 0 {
		t.Fatalf("%s: claimed %d tasks (first %s, %s), want none", what, len(got), got[0].ID, got[0].State)
	}
}

func stateCount(t *testing.T, st store.Store, state store.State) int {
	t.Helper()
	counts, err := st.CountByState(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	return counts[state]
}

// testScheduledRunsAfterItsTime: a task scheduled a second ahead is
// scheduled: it holds no place in its queue (a conflicting task dispatched
// after it runs at once) and is not enqueued before its time; then it
// queues at the back, behind the running conflicting task.
func testScheduledRunsAfterItsTime(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	changes, err := st.Changes(lctx)
	if err != nil {
		t.Fatal(err)
	}
	if res := enqueueDue(t, st, 10); res.Enqueued != 0 || res.NextIn >= 0 {
		t.Fatalf("EnqueueDue of an empty store: %+v, want nothing enqueued and a negative NextIn", res)
	}
	a := newTask("test.timed", ex("r"), nil)
	a.ScheduledAt = after(time.Second)
	got, err := st.Dispatch(ctx, []store.NewTask{a})
	if err != nil {
		t.Fatal(err)
	}
	if g := got[0]; g.ID != a.ID || g.State != store.StateScheduled || g.UnblockedAt != nil || g.Deduplicated ||
		!sameTime(g.ScheduledAt, a.ScheduledAt) || !g.ScheduledAt.After(g.CreatedAt) {
		t.Fatalf("dispatched: %s, unblocked at %v, scheduled at %v (asked %v), created at %v",
			g.State, g.UnblockedAt, g.ScheduledAt, a.ScheduledAt, g.CreatedAt)
	}
	stored := taskState(t, st, a.ID)
	if stored.State != store.StateScheduled || !sameTime(stored.ScheduledAt, a.ScheduledAt) || stored.UnblockedAt != nil ||
		stored.StartedAt != nil || stored.FinishedAt != nil || stored.Seq != got[0].Seq {
		t.Fatalf("stored: %+v", stored)
	}
	if !slices.Equal(stored.ExclusiveResources, []string{"r"}) {
		t.Fatalf("stored resources %v", stored.ExclusiveResources)
	}
	if blockers, err := st.BlockedBy(ctx, a.ID); err != nil || len(blockers) != 0 {
		t.Fatalf("a scheduled task is blocked by %v %v", blockers, err)
	}
	awaitChange(t, changes, "scheduled dispatch", a.ID, store.StateScheduled)
	// A scheduled task has no queue entries: nothing for the sweep.
	sweepClean(t, st)
	if got := taskState(t, st, a.ID); got.State != store.StateScheduled {
		t.Fatalf("after a sweep: %s", got.State)
	}
	if n := stateCount(t, st, store.StateScheduled); n != 1 {
		t.Fatalf("CountByState: %d scheduled, want 1", n)
	}
	checkCounts(t, st, "after a scheduled dispatch")
	if tasks, total, err := st.ListTasks(ctx, store.TaskFilter{States: []store.State{store.StateScheduled}}); err != nil ||
		len(tasks) != 1 || tasks[0].ID != a.ID || totalOf(total) != 1 {
		t.Fatalf("list of scheduled tasks: %d tasks, total %d, %v", len(tasks), totalOf(total), err)
	}

	// A conflicting task dispatched after it runs at once.
	b := newTask("test.timed", ex("r"), nil)
	got, err = st.Dispatch(ctx, []store.NewTask{b})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].State != store.StateWaiting || got[0].UnblockedAt == nil || got[0].ScheduledAt != nil {
		t.Fatalf("task after the scheduled one: %s, unblocked at %v, scheduled at %v", got[0].State, got[0].UnblockedAt, got[0].ScheduledAt)
	}
	runB := claimOne(t, st, "w", "test.timed")
	if runB.ID != b.ID {
		t.Fatalf("claimed %s, want the unscheduled task", runB.ID)
	}
	noClaim(t, st, "while b runs, before a's time", "test.timed")

	waiting := awaitDue(t, st, a.ID)
	if waiting.UnblockedAt != nil || waiting.Seq <= runB.Seq {
		t.Fatalf("due task: unblocked at %v, seq %d (b's %d); want queued behind b", waiting.UnblockedAt, waiting.Seq, runB.Seq)
	}
	if blockers, err := st.BlockedBy(ctx, a.ID); err != nil || !slices.Equal(blockers, []store.Blocker{{Task: b.ID, Resource: "r"}}) {
		t.Fatalf("due task blocked by %v %v, want b on r", blockers, err)
	}
	awaitChange(t, changes, "due", a.ID, store.StateWaiting)
	if res := enqueueDue(t, st, 10); res.Enqueued != 0 || res.NextIn >= 0 {
		t.Fatalf("EnqueueDue with nothing scheduled: %+v", res)
	}
	checkCounts(t, st, "after the task became due")
	noClaim(t, st, "while b runs, a due", "test.timed")
	end(t, st, runB, store.StateCompleted)
	runA := claimOne(t, st, "w", "test.timed")
	if runA.ID != a.ID || !sameTime(runA.ScheduledAt, a.ScheduledAt) || runA.StartedAt.Before(*a.ScheduledAt) {
		t.Fatalf("claimed %s scheduled at %v started at %v", runA.ID, runA.ScheduledAt, runA.StartedAt)
	}
	end(t, st, runA, store.StateCompleted)
	if done := taskState(t, st, a.ID); done.State != store.StateCompleted || !sameTime(done.ScheduledAt, a.ScheduledAt) {
		t.Fatalf("the task at the end: %s scheduled at %v", done.State, done.ScheduledAt)
	}
	checkCounts(t, st, "at the end")
	sweepClean(t, st)
}

// testScheduledInDueOrder: tasks scheduled on one resource become waiting
// in the order of their times, not of their dispatch, behind a task
// dispatched normally before they were due; EnqueueDue takes the oldest
// due first, up to its limit, and says when more are due at once.
func testScheduledInDueOrder(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	base := time.Now()
	var tasks []store.NewTask
	for _, d := range []time.Duration{300, 100, 200} {
		nt := newTask("test.order", ex("r"), nil)
		at := base.Add(d * time.Millisecond)
		nt.ScheduledAt = &at
		tasks = append(tasks, nt)
		if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
			t.Fatal(err)
		}
	}
	late, early, middle := tasks[0], tasks[1], tasks[2]
	normal := newTask("test.order", ex("r"), nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{normal}); err != nil {
		t.Fatal(err)
	}
	if n := stateCount(t, st, store.StateScheduled); n != 3 && time.Now().Before(base.Add(100*time.Millisecond-earlyMargin)) {
		t.Fatalf("%d scheduled, want 3", n)
	}
	// Past all their times: the first call, of limit 1, takes the earliest
	// and says more are due now; the next takes the other two.
	time.Sleep(time.Until(base.Add(300*time.Millisecond)) + 20*time.Millisecond)
	deadline := time.Now().Add(dueWait)
	for {
		lastDue := taskState(t, st, late.ID)
		if !time.Now().Before(lastDue.ScheduledAt.Add(earlyMargin)) {
			// Even the store's clock is past the last one's time, for
			// every engine whose clock is within the margin of ours.
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the test's clock does not advance")
		}
		time.Sleep(10 * time.Millisecond)
	}
	first := enqueueDue(t, st, 1)
	if first.Enqueued != 1 || first.NextIn != 0 {
		t.Fatalf("EnqueueDue(1) with three due: %+v, want 1 enqueued and NextIn 0 (more due at once)", first)
	}
	if got := taskState(t, st, early.ID); got.State != store.StateWaiting {
		t.Fatalf("EnqueueDue(1) did not take the earliest due: it is %s", got.State)
	}
	rest := enqueueDue(t, st, 10)
	if rest.Enqueued != 2 || rest.NextIn >= 0 {
		t.Fatalf("EnqueueDue(10) with two due: %+v, want 2 enqueued and a negative NextIn", rest)
	}
	var seqs []int64
	for _, nt := range []store.NewTask{normal, early, middle, late} {
		got := taskState(t, st, nt.ID)
		if got.State != store.StateWaiting || (nt.ID != normal.ID && got.UpdatedAt.Before(*got.ScheduledAt)) {
			t.Fatalf("task %s: %s, updated at %v, scheduled at %v", nt.ID, got.State, got.UpdatedAt, got.ScheduledAt)
		}
		seqs = append(seqs, got.Seq)
	}
	if !slices.IsSorted(seqs) {
		t.Fatalf("seqs in due order %v, want increasing: each due task takes a new place in the dispatch order", seqs)
	}
	for i, want := range []store.NewTask{normal, early, middle, late} {
		run := claimOne(t, st, "w", "test.order")
		if run.ID != want.ID {
			t.Fatalf("claim %d: got %s, want %s (the normal task, then by due time)", i, run.ID, want.ID)
		}
		noClaim(t, st, "while one runs", "test.order")
		end(t, st, run, store.StateCompleted)
	}
	checkCounts(t, st, "at the end")
	sweepClean(t, st)
}

// testCancelScheduled: a scheduled task canceled ends canceled at once and
// is never enqueued; in a group, it counts as scheduled (not done) and
// then canceled. CancelTaskGroup cancels scheduled tasks the same way.
func testCancelScheduled(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	g := newGroup("scheduled", "", false)
	s, behind := newTask("test.cancel.s", ex("r"), nil), newTask("test.cancel.b", ex("r"), nil)
	s.ScheduledAt = after(300 * time.Millisecond)
	group, created, err := st.CreateTaskGroup(ctx, g, into(g, s))
	if err != nil {
		t.Fatal(err)
	}
	if created[0].State != store.StateScheduled || !sameCounts(group.Counts, map[store.State]int{store.StateScheduled: 1}) {
		t.Fatalf("created: %s, group counts %v", created[0].State, group.Counts)
	}
	if _, err := st.Dispatch(ctx, []store.NewTask{behind}); err != nil {
		t.Fatal(err)
	}
	sealed, err := st.SealTaskGroup(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if sealed.Done() || !sameCounts(sealed.Counts, map[store.State]int{store.StateScheduled: 1}) {
		t.Fatalf("a sealed group with a scheduled task: done %v, counts %v", sealed.Done(), sealed.Counts)
	}
	canceled, err := st.Cancel(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if canceled.State != store.StateCanceled || canceled.FinishedAt == nil || canceled.StartedAt != nil {
		t.Fatalf("canceled scheduled task: %s, finished at %v", canceled.State, canceled.FinishedAt)
	}
	if again, err := st.Cancel(ctx, s.ID); !errors.Is(err, store.ErrFinal) || again.State != store.StateCanceled {
		t.Fatalf("cancel again: %v %v", again, err)
	}
	if got := readGroup(t, st, g.ID); !got.Done() || !sameCounts(got.Counts, map[store.State]int{store.StateCanceled: 1}) {
		t.Fatalf("group after the cancel: done %v, counts %v", got.Done(), got.Counts)
	}
	time.Sleep(time.Until(*s.ScheduledAt) + earlyMargin)
	if res := enqueueDue(t, st, 10); res.Enqueued != 0 || res.NextIn >= 0 {
		t.Fatalf("EnqueueDue past a canceled task's time: %+v", res)
	}
	if got := taskState(t, st, s.ID); got.State != store.StateCanceled {
		t.Fatalf("canceled task is %s", got.State)
	}
	if run := claimOne(t, st, "w", "test.cancel.b"); run.ID != behind.ID {
		t.Fatalf("claimed %s", run.ID)
	} else {
		end(t, st, run, store.StateCompleted)
	}

	// CancelTaskGroup: a scheduled task, and a running one.
	g2 := newGroup("scheduled 2", "", false)
	s2, r2 := newTask("test.cancel.s", nil, nil), newTask("test.cancel.r", nil, nil)
	s2.ScheduledAt = after(time.Hour)
	if _, _, err := st.CreateTaskGroup(ctx, g2, into(g2, s2, r2)); err != nil {
		t.Fatal(err)
	}
	run := claimOne(t, st, "w", "test.cancel.r")
	got, err := st.CancelTaskGroup(ctx, g2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !sameCounts(got.Counts, map[store.State]int{store.StateCanceled: 1, store.StateCanceling: 1}) {
		t.Fatalf("group counts after CancelTaskGroup: %v", got.Counts)
	}
	if task := taskState(t, st, s2.ID); task.State != store.StateCanceled || task.FinishedAt == nil {
		t.Fatalf("scheduled task after CancelTaskGroup: %s", task.State)
	}
	end(t, st, run, store.StateCompleted)
	if res := enqueueDue(t, st, 10); res.Enqueued != 0 || res.NextIn >= 0 {
		t.Fatalf("EnqueueDue with only canceled tasks: %+v", res)
	}
	checkCounts(t, st, "at the end")
	sweepClean(t, st)
}

func sameCounts(a, b map[store.State]int) bool { return reflect.DeepEqual(a, b) }

// testScheduledPastIsNormal: a ScheduledAt that has passed dispatches a
// waiting task, runnable at once, and keeps the time asked. An immediate
// dispatch scheduled ahead is refused; one scheduled in the past runs.
func testScheduledPastIsNormal(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	nt := newTask("test.past", ex("r"), nil)
	past := time.Now().Add(-time.Hour)
	nt.ScheduledAt = &past
	got, err := st.Dispatch(ctx, []store.NewTask{nt})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].State != store.StateWaiting || got[0].UnblockedAt == nil || !sameTime(got[0].ScheduledAt, &past) {
		t.Fatalf("dispatched: %s, unblocked at %v, scheduled at %v", got[0].State, got[0].UnblockedAt, got[0].ScheduledAt)
	}
	if stored := taskState(t, st, nt.ID); stored.State != store.StateWaiting || !sameTime(stored.ScheduledAt, &past) {
		t.Fatalf("stored: %s scheduled at %v", stored.State, stored.ScheduledAt)
	}
	if res := enqueueDue(t, st, 10); res.Enqueued != 0 || res.NextIn >= 0 {
		t.Fatalf("EnqueueDue: %+v", res)
	}
	run := claimOne(t, st, "w", "test.past")
	if run.ID != nt.ID {
		t.Fatalf("claimed %s", run.ID)
	}
	end(t, st, run, store.StateCompleted)

	ahead := newTask("test.past.immediate", nil, nil)
	ahead.ScheduledAt = after(time.Hour)
	if task, err := st.DispatchImmediate(ctx, ahead, store.ImmediateParams{Worker: "w"}); err == nil {
		t.Fatalf("an immediate dispatch scheduled an hour ahead: %+v", task)
	}
	if _, err := st.Task(ctx, ahead.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused immediate task: %v, want ErrNotFound", err)
	}
	inline := newTask("test.past.immediate", nil, nil)
	inline.ScheduledAt = &past
	task, err := st.DispatchImmediate(ctx, inline, store.ImmediateParams{Worker: "w"})
	if err != nil || task.State != store.StateRunning || !sameTime(task.ScheduledAt, &past) {
		t.Fatalf("immediate dispatch scheduled in the past: %+v %v", task, err)
	}
	end(t, st, task, store.StateCompleted)
	checkCounts(t, st, "at the end")
	sweepClean(t, st)
}

// testDueSignals: a scheduled dispatch, and a retry, send a due signal.
func testDueSignals(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	lctx, stop := context.WithCancel(ctx)
	ch, err := st.DueSignals(lctx)
	if err != nil {
		t.Fatal(err)
	}
	// Drain a signal the listener may send when it starts.
	select {
	case <-ch:
	case <-time.After(100 * time.Millisecond):
	}
	await := func(what string) {
		t.Helper()
		select {
		case _, ok := <-ch:
			if !ok {
				t.Fatalf("%s: the channel closed", what)
			}
		case <-time.After(changeWait):
			t.Fatalf("%s: no due signal within %v", what, changeWait)
		}
	}
	nt := newTask("test.signal", nil, nil)
	nt.ScheduledAt = after(time.Hour)
	if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
		t.Fatal(err)
	}
	await("scheduled dispatch")

	retried := newTask("test.signal.retry", nil, nil)
	retried.Retry = &store.RetryPolicy{MaxAttempts: 2, InitialDelay: time.Hour, MaxDelay: time.Hour, Multiplier: 1}
	if _, err := st.Dispatch(ctx, []store.NewTask{retried}); err != nil {
		t.Fatal(err)
	}
	run := claimOne(t, st, "w", "test.signal.retry")
	// Drain what the dispatch and the claim may have sent.
	select {
	case <-ch:
	case <-time.After(100 * time.Millisecond):
	}
	end(t, st, run, store.StateFailed)
	if got := taskState(t, st, retried.ID); got.State != store.StateScheduled {
		t.Fatalf("failed task with attempts left is %s", got.State)
	}
	await("retry")
	stop()
	select {
	case _, ok := <-ch:
		for ok {
			_, ok = <-ch
		}
	case <-time.After(changeWait):
		t.Fatal("the channel did not close with its context")
	}
}

// failWith is a run's failure, numbered.
func failWith(n string) *store.TaskError {
	return &store.TaskError{Kind: "test.Failure", Description: "failure " + n, Traceback: "at line " + n}
}

func fail(t *testing.T, st store.Store, run *store.Task, taskErr *store.TaskError, noRetry bool) {
	t.Helper()
	done, err := st.Finish(ctxFor(t), []store.Outcome{{ID: run.ID, Attempt: run.Attempt, State: store.StateFailed,
		Result: json.RawMessage(`{"partial": true}`), Error: taskErr, NoRetry: noRetry}})
	if err != nil || !slices.Equal(done, []uuid.UUID{run.ID}) {
		t.Fatalf("fail %s: %v %v", run.ID, done, err)
	}
}

// checkAttempt checks one recorded attempt against the run it was.
func checkAttempt(t *testing.T, got store.Attempt, n int, state store.State, run *store.Task, taskErr *store.TaskError) {
	t.Helper()
	if got.Number != n || got.State != state || got.Worker != run.Worker || !reflect.DeepEqual(got.Error, taskErr) {
		t.Fatalf("attempt %d: %+v (error %+v), want number %d, %s, worker %s, error %+v", n, got, got.Error, n, state, run.Worker, taskErr)
	}
	if !sameTime(&got.StartedAt, run.StartedAt) {
		t.Fatalf("attempt %d started at %v, the run at %v", n, got.StartedAt, run.StartedAt)
	}
	if got.FinishedAt.Before(got.StartedAt) {
		t.Fatalf("attempt %d finished at %v, before it started (%v)", n, got.FinishedAt, got.StartedAt)
	}
}

// checkRetried checks a task waiting for its next attempt: scheduled, its
// last run's error at the top, no run, and due delay after the last
// attempt ended (by the store's clock), within tolerance.
func checkRetried(t *testing.T, task *store.Task, attempts int, taskErr *store.TaskError, delay time.Duration) {
	t.Helper()
	if task.State != store.StateScheduled || task.StartedAt != nil || task.FinishedAt != nil || task.Worker != "" ||
		task.Result != nil {
		t.Fatalf("retried task: %s, started at %v, finished at %v, worker %q, result %s",
			task.State, task.StartedAt, task.FinishedAt, task.Worker, task.Result)
	}
	if !reflect.DeepEqual(task.Error, taskErr) {
		t.Fatalf("retried task's error %+v, want the last run's %+v", task.Error, taskErr)
	}
	if len(task.Attempts) != attempts {
		t.Fatalf("retried task has %d attempts, want %d", len(task.Attempts), attempts)
	}
	last := task.Attempts[attempts-1].FinishedAt
	if task.ScheduledAt == nil {
		t.Fatal("retried task has no time")
	}
	if d := task.ScheduledAt.Sub(last); d < delay || d > delay+time.Millisecond {
		t.Fatalf("retried task due %v after its last attempt ended, want %v", d, delay)
	}
	if task.UpdatedAt.Before(last) || task.UpdatedAt.After(*task.ScheduledAt) {
		t.Fatalf("retried task updated at %v; last attempt ended at %v, due at %v", task.UpdatedAt, last, task.ScheduledAt)
	}
}

// testRetryCompletes: a task that fails twice with attempts left runs a
// third time, each retry due after its delay (no jitter: exactly), and
// completes with its two failed attempts listed; a stale run's outcome is
// ignored.
func testRetryCompletes(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	changes, err := st.Changes(lctx)
	if err != nil {
		t.Fatal(err)
	}
	policy := store.RetryPolicy{MaxAttempts: 3, InitialDelay: 200 * time.Millisecond, Multiplier: 2, MaxDelay: 10 * time.Second}
	nt := newTask("test.retry", ex("r"), nil)
	nt.Retry = &policy
	got, err := st.Dispatch(ctx, []store.NewTask{nt})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Retry == nil || *got[0].Retry != policy || got[0].Attempts == nil || len(got[0].Attempts) != 0 {
		t.Fatalf("dispatched: retry %+v, attempts %v", got[0].Retry, got[0].Attempts)
	}
	if stored := taskState(t, st, nt.ID); stored.Retry == nil || *stored.Retry != policy || stored.Attempts == nil || len(stored.Attempts) != 0 {
		t.Fatalf("stored: retry %+v, attempts %v", stored.Retry, stored.Attempts)
	}

	run1 := claimOne(t, st, "w1", "test.retry")
	if run1.Retry == nil || *run1.Retry != policy {
		t.Fatalf("claimed: retry %+v", run1.Retry)
	}
	err1 := failWith("1")
	fail(t, st, run1, err1, false)
	awaitChange(t, changes, "first failure", nt.ID, store.StateScheduled)
	task := taskState(t, st, nt.ID)
	checkRetried(t, task, 1, err1, 200*time.Millisecond)
	checkAttempt(t, task.Attempts[0], 1, store.StateFailed, run1, err1)
	if n := stateCount(t, st, store.StateScheduled); n != 1 {
		t.Fatalf("CountByState: %d scheduled, want 1", n)
	}
	checkCounts(t, st, "after the first failure")
	sweepClean(t, st)
	noClaim(t, st, "retry not due", "test.retry")
	if done, err := st.Finish(ctx, []store.Outcome{{ID: run1.ID, Attempt: run1.Attempt, State: store.StateCompleted}}); err != nil || len(done) != 0 {
		t.Fatalf("a second outcome of the failed run: %v %v", done, err)
	}
	awaitDue(t, st, nt.ID)
	awaitChange(t, changes, "second attempt due", nt.ID, store.StateWaiting)

	run2 := claimOne(t, st, "w2", "test.retry")
	if run2.Attempt <= run1.Attempt || run2.Error != nil || run2.Result != nil || run2.Worker != "w2" || len(run2.Attempts) != 1 {
		t.Fatalf("second run: attempt %d (first %d), error %+v, result %s, worker %s, %d attempts",
			run2.Attempt, run1.Attempt, run2.Error, run2.Result, run2.Worker, len(run2.Attempts))
	}
	if running := taskState(t, st, nt.ID); running.Error != nil || running.Result != nil || running.State != store.StateRunning {
		t.Fatalf("running again: %s, error %+v, result %s", running.State, running.Error, running.Result)
	}
	// The first run's token no longer owns the task.
	if done, err := st.Finish(ctx, []store.Outcome{{ID: run1.ID, Attempt: run1.Attempt, State: store.StateCompleted}}); err != nil || len(done) != 0 {
		t.Fatalf("the first run's outcome during the second: %v %v", done, err)
	}
	if ok, err := st.SaveOutputs(ctx, run1.ID, run1.Attempt, store.Outputs{}); err != nil || ok {
		t.Fatalf("the first run's outputs during the second: %v %v", ok, err)
	}
	err2 := failWith("2")
	fail(t, st, run2, err2, false)
	task = taskState(t, st, nt.ID)
	checkRetried(t, task, 2, err2, 400*time.Millisecond)
	checkAttempt(t, task.Attempts[0], 1, store.StateFailed, run1, err1)
	checkAttempt(t, task.Attempts[1], 2, store.StateFailed, run2, err2)
	if !task.Attempts[1].StartedAt.After(task.Attempts[0].FinishedAt) && !task.Attempts[1].StartedAt.Equal(task.Attempts[0].FinishedAt) {
		t.Fatalf("second attempt started at %v, before the first ended (%v)", task.Attempts[1].StartedAt, task.Attempts[0].FinishedAt)
	}
	awaitDue(t, st, nt.ID)

	run3 := claimOne(t, st, "w3", "test.retry")
	if run3.Attempt <= run2.Attempt {
		t.Fatalf("third run: attempt %d, second %d", run3.Attempt, run2.Attempt)
	}
	if done, err := st.Finish(ctx, []store.Outcome{{ID: run3.ID, Attempt: run3.Attempt, State: store.StateCompleted,
		Result: json.RawMessage(`"done"`)}}); err != nil || !slices.Equal(done, []uuid.UUID{nt.ID}) {
		t.Fatalf("complete the third run: %v %v", done, err)
	}
	awaitChange(t, changes, "completion", nt.ID, store.StateCompleted)
	task = taskState(t, st, nt.ID)
	if task.State != store.StateCompleted || task.Error != nil || string(task.Result) != `"done"` || task.FinishedAt == nil ||
		task.Worker != "w3" || task.Attempt != run3.Attempt || len(task.Attempts) != 2 {
		t.Fatalf("completed: %s, error %+v, result %s, finished at %v, worker %s, %d attempts",
			task.State, task.Error, task.Result, task.FinishedAt, task.Worker, len(task.Attempts))
	}
	checkAttempt(t, task.Attempts[0], 1, store.StateFailed, run1, err1)
	checkAttempt(t, task.Attempts[1], 2, store.StateFailed, run2, err2)
	checkCounts(t, st, "at the end")
	sweepClean(t, st)
}

// testRetriesRunOut: with two attempts in all, the second failure ends the
// task failed, with its error, the first attempt listed.
func testRetriesRunOut(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	nt := newTask("test.runout", nil, nil)
	nt.Retry = &store.RetryPolicy{MaxAttempts: 2, InitialDelay: 50 * time.Millisecond, Multiplier: 1, MaxDelay: time.Second}
	if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
		t.Fatal(err)
	}
	run1 := claimOne(t, st, "w", "test.runout")
	err1, err2 := failWith("1"), failWith("2")
	fail(t, st, run1, err1, false)
	checkRetried(t, taskState(t, st, nt.ID), 1, err1, 50*time.Millisecond)
	awaitDue(t, st, nt.ID)
	run2 := claimOne(t, st, "w", "test.runout")
	fail(t, st, run2, err2, false)
	task := taskState(t, st, nt.ID)
	if task.State != store.StateFailed || !reflect.DeepEqual(task.Error, err2) || task.FinishedAt == nil ||
		string(task.Result) != `{"partial": true}` || len(task.Attempts) != 1 {
		t.Fatalf("after the last attempt: %s, error %+v, result %s, finished at %v, %d attempts",
			task.State, task.Error, task.Result, task.FinishedAt, len(task.Attempts))
	}
	checkAttempt(t, task.Attempts[0], 1, store.StateFailed, run1, err1)
	if res := enqueueDue(t, st, 10); res.Enqueued != 0 || res.NextIn >= 0 {
		t.Fatalf("EnqueueDue after the task failed: %+v", res)
	}
	checkCounts(t, st, "at the end")
	sweepClean(t, st)
}

// testNoRetryFailsAtOnce: an outcome with NoRetry ends the task failed
// although attempts are left; a dropped outcome ends the task dropped when
// its policy does not retry dropped runs; completed and canceled outcomes
// are never retried.
func testNoRetryFailsAtOnce(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	policy := store.RetryPolicy{MaxAttempts: 5, InitialDelay: time.Millisecond, Multiplier: 1, MaxDelay: time.Second}
	outcomes := []store.Outcome{
		{State: store.StateFailed, Error: failWith("no retry"), NoRetry: true},
		{State: store.StateDropped, Error: failWith("dropped")},
		{State: store.StateCompleted, Result: json.RawMessage(`1`)},
		{State: store.StateCanceled},
	}
	for _, o := range outcomes {
		nt := newTask("test.noretry", nil, nil)
		nt.Retry = &policy
		if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
			t.Fatal(err)
		}
		run := claimOne(t, st, "w", "test.noretry")
		o.ID, o.Attempt = run.ID, run.Attempt
		if done, err := st.Finish(ctx, []store.Outcome{o}); err != nil || len(done) != 1 {
			t.Fatalf("finish %s: %v %v", o.State, done, err)
		}
		task := taskState(t, st, nt.ID)
		if task.State != o.State || task.FinishedAt == nil || !reflect.DeepEqual(task.Error, o.Error) || len(task.Attempts) != 0 {
			t.Fatalf("outcome %s (no retry %v): task %s, finished at %v, error %+v, %d attempts",
				o.State, o.NoRetry, task.State, task.FinishedAt, task.Error, len(task.Attempts))
		}
	}
	if n := stateCount(t, st, store.StateScheduled); n != 0 {
		t.Fatalf("%d scheduled", n)
	}
	checkCounts(t, st, "at the end")
	sweepClean(t, st)
}

// testCanceledNotRetried: a canceling task whose run fails ends canceled,
// whatever its policy.
func testCanceledNotRetried(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	nt := newTask("test.cancel.retry", ex("r"), nil)
	nt.Retry = &store.RetryPolicy{MaxAttempts: 3, InitialDelay: time.Millisecond, Multiplier: 1, MaxDelay: time.Second, Dropped: true}
	if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
		t.Fatal(err)
	}
	run := claimOne(t, st, "w", "test.cancel.retry")
	if got, err := st.Cancel(ctx, nt.ID); err != nil || got.State != store.StateCanceling {
		t.Fatalf("cancel: %v %v", got, err)
	}
	fail(t, st, run, failWith("1"), false)
	task := taskState(t, st, nt.ID)
	if task.State != store.StateCanceled || task.FinishedAt == nil || len(task.Attempts) != 0 {
		t.Fatalf("a canceling task that failed: %s, finished at %v, %d attempts", task.State, task.FinishedAt, len(task.Attempts))
	}
	if res := enqueueDue(t, st, 10); res.Enqueued != 0 || res.NextIn >= 0 {
		t.Fatalf("EnqueueDue: %+v", res)
	}
	checkCounts(t, st, "at the end")
	sweepClean(t, st)
}

// testRetryDroppedOnLostWorker: the tasks of a lost worker whose policy
// retries dropped runs, with attempts left, are retried, the run recorded
// dropped with the error it would have ended with; the worker's other
// tasks end as before. A dropped outcome given to Finish is retried the
// same way.
func testRetryDroppedOnLostWorker(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	changes, err := st.Changes(lctx)
	if err != nil {
		t.Fatal(err)
	}
	const lost = "1@lost"
	register(t, st, lost)
	retrying := store.RetryPolicy{MaxAttempts: 2, InitialDelay: 100 * time.Millisecond, Multiplier: 1, MaxDelay: time.Second, Dropped: true}
	notDropped := retrying
	notDropped.Dropped = false
	retried, plain := newTask("test.lost.retried", ex("lost-r"), nil), newTask("test.lost.plain", nil, nil)
	failedOnly, canceling := newTask("test.lost.failedonly", nil, nil), newTask("test.lost.canceling", nil, nil)
	behind := newTask("test.lost.behind", ex("lost-r"), nil)
	retried.Retry, failedOnly.Retry, canceling.Retry = &retrying, &notDropped, &retrying
	if _, err := st.Dispatch(ctx, []store.NewTask{retried, plain, failedOnly, canceling, behind}); err != nil {
		t.Fatal(err)
	}
	runs := map[uuid.UUID]*store.Task{}
	for _, name := range []string{"test.lost.retried", "test.lost.plain", "test.lost.failedonly", "test.lost.canceling"} {
		run := claimOne(t, st, lost, name)
		runs[run.ID] = run
	}
	if _, err := st.Cancel(ctx, canceling.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(lostSleep)
	got, err := st.DropLostWorkers(ctx, lostAfter)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Workers, []string{lost}) {
		t.Fatalf("lost workers %v", got.Workers)
	}
	if want := sortedIDs(retried.ID, plain.ID, failedOnly.ID, canceling.ID); !slices.Equal(got.Tasks, want) {
		t.Fatalf("tasks taken from the lost worker %v, want %v", got.Tasks, want)
	}
	awaitChanges(t, changes, "lost worker", map[uuid.UUID]store.State{retried.ID: store.StateScheduled,
		plain.ID: store.StateDropped, failedOnly.ID: store.StateDropped, canceling.ID: store.StateCanceled})

	task := taskState(t, st, retried.ID)
	if task.Error == nil || task.Error.Kind != store.WorkerLostKind || !strings.Contains(task.Error.Description, lost) ||
		!strings.Contains(task.Error.Description, "dropped") {
		t.Fatalf("retried task's error %+v, want the lost worker's", task.Error)
	}
	checkRetried(t, task, 1, task.Error, 100*time.Millisecond)
	checkAttempt(t, task.Attempts[0], 1, store.StateDropped, runs[retried.ID], task.Error)
	for id, state := range map[uuid.UUID]store.State{plain.ID: store.StateDropped, failedOnly.ID: store.StateDropped, canceling.ID: store.StateCanceled} {
		task := taskState(t, st, id)
		if task.State != state || task.FinishedAt == nil || task.Error == nil || task.Error.Kind != store.WorkerLostKind || len(task.Attempts) != 0 {
			t.Fatalf("task %s of the lost worker: %s, error %+v, %d attempts; want %s", task.Name, task.State, task.Error, len(task.Attempts), state)
		}
	}
	// The retried run left its queue: the task behind it runs.
	if run := claimOne(t, st, "2@other", "test.lost.behind"); run.ID != behind.ID {
		t.Fatalf("claimed %s", run.ID)
	} else {
		end(t, st, run, store.StateCompleted)
	}
	checkCounts(t, st, "after the drop")

	// Its second attempt is its last: a drop of it ends the task dropped.
	awaitDue(t, st, retried.ID)
	const lost2 = "3@lost"
	register(t, st, lost2)
	run2 := claimOne(t, st, lost2, "test.lost.retried")
	time.Sleep(lostSleep)
	if got, err := st.DropLostWorkers(ctx, lostAfter); err != nil || !slices.Equal(got.Tasks, []uuid.UUID{retried.ID}) {
		t.Fatalf("second drop: %+v %v", got, err)
	}
	task = taskState(t, st, retried.ID)
	if task.State != store.StateDropped || task.FinishedAt == nil || len(task.Attempts) != 1 || task.Error == nil ||
		!strings.Contains(task.Error.Description, lost2) {
		t.Fatalf("after its last attempt was dropped: %s, %d attempts, error %+v", task.State, len(task.Attempts), task.Error)
	}
	if run2.Attempt <= runs[retried.ID].Attempt {
		t.Fatalf("second claim's attempt %d, first %d", run2.Attempt, runs[retried.ID].Attempt)
	}

	// A dropped outcome given to Finish, with Dropped set: retried.
	byFinish := newTask("test.lost.finish", nil, nil)
	byFinish.Retry = &retrying
	if _, err := st.Dispatch(ctx, []store.NewTask{byFinish}); err != nil {
		t.Fatal(err)
	}
	run := claimOne(t, st, "4@w", "test.lost.finish")
	dropErr := failWith("dropped")
	if done, err := st.Finish(ctx, []store.Outcome{{ID: run.ID, Attempt: run.Attempt, State: store.StateDropped, Error: dropErr}}); err != nil ||
		!slices.Equal(done, []uuid.UUID{run.ID}) {
		t.Fatalf("finish dropped: %v %v", done, err)
	}
	task = taskState(t, st, byFinish.ID)
	checkRetried(t, task, 1, dropErr, 100*time.Millisecond)
	checkAttempt(t, task.Attempts[0], 1, store.StateDropped, run, dropErr)
	checkCounts(t, st, "at the end")
	sweepClean(t, st)
}

// testRetryReleasesResources: a failed run that is retried leaves its
// queues as a finished one does: the task waiting behind it runs, and the
// retry, once due, queues behind that one.
func testRetryReleasesResources(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	failing, waiting := newTask("test.release", ex("r"), nil), newTask("test.release", ex("r"), nil)
	failing.Retry = &store.RetryPolicy{MaxAttempts: 2, InitialDelay: 300 * time.Millisecond, Multiplier: 1, MaxDelay: time.Second}
	if _, err := st.Dispatch(ctx, []store.NewTask{failing, waiting}); err != nil {
		t.Fatal(err)
	}
	run := claimOne(t, st, "w", "test.release")
	if run.ID != failing.ID {
		t.Fatalf("claimed %s", run.ID)
	}
	if task := taskState(t, st, waiting.ID); task.UnblockedAt != nil {
		t.Fatal("the waiting task is runnable while the first runs")
	}
	fail(t, st, run, failWith("1"), false)
	if task := taskState(t, st, failing.ID); task.State != store.StateScheduled {
		t.Fatalf("failing task is %s", task.State)
	}
	if blockers, err := st.BlockedBy(ctx, failing.ID); err != nil || len(blockers) != 0 {
		t.Fatalf("the retried task is blocked by %v %v", blockers, err)
	}
	next := claimOne(t, st, "w", "test.release")
	if next.ID != waiting.ID {
		t.Fatalf("claimed %s after the retry was scheduled, want the waiting task", next.ID)
	}
	due := awaitDue(t, st, failing.ID)
	if due.UnblockedAt != nil || due.Seq <= next.Seq {
		t.Fatalf("due retry: unblocked at %v, seq %d (the other's %d); want queued behind it", due.UnblockedAt, due.Seq, next.Seq)
	}
	if blockers, err := st.BlockedBy(ctx, failing.ID); err != nil || !slices.Equal(blockers, []store.Blocker{{Task: waiting.ID, Resource: "r"}}) {
		t.Fatalf("due retry blocked by %v %v", blockers, err)
	}
	noClaim(t, st, "while the other runs", "test.release")
	end(t, st, next, store.StateCompleted)
	second := claimOne(t, st, "w", "test.release")
	if second.ID != failing.ID || second.Attempt <= run.Attempt {
		t.Fatalf("claimed %s attempt %d", second.ID, second.Attempt)
	}
	end(t, st, second, store.StateCompleted)
	checkCounts(t, st, "at the end")
	sweepClean(t, st)
}

func keyed(name, owner, key string) store.NewTask {
	nt := newTask(name, nil, nil)
	nt.Owner, nt.UniqueKey = owner, key
	return nt
}

// testUniqueKeyDeduplicates: while a task with a unique key is incomplete,
// a dispatch of the same owner, name and key creates nothing and returns
// it, Deduplicated; in a batch, in concurrent calls, in CreateTaskGroup
// and in DispatchImmediate. Once it is final, the key is free.
func testUniqueKeyDeduplicates(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	dispatch := func(tasks ...store.NewTask) []*store.Task {
		t.Helper()
		got, err := st.Dispatch(ctx, tasks)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tasks) {
			t.Fatalf("%d tasks returned for %d", len(got), len(tasks))
		}
		return got
	}
	fresh := func(what string, got *store.Task, nt store.NewTask) {
		t.Helper()
		if got.ID != nt.ID || got.Deduplicated || got.UniqueKey != nt.UniqueKey {
			t.Fatalf("%s: got %s (deduplicated %v, key %q), want the new task %s", what, got.ID, got.Deduplicated, got.UniqueKey, nt.ID)
		}
	}
	dedup := func(what string, got *store.Task, existing uuid.UUID, state store.State) {
		t.Helper()
		if got.ID != existing || !got.Deduplicated || got.State != state {
			t.Fatalf("%s: got %s (deduplicated %v, %s), want the existing %s, deduplicated, %s", what, got.ID, got.Deduplicated, got.State, existing, state)
		}
	}
	gone := func(what string, id uuid.UUID) {
		t.Helper()
		if _, err := st.Task(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: the deduplicated task was stored: %v", what, err)
		}
	}

	first := keyed("test.unique", "alice", "k")
	fresh("first", dispatch(first)[0], first)
	if stored := taskState(t, st, first.ID); stored.UniqueKey != "k" || stored.Deduplicated {
		t.Fatalf("stored key %q, deduplicated %v", stored.UniqueKey, stored.Deduplicated)
	}
	second := keyed("test.unique", "alice", "k")
	second.ExclusiveResources = []string{"other"}
	got := dispatch(second)[0]
	dedup("same owner, name and key", got, first.ID, store.StateWaiting)
	if len(got.ExclusiveResources) != 0 || got.UniqueKey != "k" || got.Owner != "alice" {
		t.Fatalf("the existing task as returned: %+v", got)
	}
	gone("second", second.ID)
	for _, nt := range []store.NewTask{keyed("test.unique", "bob", "k"), keyed("test.unique.other", "alice", "k"),
		keyed("test.unique", "alice", "k2"), keyed("test.unique", "alice", "")} {
		fresh("another owner, name or key", dispatch(nt)[0], nt)
	}
	// No key: never deduplicated.
	noKey := keyed("test.unique", "alice", "")
	fresh("no key again", dispatch(noKey)[0], noKey)

	// In one batch.
	b1, b2, b3 := keyed("test.unique", "alice", "batch"), keyed("test.unique", "alice", "batch"), keyed("test.unique", "alice", "k")
	batch := dispatch(b1, b2, b3)
	fresh("first of a batch", batch[0], b1)
	dedup("second of a batch", batch[1], b1.ID, store.StateWaiting)
	dedup("existing key in a batch", batch[2], first.ID, store.StateWaiting)
	gone("second of a batch", b2.ID)

	// Concurrent dispatches of one key: one task.
	const callers = 50
	results := make([]*store.Task, callers)
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := st.Dispatch(ctx, []store.NewTask{keyed("test.unique.concurrent", "alice", "c")})
			if err != nil {
				errs <- err
				return
			}
			results[i] = got[0]
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	tasks, _, err := st.ListTasks(ctx, store.TaskFilter{Name: "test.unique.concurrent"})
	if err != nil || len(tasks) != 1 {
		t.Fatalf("%d tasks after %d concurrent dispatches of one key, want 1: %v", len(tasks), callers, err)
	}
	created := 0
	for _, r := range results {
		if r.ID != tasks[0].ID {
			t.Fatalf("a concurrent dispatch returned %s, not the one task %s", r.ID, tasks[0].ID)
		}
		if !r.Deduplicated {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d concurrent dispatches created the task, want 1", created)
	}

	// Running and canceling tasks hold their key too; a final one frees it.
	run := claimOne(t, st, "w", "test.unique.concurrent")
	dedup("running", dispatch(keyed("test.unique.concurrent", "alice", "c"))[0], run.ID, store.StateRunning)
	if _, err := st.Cancel(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	dedup("canceling", dispatch(keyed("test.unique.concurrent", "alice", "c"))[0], run.ID, store.StateCanceling)
	end(t, st, run, store.StateCanceled)
	again := keyed("test.unique.concurrent", "alice", "c")
	fresh("after the task ended", dispatch(again)[0], again)

	// A scheduled task holds its key.
	later := keyed("test.unique.later", "alice", "s")
	later.ScheduledAt = after(time.Hour)
	if got := dispatch(later)[0]; got.State != store.StateScheduled {
		t.Fatalf("scheduled keyed task: %s", got.State)
	}
	dedup("scheduled", dispatch(keyed("test.unique.later", "alice", "s"))[0], later.ID, store.StateScheduled)

	// CreateTaskGroup: the existing task is returned and does not join.
	g := newGroup("unique", "alice", true)
	member, dup := keyed("test.unique.group", "alice", "g"), keyed("test.unique", "alice", "k")
	group, groupTasks, err := st.CreateTaskGroup(ctx, g, into(g, member, dup))
	if err != nil {
		t.Fatal(err)
	}
	if len(groupTasks) != 2 {
		t.Fatalf("CreateTaskGroup returned %d tasks", len(groupTasks))
	}
	fresh("new task of a group", groupTasks[0], member)
	dedup("existing task in a group", groupTasks[1], first.ID, store.StateWaiting)
	if groupTasks[1].TaskGroup != nil {
		t.Fatalf("the existing task joined the group: %v", groupTasks[1].TaskGroup)
	}
	if !slices.Equal(group.Tasks, []uuid.UUID{member.ID}) || !sameCounts(group.Counts, map[store.State]int{store.StateWaiting: 1}) {
		t.Fatalf("created group: tasks %v, counts %v; want the new task only", group.Tasks, group.Counts)
	}
	if read := readGroup(t, st, g.ID); !slices.Equal(read.Tasks, []uuid.UUID{member.ID}) || !sameCounts(read.Counts, group.Counts) {
		t.Fatalf("group as read: tasks %v, counts %v", read.Tasks, read.Counts)
	}
	if stored := taskState(t, st, first.ID); stored.TaskGroup != nil {
		t.Fatalf("the existing task is in group %v", stored.TaskGroup)
	}
	gone("group", dup.ID)

	// DispatchImmediate: the existing task, not claimed.
	imm := keyed("test.unique", "alice", "k")
	task, err := st.DispatchImmediate(ctx, imm, store.ImmediateParams{Worker: "w"})
	if err != nil {
		t.Fatal(err)
	}
	dedup("immediate", task, first.ID, store.StateWaiting)
	if stored := taskState(t, st, first.ID); stored.State != store.StateWaiting || stored.StartedAt != nil {
		t.Fatalf("the existing task after an immediate dispatch of its key: %s", stored.State)
	}
	gone("immediate", imm.ID)

	// The first task, finished, frees its key.
	runFirst := claimAll(t, st, []string{"test.unique"}, 100)
	for _, r := range runFirst {
		end(t, st, r, store.StateCompleted)
	}
	if !slices.ContainsFunc(runFirst, func(r *store.Task) bool { return r.ID == first.ID }) {
		t.Fatal("the first keyed task was not claimable")
	}
	next := keyed("test.unique", "alice", "k")
	fresh("after the first task completed", dispatch(next)[0], next)
	checkCounts(t, st, "at the end")
}

// testListScheduled lists by the time tasks were scheduled for: the
// filters GTE and LTE, the orderings (tasks without a time last in both
// directions, ties in dispatch order in the ordering's direction), and
// scheduled tasks by state.
func testListScheduled(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	base := time.Now().Truncate(time.Millisecond)
	labels := map[uuid.UUID]string{}
	var order []string
	dispatch := func(label string, at *time.Time) {
		nt := newTask("test.list.scheduled", nil, nil)
		nt.ScheduledAt = at
		if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
			t.Fatal(err)
		}
		labels[nt.ID] = label
		order = append(order, label)
	}
	hour := func(h int) *time.Time { at := base.Add(time.Duration(h) * time.Hour); return &at }
	dispatch("n1", nil)
	dispatch("s2", hour(2))
	dispatch("s1", hour(1))
	dispatch("p", hour(-1)) // in the past: waiting
	dispatch("n2", nil)
	dispatch("s1b", hour(1)) // the same time as s1, dispatched after it
	list := func(f store.TaskFilter) (string, int) {
		t.Helper()
		f.Name = "test.list.scheduled"
		tasks, total, err := st.ListTasks(ctx, f)
		if err != nil {
			t.Fatalf("ListTasks(%+v): %v", f, err)
		}
		var got []string
		for _, task := range tasks {
			got = append(got, labels[task.ID])
		}
		return strings.Join(got, " "), totalOf(total)
	}
	cases := []struct {
		name string
		f    store.TaskFilter
		want string
	}{
		{"scheduled at or after now", store.TaskFilter{ScheduledGTE: hour(0)}, "s2 s1 s1b"},
		{"scheduled at or before now", store.TaskFilter{ScheduledLTE: hour(0)}, "p"},
		{"bounds are inclusive", store.TaskFilter{ScheduledGTE: hour(1), ScheduledLTE: hour(1)}, "s1 s1b"},
		{"a range", store.TaskFilter{ScheduledGTE: hour(-2), ScheduledLTE: hour(1)}, "s1 p s1b"},
		{"state scheduled", store.TaskFilter{States: []store.State{store.StateScheduled}}, "s2 s1 s1b"},
		{"state waiting", store.TaskFilter{States: []store.State{store.StateWaiting}}, "n1 p n2"},
		{"by time", store.TaskFilter{Ordering: store.OrderScheduled}, "p s1 s1b s2 n1 n2"},
		{"by time, descending", store.TaskFilter{Ordering: store.OrderScheduledDesc}, "s2 s1b s1 p n2 n1"},
		{"scheduled ones by time", store.TaskFilter{States: []store.State{store.StateScheduled}, Ordering: store.OrderScheduled}, "s1 s1b s2"},
		{"a page by time", store.TaskFilter{Ordering: store.OrderScheduled, Limit: 2, Offset: 1}, "s1 s1b"},
	}
	for _, tc := range cases {
		got, total := list(tc.f)
		if got != tc.want {
			t.Errorf("%s: [%s], want [%s]", tc.name, got, tc.want)
		}
		if tc.f.Limit == 0 && total != len(strings.Fields(tc.want)) {
			t.Errorf("%s: total %d", tc.name, total)
		}
	}
	if tasks, total, err := st.ListTasks(ctx, store.TaskFilter{States: []store.State{store.StateScheduled}, Limit: 1}); err != nil ||
		len(tasks) != 1 || totalOf(total) != 3 {
		t.Errorf("a page of the scheduled tasks: %d tasks, total %d, %v", len(tasks), totalOf(total), err)
	}
	checkCounts(t, st, "scheduled tasks")
	sweepClean(t, st)
}
