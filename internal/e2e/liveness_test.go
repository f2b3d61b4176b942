package e2e

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// liveness is a database with the schema, a client on it, and the stint
// binary.
type liveness struct {
	ctx    context.Context
	bin    string
	dsn    string
	st     *postgres.Store
	client *stint.Client
}

func newLiveness(t *testing.T) *liveness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	l := &liveness{ctx: ctx, bin: buildStint(t), dsn: pgtest.Database(t)}
	if out, err := exec.Command(l.bin, "migrate", "--db", l.dsn).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	st, err := postgres.Open(ctx, l.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	l.st, l.client = st, stint.NewClient(st, stint.NewRegistry())
	return l
}

// sleepOn dispatches a stint.sleep of seconds on exclusive resource r.
func (l *liveness) sleepOn(t *testing.T, r string, seconds float64) *stint.Task {
	t.Helper()
	task, err := l.client.Dispatch(l.ctx, stint.DispatchRequest{Name: "stint.sleep",
		Args: stint.SleepArgs{Seconds: seconds}, ExclusiveResources: []string{r}})
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// wait polls the task until ok accepts it, for at most d, and returns it.
func (l *liveness) wait(t *testing.T, id uuid.UUID, d time.Duration, what string, ok func(*stint.Task) bool) *stint.Task {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		task, err := l.client.Task(l.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(task) {
			return task
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s is %s after %v, not %s", id, task.State, d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func inState(s store.State) func(*stint.Task) bool {
	return func(t *stint.Task) bool { return t.State == s }
}

// SIGKILL of a worker process running a task: on PostgreSQL its session
// ends with it, so the task is dropped within 2 s (the missing timeout is
// 10 s), and the task waiting behind it on the same resource then runs on
// the other worker.
func TestKilledWorkerIsFoundThroughItsSession(t *testing.T) {
	l := newLiveness(t)
	victim := startWorker(t, l.bin, l.dsn, "victim")
	held := l.sleepOn(t, "repo:1", 600)
	held = l.wait(t, held.ID, 30*time.Second, "running on the victim", func(task *stint.Task) bool {
		return task.State == store.StateRunning
	})
	if held.Worker != "victim" {
		t.Fatalf("task runs on %q", held.Worker)
	}
	// It looks for lost workers twice a second (the default is once), so
	// that a loaded CI machine still finds the victim well within 2 s.
	startWorker(t, l.bin, l.dsn, "follower", "--lost-check-interval", "500ms")
	next := l.sleepOn(t, "repo:1", 0)
	// The follower is up when it is in the worker list.
	for {
		if _, err := l.st.Worker(l.ctx, "follower"); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	killed := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	dropped := l.wait(t, held.ID, 2*time.Second, "dropped", inState(store.StateDropped))
	t.Logf("dropped %v after SIGKILL", time.Since(killed))
	if dropped.Error == nil || dropped.Error.Kind != store.WorkerLostKind ||
		!strings.Contains(dropped.Error.Description, "database session of worker victim ended") {
		t.Fatalf("error of the dropped task: %+v", dropped.Error)
	}
	done := l.wait(t, next.ID, 10*time.Second, "completed", inState(store.StateCompleted))
	if done.Worker != "follower" {
		t.Fatalf("the task behind ran on %q", done.Worker)
	}
	if _, err := l.st.Worker(l.ctx, "victim"); err == nil {
		t.Fatal("the killed worker is still listed")
	}
}

// SIGSTOP of a worker past its missing timeout, then SIGCONT: its task was
// dropped, a conflicting task ran meanwhile, and nothing the woken worker
// does changes either; it stops its stale run and registers again.
func TestStoppedWorkerIsFencedWhenItWakes(t *testing.T) {
	l := newLiveness(t)
	beat := []string{"--heartbeat-interval", "200ms", "--missing-after", "1s", "--lost-check-interval", "200ms"}
	sleeper := startWorker(t, l.bin, l.dsn, "sleeper", beat...)
	held := l.sleepOn(t, "repo:1", 3) // would complete soon after the wake-up, were it not fenced
	l.wait(t, held.ID, 30*time.Second, "running", inState(store.StateRunning))
	startWorker(t, l.bin, l.dsn, "other", beat...)

	if err := sleeper.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	next := l.sleepOn(t, "repo:1", 0.2)
	dropped := l.wait(t, held.ID, 5*time.Second, "dropped", inState(store.StateDropped))
	t.Logf("dropped %v after SIGSTOP", time.Since(stopped))
	if dropped.Error == nil || !strings.Contains(dropped.Error.Description, "stopped heartbeating") {
		t.Fatalf("error of the dropped task: %+v", dropped.Error)
	}
	ran := l.wait(t, next.ID, 10*time.Second, "completed", inState(store.StateCompleted))
	if ran.Worker != "other" || ran.StartedAt.Before(*dropped.FinishedAt) {
		t.Fatalf("the conflicting task ran on %q from %v; the dropped one ended at %v", ran.Worker, ran.StartedAt, dropped.FinishedAt)
	}
	// Past the time the stale run would have completed.
	time.Sleep(3 * time.Second)

	if err := sleeper.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// The woken worker notices and registers again.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := l.st.Worker(l.ctx, "sleeper"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the woken worker did not register again:\n%s", sleeper.stderr.String())
		}
	}
	time.Sleep(4 * time.Second) // what it might write, it has written
	after, err := l.client.Task(l.ctx, held.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.State != store.StateDropped || !after.FinishedAt.Equal(*dropped.FinishedAt) ||
		after.Error.Description != dropped.Error.Description || after.Attempt != dropped.Attempt || after.Result != nil {
		t.Fatalf("the woken worker changed its lost task: before %+v, after %+v", dropped, after)
	}
	again, err := l.client.Task(l.ctx, next.ID)
	if err != nil || again.State != store.StateCompleted || !again.FinishedAt.Equal(*ran.FinishedAt) {
		t.Fatalf("the conflicting task changed: %+v %v", again, err)
	}
	if !strings.Contains(sleeper.stderr.String(), "registering again") {
		t.Fatalf("the woken worker did not say it was removed:\n%s", sleeper.stderr.String())
	}
}

// A second `stint worker` with the name of a live one exits at once with a
// one-line error; the first goes on.
func TestWorkerNameInUse(t *testing.T) {
	l := newLiveness(t)
	startWorker(t, l.bin, l.dsn, "builder-1")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := l.st.Worker(l.ctx, "builder-1"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first worker did not register")
		}
	}
	ctx, cancel := context.WithTimeout(l.ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, l.bin, "worker", "--db", l.dsn, "--name", "builder-1", "--workdir", t.TempDir()).CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != 1 || !strings.Contains(string(out), `worker name "builder-1" is in use by a running worker`) {
		t.Fatalf("second worker: %v\n%s", err, out)
	}
	if _, err := l.st.Worker(l.ctx, "builder-1"); err != nil {
		t.Fatalf("the first worker: %v", err)
	}
}
