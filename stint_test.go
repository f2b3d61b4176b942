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

// harness is a fresh database with a client and, once started, a worker.
type harness struct {
	t      *testing.T
	ctx    context.Context
	store  store.Store
	reg    *stint.Registry
	client *stint.Client
}

func newHarness(t *testing.T, eng enginetest.Engine) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	st := eng.Open(t)
	reg := stint.NewRegistry()
	return &harness{t: t, ctx: ctx, store: st, reg: reg, client: stint.NewClient(st, reg)}
}

// startWorker runs a worker until the test ends and returns it.
func (h *harness) startWorker(cfg stint.WorkerConfig) *stint.Worker {
	h.t.Helper()
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 100 * time.Millisecond
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = h.t.TempDir()
	}
	w, err := stint.NewWorker(h.store, h.reg, cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("worker: %v", err)
		}
	})
	return w
}

// waitFinal waits until the task is final and returns it.
func (h *harness) waitFinal(id uuid.UUID) *stint.Task {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		task, err := h.client.Task(h.ctx, id)
		if err != nil {
			h.t.Fatal(err)
		}
		if task.State.Final() {
			return task
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("task %s still %s", id, task.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type greetArgs struct {
	Name string `json:"name"`
}

type greetResult struct {
	Greeting string `json:"greeting"`
}

func TestWorkerRunsTypedTasks(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		stint.Register(h.reg, "test.greet", func(_ context.Context, run *stint.Run, a greetArgs) (greetResult, error) {
			return greetResult{Greeting: "hello " + a.Name + " from " + run.Name()}, nil
		})
		h.startWorker(stint.WorkerConfig{Concurrency: 2})
		task := h.dispatch(stint.DispatchRequest{Name: "test.greet", Args: greetArgs{Name: "ada"}})
		if task.State != store.StateWaiting || task.ID.Version() != 7 {
			t.Fatalf("dispatched task: state %s, id version %d", task.State, task.ID.Version())
		}
		got := h.waitFinal(task.ID)
		var res greetResult
		if err := json.Unmarshal(got.Result, &res); err != nil {
			t.Fatal(err)
		}
		if got.State != store.StateCompleted || res.Greeting != "hello ada from test.greet" || got.StartedAt == nil || got.FinishedAt == nil || got.Worker == "" {
			t.Fatalf("task %+v, result %s", got, got.Result)
		}
	})
}

func TestFailuresAreRecorded(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		stint.Register(h.reg, "test.panics", func(context.Context, *stint.Run, struct{}) (struct{}, error) {
			items := []int{1}
			i := len(os.Args) + 1
			return struct{}{}, fmt.Errorf("unreachable: %d", items[i]) // a real runtime panic
		})
		stint.Register(h.reg, "test.fails", func(context.Context, *stint.Run, struct{}) (struct{}, error) {
			return struct{}{}, &stint.Error{Kind: "upstream", Description: "the remote said no"}
		})
		h.startWorker(stint.WorkerConfig{Concurrency: 2})
		panics, _ := h.client.Dispatch(h.ctx, stint.DispatchRequest{Name: "test.panics"})
		fails, _ := h.client.Dispatch(h.ctx, stint.DispatchRequest{Name: "test.fails"})
		sleepFail, _ := h.client.Dispatch(h.ctx, stint.DispatchRequest{Name: "stint.sleep", Args: stint.SleepArgs{Seconds: 0.1, Fail: true}})

		p := h.waitFinal(panics.ID)
		if p.State != store.StateFailed || p.Error.Kind != "panic" || !strings.Contains(p.Error.Description, "index out of range") ||
			!strings.Contains(p.Error.Traceback, "stint_test.go") {
			t.Fatalf("panicking task: %s %+v", p.State, p.Error)
		}
		f := h.waitFinal(fails.ID)
		if f.State != store.StateFailed || f.Error.Kind != "upstream" || f.Error.Description != "the remote said no" || f.Result != nil {
			t.Fatalf("failing task: %s %+v", f.State, f.Error)
		}
		s := h.waitFinal(sleepFail.ID)
		if s.State != store.StateFailed || s.Error.Kind != "error" || len(s.ProgressReports) != 1 || s.ProgressReports[0].State != "failed" {
			t.Fatalf("stint.sleep with fail: %s %+v %+v", s.State, s.Error, s.ProgressReports)
		}
	})
}

