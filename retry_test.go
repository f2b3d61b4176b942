package stint_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store"
)

// A task type's retry policy: a task failing twice with 3 attempts
// completes on the third, with its two failed attempts listed, each delay
// respected (100 ms, then 200 ms); a NoRetry error fails at once; a
// dispatch's override of 1 attempt turns retries off.
func TestRetryPolicyOfTheTaskType(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		var runs atomic.Int32
		stint.Register(h.reg, "test.flaky", func(_ context.Context, run *stint.Run, a struct{ Final bool }) (int, error) {
			runs.Add(1)
			switch {
			case a.Final:
				return 0, stint.NoRetry(errors.New("bad input"))
			case run.AttemptNumber() < 3:
				return 0, errors.New("mirror down")
			}
			return run.AttemptNumber(), nil
		}, stint.Retry(stint.RetryPolicy{MaxAttempts: 3, InitialDelay: 100 * time.Millisecond, MaxDelay: time.Second}))
		h.startWorker(stint.WorkerConfig{})

		task := h.waitFinal(h.dispatch(stint.DispatchRequest{Name: "test.flaky"}).ID)
		if task.State != store.StateCompleted || string(task.Result) != "3" || task.Error != nil || len(task.Attempts) != 2 {
			t.Fatalf("task: %s result %s error %+v attempts %+v", task.State, task.Result, task.Error, task.Attempts)
		}
		for i, a := range task.Attempts {
			if a.Number != i+1 || a.State != store.StateFailed || a.Error == nil || a.Error.Description != "mirror down" || a.Worker == "" {
				t.Fatalf("attempt %d: %+v", i, a)
			}
		}
		if gap := task.Attempts[1].StartedAt.Sub(task.Attempts[0].FinishedAt); gap < 100*time.Millisecond {
			t.Fatalf("the second attempt began %v after the first ended, before its delay", gap)
		}
		if gap := task.StartedAt.Sub(task.Attempts[1].FinishedAt); gap < 200*time.Millisecond {
			t.Fatalf("the third attempt began %v after the second ended, before its delay", gap)
		}

		runs.Store(0)
		task = h.waitFinal(h.dispatch(stint.DispatchRequest{Name: "test.flaky", Args: map[string]bool{"Final": true}}).ID)
		if task.State != store.StateFailed || len(task.Attempts) != 0 || runs.Load() != 1 || !task.Error.NoRetry {
			t.Fatalf("NoRetry: %s after %d runs, attempts %+v, error %+v", task.State, runs.Load(), task.Attempts, task.Error)
		}

		runs.Store(0)
		task = h.waitFinal(h.dispatch(stint.DispatchRequest{Name: "test.flaky", Retry: &stint.RetryPolicy{MaxAttempts: 1}}).ID)
		if task.State != store.StateFailed || task.Retry != nil || runs.Load() != 1 {
			t.Fatalf("retries off: %s after %d runs, policy %+v", task.State, runs.Load(), task.Retry)
		}
	})
}

// A task scheduled ahead runs after its time, not before, and a conflicting
// task dispatched after it runs meanwhile: a scheduled task blocks nothing.
func TestScheduledTaskRunsOnTime(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		h.startWorker(stint.WorkerConfig{})
		at := time.Now().Add(time.Second)
		later := h.dispatch(stint.DispatchRequest{Name: "stint.noop", ScheduledAt: at, ExclusiveResources: []string{"r"}})
		now := h.dispatch(stint.DispatchRequest{Name: "stint.noop", ExclusiveResources: []string{"r"}})
		if later.State != store.StateScheduled {
			t.Fatalf("dispatched %s", later.State)
		}
		if got := h.waitFinal(now.ID); got.FinishedAt.After(at) {
			t.Fatalf("the conflicting task finished at %v, after the scheduled one's time: it was blocked", got.FinishedAt)
		}
		got := h.waitFinal(later.ID)
		if got.State != store.StateCompleted || got.StartedAt.Before(at) {
			t.Fatalf("scheduled task %s, started %v, its time %v", got.State, got.StartedAt, at)
		}
	})
}

// A worker process SIGKILLed while it runs two tasks: the one whose type
// retries dropped runs (RetryDropped) runs again on another worker and
// completes, its first attempt recorded dropped; the other ends dropped.
func TestRetryDroppedAfterSIGKILL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, dsn := newPostgresHarness(ctx, t)
	worker, exited := startWorkerProcess(t, dsn)

	retried := h.dispatch(stint.DispatchRequest{Name: "test.lost.retried"})
	plain := h.dispatch(stint.DispatchRequest{Name: "test.lost.plain"})
	h.waitState(retried.ID, store.StateRunning)
	h.waitState(plain.ID, store.StateRunning)
	if err := worker.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	<-exited
	h.startWorker(stint.WorkerConfig{Name: "rescuer"})
	got := h.waitFinal(retried.ID)
	if got.State != store.StateCompleted || string(got.Result) != "2" || len(got.Attempts) != 1 ||
		got.Attempts[0].State != store.StateDropped || got.Attempts[0].Error == nil || got.Worker != "rescuer" {
		t.Fatalf("retried task: %s result %s on %s, attempts %+v", got.State, got.Result, got.Worker, got.Attempts)
	}
	if got := h.waitFinal(plain.ID); got.State != store.StateDropped || len(got.Attempts) != 0 {
		t.Fatalf("plain task: %s, attempts %+v", got.State, got.Attempts)
	}
}

// TestCountedUnitFreedAfterSIGKILL: a worker process holding the only unit
// of a resource of capacity 1 is SIGKILLed; its task is dropped, and the
// next task on the resource starts then, not before.
func TestCountedUnitFreedAfterSIGKILL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, dsn := newPostgresHarness(ctx, t)
	if err := h.client.SetCapacity(ctx, "slot", 1); err != nil {
		t.Fatal(err)
	}
	worker, exited := startWorkerProcess(t, dsn)
	held := h.dispatch(stint.DispatchRequest{Name: "test.lost.plain", SharedResources: []string{"slot"}})
	next := h.dispatch(stint.DispatchRequest{Name: "stint.noop", SharedResources: []string{"slot"}})
	h.waitState(held.ID, store.StateRunning)
	time.Sleep(300 * time.Millisecond) // the worker process polls: it would have claimed next by now
	if got, err := h.client.Task(ctx, next.ID); err != nil || got.State != store.StateWaiting {
		t.Fatalf("the next task is %v while the only unit is held (%v)", got, err)
	}
	blockers, err := h.client.BlockedBy(ctx, next.ID)
	if err != nil || len(blockers) != 1 || blockers[0] != (stint.Blocker{Task: held.ID, Resource: "slot", Capacity: 1, Holders: 1}) {
		t.Fatalf("the next task is blocked by %+v (%v)", blockers, err)
	}
	if err := worker.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	<-exited
	h.startWorker(stint.WorkerConfig{Name: "rescuer"})
	dropped := h.waitFinal(held.ID)
	ran := h.waitFinal(next.ID)
	if dropped.State != store.StateDropped || ran.State != store.StateCompleted || ran.Worker != "rescuer" {
		t.Fatalf("held %s, next %s on %q", dropped.State, ran.State, ran.Worker)
	}
	if ran.StartedAt.Before(*dropped.FinishedAt) {
		t.Fatalf("the next task started at %v, before the holder was dropped at %v", ran.StartedAt, dropped.FinishedAt)
	}
}
