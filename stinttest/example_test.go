package stinttest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/stinttest"
)

// SyncArgs are the args of the example's repo.sync task.
type SyncArgs struct {
	Repository string `json:"repository"`
	Pages      int    `json:"pages"`
}

// SyncResult is its result.
type SyncResult struct {
	Fetched int `json:"fetched"`
}

// syncRepo fetches the pages of a repository, reporting progress, and
// indexes it in a child task.
func syncRepo(ctx context.Context, run *stint.Run, args SyncArgs) (SyncResult, error) {
	if args.Pages < 0 {
		return SyncResult{}, &stint.Error{Kind: "bad-args", Description: "negative page count"}
	}
	total := int64(args.Pages)
	for i := range total {
		run.Progress(stint.ProgressReport{Code: "sync.fetch", Message: "Fetching " + args.Repository,
			State: "running", Total: &total, Done: i + 1})
	}
	if err := run.CreatedResource(ctx, "repository:"+args.Repository+":v2"); err != nil {
		return SyncResult{}, err
	}
	if _, err := run.Dispatch(ctx, stint.DispatchRequest{Name: "repo.index", Args: map[string]string{"repository": args.Repository}}); err != nil {
		return SyncResult{}, err
	}
	return SyncResult{Fetched: args.Pages}, nil
}

func registry() *stint.Registry {
	reg := stint.NewRegistry()
	stint.Register(reg, "repo.sync", syncRepo)
	stint.Register(reg, "repo.index", func(ctx context.Context, run *stint.Run, args struct {
		Repository string `json:"repository"`
	}) (struct{}, error) {
		return struct{}{}, nil
	})
	return reg
}

// A test of a task function: run it as a worker would, then look at what
// it recorded.
func Example() {
	ctx := context.Background()
	reg := registry()

	r := stinttest.NewRun(stinttest.Config{Name: "repo.sync", Owner: "alice", Registry: reg})
	res, err := stinttest.Work[SyncResult](ctx, r, reg, SyncArgs{Repository: "docs", Pages: 3})
	fmt.Println("result:", res.Fetched, err)
	for _, p := range r.Progress() {
		fmt.Printf("progress %s: %d of %d\n", p.Code, p.Done, *p.Total)
	}
	fmt.Println("created:", r.CreatedResources())
	for _, c := range r.Children() {
		fmt.Println("child:", c.Name, "for", c.Owner)
	}

	// A failure is what the worker would record.
	_, err = stinttest.Work[SyncResult](ctx, stinttest.NewRun(stinttest.Config{Name: "repo.sync"}), reg, SyncArgs{Pages: -1})
	var failure *stinttest.Failure
	if errors.As(err, &failure) {
		fmt.Println("failed:", failure.Kind, failure.Description)
	}
	// Output:
	// result: 3 <nil>
	// progress sync.fetch: 3 of 3
	// created: [repository:docs:v2]
	// child: repo.index for alice
	// failed: bad-args negative page count
}
