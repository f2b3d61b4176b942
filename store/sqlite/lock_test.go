//go:build unix || windows

package sqlite_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/sqlite"
)

// helperEnv names the database the helper process opens.
const helperEnv = "STINT_SQLITE_LOCK_HELPER"

// TestLockHelperProcess is not a test: run by TestLockHeldByAnotherProcess
// in a child process, it opens the database, claims a task, says "locked"
// and sleeps until it is killed.
func TestLockHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process only")
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	nt := newTask("test.helper", []string{"r"}, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{nt, newTask("test.helper", []string{"r"}, nil)}); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if _, err := st.Claim(ctx, store.ClaimParams{Worker: "helper", Names: []string{"test.helper"}, Limit: 10}); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	os.Exit(2)
}

// TestLockHeldByAnotherProcess checks that the lock keeps a second process
// out, and that it dies with the process that held it: after SIGKILL, the
// file opens and what the dead process ran is recovered.
func TestLockHeldByAnotherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	ctx := ctxFor(t)
	path := filepath.Join(t.TempDir(), "stint.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	ready := make(chan string, 1)
	go func() {
		// Skip whatever the test framework may print first.
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			if line := strings.TrimSpace(lines.Text()); line == "locked" || strings.HasPrefix(line, "error:") {
				ready <- line
				return
			}
		}
		ready <- "exited without a word"
	}()
	select {
	case line := <-ready:
		if line != "locked" {
			t.Fatalf("helper process: %q", line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the helper process did not open the database")
	}

	if st, err := sqlite.Open(ctx, path); !errors.Is(err, sqlite.ErrInUse) {
		if err == nil {
			st.Close()
		}
		t.Fatalf("Open of a file another process holds: %v, want ErrInUse", err)
	} else if strings.Contains(err.Error(), "\n") {
		t.Errorf("the error is not one line: %q", err)
	}

	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no chance to clean up
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true

	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after the holder was killed: %v", err)
	}
	defer st.Close()
	if got, want := st.Recovered(), (sqlite.RecoveryResult{Dropped: 1}); got != want {
		t.Fatalf("Recovered() = %+v, want %+v", got, want)
	}
	runs, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.helper"}, Limit: 10})
	if err != nil || len(runs) != 1 {
		t.Fatalf("the task behind the dropped one: %d claimed, %v", len(runs), err)
	}
}
