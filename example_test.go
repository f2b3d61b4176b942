package stint_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/internal/scratchdb"
	"github.com/stint-dev/stint/store/postgres"
)

// SyncArgs are the args of an application's own task type.
type SyncArgs struct {
	Repository string `json:"repository"`
	Full       bool   `json:"full"`
}

// SyncResult is its result.
type SyncResult struct {
	Fetched int `json:"fetched"`
}

// sync is the task's function: it reports progress as it goes.
func sync(ctx context.Context, run *stint.Run, args SyncArgs) (SyncResult, error) {
	total := int64(3)
	for i := range total {
		if err := ctx.Err(); err != nil {
			return SyncResult{}, err // canceled: stop cooperatively
		}
		run.Progress(stint.ProgressReport{Code: "sync.fetch", Message: "Fetching " + args.Repository,
			State: "running", Total: &total, Done: i + 1})
	}
	return SyncResult{Fetched: int(total)}, nil
}

// exampleDatabase returns the URL of a fresh database for the examples; an
// application passes its own, e.g. from its configuration.
func exampleDatabase() (string, func()) {
	dsn, drop, err := scratchdb.Create(context.Background(), pgtest.ServerURL(), "stint_example")
	if err != nil {
		log.Fatal(err)
	}
	return dsn, func() { drop() } //nolint:errcheck
}

// An application registers its task types, dispatches a task that holds a
// repository exclusively, and runs a worker that executes it.
func Example() {
	ctx := context.Background()
	dsn, drop := exampleDatabase()
	defer drop()

	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	reg := stint.NewRegistry()
	stint.Register(reg, "repo.sync", sync)

	// The request handler: dispatch and answer 202 with the task's id.
	client := stint.NewClient(st, reg)
	task, err := client.Dispatch(ctx, stint.DispatchRequest{
		Name:               "repo.sync",
		Args:               SyncArgs{Repository: "repo:42"},
		ExclusiveResources: []string{"repo:42"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("dispatched:", task.Name, task.State)

	// A worker, usually in another process: run until the context ends.
	worker, err := stint.NewWorker(st, reg, stint.WorkerConfig{Concurrency: 4})
	if err != nil {
		log.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- worker.Run(wctx) }()

	// A client follows the task until it is final.
	var t *stint.Task
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if t, err = client.Task(ctx, task.ID); err != nil {
			log.Fatal(err)
		}
		if t.State.Final() || time.Now().After(deadline) {
			break
		}
	}
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	var res SyncResult
	json.Unmarshal(t.Result, &res) //nolint:errcheck
	fmt.Println("finished:", t.State, "fetched", res.Fetched)
	for _, p := range t.ProgressReports {
		fmt.Println("progress:", p.Message, p.Done, "of", *p.Total)
	}
	// Output:
	// dispatched: repo.sync waiting
	// finished: completed fetched 3
	// progress: Fetching repo:42 3 of 3
}

// Bad requests are refused before anything is stored, with the field at
// fault named.
func ExampleClient_Dispatch_validation() {
	reg := stint.NewRegistry()
	client := stint.NewClient(nil, reg) // validation needs no database
	_, err := client.Dispatch(context.Background(), stint.DispatchRequest{
		Name: "stint.sleep",
		Args: json.RawMessage(`{"seconds": "ten"}`),
	})
	fmt.Println(err)
	_, err = client.Dispatch(context.Background(), stint.DispatchRequest{
		Name:               "stint.noop",
		ExclusiveResources: []string{""},
	})
	fmt.Println(err)
	// Output:
	// args: do not fit task stint.sleep: json: cannot unmarshal string into Go struct field SleepArgs.seconds of type float64
	// exclusive_resources[0]: resource is empty
}

// Tasks that conflict on a resource run one after the other, in dispatch
// order; shared holders run together.
func ExampleDispatchRequest_resources() {
	reg := stint.NewRegistry()
	client := stint.NewClient(nil, reg)
	reqs := []stint.DispatchRequest{
		{Name: "stint.noop", SharedResources: []string{"repo:1"}},    // reads repo:1
		{Name: "stint.noop", SharedResources: []string{"repo:1"}},    // reads it too, at the same time
		{Name: "stint.noop", ExclusiveResources: []string{"repo:1"}}, // writes: waits for both readers
	}
	tasks, err := client.Prepare(reqs)
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range tasks {
		fmt.Println(t.ExclusiveResources, t.SharedResources)
	}
	// Output:
	// [] [repo:1]
	// [] [repo:1]
	// [repo:1] []
}
