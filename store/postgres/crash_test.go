package postgres_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
	"github.com/stint-dev/stint/store/storetest"
)

// TestMain runs the child process of TestCrashMidDispatch when the test
// binary is started as one, and the tests otherwise.
func TestMain(m *testing.M) {
	if dsn := os.Getenv(storetest.CrashChildEnv); dsn != "" {
		st, err := postgres.Open(context.Background(), dsn)
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
// SIGKILL, and finds every task it acknowledged in the database.
func TestCrashMidDispatch(t *testing.T) {
	dsn := pgtest.Database(t)
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), storetest.CrashChildEnv+"="+dsn)
	storetest.CheckCrashMidDispatch(t, child, func(t *testing.T) store.Store {
		st, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}
