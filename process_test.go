package stint_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// workerProcessEnv, set to a PostgreSQL URL, makes the test binary a worker
// process on that database (see runWorkerProcess) instead of running tests.
const workerProcessEnv = "STINT_TEST_WORKER_PROCESS"

// TestMain lets the test binary be a task's child process (the workers of
// the tests run tasks in child processes by executing this binary again),
// or a worker process of TestChildProcessDiesWithWorker.
func TestMain(m *testing.M) {
	stint.RunChildProcess(processRegistry())
	if dsn := os.Getenv(workerProcessEnv); dsn != "" {
		os.Exit(runWorkerProcess(dsn))
	}
	os.Exit(m.Run())
}

// childOutputsResult is the result of test.child.outputs.
type childOutputsResult struct {
	PID   int       `json:"pid"`
	Child uuid.UUID `json:"child"`
}

// processRegistry is the registry of the tests of child processes. Both
// the tests' workers and the child processes (in TestMain) build it.
func processRegistry() *stint.Registry {
	reg := stint.NewRegistry()
	stint.Register(reg, "test.child.outputs", childOutputs, stint.InChildProcess())
	stint.Register(reg, "test.child.panics", func(context.Context, *stint.Run, struct{}) (struct{}, error) {
		items := []int{1}
		i := len(os.Args) + 1
		return struct{}{}, fmt.Errorf("unreachable: %d", items[i]) // a real runtime panic
	}, stint.InChildProcess())
	stint.Register(reg, "test.child.exits", func(context.Context, *stint.Run, struct{}) (struct{}, error) {
		fmt.Fprintln(os.Stderr, "bye from the child")
		os.Exit(3)
		return struct{}{}, nil
	}, stint.InChildProcess())
	stint.Register(reg, "test.child.garbles", func(context.Context, *stint.Run, struct{}) (struct{}, error) {
		// Bad input on the pipe to the worker (fd 4, see process.go).
		_, err := os.NewFile(4, "to-worker").WriteString("}{ not a message\n")
		return struct{}{}, err
	}, stint.InChildProcess())
	stint.Register(reg, "test.child.stuck", childStuck, stint.InChildProcess())
	// Lost with their worker: the first holds out until its run is
	// stopped, and is retried when dropped; the second holds out always.
	stint.Register(reg, "test.lost.retried", func(ctx context.Context, run *stint.Run, _ struct{}) (int, error) {
		if run.AttemptNumber() == 1 {
			<-ctx.Done()
			return 0, ctx.Err()
		}
		return run.AttemptNumber(), nil
	}, stint.RetryDropped(), stint.Retry(stint.RetryPolicy{MaxAttempts: 3, InitialDelay: 100 * time.Millisecond}))
	stint.Register(reg, "test.lost.plain", func(ctx context.Context, _ *stint.Run, _ struct{}) (struct{}, error) {
		<-ctx.Done()
		return struct{}{}, ctx.Err()
	})
	stint.Register(reg, "test.child.slow", childStuck, stint.InChildProcess(), stint.WithTimeout(time.Second))
	return reg
}

// childOutputs records every kind of output from its child process.
func childOutputs(ctx context.Context, run *stint.Run, _ struct{}) (childOutputsResult, error) {
	res := childOutputsResult{PID: os.Getpid()}
	fmt.Println("test.child.outputs writes to stdout") // the worker's stderr
	total := int64(3)
	for i := range total {
		run.Progress(stint.ProgressReport{Code: "items", Message: "Copying items", State: "running", Total: &total, Done: i + 1})
	}
	if err := run.NonFatalError(ctx, &stint.Error{Kind: "skipped", Description: "item 2 was skipped"}); err != nil {
		return res, err
	}
	if err := recordDir(ctx, run); err != nil {
		return res, err
	}
	var ve *stint.ValidationError
	if _, err := run.Dispatch(ctx, stint.DispatchRequest{Name: "no.such.task"}); !errors.As(err, &ve) || ve.Field != "name" {
		return res, fmt.Errorf("dispatching an unknown task: %v, want a validation error", err)
	}
	child, err := run.Dispatch(ctx, stint.DispatchRequest{Name: "stint.noop"})
	if err != nil {
		return res, err
	}
	res.Child = child.ID
	return res, nil
}

// childStuck records its pid and working directory, then sleeps for a
// minute: it ignores its context throughout, as a task stuck in a call
// does. (What it records is kept even if its context ended meanwhile.)
func childStuck(_ context.Context, run *stint.Run, _ struct{}) (struct{}, error) {
	ctx := context.Background()
	_ = run.CreatedResource(ctx, "pid:"+strconv.Itoa(os.Getpid()))
	_ = recordDir(ctx, run)
	time.Sleep(time.Minute)
	return struct{}{}, nil
}

// recordDir writes a file in the run's working directory and records the
// directory as a created resource "dir:PATH".
func recordDir(ctx context.Context, run *stint.Run) error {
	dir, err := run.WorkDir()
	if err != nil {
		return err
	}
	if err := os.WriteFile(dir+"/scratch", []byte("x"), 0o600); err != nil {
		return err
	}
	return run.CreatedResource(ctx, "dir:"+dir)
}

