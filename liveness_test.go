package stint_test

import (
	"context"
	"errors"
	"slices"
	gosync "sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store"
)

// slowBeats are worker settings under which only the fast path of a cancel
// (the published change) can stop a run within a second: heartbeats, the
// slow path, come once a minute.
var slowBeats = stint.WorkerConfig{HeartbeatInterval: time.Minute, MissingAfter: 2 * time.Minute}

// waitState waits until the task is in state and returns it.
func (h *harness) waitState(id uuid.UUID, state store.State) *stint.Task {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		task, err := h.client.Task(h.ctx, id)
		if err != nil {
			h.t.Fatal(err)
		}
		if task.State == state {
			return task
		}
		if task.State.Final() || time.Now().After(deadline) {
			h.t.Fatalf("task %s is %s, waiting for %s", id, task.State, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dispatch dispatches one task or fails the test.
func (h *harness) dispatch(req stint.DispatchRequest) *stint.Task {
	h.t.Helper()
	task, err := h.client.Dispatch(h.ctx, req)
	if err != nil {
		h.t.Fatal(err)
	}
	return task
}

// A cancel reaches the worker at once, not at its next heartbeat: a
// running stint.sleep ends canceled within a second.
func TestCancelIsToldAtOnce(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		h.startWorker(slowBeats)
		task := h.dispatch(stint.DispatchRequest{Name: "stint.sleep", Args: stint.SleepArgs{Seconds: 60}})
		h.waitState(task.ID, store.StateRunning)
		start := time.Now()
		if _, err := h.client.CancelTask(h.ctx, task.ID); err != nil {
			t.Fatal(err)
		}
		got := h.waitFinal(task.ID)
		if took := time.Since(start); got.State != store.StateCanceled || took > time.Second {
			t.Fatalf("task %s %v after the cancel", got.State, took)
		}
	})
}

// A task that ignores its context is abandoned after the cancel grace
// period and still ends canceled, and its slot is free again.
func TestCancelAbandonsARunThatIgnoresIt(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		stint.Register(h.reg, "test.stubborn", func(ctx context.Context, _ *stint.Run, _ struct{}) (struct{}, error) {
			<-release // ignores ctx
			return struct{}{}, nil
		})
		cfg := slowBeats
		cfg.Concurrency, cfg.CancelGrace = 1, 200*time.Millisecond
		h.startWorker(cfg)
		task := h.dispatch(stint.DispatchRequest{Name: "test.stubborn"})
		h.waitState(task.ID, store.StateRunning)
		start := time.Now()
		if _, err := h.client.CancelTask(h.ctx, task.ID); err != nil {
			t.Fatal(err)
		}
		got := h.waitFinal(task.ID)
		if took := time.Since(start); got.State != store.StateCanceled || got.Error == nil ||
			got.Error.Kind != stint.AbandonedKind || took > 2*time.Second {
			t.Fatalf("task %s %+v %v after the cancel", got.State, got.Error, took)
		}
		next := h.dispatch(stint.DispatchRequest{Name: "stint.noop"})
		if got := h.waitFinal(next.ID); got.State != store.StateCompleted {
			t.Fatalf("next task on the one slot: %s", got.State)
		}
	})
}

// WithTimeout fails a run that takes too long, whether it stops when told
// or has to be abandoned.
func TestTimeoutFailsTheRun(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		stint.Register(h.reg, "test.slow", func(ctx context.Context, _ *stint.Run, _ struct{}) (struct{}, error) {
			<-ctx.Done()
			return struct{}{}, ctx.Err()
		}, stint.WithTimeout(100*time.Millisecond))
		stint.Register(h.reg, "test.deaf", func(ctx context.Context, _ *stint.Run, _ struct{}) (struct{}, error) {
			<-release
			return struct{}{}, nil
		}, stint.WithTimeout(100*time.Millisecond))
		cfg := slowBeats
		cfg.CancelGrace = 100 * time.Millisecond
		h.startWorker(cfg)
		for _, name := range []string{"test.slow", "test.deaf"} {
			task := h.dispatch(stint.DispatchRequest{Name: name})
			got := h.waitFinal(task.ID)
			if got.State != store.StateFailed || got.Error == nil || got.Error.Kind != stint.TimeoutKind {
				t.Fatalf("%s: %s %+v", name, got.State, got.Error)
			}
		}
	})
}

// cleanups records the calls of a cleanup hook.
type cleanups struct {
	mu    gosync.Mutex
	calls [][]string
}

func (c *cleanups) hook(_ context.Context, resources []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, resources)
	return nil
}