func TestRunOutputs(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		var dir atomic.Value
		var child atomic.Value
		stint.Register(h.reg, "test.outputs", func(ctx context.Context, run *stint.Run, _ struct{}) (string, error) {
			total := int64(3)
			for i := range total {
				run.Progress(stint.ProgressReport{Code: "items", Message: "Copying items", State: "running", Total: &total, Done: i + 1})
			}
			if err := run.NonFatalError(ctx, errors.New("item 2 was skipped")); err != nil {
				return "", err
			}
			if err := run.CreatedResource(ctx, "file:/tmp/x"); err != nil {
				return "", err
			}
			d, err := run.WorkDir()
			if err != nil {
				return "", err
			}
			if err := os.WriteFile(d+"/scratch", []byte("x"), 0o600); err != nil {
				return "", err
			}
			dir.Store(d)
			c, err := run.Dispatch(ctx, stint.DispatchRequest{Name: "stint.noop"})
			if err != nil {
				return "", err
			}
			child.Store(c.ID)
			return "done", nil
		})
		h.startWorker(stint.WorkerConfig{})
		task := h.dispatch(stint.DispatchRequest{Name: "test.outputs", Owner: "alice"})
		got := h.waitFinal(task.ID)
		if got.State != store.StateCompleted || string(got.Result) != `"done"` {
			t.Fatalf("task: %s %s %+v", got.State, got.Result, got.Error)
		}
		if len(got.ProgressReports) != 1 || got.ProgressReports[0].Done != 3 || *got.ProgressReports[0].Total != 3 {
			t.Fatalf("progress: %+v", got.ProgressReports)
		}
		if len(got.NonFatalErrors) != 1 || got.NonFatalErrors[0].Description != "item 2 was skipped" {
			t.Fatalf("non-fatal errors: %+v", got.NonFatalErrors)
		}
		if len(got.CreatedResources) != 1 || got.CreatedResources[0] != "file:/tmp/x" {
			t.Fatalf("created resources: %+v", got.CreatedResources)
		}
		if _, err := os.Stat(dir.Load().(string)); !os.IsNotExist(err) {
			t.Fatalf("the task's working directory was not removed: %v", err)
		}
		c := h.waitFinal(child.Load().(uuid.UUID))
		if c.ParentTask == nil || *c.ParentTask != task.ID || c.Owner != "alice" || c.State != store.StateCompleted {
			t.Fatalf("child: parent %v owner %q state %s", c.ParentTask, c.Owner, c.State)
		}
	})
}

// TestTaskTypeResourcesAndAdminOnly: a task type's own resources are held
// by each of its tasks however they are dispatched (the library included),
// after those the request names; stint.purge holds stint:purge and is for
// admins only.
func TestTaskTypeResourcesAndAdminOnly(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		purge := h.dispatch(stint.DispatchRequest{Name: "stint.purge", ExclusiveResources: []string{"z", "a"}, SharedResources: []string{stint.PurgeResource},
			Args: stint.PurgeArgs{FinishedBefore: time.Now(), States: []store.State{store.StateCompleted}}})
		if got := strings.Join(purge.ExclusiveResources, ","); got != "a,stint:purge,z" || len(purge.SharedResources) != 0 {
			t.Errorf("a purge holds %s exclusively and %v shared, want a,stint:purge,z and none", got, purge.SharedResources)
		}
		if !h.reg.RequiresAdmin("stint.purge") || h.reg.RequiresAdmin("stint.noop") || h.reg.RequiresAdmin("no.such") {
			t.Error("RequiresAdmin: only stint.purge is for admins")
		}
		// A request's resources keep their indexes in errors.
		_, err := h.client.Dispatch(h.ctx, stint.DispatchRequest{Name: "stint.purge", ExclusiveResources: []string{"ok", ""},
			Args: stint.PurgeArgs{FinishedBefore: time.Now(), States: []store.State{store.StateCompleted}}})
		var ve *stint.ValidationError
		if !errors.As(err, &ve) || ve.Field != "exclusive_resources[1]" {
			t.Errorf("a bad resource of a purge: %v", err)
		}
	})
	defer func() {
		if recover() == nil {
			t.Error("WithExclusiveResources accepted an empty resource")
		}
	}()
	stint.WithExclusiveResources("")
}