// runWorkerProcess runs a worker of processRegistry's task types on the
// PostgreSQL database dsn until the process is killed.
func runWorkerProcess(dsn string) int {
	ctx := context.Background()
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker process:", err)
		return 1
	}
	w, err := stint.NewWorker(st, processRegistry(), stint.WorkerConfig{
		HeartbeatInterval: 100 * time.Millisecond, WorkDir: os.Getenv("STINT_TEST_WORKDIR")})
	if err == nil {
		err = w.Run(ctx)
	}
	fmt.Fprintln(os.Stderr, "worker process:", err)
	return 1
}

func newProcessHarness(t *testing.T, eng enginetest.Engine) *harness {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("task child processes need Linux")
	}
	h := newHarness(t, eng)
	h.reg = processRegistry()
	h.client = stint.NewClient(h.store, h.reg)
	return h
}

// createdResource returns the value of the created resource of task id
// that starts with prefix, waiting for it to be recorded.
func (h *harness) createdResource(id uuid.UUID, prefix string) string {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		task, err := h.client.Task(h.ctx, id)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, r := range task.CreatedResources {
			if v, ok := strings.CutPrefix(r, prefix); ok {
				return v
			}
		}
		if task.State.Final() || time.Now().After(deadline) {
			h.t.Fatalf("task %s (%s) did not record %s...: %v", id, task.State, prefix, task.CreatedResources)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pidOf returns the pid task id recorded.
func (h *harness) pidOf(id uuid.UUID) int {
	h.t.Helper()
	pid, err := strconv.Atoi(h.createdResource(id, "pid:"))
	if err != nil {
		h.t.Fatal(err)
	}
	return pid
}

// processGone reports whether no live process has pid: none at all, or a
// zombie that no one reaped yet (an orphan, in a container whose init does
// not reap).
func processGone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X'
}

// waitGone fails the test unless process pid is gone within d.
func waitGone(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive after %v", pid, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitRunning waits until task id is running.
func (h *harness) waitRunning(id uuid.UUID) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		task, err := h.client.Task(h.ctx, id)
		if err != nil {
			h.t.Fatal(err)
		}
		if task.State == store.StateRunning {
			return
		}
		if task.State.Final() || time.Now().After(deadline) {
			h.t.Fatalf("task %s is %s, not running", id, task.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestChildProcessOutputs(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newProcessHarness(t, eng)
		h.startWorker(stint.WorkerConfig{})
		group, tasks, err := h.client.CreateTaskGroup(h.ctx, stint.TaskGroupRequest{Owner: "alice",
			Tasks: []stint.DispatchRequest{{Name: "test.child.outputs"}}, AllTasksDispatched: true})
		if err != nil {
			t.Fatal(err)
		}
		task := tasks[0]
		got := h.waitFinal(task.ID)
		if got.State != store.StateCompleted {
			t.Fatalf("task: %s %+v", got.State, got.Error)
		}
		var res childOutputsResult
		if err := json.Unmarshal(got.Result, &res); err != nil {
			t.Fatal(err)
		}
		if res.PID == os.Getpid() || res.PID == 0 {
			t.Fatalf("the task ran in process %d, the test's is %d", res.PID, os.Getpid())
		}
		if len(got.ProgressReports) != 1 || got.ProgressReports[0].Done != 3 || *got.ProgressReports[0].Total != 3 {
			t.Fatalf("progress: %+v", got.ProgressReports)
		}
		if len(got.NonFatalErrors) != 1 || got.NonFatalErrors[0] != (store.TaskError{Kind: "skipped", Description: "item 2 was skipped"}) {
			t.Fatalf("non-fatal errors: %+v", got.NonFatalErrors)
		}
		dir := h.createdResource(task.ID, "dir:")
		if len(got.CreatedResources) != 1 || !strings.HasPrefix(dir, "/") {
			t.Fatalf("created resources: %+v", got.CreatedResources)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("the task's working directory %s was not removed: %v", dir, err)
		}
		c := h.waitFinal(res.Child)
		if c.ParentTask == nil || *c.ParentTask != task.ID || c.Owner != "alice" || c.TaskGroup == nil ||
			*c.TaskGroup != group.ID || c.State != store.StateCompleted {
			t.Fatalf("child: parent %v owner %q group %v state %s", c.ParentTask, c.Owner, c.TaskGroup, c.State)
		}
	})
}

func TestChildProcessFailures(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newProcessHarness(t, eng)
		h.startWorker(stint.WorkerConfig{Concurrency: 2})
		panics := h.dispatch(stint.DispatchRequest{Name: "test.child.panics"})
		exits := h.dispatch(stint.DispatchRequest{Name: "test.child.exits"})
		garbles := h.dispatch(stint.DispatchRequest{Name: "test.child.garbles"})
		p := h.waitFinal(panics.ID)
		if p.State != store.StateFailed || p.Error.Kind != "panic" || !strings.Contains(p.Error.Description, "index out of range") ||
			!strings.Contains(p.Error.Traceback, "process_test.go") {
			t.Fatalf("panicking child: %s %+v", p.State, p.Error)
		}
		e := h.waitFinal(exits.ID)
		if e.State != store.StateFailed || e.Error.Kind != stint.ProcessKind || !strings.Contains(e.Error.Description, "exit status 3") ||
			!strings.Contains(e.Error.Description, "bye from the child") {
			t.Fatalf("exiting child: %s %+v", e.State, e.Error)
		}
		g := h.waitFinal(garbles.ID)
		if g.State != store.StateFailed || g.Error.Kind != stint.ProcessKind || !strings.Contains(g.Error.Description, "reading its messages") {
			t.Fatalf("garbling child: %s %+v", g.State, g.Error)
		}
	})
}

