package stint

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// TaskOption configures a task type at Register: its isolation, its
// timeout, its cleanup hook, who may dispatch it over the API and the
// resources every task of the type holds.
type TaskOption func(*taskOptions)

// taskOptions are the settings of one task type.
type taskOptions struct {
	// process: each run in a child process (see InChildProcess).
	process bool
	// timeout: a run taking longer fails; 0 means no limit.
	timeout time.Duration
	// cleanup undoes what a canceled or dropped run created.
	cleanup CleanupFunc
	// adminOnly: only admins dispatch it (see AdminOnly).
	adminOnly bool
	// exclusive are resources every task of the type holds exclusively.
	exclusive []string
	// retry is the type's retry policy (see Retry); nil: none.
	retry *RetryPolicy
	// retryDropped: dropped runs are retried too (see RetryDropped).
	retryDropped bool
}

// CleanupFunc undoes what a run created. It gets the run's
// created_resources (Run.CreatedResource), in the order they were recorded.
type CleanupFunc func(ctx context.Context, createdResources []string) error

// InChildProcess runs each task of the type in a child process: the worker
// executes its own binary again for the task (the program's main must call
// RunChildProcess first), supervises it, and kills it when the task is
// canceled and does not stop within the worker's cancel grace period, or
// when it exceeds its timeout. The child is killed if the worker dies.
// The default is in-process: a goroutine of the worker.
func InChildProcess() TaskOption {
	return func(o *taskOptions) { o.process = true }
}

// WithTimeout fails a run that takes longer than d, with an error of kind
// "timeout": its context is canceled at d and, if it has not returned
// after the worker's cancel grace period, the run is abandoned (in-process)
// or killed (child process). d must be positive.
func WithTimeout(d time.Duration) TaskOption {
	if d <= 0 {
		panic("stint: WithTimeout needs a positive duration")
	}
	return func(o *taskOptions) { o.timeout = d }
}

// AdminOnly marks a task type that acts on other users' data, such as the
// built-in stint.purge: only an admin may dispatch it through the HTTP API,
// directly or in a group (a user gets 403), and a running task may
// dispatch it as a child (Run.Dispatch) only when the running task has no
// owner or its owner is an admin user. Client.Dispatch and
// postgres.DispatchTx do not check it: what an application dispatches
// itself is its own business.
func AdminOnly() TaskOption {
	return func(o *taskOptions) { o.adminOnly = true }
}

// WithExclusiveResources makes every task of the type hold these
// resources exclusively, besides those its dispatch asks for, however it is
// dispatched: stint.purge holds PurgeResource, so that two purges never run
// at once. Each must be a valid resource name (Register panics otherwise).
func WithExclusiveResources(resources ...string) TaskOption {
	for _, r := range resources {
		if msg := resourceProblem(r); msg != "" {
			panic(fmt.Sprintf("stint: WithExclusiveResources(%q): %s", r, msg))
		}
	}
	resources = slices.Clone(resources)
	return func(o *taskOptions) { o.exclusive = append(o.exclusive, resources...) }
}

// WithCleanup sets the cleanup hook of the task type: when a run ends
// canceled or dropped (its worker was lost, or stopped while it ran) and
// it recorded created resources, fn is called with them by the node that
// ended it: the run's own worker, or the node that found its worker lost
// (if that node has the task type registered). A hook must be idempotent;
// its errors are logged. See docs/operations.md.
func WithCleanup(fn CleanupFunc) TaskOption {
	return func(o *taskOptions) { o.cleanup = fn }
}
