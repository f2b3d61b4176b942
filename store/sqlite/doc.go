// Package sqlite is Stint's embedded engine: store.Store on one SQLite
// file, through the pure-Go driver modernc.org/sqlite (no cgo). It is the
// engine of `stint serve` with no flags: one process runs the API, the UI
// and the workers, and needs no database server. It passes the same
// conformance suite (package storetest) as the PostgreSQL engine, with the
// same scheduling, fencing, states and outputs.
//
//	st, err := sqlite.Open(ctx, "stint.db")
//	if err != nil { ... }  // errors.Is(err, sqlite.ErrInUse): another process has it
//	defer st.Close()
//
// # One process per file
//
// Open takes an exclusive lock on the sidecar file "stint.db.lock" (flock
// on Linux, macOS and the BSDs, a POSIX record lock on other Unix systems,
// LockFileEx on Windows) and holds it until Close. The kernel releases it
// when the process ends, even by SIGKILL, so a crash never leaves the file
// locked. A second process, or a second Open in the same process, fails at
// once with an error wrapping ErrInUse. Several processes sharing one
// database (API nodes, remote workers) is what the PostgreSQL engine is
// for. The lock file stays in place after Close; removing it is harmless
// when no Stint process runs.
//
// Because it is the only process, the store needs no locks of its own in
// the database: writes are serialised in the process (a mutex and a single
// write connection, BEGIN IMMEDIATE), so the order of every resource's queue
// is commit order, and a dispatch and a completion that touch the same
// resource never interleave. Reads (ListTasks, Task, Workers, BlockedBy,
// ...) use a separate small pool of read-only connections and read the last
// commit, so API reads do not wait for writes. Wake-ups and task changes
// are published in the process, after their transaction commits, in commit
// order; a rolled-back transaction publishes nothing.
//
// # Scheduling
//
// The tables follow the PostgreSQL engine's up to its schema 7:
// stint_tasks, and the per-resource queues in stint_task_resources
// (resource, seq, exclusive, ready), one entry per incomplete task and
// resource, with each task's count of entries not yet ready
// (blocked_count). (Since its schema 8, PostgreSQL counts each queue on
// its resource's row instead of flagging entries ready; this engine keeps
// the flags.) Dispatch appends entries
// (ready when the queue is empty, or, for a shared entry, holds no
// exclusive one); releasing a task removes its entries and applies the
// per-resource rule to the heads of the queues it touched (one statement
// per queue, sqlPromote); the entry that brings a task's count to zero
// unblocks it. Partial indexes on the queues and SQLite's INDEXED BY keep
// every step an index probe from the queue heads: the cost of a dispatch
// or a completion does not grow with the number of waiting tasks.
//
// # Tasks in time
//
// A task dispatched with a ScheduledAt to come is inserted scheduled, with
// no queue entries, and blocks nothing. EnqueueDue takes the scheduled
// tasks that are due, through the partial index stint_tasks_due, gives each
// a new seq (the next one: it queues behind every task dispatched before
// it became due; seq is the rowid, and nothing keys on a scheduled task's)
// and queues it with the dispatch's own code. A failed run (or a dropped
// one, by Finish, DropLostWorkers or the recovery at Open, when the policy
// retries dropped runs) of a task whose retry policy has attempts left is
// recorded in its attempts, and the task is scheduled for its next
// attempt, its queue entries released. Unique keys are looked up, in the
// write transaction, through the partial unique index that enforces them;
// one process writes, so nothing comes between the lookup and the insert.
//
// # Durability
//
// The file is in WAL mode with synchronous=NORMAL, which SQLite documents
// as safe in WAL mode: a commit is atomic, the database is never
// corrupted, and a crash of the process loses nothing. Commits are not
// synced one by one, though (only checkpoints are), so a power loss or an
// OS crash may roll back the last transactions: a dispatch the client saw
// accepted may be gone, and a task that had finished may be found running,
// and dropped, at the next Open. Stint takes that trade for commits that
// cost no fsync. Put the file on a local file system: WAL needs
// shared memory between connections, which network file systems lack, and
// Open refuses a file it cannot put in WAL mode.
//
// # Recovery at Open
//
// Whatever a previous process left is its own: at Open, tasks found running
// end dropped and canceling ones canceled, each with an error saying the
// process stopped while it ran (a running task whose retry policy retries
// dropped runs, with attempts left, is retried instead); their resources
// are freed and the tasks behind them unblocked; every registered worker
// is removed. Recovered
// tells what was repaired.
//
// # Data
//
// Times are INTEGER microseconds since the Unix epoch, UTC: PostgreSQL's
// precision, and range filters and orderings compare integers. JSON values
// (args, result, error, outputs, versions) are TEXT, normalised at write
// time to the text PostgreSQL's jsonb returns (key order, spacing, numbers),
// and data jsonb refuses (a \u0000 escape, invalid UTF-8, a number beyond
// numeric's range) is refused with store.ErrUnstorable, so that both
// engines store and return the same values. Schema versions are embedded
// migrations (migrations/NNNN_*.sql) recorded in the table stint_schema.
package sqlite
