// Package chaos is the reliability check of DESIGN §12, "exclusion and
// fairness under chaos", run in CI as TestChaos, and the checker it uses,
// Check, which judges the history of any such run.
//
// # What TestChaos does
//
// It initdb's a private PostgreSQL cluster into a temporary directory
// (fsync off, loopback only, trust authentication, a port of its own), so
// that it can restart PostgreSQL without disturbing the other tests, which
// share the server at 127.0.0.1:5432. It builds chaosnode, a small Stint
// application made only of Stint's public packages, and starts two API
// nodes and three worker nodes (4 slots each; heartbeat 500 ms, missing
// after 3 s). Through the two API nodes' HTTP API it dispatches thousands
// of chaos.step tasks, each holding 1 to 3 of 12 resources, each of them
// exclusive or shared at random, and sleeping 0 to 30 ms. Meanwhile:
//
//   - every 2 to 4 s a random worker is SIGKILLed and a replacement, with
//     a new name, started;
//   - once, a worker is SIGSTOPped for 6 s (longer than the missing
//     timeout and the slack) and then SIGCONTed;
//   - once, at a random moment, the network between one worker and
//     PostgreSQL fails: that worker (worker-net, never killed or
//     stopped) connects through a fault-injecting proxy
//     (internal/faultproxy), and the seed chooses whether all its
//     connections are cut (both ways, at once) or silenced (black-holed,
//     no FIN) for 6 s and then restored (the ones that lost bytes stay
//     silent for good, so the worker must replace them);
//   - once, PostgreSQL is restarted: immediate shutdown (SIGQUIT to the
//     postmaster, as pg_ctl stop -m immediate does), then crash recovery.
//     The postmaster is the test's child, not pg_ctl's daemon, so that it
//     dies with the test process (Pdeathsig) even when a timeout kills
//     the test; so do the nodes.
//
// A dispatch that fails while PostgreSQL restarts (a broken connection or
// a 5xx) has an unknown outcome: it is retried until one try is
// acknowledged, and counted, and the checker accepts one extra task per
// such try, but no more. Every signal and the restart are timed with the
// database's clock (SELECT clock_timestamp() just before and just after).
// A node that cannot start while PostgreSQL restarts tries again for up
// to 30 s, as a supervisor would restart it; a node that exits on its own
// fails the test. After the chaos, the test waits for every task to end
// (a stall, 20 s without any task ending, fails it at once), stops the
// nodes with SIGTERM (each must exit cleanly), and runs Check over what
// the database recorded.
//
// Each chaos.step run logs "enter" and, after its sleep, "exit" into the
// table chaos_log with the database's clock, each write fenced by the
// run's attempt: it inserts only while the task is running under that
// attempt, and holds the task's row FOR SHARE until it commits, so that it
// serialises with a drop or a finish. A run that lost its task can
// therefore log nothing more, and each run's logged interval lies within
// the task's [started_at, finished_at].
//
// # What Check proves
//
//  1. No two conflicting tasks (sharing a resource, one of them holding it
//     exclusively) overlapped, by their runs' logged [enter, exit] (or
//     [enter, finished_at] for a run that logged no exit) and by the
//     tasks' [started_at, finished_at]. It also checks the fence: every
//     log entry within its task's run.
//  2. No task overtook an earlier conflicting one: on each resource, in
//     dispatch order (seq), a task starts only after every earlier
//     conflicting task has ended.
//  3. Every task reached a final state.
//  4. None was lost (every acknowledged task is in the database, and no
//     task is there that no dispatch accounts for) or ran twice (one claim,
//     one run entering, at most one exit; a completed task has exactly
//     one).
//  5. Every task running on a killed, stopped or silenced worker ended
//     dropped (or canceled) within the missing timeout plus 2 s of the
//     signal (pushed back by a PostgreSQL outage that overlaps that
//     window); a task running on a worker whose connections were cut
//     either completed or was dropped in that time; and no task of a
//     live worker was dropped, but those given up because their claim's
//     answer was lost in an outage (claim-lost).
//  6. Nothing remained blocked: no queue entries left, nothing for the
//     scheduler's safety net (a final sweep, and the nodes' sweeps) to
//     repair.
//  7. No task was claimed twice: a started task's attempt is 1 (nothing
//     in Stint claims a task again today), even when no run of an
//     earlier claim logged anything.
//
// Check is a pure function; its table test breaks a correct history in
// each of these ways and expects the violation, so that a checker unable
// to fail cannot pass the chaos test. Given tasks alone (no log, no
// dispatch records), it judges exclusion, fairness, final states and
// drops: internal/e2e's stress test uses it so.
//
// # Running it
//
// TestChaos needs the PostgreSQL server binaries (/usr/lib/postgresql/*/bin,
// the newest is used, or STINT_CHAOS_PG_BIN), and must run as root (it
// runs the server as the postgres OS user) or as postgres; otherwise, and
// with -short, it is skipped, saying why, but only outside CI: with
// CI=true it fails instead (so does TestRestartKeepsLiveWorkers), so that
// CI never passes without the check. It takes about a minute with the defaults;
// for longer runs set
//
//	STINT_CHAOS_TASKS=20000 STINT_CHAOS_SECONDS=180 go test -run TestChaos -v ./internal/chaos
//
// STINT_CHAOS_SEED replays the random choices of a run (the test logs
// its seed); the timings of the processes differ from run to run, though.
// On failure the test logs the violations, the nodes' warnings and, after
// a stall, the workers, the incomplete tasks, the heads of the resource
// queues and the busy database sessions.
package chaos
