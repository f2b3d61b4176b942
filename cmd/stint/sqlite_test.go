package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/apiv1"
)

// TestServeOnSQLite runs `stint serve` with no --db, as the README's first
// command does: it creates ./stint.db, refuses a second process on the file,
// and after a SIGKILL while a task runs, the restarted server ends that task
// dropped and runs the task waiting behind it.
func TestServeOnSQLite(t *testing.T) {
	t.Parallel() // a server and a database of its own
	dir := t.TempDir()
	first := startServe(t, dir)
	if _, err := os.Stat(filepath.Join(dir, "stint.db")); err != nil {
		t.Fatalf("stint serve without --db made no ./stint.db: %v", err)
	}
	out, _, code := runClient(t, first.url, "status", "-o", "json")
	if st := decodeJSON[apiv1.Status](t, "status", out); code != 0 || st.Engine != "sqlite" || st.Workers.Online != 1 {
		t.Fatalf("status: exit %d, %+v", code, st)
	}

	t.Run("a second process on the file fails at once", func(t *testing.T) {
		start := time.Now()
		cmd := exec.Command(binary, "serve", "--addr", freeAddr(t))
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "STINT_DB=", "GORACE=atexit_sleep_ms=0")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 {
			t.Fatalf("second serve: %v", err)
		}
		oneErrorLine(t, "second serve", stderr.String(), "in use by another Stint process")
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("second serve took %v to fail", took)
		}
	})

	// A long task holds r; a second task waits behind it.
	long := dispatch(t, first.url, "stint.sleep", "--args", `{"seconds": 60}`, "--exclusive", "r")
	behind := dispatch(t, first.url, "stint.noop", "--exclusive", "r")
	waitForState(t, first.url, long.String(), "running")
	first.kill()

	second := startServe(t, dir)
	if !strings.Contains(second.output(), "dropped=1") {
		t.Errorf("the restarted server did not log what it recovered:\n%s", second.output())
	}
	got := waitForState(t, second.url, long.String(), "dropped")
	if got.Error == nil || got.Error.Description == "" {
		t.Errorf("dropped task without an error: %+v", got)
	}
	waitForState(t, second.url, behind.String(), "completed")
	out, stderr, code := runClient(t, second.url, "task", "dispatch", "stint.sleep", "--args", `{"seconds": 0.2}`, "--exclusive", "r", "--wait")
	if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), "stint.sleep completed") {
		t.Fatalf("a new task after the restart: exit %d\n%s%s", code, out, stderr)
	}
}

// waitForState polls a task with the CLI until it is in state, and returns
// it; it fails the test after 30 s.
func waitForState(t *testing.T, server, id, state string) apiv1.Task {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, stderr, code := runClient(t, server, "task", "show", id, "-o", "json")
		if code != 0 {
			t.Fatalf("task show %s: exit %d: %s", id, code, stderr)
		}
		task := decodeJSON[apiv1.Task](t, "task show", out)
		if task.State == state {
			return task
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s is %s after 30s, want %s", id, task.State, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