func TestDispatchValidation(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		long := strings.Repeat("r", stint.MaxResourceLength+1)
		cases := []struct {
			name  string
			req   stint.DispatchRequest
			field string
		}{
			{"missing name", stint.DispatchRequest{}, "name"},
			{"unknown name", stint.DispatchRequest{Name: "no.such.task"}, "name"},
			{"args of the wrong type", stint.DispatchRequest{Name: "stint.sleep", Args: json.RawMessage(`{"seconds": "ten"}`)}, "args"},
			{"unknown args field", stint.DispatchRequest{Name: "stint.sleep", Args: json.RawMessage(`{"secs": 1}`)}, "args"},
			{"args that fail validation", stint.DispatchRequest{Name: "stint.sleep", Args: stint.SleepArgs{Seconds: -1}}, "args"},
			{"invalid JSON args", stint.DispatchRequest{Name: "stint.noop", Args: json.RawMessage(`{`)}, "args"},
			{"args that cannot be encoded", stint.DispatchRequest{Name: "stint.noop", Args: make(chan int)}, "args"},
			{"empty exclusive resource", stint.DispatchRequest{Name: "stint.noop", ExclusiveResources: []string{"a", ""}}, "exclusive_resources[1]"},
			{"over-long shared resource", stint.DispatchRequest{Name: "stint.noop", SharedResources: []string{long}}, "shared_resources[0]"},
			{"control character", stint.DispatchRequest{Name: "stint.noop", SharedResources: []string{"a\nb"}}, "shared_resources[0]"},
			// Format characters and line separators spoof tables and the UI.
			{"right-to-left override", stint.DispatchRequest{Name: "stint.noop", ExclusiveResources: []string{"repo:1\u202egnp.exe"}}, "exclusive_resources[0]"},
			{"bidi isolate", stint.DispatchRequest{Name: "stint.noop", SharedResources: []string{"ok", "a\u2066b"}}, "shared_resources[1]"},
			{"zero-width space", stint.DispatchRequest{Name: "stint.noop", SharedResources: []string{"repo:\u200b1"}}, "shared_resources[0]"},
			{"byte order mark", stint.DispatchRequest{Name: "stint.noop", SharedResources: []string{"\ufeffrepo"}}, "shared_resources[0]"},
			{"line separator", stint.DispatchRequest{Name: "stint.noop", ExclusiveResources: []string{"a\u2028b"}}, "exclusive_resources[0]"},
			{"paragraph separator", stint.DispatchRequest{Name: "stint.noop", ExclusiveResources: []string{"a\u2029b"}}, "exclusive_resources[0]"},
			{"C1 control", stint.DispatchRequest{Name: "stint.noop", ExclusiveResources: []string{"a\u0085b"}}, "exclusive_resources[0]"},
			{"version component with an override", stint.DispatchRequest{Name: "stint.noop", Versions: map[string]string{"plug\u202ein": "1"}}, "versions"},
			{"bad version", stint.DispatchRequest{Name: "stint.noop", Versions: map[string]string{"plugin": "latest"}}, "versions.plugin"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				_, err := h.client.Dispatch(h.ctx, tc.req)
				var ve *stint.ValidationError
				if !errors.As(err, &ve) || ve.Field != tc.field {
					t.Fatalf("error %v, want a validation error on %s", err, tc.field)
				}
			})
		}
		// One bad task rejects the whole batch and names its index.
		_, err := h.client.DispatchMany(h.ctx, []stint.DispatchRequest{{Name: "stint.noop"}, {Name: "nope"}})
		var ve *stint.ValidationError
		if !errors.As(err, &ve) || ve.Index != 1 || ve.Error() != `tasks[1].name: unknown task name "nope"` {
			t.Fatalf("batch error %v", err)
		}
		counts, err := h.store.CountByState(h.ctx)
		if err != nil || len(counts) != 0 {
			t.Fatalf("a rejected dispatch stored tasks: %v %v", counts, err)
		}
		// Other scripts and symbols are fine in a resource name.
		h.dispatch(stint.DispatchRequest{Name: "stint.noop", ExclusiveResources: []string{"dépôt:ἀρχή/日本語 ✓"}})
		// A group's description is one line of text, as shown in tables.
		for _, d := range []string{"sync\u202eall", "two\nlines", "a\u2028b", "tab\there"} {
			_, _, err := h.client.CreateTaskGroup(h.ctx, stint.TaskGroupRequest{Description: d})
			if !errors.As(err, &ve) || ve.Field != "description" {
				t.Errorf("description %q: %v, want a validation error on description", d, err)
			}
		}
		// Resources are normalised: sorted, unique, exclusive wins.
		task := h.dispatch(stint.DispatchRequest{Name: "stint.noop",
			ExclusiveResources: []string{"b", "a", "b"}, SharedResources: []string{"c", "a"}})
		if strings.Join(task.ExclusiveResources, ",") != "a,b" || strings.Join(task.SharedResources, ",") != "c" {
			t.Fatalf("resources %v %v", task.ExclusiveResources, task.SharedResources)
		}
	})
}

