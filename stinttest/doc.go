// Package stinttest helps task authors test their task functions without a
// worker or a database, as River's rivertest does for River's workers.
//
// NewRun builds the run handle (*stint.Run) of a task of a given name,
// owner and group. Give it to the task function directly, or let Work call
// the function that a registry registers under that name, as a worker would
// run it in-process: args checked as a dispatch checks them, the task
// type's timeout applied, a panic or an error recorded with the kind the
// worker would give it, the result decoded into the type you ask for.
// Afterwards the Run tells what the task recorded:
//
//	r := stinttest.NewRun(stinttest.Config{Name: "repo.sync", Owner: "alice"})
//	res, err := stinttest.Work[SyncResult](ctx, r, reg, SyncArgs{Repository: "docs"})
//	// res, err (a *stinttest.Failure when the task failed), r.Progress(),
//	// r.NonFatalErrors(), r.CreatedResources(), r.Children()
//
// The children a task dispatches are recorded, with the owner and group the
// run gives them, and answered with a waiting task that exists nowhere;
// Config.Registry validates them as a real dispatch would, and
// Config.Dispatch sends them on (say, to a stint.Client on a test
// database).
//
// For code that dispatches inside its own transaction (postgres.DispatchTx),
// RequireDispatchedTx and RequireNotDispatchedTx check, in that
// transaction, what it dispatched.
package stinttest
