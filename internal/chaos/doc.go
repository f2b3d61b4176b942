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
// of tasks, each holding 1 to 3 of 12 resources, each of them exclusive or
// shared at random. Most (76 %) are plain chaos.step tasks, sleeping 0 to
// 30 ms, which never fail and have no retry policy. The others are
// retried:
//
//   - 16 % are chaos.step.retried, a task type registered with
//     stint.Retry (4 attempts, delays of 10, 30 and 90 ms less up to half
//     of each at random) and stint.RetryDropped, sleeping 0 to 200 ms (so
//     that the chaos finds more of them running); the seed makes a third
//     of them fail their first attempt, a third their first two (args
//     fail_attempts, judged by Run.AttemptNumber), and each one lost with
//     its worker (killed, stopped, cut off or silenced) runs again;
//   - 8 % are chaos.step with a retry policy of their dispatch (the POST
//     body's "retry": 2 attempts, 10 ms), failing their first attempt: a
//     run of theirs lost with its worker is not retried, it ends dropped.
//
// Meanwhile:
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
// its attempt's [started_at, finished_at]. A run told to fail logs "fail"
// instead of "exit" and returns an error. Each claim takes a new attempt
// (the fencing token), so the k-th claim of a task is its attempt number
// k: a retried task's earlier attempts are in its attempts list
// (stint_tasks.attempts: number, state, started_at, finished_at, worker,
// error), its last one in its own columns, and a run's log names its
// attempt by the token.
//
// # What Check proves
//
//  1. No two conflicting tasks (sharing a resource, one of them holding it
//     exclusively) overlapped, by their runs' logged [enter, exit] (or
//     [enter, fail], or [enter, the end of its attempt] for a run that
//     logged neither) and by the attempts' recorded [started_at,
//     finished_at]: every attempt of a retried task, the earlier ones from
//     its attempts list as its last one. It also checks the fence: every
//     log entry within its attempt, under a claim the task recorded.
//  2. No task overtook an earlier conflicting one: on each resource, in
//     queue order (seq), a task starts only after every earlier
//     conflicting task has ended. A retried task takes a new seq when its
//     next attempt is due (it queues at the back), so the order judged is
//     that of the last attempts; an earlier attempt is judged by the
//     overlaps only (its seq is not recorded), and a task waiting for its
//     retry (scheduled) holds up nothing.
//  3. Every task reached a final state.
//  4. None was lost (every acknowledged task is in the database, and no
//     task is there that no dispatch accounts for) or ran twice (one run
//     entering per attempt, at most one exit in the last; a completed task
//     has exactly one there).
//  5. Every attempt running on a killed, stopped or silenced worker ended
//     dropped (or canceled) within the missing timeout plus 2 s of the
//     signal (pushed back by a PostgreSQL outage that overlaps that
//     window); one running on a worker whose connections were cut either
//     completed or was dropped in that time; and no attempt of a live
//     worker was dropped, but those given up because their claim's answer
//     was lost in an outage (claim-lost). A RetryDropped task's dropped
//     attempts are judged so as a dropped task is: each must be explained
//     by a loss.
//  6. Nothing remained blocked: no queue entries left, nothing for the
//     scheduler's safety net (a final sweep, and the nodes' sweeps) to
//     repair.
//  7. No task was claimed more often than its record accounts for: its
//     attempt is its earlier attempts plus one for its last run, even when
//     no run of a claim logged anything.
//  8. No task completed twice: its earlier attempts all failed or were
//     dropped (never completed), no run of an attempt recorded failed ran
//     to its end (exit), and no run of it entered after the run that
//     completed it. (A dropped attempt's run may have logged exit: it did
//     its work, and its outcome was lost with its worker; RetryDropped is
//     for idempotent tasks. These are counted.)
//  9. Retries kept to the policy: no task ran more attempts than its
//     policy's max_attempts, none was retried without a policy, a dropped
//     run only under RetryDropped, no canceled run, the attempts are
//     numbered 1, 2, … in order; each attempt started no sooner than its
//     predecessor's finished_at plus the least delay of the policy (the
//     jitter taken at its largest); and no task ended failed (without
//     NoRetry), or dropped under RetryDropped, while it had attempts left:
//     a RetryDropped task lost with its worker ends completed, or failed
//     or dropped only on its last attempt.
//
// Check is a pure function; its table tests break a correct history (one
// with plain tasks, one with retried tasks too) in each of these ways and
// expect the violation, so that a checker unable
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
// CI never passes without the check. It takes a minute and a half with the
// defaults; for longer runs set
//
//	STINT_CHAOS_TASKS=20000 STINT_CHAOS_SECONDS=180 go test -run TestChaos -v ./internal/chaos
//
// STINT_CHAOS_SEED replays the random choices of a run (the test logs
// its seed); the timings of the processes differ from run to run, though.
// On failure the test logs the violations, the nodes' warnings and, after
// a stall, the workers, the incomplete tasks, the heads of the resource
// queues and the busy database sessions.
package chaos
