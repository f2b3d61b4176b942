package stint_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/sqlite"
)

// An operation that creates several tasks dispatches them as one group, all
// or nothing, and a client follows the group until it is done: sealed, and
// every task final.
func ExampleClient_CreateTaskGroup() {
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
	client := stint.NewClient(st, reg)

	group, tasks, err := client.CreateTaskGroup(ctx, stint.TaskGroupRequest{
		Description: "sync three repositories", Owner: "alice", AllTasksDispatched: true,
		Tasks: []stint.DispatchRequest{
			{Name: "stint.noop", ExclusiveResources: []string{"repo:1"}},
			{Name: "stint.noop", ExclusiveResources: []string{"repo:2"}},
			{Name: "stint.noop", ExclusiveResources: []string{"repo:3"}},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("dispatched:", len(tasks), "tasks, waiting:", group.Counts[store.StateWaiting], "sealed:", group.AllTasksDispatched)

	// A worker runs them.
	worker, err := stint.NewWorker(st, reg, stint.WorkerConfig{Concurrency: 2, WorkDir: filepath.Join(dir, "work")})
	if err != nil {
		log.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- worker.Run(wctx) }()
	for deadline := time.Now().Add(time.Minute); !group.Done() && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if group, err = client.TaskGroup(ctx, group.ID); err != nil {
			log.Fatal(err)
		}
	}
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	fmt.Println("done:", group.Done(), "completed:", group.Counts[store.StateCompleted])

	// One bad request refuses the whole group: nothing is dispatched.
	_, _, err = client.CreateTaskGroup(ctx, stint.TaskGroupRequest{Owner: "alice", Tasks: []stint.DispatchRequest{
		{Name: "stint.noop"},
		{Name: "repo.sync"},
	}})
	fmt.Println(err)
	// Output:
	// dispatched: 3 tasks, waiting: 3 sealed: true
	// done: true completed: 3
	// tasks[1].name: unknown task name "repo.sync"
}

// A group created without tasks stays open for tasks dispatched into it
// later; canceling it seals it and cancels every task that is not final.
func ExampleClient_CancelTaskGroup() {
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
	client := stint.NewClient(st, stint.NewRegistry())

	group, _, err := client.CreateTaskGroup(ctx, stint.TaskGroupRequest{Description: "nightly import", Owner: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	for _, repo := range []string{"repo:1", "repo:1", "repo:2"} {
		if _, err := client.Dispatch(ctx, stint.DispatchRequest{
			Name: "stint.sleep", Args: stint.SleepArgs{Seconds: 60}, ExclusiveResources: []string{repo}, TaskGroup: &group.ID,
		}); err != nil {
			log.Fatal(err)
		}
	}
	if group, err = client.TaskGroup(ctx, group.ID); err != nil {
		log.Fatal(err)
	}
	fmt.Println("tasks:", len(group.Tasks), "waiting:", group.Counts[store.StateWaiting], "sealed:", group.AllTasksDispatched)

	group, err = client.CancelTaskGroup(ctx, group.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("canceled:", group.Counts[store.StateCanceled], "sealed:", group.AllTasksDispatched, "done:", group.Done())
	// Output:
	// tasks: 3 waiting: 3 sealed: false
	// canceled: 3 sealed: true done: true
}
