// Package postgres is Stint's engine for many nodes: store.Store on a
// PostgreSQL database (pgx/v5), shared by any number of API nodes and
// workers. It passes the same conformance suite (package storetest) as the
// embedded SQLite engine.
//
//	st, err := postgres.Open(ctx, "postgres://stint@db.example/stint")
//	if err != nil { ... }
//	defer st.Close()
//	if err := st.Migrate(ctx); err != nil { ... } // or `stint migrate`
//
// # Schema and migrations
//
// The schema is a series of SQL files embedded in the binary
// (migrations/NNNN_what.sql). Migrate applies those the database lacks,
// each in its own transaction, under an advisory lock, so that several
// nodes may run it at once; SchemaVersion says where a database stands.
// Every state change goes through a PL/pgSQL function of the schema
// (stint_dispatch, stint_claim, stint_finish, stint_cancel, ...): one round
// trip each, and one place per engine where the scheduling rule is stated.
// Each function's current definition is a file of its own
// (sql/functions/NAME.sql, a CREATE OR REPLACE FUNCTION), not a migration:
// after the migrations, Migrate replaces, in one transaction, the functions
// whose files differ from those last applied (stint_functions keeps their
// SHA-256), when the database is at the binary's newest version. To change
// a function, edit its file and add a migration that says so (a comment is
// enough): nodes of the older release then see a newer schema and leave
// the function alone. Migrations hold schema changes only.
//
// # Scheduling
//
// Each resource has a queue, stint_task_resources(resource, seq, task_id,
// exclusive): one entry per incomplete task holding it, in dispatch order.
// The resource's row in stint_resources counts its queue: frontier (the
// seq of the last entry made ready; the entries up to it are ready),
// holders, exclusive_held and waiting. Every transaction that changes a
// queue locks the rows of its resources first, in name order, and takes
// sequence numbers only then, so each queue's order is commit order and a
// dispatch racing a completion cannot lose a wake-up. Dispatch judges new
// entries from the counters; a release reads a queue only where something
// can move, and unblocks the tasks whose entries all became ready; a claim
// checks again, from the frontiers, that each of its task's entries is
// ready, and PostgreSQL refuses, by a CHECK on the counters, an exclusive
// holder beside another. None of it reads the waiting tasks behind the
// heads of the queues: the cost of a dispatch or a completion does not
// grow with the number of waiting tasks. docs/architecture.md tells the
// whole story; scripts/scheduler-cost measures it.
//
// # Workers and wake-ups
//
// Claims take runnable tasks in seq order with FOR UPDATE SKIP LOCKED and
// give each run a fencing token (attempt) that every later write checks.
// Dispatches and releases NOTIFY stint_wake when a task becomes runnable,
// cancels NOTIFY stint_cancel, and every state change NOTIFY
// stint_changes; a process listens to the first two on one connection
// (Wakeups, Cancels) and to the third only if it follows changes
// (Changes). Each worker also holds a session-level advisory lock on a
// connection of its own (RegisterWorker), which lets any node find a dead
// worker as soon as its session ends (DropLostWorkers).
//
// DispatchTx dispatches inside the caller's own transaction, so that tasks
// exist exactly when the application's changes commit.
package postgres
