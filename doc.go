// Package stint runs background tasks for Go services.
//
// A request handler dispatches a named task with JSON args and answers at
// once (HTTP 202 with the task's id); workers, in the same process or on many
// machines, run the task when the resources it needs are free; clients follow
// it until it ends.
//
// # Task types
//
// A task type is a Go function with typed args and result, registered under
// a name:
//
//	type SyncArgs struct{ Repository string `json:"repository"` }
//
//	reg := stint.NewRegistry() // holds the built-in task types (stint.noop, stint.sleep, ...)
//	stint.Register(reg, "repo.sync", func(ctx context.Context, run *stint.Run, a SyncArgs) (SyncResult, error) {
//		run.Progress(stint.ProgressReport{Code: "fetch", Message: "Fetching", State: "running", Done: 1})
//		return SyncResult{}, nil
//	})
//
// Args are JSON-decoded with unknown fields rejected, at dispatch (so a bad
// request is refused at once) and again when the task runs; an args type may
// also implement ArgsValidator. The result is stored as JSON. A returned error
// fails the task (a *Error sets its kind); a panic fails it with the stack.
// The Run handle records progress reports, non-fatal errors and created
// resources, dispatches child tasks, and gives the task a working directory.
// The function must return soon after ctx is canceled.
//
// Options of Register set a task type's timeout (WithTimeout), its cleanup
// hook for canceled or dropped runs (WithCleanup), resources every task of
// the type holds (WithExclusiveResources), whether only admins may dispatch
// it over the API (AdminOnly, as stint.purge), and its isolation. By
// default a task runs in a goroutine of the worker. With InChildProcess each
// task runs in a child process: the worker executes its own binary again,
// kills the child when the task is canceled or times out and does not stop
// within the cancel grace period, and the child dies if the worker dies
// (Linux). A program with such task types calls RunChildProcess first thing
// in main, with a registry holding them (test binaries call it in TestMain):
//
//	func main() {
//		reg := newRegistry() // the same task types as the worker's
//		stint.RunChildProcess(reg) // in a task's child process: runs it and exits
//		...
//	}
//
// # Dispatch and resources
//
// Client.Dispatch validates a DispatchRequest and stores the task. A task
// may hold resources (any strings, such as "repo:42") exclusively or shared.
// Two tasks conflict on a resource when at least one holds it exclusively,
// and conflicting tasks never run at the same time, on any node. Order is
// fair: a task starts only when no earlier incomplete task conflicts with it,
// so a later task never overtakes an earlier conflicting one, and a task
// with no resources never waits for others.
//
// # Workers
//
// A Worker claims runnable tasks in batches, runs them Concurrency at a time,
// heartbeats, and records how each run ended. Every write of a run carries
// its fencing token (the task's attempt), so a run that lost its task can
// change nothing. Client.Cancel reaches the run's worker at once, on any
// node; a run that ignores its context past the cancel grace period is
// abandoned (or its child process killed). A worker that dies or goes
// silent is found by the others (at once on PostgreSQL, through its
// database session; otherwise by its missed heartbeats) and its tasks end
// dropped, their resources freed. Stopping a worker (canceling the context
// given to Run) stops claiming and lets running tasks finish within a
// grace period; those that do not end dropped.
//
// # States
//
// A task is waiting, then running, then completed, failed, canceled or
// dropped; canceling is the state between a cancel request and the end of a
// running task. Skipped is for immediate dispatches whose resources were
// busy. Nothing leaves a final state.
//
// # Engines
//
// Tasks live in a store.Store. The PostgreSQL engine (store/postgres) serves
// many API and worker processes on one database; postgres.DispatchTx
// dispatches inside the application's own transaction.
package stint
