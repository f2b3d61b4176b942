package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// binary is the stint binary built once for the tests of this package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stint-cmd-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "stint")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("building stint: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs the binary and returns its stdout, stderr and exit code.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "STINT_DB=")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	t.Parallel() // a server and a database of its own
	dsn := pgtest.Database(t)
	var wg sync.WaitGroup
	results := make([]string, 3)
	codes := make([]int, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var stderr string
			results[i], stderr, codes[i] = run(t, "migrate", "--db", dsn)
			if codes[i] != 0 {
				t.Errorf("migrate %d: exit %d: %s", i, codes[i], stderr)
			}
		}()
	}
	wg.Wait()
	// The newest version is the number of the migrations in the tree.
	files, err := filepath.Glob("../../store/postgres/migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v %v", files, err)
	}
	want := fmt.Sprintf("schema at version %d\n", len(files))
	for i, out := range results {
		if out != want {
			t.Errorf("migrate %d printed %q, want %q", i, out, want)
		}
	}
	if out, _, code := run(t, "migrate", "--db", dsn); code != 0 || out != want {
		t.Fatalf("second migrate: %d %q", code, out)
	}
}

func TestBadDatabaseFlagsGiveOneLine(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"migrate"}, "--db is required"},
		{[]string{"worker", "--db", "mysql://x"}, "not a database URL"},
		{[]string{"worker", "--db", "sqlite:stint.db"}, "stint worker needs PostgreSQL"},
		{[]string{"api", "--db", "sqlite:stint.db"}, "stint api needs PostgreSQL"},
		{[]string{"api"}, "--db is required"},
		{[]string{"serve", "--db", "sqlite:"}, "no file"},
		{[]string{"bench", "--db", "sqlite:x.db", "--scenario", "latency"}, "scenario latency needs PostgreSQL"},
		{[]string{"bench", "--db", "sqlite:x.db", "--scenario", "http"}, "scenario http needs PostgreSQL"},
		{[]string{"bench", "--db", "sqlite:x.db", "--scenario", "dispatch-single"}, "scenario dispatch-single needs PostgreSQL"},
		{[]string{"bench", "--db", "postgres://postgres@127.0.0.1:5432/postgres", "--scenario", "nope"}, "unknown scenario"},
		{[]string{"migrate", "--db", "postgres://postgres@127.0.0.1:1/none?connect_timeout=2"}, "postgres:"},
	}
	for _, tc := range cases {
		_, stderr, code := run(t, tc.args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code == 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], "stint: ") || !strings.Contains(lines[0], tc.want) {
			t.Errorf("stint %v: exit %d, stderr %q; want one line containing %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestWorkerProcessRunsTasksAndStopsOnSIGTERM runs a real worker process,
// dispatches to it, and stops it with SIGTERM while a task runs: the task
// finishes within the grace period and the worker leaves the list.
func TestWorkerProcessRunsTasksAndStopsOnSIGTERM(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := pgtest.Database(t)
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	var stderr bytes.Buffer
	worker := exec.Command(binary, "worker", "--db", dsn, "--migrate", "--name", "w1", "--concurrency", "2",
		"--shutdown-grace", "10s", "--workdir", t.TempDir())
	worker.Stderr = &stderr
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	defer worker.Process.Kill() //nolint:errcheck

	// Wait for the worker to migrate and register.
	var workers []store.WorkerInfo
	for deadline := time.Now().Add(20 * time.Second); len(workers) == 0; {
		workers, _ = st.Workers(ctx)
		if time.Now().After(deadline) {
			t.Fatalf("worker did not register: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if workers[0].Name != "w1" || workers[0].Concurrency != 2 || workers[0].PID != worker.Process.Pid {
		t.Fatalf("worker %+v", workers[0])
	}

	client := stint.NewClient(st, stint.NewRegistry())
	quick, err := client.Dispatch(ctx, stint.DispatchRequest{Name: "stint.noop"})
	if err != nil {
		t.Fatal(err)
	}
	slow, err := client.Dispatch(ctx, stint.DispatchRequest{Name: "stint.sleep", Args: stint.SleepArgs{Seconds: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		task, err := st.Task(ctx, slow.ID)
		if err != nil {
			t.Fatal(err)
		}
		if task.State == store.StateRunning {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := worker.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := worker.Wait(); err != nil {
		t.Fatalf("worker exit: %v\n%s", err, stderr.String())
	}
	for _, id := range []string{quick.ID.String(), slow.ID.String()} {
		task, err := st.Task(ctx, mustUUID(t, id))
		if err != nil || task.State != store.StateCompleted {
			t.Fatalf("task %s: %v %v", id, task, err)
		}
	}
	if workers, _ := st.Workers(ctx); len(workers) != 0 {
		t.Fatalf("worker still listed after a clean stop: %+v", workers)
	}
}
