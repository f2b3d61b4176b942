// Package runhook lets package stinttest build the run handle of a task
// (stint.Run, whose fields are stint's own) and call a registered task
// function as a worker does, without stint exporting either. Package stint
// sets the two functions when it is initialised; nothing else may call
// them.
package runhook

import (
	"context"
	"encoding/json"

	"github.com/stint-dev/stint/store"
)

// Sink receives what a run records: the methods of a worker's recorder.
type Sink interface {
	Progress(p store.ProgressReport)
	NonFatalError(ctx context.Context, e store.TaskError) error
	CreatedResource(ctx context.Context, name string) error
}

// Dispatch dispatches a run's child; req is a stint.DispatchRequest whose
// Owner and TaskGroup the run has filled in.
type Dispatch func(ctx context.Context, req any) (*store.Task, error)

var (
	// NewRun returns a *stint.Run of task whose outputs go to sink, whose
	// children go to dispatch, and whose working directory is under
	// workRoot.
	NewRun func(task *store.Task, sink Sink, dispatch Dispatch, workRoot string) any
	// Work calls the task function of run's task in registry reg (a
	// *stint.Registry) with the task's args, as a worker does in-process
	// (the task type's timeout applied, a panic recorded as one), and
	// returns what the worker would record. ok is false when reg has no
	// such task type.
	Work func(ctx context.Context, reg, run any) (result json.RawMessage, taskErr *store.TaskError, ok bool)
	// EncodeArgs encodes a dispatch request's args as a dispatch does.
	EncodeArgs func(args any) (json.RawMessage, error)
)