func TestCancelRunningInProcessTask(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		h.startWorker(stint.WorkerConfig{})
		task := h.dispatch(stint.DispatchRequest{Name: "stint.sleep", Args: stint.SleepArgs{Seconds: 30}})
		for {
			got, _ := h.client.Task(h.ctx, task.ID)
			if got.State == store.StateRunning {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		start := time.Now()
		if got, err := h.store.Cancel(h.ctx, task.ID); err != nil || got.State != store.StateCanceling {
			t.Fatalf("cancel: %v %v", got, err)
		}
		got := h.waitFinal(task.ID)
		if got.State != store.StateCanceled || time.Since(start) > 2*time.Second {
			t.Fatalf("task %s after %v", got.State, time.Since(start))
		}
	})
}

func TestShutdownLetsRunningTasksFinish(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		w, err := stint.NewWorker(h.store, h.reg, stint.WorkerConfig{WorkDir: t.TempDir(), ShutdownGrace: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		task, _ := h.client.Dispatch(h.ctx, stint.DispatchRequest{Name: "stint.sleep", Args: stint.SleepArgs{Seconds: 0.5}})
		for {
			got, _ := h.client.Task(h.ctx, task.ID)
			if got.State == store.StateRunning {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := h.waitFinal(task.ID); got.State != store.StateCompleted {
			t.Fatalf("task %s after a graceful shutdown", got.State)
		}
		workers, err := h.store.Workers(h.ctx)
		if err != nil || len(workers) != 0 {
			t.Fatalf("the worker did not leave the list: %v %v", workers, err)
		}
	})
}

func TestRegisterRejectsBadNames(t *testing.T) {
	reg := stint.NewRegistry()
	for _, name := range []string{"", "has space", ".dot", "stint.noop", "a..b"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", name)
				}
			}()
			stint.Register(reg, name, stint.Noop)
		}()
	}
}

func TestUnstorableDataIsRefusedOrRecorded(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		stint.Register(h.reg, "test.nul", func(_ context.Context, _ *stint.Run, s string) (string, error) {
			return s + "\x00", nil
		})
		// Args that jsonb cannot hold are refused at dispatch...
		var ve *stint.ValidationError
		_, err := h.client.Dispatch(h.ctx, stint.DispatchRequest{Name: "test.nul", Args: json.RawMessage(`"a\u0000b"`)})
		if !errors.As(err, &ve) || ve.Field != "args" {
			t.Fatalf("args with \\u0000: %v", err)
		}
		// ...while an escaped backslash before u0000 is plain text.
		bad := h.dispatch(stint.DispatchRequest{Name: "test.nul", Args: json.RawMessage(`"a\\u0000b"`)})
		// A result jsonb cannot hold fails its task with a clear error, and the
		// tasks finished in the same batch are recorded normally.
		var good []*stint.Task
		for range 5 {
			g := h.dispatch(stint.DispatchRequest{Name: "stint.noop"})
			good = append(good, g)
		}
		h.startWorker(stint.WorkerConfig{Concurrency: 8})
		if got := h.waitFinal(bad.ID); got.State != store.StateFailed || got.Error.Kind != "unstorable_result" {
			t.Fatalf("unstorable result: %s %+v", got.State, got.Error)
		}
		for _, g := range good {
			if got := h.waitFinal(g.ID); got.State != store.StateCompleted {
				t.Fatalf("a task of the same batch: %s", got.State)
			}
		}
	})
}
