package stint_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store"
)

// inlineWorker is the worker name immediate runs are recorded under.
const inlineWorker = "api@test"

// busy dispatches a task that holds resource exclusively and stays waiting
// (no worker runs in these tests unless started), so the resource is busy.
func (h *harness) busy(resource string) *stint.Task {
	h.t.Helper()
	return h.dispatch(stint.DispatchRequest{Name: "stint.noop", ExclusiveResources: []string{resource}})
}

func TestDispatchImmediateRunsInline(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		var ran atomic.Int32
		var child atomic.Value
		stint.Register(h.reg, "test.rename", func(ctx context.Context, run *stint.Run, a greetArgs) (greetResult, error) {
			ran.Add(1)
			total := int64(1)
			run.Progress(stint.ProgressReport{Code: "rename", Message: "Renaming", State: "completed", Total: &total, Done: 1})
			if err := run.CreatedResource(ctx, "repo:"+a.Name); err != nil {
				return greetResult{}, err
			}
			c, err := run.Dispatch(ctx, stint.DispatchRequest{Name: "stint.noop"})
			if err != nil {
				return greetResult{}, err
			}
			child.Store(c.ID)
			return greetResult{Greeting: "renamed to " + a.Name}, nil
		})
		task, err := h.client.DispatchImmediate(h.ctx, stint.DispatchRequest{Name: "test.rename", Args: greetArgs{Name: "ada"},
			ExclusiveResources: []string{"repo:1"}, Owner: "alice"}, inlineWorker, true)
		if err != nil {
			t.Fatal(err)
		}
		// Final when it returns: it ran in this goroutine, once.
		var res greetResult
		if err := json.Unmarshal(task.Result, &res); err != nil {
			t.Fatal(err)
		}
		if ran.Load() != 1 || task.State != store.StateCompleted || res.Greeting != "renamed to ada" ||
			task.Worker != inlineWorker || task.Attempt != 1 || task.StartedAt == nil || task.FinishedAt == nil || task.Owner != "alice" {
			t.Fatalf("immediate task: ran %d times, %+v", ran.Load(), task)
		}
		if len(task.ProgressReports) != 1 || task.ProgressReports[0].Code != "rename" ||
			len(task.CreatedResources) != 1 || task.CreatedResources[0] != "repo:ada" {
			t.Fatalf("outputs: %+v", task.Outputs)
		}
		c, err := h.client.Task(h.ctx, child.Load().(uuid.UUID))
		if err != nil || c.ParentTask == nil || *c.ParentTask != task.ID || c.Owner != "alice" {
			t.Fatalf("child: %+v %v", c, err)
		}
		// Its resource is free again: the next one runs inline too.
		again, err := h.client.DispatchImmediate(h.ctx, stint.DispatchRequest{Name: "test.rename", Args: greetArgs{Name: "bob"},
			ExclusiveResources: []string{"repo:1"}}, inlineWorker, false)
		if err != nil || again.State != store.StateCompleted {
			t.Fatalf("second immediate task: %+v %v", again, err)
		}
	})
}