// wait waits for n calls (at most 15 s) and returns the calls so far.
func (c *cleanups) wait(t *testing.T, n int) [][]string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c.mu.Lock()
		calls := slices.Clone(c.calls)
		c.mu.Unlock()
		if len(calls) >= n || time.Now().After(deadline) {
			return calls
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// registerCreator registers test.create: it records two created resources,
// then waits for its context to end.
func registerCreator(reg *stint.Registry, c *cleanups) {
	stint.Register(reg, "test.create", func(ctx context.Context, run *stint.Run, _ struct{}) (struct{}, error) {
		for _, r := range []string{"repo:1", "file:/tmp/x"} {
			if err := run.CreatedResource(ctx, r); err != nil {
				return struct{}{}, err
			}
		}
		<-ctx.Done()
		return struct{}{}, ctx.Err()
	}, stint.WithCleanup(c.hook))
}

// The cleanup hook gets the created resources of a canceled run, and is
// not called for a run that completes or that created nothing.
func TestCleanupHookOfACanceledRun(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		var c cleanups
		registerCreator(h.reg, &c)
		stint.Register(h.reg, "test.nothing", func(ctx context.Context, _ *stint.Run, _ struct{}) (struct{}, error) {
			<-ctx.Done()
			return struct{}{}, ctx.Err()
		}, stint.WithCleanup(c.hook))
		h.startWorker(slowBeats)
		nothing := h.dispatch(stint.DispatchRequest{Name: "test.nothing"})
		task := h.dispatch(stint.DispatchRequest{Name: "test.create"})
		h.waitState(nothing.ID, store.StateRunning)
		for {
			got, _ := h.client.Task(h.ctx, task.ID)
			if len(got.CreatedResources) == 2 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		for _, id := range []uuid.UUID{nothing.ID, task.ID} {
			if _, err := h.client.CancelTask(h.ctx, id); err != nil {
				t.Fatal(err)
			}
			if got := h.waitFinal(id); got.State != store.StateCanceled {
				t.Fatalf("task %s", got.State)
			}
		}
		c.wait(t, 1)
		time.Sleep(200 * time.Millisecond) // a second call would come now
		calls := c.wait(t, 0)
		if len(calls) != 1 || !slices.Equal(calls[0], []string{"repo:1", "file:/tmp/x"}) {
			t.Fatalf("cleanup calls: %q", calls)
		}
	})
}

// The tasks of a lost worker end dropped, and the worker that found it
// lost runs their cleanup hooks.
func TestCleanupHookOfADroppedRun(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		var c cleanups
		registerCreator(h.reg, &c)
		// A worker that claims and records, then falls silent: a process
		// that died.
		const ghost = "1@ghost"
		if err := h.store.RegisterWorker(h.ctx, store.WorkerInfo{Name: ghost, Concurrency: 1}); err != nil {
			t.Fatal(err)
		}
		task := h.dispatch(stint.DispatchRequest{Name: "test.create"})
		claimed, err := h.store.Claim(h.ctx, store.ClaimParams{Worker: ghost, Names: []string{"test.create"}, Limit: 1})
		if err != nil || len(claimed) != 1 {
			t.Fatalf("claim: %v %v", claimed, err)
		}
		out := store.Outputs{CreatedResources: []string{"repo:9"}}
		if ok, err := h.store.SaveOutputs(h.ctx, task.ID, claimed[0].Attempt, out); !ok || err != nil {
			t.Fatalf("save outputs: %v %v", ok, err)
		}
		h.startWorker(stint.WorkerConfig{HeartbeatInterval: 100 * time.Millisecond, MissingAfter: 500 * time.Millisecond,
			LostCheckInterval: 100 * time.Millisecond})
		got := h.waitFinal(task.ID)
		if got.State != store.StateDropped {
			t.Fatalf("task of the lost worker: %s", got.State)
		}
		if calls := c.wait(t, 1); len(calls) != 1 || !slices.Equal(calls[0], []string{"repo:9"}) {
			t.Fatalf("cleanup calls: %q", calls)
		}
	})
}

// At shutdown, a run that outlives the grace period is canceled and ends
// dropped (kind shutdown), not canceled: no one asked for the cancel.
func TestShutdownDropsRunsPastTheGracePeriod(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		var c cleanups
		registerCreator(h.reg, &c)
		w, err := stint.NewWorker(h.store, h.reg, stint.WorkerConfig{WorkDir: t.TempDir(), ShutdownGrace: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		task := h.dispatch(stint.DispatchRequest{Name: "test.create"})
		h.waitState(task.ID, store.StateRunning)
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		got := h.waitFinal(task.ID)
		if got.State != store.StateDropped || got.Error == nil || got.Error.Kind != "shutdown" {
			t.Fatalf("task %s %+v after the shutdown", got.State, got.Error)
		}
		if calls := c.wait(t, 1); len(calls) != 1 {
			t.Fatalf("cleanup calls: %q", calls)
		}
	})
}