func TestChildProcessIgnoringCancelIsKilled(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newProcessHarness(t, eng)
		h.startWorker(stint.WorkerConfig{Concurrency: 2})
		stuck := h.dispatch(stint.DispatchRequest{Name: "test.child.stuck"})
		sleep := h.dispatch(stint.DispatchRequest{Name: "stint.process.sleep",
			Args: stint.SleepArgs{Seconds: 30, IgnoreCancel: true}})
		pid := h.pidOf(stuck.ID)
		dir := h.createdResource(stuck.ID, "dir:")
		h.waitRunning(sleep.ID)
		start := time.Now()
		for _, id := range []uuid.UUID{stuck.ID, sleep.ID} {
			if got, err := h.store.Cancel(h.ctx, id); err != nil || got.State != store.StateCanceling {
				t.Fatalf("cancel: %v %v", got, err)
			}
		}
		for _, id := range []uuid.UUID{stuck.ID, sleep.ID} {
			got := h.waitFinal(id)
			if got.State != store.StateCanceled || got.Error == nil || got.Error.Kind != stint.KilledKind || time.Since(start) > 2*time.Second {
				t.Fatalf("task %s: %s %+v after %v", got.Name, got.State, got.Error, time.Since(start))
			}
		}
		waitGone(t, pid, time.Second)
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("the killed task's working directory %s was not removed: %v", dir, err)
		}
	})
}

func TestChildProcessTimeout(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newProcessHarness(t, eng)
		h.startWorker(stint.WorkerConfig{CancelGrace: 200 * time.Millisecond})
		task := h.dispatch(stint.DispatchRequest{Name: "test.child.slow"})
		pid := h.pidOf(task.ID)
		got := h.waitFinal(task.ID)
		if got.State != store.StateFailed || got.Error.Kind != stint.TimeoutKind || !strings.Contains(got.Error.Description, "killed") {
			t.Fatalf("task: %s %+v", got.State, got.Error)
		}
		waitGone(t, pid, time.Second)
	})
}

// newPostgresHarness is a harness on a scratch PostgreSQL database, whose
// URL it returns for worker processes. The store closes at the end of the
// test, after every cleanup the test adds (a worker's stop among them).
func newPostgresHarness(ctx context.Context, t *testing.T) (*harness, string) {
	t.Helper()
	dsn := pgtest.Database(t)
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ctx: ctx, store: st, reg: processRegistry()}
	h.client = stint.NewClient(st, h.reg)
	return h, dsn
}

// startWorkerProcess starts the test binary again as a worker process on
// dsn (runWorkerProcess), and returns it with a channel closed when it has
// exited; the test's cleanup kills it. Its output goes to a file, logged if
// the test fails: a task's child process that outlived the worker would
// hold a pipe, and go test would wait for it.
func startWorkerProcess(t *testing.T, dsn string) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "worker-output")
	if err != nil {
		t.Fatal(err)
	}
	worker := exec.Command(os.Args[0], "-test.run=^$")
	worker.Env = append(os.Environ(), workerProcessEnv+"="+dsn, "STINT_TEST_WORKDIR="+t.TempDir())
	worker.Stdout, worker.Stderr = out, out
	if err := worker.Start(); err != nil {
		out.Close()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		worker.Wait() //nolint:errcheck // it is killed
		close(exited)
	}()
	t.Cleanup(func() {
		worker.Process.Kill() //nolint:errcheck
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("the worker process's output:\n%s", b)
		}
		out.Close()
	})
	return worker, exited
}

// TestChildProcessDiesWithWorker kills a worker process (this test binary,
// run again as a worker) while its task runs in a child process, and
// expects the child to die with it.
func TestChildProcessDiesWithWorker(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("task child processes need Linux")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, dsn := newPostgresHarness(ctx, t)
	worker, exited := startWorkerProcess(t, dsn)
	task, err := h.client.Dispatch(ctx, stint.DispatchRequest{Name: "test.child.stuck"})
	if err != nil {
		t.Fatal(err)
	}
	pid := h.pidOf(task.ID)
	t.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil && !processGone(pid) {
			p.Kill() //nolint:errcheck // the child outlived its worker: the test failed
		}
	})
	if err := worker.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	<-exited
	waitGone(t, pid, time.Second)
}