func TestDispatchImmediateFailures(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		stint.Register(h.reg, "test.fails", func(context.Context, *stint.Run, struct{}) (struct{}, error) {
			return struct{}{}, &stint.Error{Kind: "upstream", Description: "the remote said no"}
		})
		stint.Register(h.reg, "test.panics", func(context.Context, *stint.Run, struct{}) (struct{}, error) {
			items := []int{1}
			i := len(os.Args) + 1
			return struct{}{}, fmt.Errorf("unreachable: %d", items[i]) // a real runtime panic
		})
		stint.Register(h.reg, "test.waits", func(ctx context.Context, _ *stint.Run, _ struct{}) (struct{}, error) {
			<-ctx.Done()
			return struct{}{}, ctx.Err()
		})
		f, err := h.client.DispatchImmediate(h.ctx, stint.DispatchRequest{Name: "test.fails"}, inlineWorker, true)
		if err != nil {
			t.Fatal(err)
		}
		if f.State != store.StateFailed || f.Error == nil || f.Error.Kind != "upstream" || f.Error.Description != "the remote said no" || f.Result != nil {
			t.Fatalf("failing task: %s %+v", f.State, f.Error)
		}
		p, err := h.client.DispatchImmediate(h.ctx, stint.DispatchRequest{Name: "test.panics", ExclusiveResources: []string{"r"}}, inlineWorker, true)
		if err != nil {
			t.Fatal(err)
		}
		if p.State != store.StateFailed || p.Error == nil || p.Error.Kind != "panic" ||
			!strings.Contains(p.Error.Description, "index out of range") || !strings.Contains(p.Error.Traceback, "immediate_test.go") {
			t.Fatalf("panicking task: %s %+v", p.State, p.Error)
		}
		// A panic frees the resources like any end.
		if next, err := h.client.DispatchImmediate(h.ctx, stint.DispatchRequest{Name: "stint.noop", ExclusiveResources: []string{"r"}},
			inlineWorker, false); err != nil || next.State != store.StateCompleted {
			t.Fatalf("after a panic: %+v %v", next, err)
		}
		// The caller's context is the task's: when it ends, the task stops,
		// and its end is still recorded.
		ctx, cancel := context.WithTimeout(h.ctx, 100*time.Millisecond)
		defer cancel()
		c, err := h.client.DispatchImmediate(ctx, stint.DispatchRequest{Name: "test.waits"}, inlineWorker, true)
		if err != nil {
			t.Fatal(err)
		}
		if c.State != store.StateCanceled || c.Error == nil || c.FinishedAt == nil {
			t.Fatalf("task whose context ended: %s %+v", c.State, c.Error)
		}
	})
}

func TestDispatchImmediateSkipped(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		var ran atomic.Int32
		stint.Register(h.reg, "test.count", func(context.Context, *stint.Run, struct{}) (struct{}, error) {
			ran.Add(1)
			return struct{}{}, nil
		})
		blocker := h.busy("repo:1")
		task, err := h.client.DispatchImmediate(h.ctx, stint.DispatchRequest{Name: "test.count",
			ExclusiveResources: []string{"repo:1"}, SharedResources: []string{"repo:2"}}, inlineWorker, false)
		if err != nil {
			t.Fatal(err)
		}
		if task.State != store.StateSkipped || task.FinishedAt == nil || task.StartedAt != nil || ran.Load() != 0 {
			t.Fatalf("skipped task: ran %d times, %+v", ran.Load(), task)
		}
		// It holds nothing: a task on repo:2 runs inline at once.
		next, err := h.client.DispatchImmediate(h.ctx, stint.DispatchRequest{Name: "test.count",
			ExclusiveResources: []string{"repo:2"}}, inlineWorker, false)
		if err != nil || next.State != store.StateCompleted || ran.Load() != 1 {
			t.Fatalf("task behind a skipped one: %+v %v", next, err)
		}
		// Skipped, it never runs, even once the resource is free.
		h.startWorker(stint.WorkerConfig{})
		if got := h.waitFinal(blocker.ID); got.State != store.StateCompleted {
			t.Fatalf("blocker: %s", got.State)
		}
		if got, err := h.client.Task(h.ctx, task.ID); err != nil || got.State != store.StateSkipped || ran.Load() != 1 {
			t.Fatalf("skipped task later: %+v %v (ran %d)", got, err, ran.Load())
		}
	})
}

func TestDispatchImmediateDeferred(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		var ran atomic.Int32
		stint.Register(h.reg, "test.count", func(context.Context, *stint.Run, struct{}) (string, error) {
			ran.Add(1)
			return "ran", nil
		})
		blocker := h.busy("repo:1")
		task, err := h.client.DispatchImmediate(h.ctx, stint.DispatchRequest{Name: "test.count",
			SharedResources: []string{"repo:1"}}, inlineWorker, true)
		if err != nil {
			t.Fatal(err)
		}
		if task.State != store.StateWaiting || task.StartedAt != nil || ran.Load() != 0 {
			t.Fatalf("deferred task: ran %d times, %+v", ran.Load(), task)
		}
		blockers, err := h.client.BlockedBy(h.ctx, task.ID)
		if err != nil || len(blockers) != 1 || blockers[0].Task != blocker.ID {
			t.Fatalf("blocked by %+v %v", blockers, err)
		}
		// A worker runs it once the blocker ends, like any task.
		w := h.startWorker(stint.WorkerConfig{})
		got := h.waitFinal(task.ID)
		if got.State != store.StateCompleted || string(got.Result) != `"ran"` || got.Worker != w.Name() || ran.Load() != 1 {
			t.Fatalf("deferred task later: %+v (ran %d)", got, ran.Load())
		}
	})
}

