package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/sqlite"
	"github.com/stint-dev/stint/store/storetest"
)

// TestMain runs the child process of TestCrashMidDispatch when the test
// binary is started as one, and the tests otherwise.
func TestMain(m *testing.M) {
	if path := os.Getenv(storetest.CrashChildEnv); path != "" {
		st, err := sqlite.Open(context.Background(), path)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		storetest.DispatchUntilKilled(st, os.Stdout)
	}
	os.Exit(m.Run())
}

// TestCrashMidDispatch kills a process that dispatches from many goroutines
// at once (so that its calls are gathered into shared transactions) with
// SIGKILL, and finds every task it acknowledged in the file.
func TestCrashMidDispatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stint.db")
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), storetest.CrashChildEnv+"="+path)
	storetest.CheckCrashMidDispatch(t, child, func(t *testing.T) store.Store {
		st, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}
