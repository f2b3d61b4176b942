package stint_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/store/sqlite"
)

// RenameArgs are the args of a short task an API request runs inline.
type RenameArgs struct {
	Repository string `json:"repository"`
	Name       string `json:"name"`
}

// An API process runs a short task inline, under the name of its own
// worker, when the task's resources are free: the request answers with the
// task already final. When they are busy, a deferred immediate task waits
// for a worker like any task, and one that may not wait is skipped.
func ExampleClient_DispatchImmediate() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "stint-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "stint.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	reg := stint.NewRegistry()
	stint.Register(reg, "repo.rename", func(ctx context.Context, run *stint.Run, a RenameArgs) (string, error) {
		return a.Repository + " is now " + a.Name, nil
	})
	client := stint.NewClient(st, reg)
	const inline = "api@example" // the API process's own worker
	rename := stint.DispatchRequest{
		Name:               "repo.rename",
		Args:               RenameArgs{Repository: "repo:42", Name: "tools"},
		ExclusiveResources: []string{"repo:42"},
	}

	task, err := client.DispatchImmediate(ctx, rename, inline, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("free:", task.State, string(task.Result), "on", task.Worker)

	// A long task now holds repo:42 (waiting for a worker, so incomplete).
	if _, err := client.Dispatch(ctx, stint.DispatchRequest{Name: "stint.sleep",
		Args: stint.SleepArgs{Seconds: 1}, ExclusiveResources: []string{"repo:42"}}); err != nil {
		log.Fatal(err)
	}
	deferred, err := client.DispatchImmediate(ctx, rename, inline, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("busy, deferred:", deferred.State)
	skipped, err := client.DispatchImmediate(ctx, rename, inline, false)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("busy, not deferred:", skipped.State)
	// Output:
	// free: completed "repo:42 is now tools" on api@example
	// busy, deferred: waiting
	// busy, not deferred: skipped
}