func TestDispatchImmediateValidation(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		_, err := h.client.DispatchImmediate(h.ctx, stint.DispatchRequest{Name: "stint.noop",
			Versions: map[string]string{"myplugin": "two", "a": "1"}}, inlineWorker, true)
		var ve *stint.ValidationError
		if !errors.As(err, &ve) || ve.Field != "versions.myplugin" ||
			!strings.HasPrefix(err.Error(), `versions.myplugin: "two" is not a version`) {
			t.Fatalf("bad version: %v", err)
		}
		if _, err := h.client.DispatchImmediate(h.ctx, stint.DispatchRequest{Name: "nope"}, inlineWorker, true); !errors.As(err, &ve) || ve.Field != "name" {
			t.Fatalf("unknown name: %v", err)
		}
		if _, err := h.client.DispatchImmediate(h.ctx, stint.DispatchRequest{Name: "stint.noop"}, "", true); err == nil {
			t.Fatal("no worker name: no error")
		}
		if counts, err := h.store.CountByState(h.ctx); err != nil || len(counts) != 0 {
			t.Fatalf("refused dispatches stored tasks: %v %v", counts, err)
		}
	})
}

// lostImmediateAnswers is a real store whose immediate dispatches commit
// (the task claimed for the inline run) and whose answers are then lost,
// as when the API node's connection is cut right after the commit.
type lostImmediateAnswers struct{ store.Store }

func (s lostImmediateAnswers) DispatchImmediate(ctx context.Context, t store.NewTask, p store.ImmediateParams) (*store.Task, error) {
	if _, err := s.Store.DispatchImmediate(ctx, t, p); err != nil {
		return nil, err
	}
	return nil, errors.New("connection reset by peer (the answer was lost)")
}

// An immediate dispatch whose answer is lost leaves its task running under
// the API node's name with no run: the node's next heartbeat finds it and
// gives it up, so that it does not hold its resources until the node
// stops.
func TestDispatchImmediateWithALostAnswerIsGivenUp(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		client := stint.NewClient(lostImmediateAnswers{h.store}, h.reg)
		ctx, stop := context.WithCancel(h.ctx)
		done := make(chan error, 1)
		go func() {
			done <- client.RunNode(ctx, stint.NodeConfig{Name: inlineWorker, HeartbeatInterval: 50 * time.Millisecond,
				MissingAfter: time.Second})
		}()
		defer func() { stop(); <-done }()
		for {
			if _, err := h.store.Worker(h.ctx, inlineWorker); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := client.DispatchImmediate(h.ctx, stint.DispatchRequest{Name: "stint.noop",
			ExclusiveResources: []string{"repo:1"}}, inlineWorker, true); err == nil {
			t.Fatal("the lost answer was not an error")
		}
		list, _, err := h.store.ListTasks(h.ctx, store.TaskFilter{Name: "stint.noop"})
		if err != nil || len(list) != 1 {
			t.Fatalf("tasks: %v %v", list, err)
		}
		task := h.waitState(list[0].ID, store.StateDropped)
		if task.Error == nil || task.Error.Kind != "claim-lost" {
			t.Fatalf("error of the task given up: %+v", task.Error)
		}
		next := h.dispatch(stint.DispatchRequest{Name: "stint.noop", ExclusiveResources: []string{"repo:1"}})
		if next.UnblockedAt == nil {
			t.Fatalf("the next task on the resource is blocked: %+v", next)
		}
	})
}
