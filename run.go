package stint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// ProgressReport is one progress bar of a running task: Done out of Total
// (nil when unknown), with a message and a state such as "running" or
// "completed". Reports are keyed by Code.
type ProgressReport = store.ProgressReport

// Run is the handle a task function gets to its own run: its id, progress
// reports, non-fatal errors, created resources, child tasks and working
// directory. Its methods are safe for concurrent use.
type Run struct {
	task *store.Task
	rec  outputSink
	// client dispatches the run's children; nil in a child process.
	client *Client
	// viaWorker, in a child process, asks the worker to dispatch a child.
	viaWorker func(ctx context.Context, req DispatchRequest) (*Task, error)

	workRoot string
	dirOnce  sync.Once
	dir      string
	dirErr   error
}

// outputSink is where a run's outputs go: the worker's fenced Recorder
// (internal/worker), or, in a child process, the pipe to the worker.
type outputSink interface {
	Progress(p store.ProgressReport)
	NonFatalError(ctx context.Context, e store.TaskError) error
	CreatedResource(ctx context.Context, name string) error
}

// ID returns the task's id.
func (r *Run) ID() uuid.UUID { return r.task.ID }

// Name returns the task's name.
func (r *Run) Name() string { return r.task.Name }

// Attempt returns the fencing token of this run: it grows by one each time
// the task is claimed.
func (r *Run) Attempt() int { return r.task.Attempt }

// AttemptNumber returns the number of this run among the task's
// attempts: 1 for the first, more for a retried task (see Retry).
func (r *Run) AttemptNumber() int { return len(r.task.Attempts) + 1 }

// Progress records a progress report, replacing the earlier report with the
// same Code. Calls may be frequent: writes are coalesced.
func (r *Run) Progress(p ProgressReport) { r.rec.Progress(p) }

// NonFatalError records an error the task recovered from. It is kept even
// if the task later fails.
func (r *Run) NonFatalError(ctx context.Context, err error) error {
	te := errorOf(err)
	return r.rec.NonFatalError(ctx, *te)
}

// CreatedResource records something the task created (a file, a row, a
// repository version), written at once. The task type's cleanup hook gets
// the list when the task is canceled or dropped.
func (r *Run) CreatedResource(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("stint: empty created resource")
	}
	return r.rec.CreatedResource(ctx, name)
}

// Dispatch dispatches a child task: its parent is this task, and it has
// this task's owner and, unless req names one, its task group.
func (r *Run) Dispatch(ctx context.Context, req DispatchRequest) (*Task, error) {
	if r.viaWorker != nil {
		return r.viaWorker(ctx, req) // the worker's Run sets parent, owner and group
	}
	if r.client == nil {
		return nil, errors.New("stint: this run cannot dispatch")
	}
	id := r.task.ID
	req.parent = &id
	req.Owner = r.task.Owner
	if req.TaskGroup == nil {
		req.TaskGroup = r.task.TaskGroup
	}
	if err := r.client.childAllowed(ctx, req.Name, req.Owner); err != nil {
		return nil, err
	}
	return r.client.Dispatch(ctx, req)
}

// childAllowed checks that a run whose task has owner may dispatch a
// child of the named type: a type registered with AdminOnly needs a task
// without owner (the application's own, or open mode's) or one whose
// owner is an admin user now. Otherwise a user could have a task of its
// own dispatch what the API refuses it.
func (c *Client) childAllowed(ctx context.Context, name, owner string) error {
	if owner == "" || !c.reg.RequiresAdmin(name) {
		return nil
	}
	users, err := c.store.Users(ctx)
	if err != nil {
		return fmt.Errorf("stint: checking that %q may dispatch %s: %w", owner, name, err)
	}
	for _, u := range users {
		if u.Name == owner && u.Role == store.RoleAdmin {
			return nil
		}
	}
	return &ValidationError{Index: -1, Field: "name",
		Message: fmt.Sprintf("task %s is for admins only, and this task's owner %q is not an admin", name, owner)}
}

// WorkDir returns the task's own working directory, created on first use
// and removed with its contents when the task ends.
func (r *Run) WorkDir() (string, error) {
	r.dirOnce.Do(func() {
		if r.workRoot == "" {
			r.dirErr = errors.New("stint: this run has no working directory")
			return
		}
		if r.dirErr = ensurePrivateDir(r.workRoot); r.dirErr != nil {
			return
		}
		r.dir = r.dirPath()
		r.dirErr = os.MkdirAll(r.dir, 0o700)
	})
	return r.dir, r.dirErr
}

// dirPath is the path of the task's working directory, the same in the
// worker and in a child process that runs the task.
func (r *Run) dirPath() string {
	return filepath.Join(r.workRoot, r.task.ID.String())
}

// cleanup removes the working directory this Run created.
func (r *Run) cleanup() {
	if r.dir != "" {
		os.RemoveAll(r.dir) //nolint:errcheck
	}
}

// removeWorkDir removes the task's working directory whoever created it:
// the worker calls it when a child process that ran the task is gone.
func (r *Run) removeWorkDir() {
	if r.workRoot != "" {
		os.RemoveAll(r.dirPath()) //nolint:errcheck
	}
}
