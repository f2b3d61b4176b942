// Command chaosnode is the Stint application that the chaos check of
// package chaos runs as real processes: worker nodes and API nodes on one
// PostgreSQL database, built only from Stint's public packages, as an
// application of Stint would be.
//
//	chaosnode migrate --db URL
//	chaosnode worker  --db URL --name NAME [--concurrency N] [--heartbeat D] [--missing-after D] ...
//	chaosnode api     --db URL --name NAME [--addr 127.0.0.1:0] [--heartbeat D] [--missing-after D]
//
// It registers two task types. chaos.step (args {"sleep_ms", "key",
// "fail_attempts"}) logs "enter", sleeps, and logs "exit" in the table
// chaos_log, each write fenced by the run's attempt: a run that no longer
// owns its task (it was dropped, or claimed again) cannot log anything. A
// run whose attempt number is at most fail_attempts logs "fail" instead of
// "exit" and returns an error: the task fails, or is retried if its
// dispatch gave it a retry policy. chaos.step.retried runs the same
// function with a retry policy of its own (RetryPolicy: 4 attempts, short
// delays) and RetryDropped, so that its runs lost with their worker run
// again. The api command prints "listening http://HOST:PORT" on stdout
// once it serves.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/store/postgres"
)

// TaskName is the task type the chaos check dispatches.
const TaskName = "chaos.step"

// RetriedTaskName is the task type with a retry policy and RetryDropped.
const RetriedTaskName = "chaos.step.retried"

// RetryPolicy is chaos.step.retried's policy: up to 4 attempts, the
// delays 10, 30 and 90 ms less a random part of up to half of each. The
// chaos check's checker reads it back from the tasks (stint_tasks.retry).
var RetryPolicy = stint.RetryPolicy{MaxAttempts: 4, InitialDelay: 10 * time.Millisecond,
	MaxDelay: 100 * time.Millisecond, Multiplier: 3, Jitter: 0.5}

// schema is the log the task writes, created by the migrate command. A row
// per event of a run; run is a random id per call of the task function, so
// that two calls for the same task and attempt show as two runs, while a
// write retried after a lost answer is kept once.
const schema = `CREATE TABLE IF NOT EXISTS chaos_log (
	task    uuid        NOT NULL,
	attempt integer     NOT NULL,
	run     uuid        NOT NULL,
	event   text        NOT NULL,
	at      timestamptz NOT NULL DEFAULT clock_timestamp(),
	UNIQUE (run, event)
)`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: chaosnode migrate|worker|api [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The harness waits for this line before it may stop the node: a
	// SIGTERM before the line would end the process without a clean stop.
	fmt.Println("chaosnode handles signals")
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "migrate":
		err = migrate(ctx, args)
	case "worker":
		err = runWorker(ctx, args, log)
	case "api":
		err = runAPI(ctx, args, log)
	default:
		err = fmt.Errorf("unknown command %q: use migrate, worker or api", cmd)
	}
	// A node stopped while it starts (connecting, registering) stops as
	// cleanly as one stopped while it runs: the error is the stop itself.
	if err != nil && ctx.Err() == nil {
		log.Error("chaosnode failed", "error", err)
		os.Exit(1)
	}
}

// migrate applies Stint's migrations and creates chaos_log.
func migrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ExitOnError)
	db := fs.String("db", "", "PostgreSQL URL")
	fs.Parse(args) //nolint:errcheck // ExitOnError
	st, err := postgres.Open(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	_, err = st.Pool().Exec(ctx, schema)
	return err
}

// nodeFlags are the flags worker and api share.
type nodeFlags struct {
	db           string
	name         string
	heartbeat    time.Duration
	missingAfter time.Duration
}

func (f *nodeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.db, "db", "", "PostgreSQL URL")
	fs.StringVar(&f.name, "name", "", "worker name (required)")
	fs.DurationVar(&f.heartbeat, "heartbeat", 500*time.Millisecond, "heartbeat interval")
	fs.DurationVar(&f.missingAfter, "missing-after", 3*time.Second, "a node silent this long is lost")
}

// runWorker runs a worker with chaos.step and chaos.step.retried until
// ctx ends.
func runWorker(ctx context.Context, args []string, log *slog.Logger) error {
	var (
		f     nodeFlags
		cfg   stint.WorkerConfig
		fs    = flag.NewFlagSet("worker", flag.ExitOnError)
		grace time.Duration
	)
	f.register(fs)
	fs.IntVar(&cfg.Concurrency, "concurrency", 4, "tasks run at once")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", 200*time.Millisecond, "claim at least this often")
	fs.DurationVar(&cfg.SweepInterval, "sweep-interval", time.Second, "period of the scheduler's safety net")
	fs.DurationVar(&grace, "shutdown-grace", 2*time.Second, "time running tasks get at shutdown")
	fs.StringVar(&cfg.WorkDir, "workdir", "", "the tasks' working directories")
	fs.Parse(args) //nolint:errcheck // ExitOnError
	if f.name == "" {
		return errors.New("worker: --name is required")
	}
	st, err := openStore(ctx, f.db, log)
	if err != nil {
		return err
	}
	defer st.Close()
	// The task's log writes go through a pool of their own, as an
	// application's own database work would.
	logPool, err := pgxpool.New(ctx, f.db)
	if err != nil {
		return err
	}
	defer logPool.Close()

	reg := stint.NewRegistry()
	registerStep(reg, logPool)
	cfg.Name, cfg.HeartbeatInterval, cfg.MissingAfter = f.name, f.heartbeat, f.missingAfter
	cfg.ShutdownGrace, cfg.Logger = grace, log
	// A worker that cannot start (PostgreSQL is restarting) tries again,
	// as a supervisor would restart it.
	return startRetrying(ctx, "worker", log, func() error {
		w, err := stint.NewWorker(st, reg, cfg)
		if err != nil {
			return err
		}
		log.Info("worker started", "name", w.Name(), "pid", os.Getpid())
		return w.Run(ctx)
	})
}

// startupRetry bounds how long a node retries its start while the database
// does not answer.
const startupRetry = 30 * time.Second

// startRetrying calls start until it returns nil, ctx ends, or it keeps
// failing for startupRetry. start returns at once when it cannot start;
// otherwise it runs until ctx ends.
func startRetrying(ctx context.Context, what string, log *slog.Logger, start func() error) error {
	giveUp := time.Now().Add(startupRetry)
	for {
		err := start()
		if err == nil || ctx.Err() != nil || time.Now().After(giveUp) {
			return err
		}
		log.Warn(what+" could not start; trying again", "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// openStore opens the store, trying again while the database does not
// answer.
func openStore(ctx context.Context, dsn string, log *slog.Logger) (*postgres.Store, error) {
	var st *postgres.Store
	err := startRetrying(ctx, "store", log, func() (err error) {
		st, err = postgres.Open(ctx, dsn)
		return err
	})
	if err == nil && st == nil {
		err = ctx.Err()
	}
	return st, err
}

// runAPI serves the HTTP API, open (no users, loopback only), until ctx
// ends. Like stint api, it keeps itself in the worker list under --name
// (Client.RunNode), which ends the tasks of lost workers.
func runAPI(ctx context.Context, args []string, log *slog.Logger) error {
	var (
		f    nodeFlags
		addr string
		fs   = flag.NewFlagSet("api", flag.ExitOnError)
	)
	f.register(fs)
	fs.StringVar(&addr, "addr", "127.0.0.1:0", "address to listen on (loopback)")
	fs.Parse(args) //nolint:errcheck // ExitOnError
	if f.name == "" {
		return errors.New("api: --name is required")
	}
	st, err := openStore(ctx, f.db, log)
	if err != nil {
		return err
	}
	defer st.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		return fmt.Errorf("api: --addr %s: the chaos node serves an open API, so only on loopback", addr)
	}
	reg := stint.NewRegistry()
	registerStep(reg, nil) // to accept dispatches: an API node runs none
	var srv *api.Server
	err = startRetrying(ctx, "api", log, func() (err error) {
		srv, err = api.New(api.Config{
			Store: st, Registry: reg, Engine: "postgresql", Version: "chaos", Logger: log,
			AllowOpen: true, MissingAfter: f.missingAfter, ImmediateWorker: f.name,
		})
		return err
	})
	if err != nil || srv == nil {
		return err
	}
	defer srv.Close()
	httpServer := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}

	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	beatDone := make(chan struct{})
	go func() {
		defer close(beatDone)
		// As stint api does: in the worker list under --name, looking
		// for lost workers.
		err := stint.NewClient(st, reg).RunNode(bg, stint.NodeConfig{Name: f.name,
			HeartbeatInterval: f.heartbeat, MissingAfter: f.missingAfter, Logger: log})
		if err != nil {
			log.Error("api node", "error", err)
		}
	}()
	served := make(chan error, 1)
	go func() { served <- httpServer.Serve(ln) }()
	fmt.Printf("listening http://%s\n", ln.Addr())
	log.Info("api started", "name", f.name, "addr", ln.Addr().String(), "pid", os.Getpid())

	select {
	case <-ctx.Done():
	case err = <-served:
	}
	srv.Close()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	httpServer.Shutdown(shutdownCtx) //nolint:errcheck // best effort at exit
	stopBackground()
	<-beatDone
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// StepArgs are the args of chaos.step.
type StepArgs struct {
	// SleepMS is how long the task sleeps between enter and exit.
	SleepMS int `json:"sleep_ms"`
	// Key names the logical task: the chaos check dispatches each key
	// until one dispatch is acknowledged.
	Key string `json:"key"`
	// FailAttempts: the runs of the first FailAttempts attempts (by
	// Run.AttemptNumber) log "fail" instead of "exit" after their sleep
	// and return an error.
	FailAttempts int `json:"fail_attempts,omitempty"`
}

// Validate implements stint.ArgsValidator.
func (a StepArgs) Validate() error {
	if a.SleepMS < 0 || a.SleepMS > 60_000 {
		return fmt.Errorf("sleep_ms %d: must be within 0 and 60000", a.SleepMS)
	}
	if a.FailAttempts < 0 || a.FailAttempts > 100 {
		return fmt.Errorf("fail_attempts %d: must be within 0 and 100", a.FailAttempts)
	}
	return nil
}

// errFenced says that a run no longer owns its task: it was dropped or
// finished by someone else, so the run must not log anything more.
var errFenced = errors.New("chaos.step: the run no longer owns its task")

// errFailed is the error of a run told to fail (StepArgs.FailAttempts).
var errFailed = errors.New("chaos.step: this attempt fails, as its args ask")

// registerStep registers chaos.step and chaos.step.retried, which log
// through pool (nil on an API node, which runs no task).
func registerStep(reg *stint.Registry, pool *pgxpool.Pool) {
	step := func(ctx context.Context, run *stint.Run, a StepArgs) (struct{}, error) {
		if pool == nil {
			return struct{}{}, errors.New("chaos.step: this node has no database pool to log to")
		}
		runID := uuid.New()
		if err := logEvent(ctx, pool, run, runID, "enter"); err != nil {
			return struct{}{}, err
		}
		select {
		case <-ctx.Done():
			return struct{}{}, ctx.Err()
		case <-time.After(time.Duration(a.SleepMS) * time.Millisecond):
		}
		if run.AttemptNumber() <= a.FailAttempts {
			if err := logEvent(ctx, pool, run, runID, "fail"); err != nil {
				return struct{}{}, err
			}
			return struct{}{}, fmt.Errorf("attempt %d of %d failing: %w", run.AttemptNumber(), a.FailAttempts, errFailed)
		}
		if err := logEvent(ctx, pool, run, runID, "exit"); err != nil {
			return struct{}{}, err
		}
		return struct{}{}, nil
	}
	stint.Register(reg, TaskName, step)
	stint.Register(reg, RetriedTaskName, step, stint.Retry(RetryPolicy), stint.RetryDropped())
}

// fencedInsert logs an event only while the task is running under this
// run's attempt. FOR SHARE locks the task's row until the insert commits,
// so that a concurrent drop or finish (which locks the row FOR UPDATE)
// either waits for the log row, and sets finished_at after it, or goes
// first, and the fence then finds the task no longer running. The time is
// the column's default, evaluated above the row lock, so after the lock
// was granted: a value in the select list would be computed before.
const fencedInsert = `INSERT INTO chaos_log (task, attempt, run, event)
	SELECT t.id, t.attempt, $3, $4 FROM (
		SELECT id, attempt FROM stint_tasks
		WHERE id = $1 AND attempt = $2 AND state = 'running'
		FOR SHARE) t
	ON CONFLICT (run, event) DO NOTHING`

// retryFor bounds how long logEvent retries a write that fails.
const retryFor = 30 * time.Second

// tryFor bounds one try of logEvent: a connection of the pool that died
// in a network silence would otherwise hold a try (and the task's run)
// forever, as an application's own database call without a deadline
// would (the store's connections detect that; this pool is the
// application's own, with pgx's defaults).
const tryFor = 2 * time.Second

// logOnce is one try of logEvent, bounded by tryFor: done is true when
// the try settled the matter (logged, or errFenced), false with the error
// that calls for another try.
func logOnce(ctx context.Context, pool *pgxpool.Pool, run *stint.Run, runID uuid.UUID, event string) (done bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, tryFor)
	defer cancel()
	tag, err := pool.Exec(ctx, fencedInsert, run.ID(), run.Attempt(), runID, event)
	if err != nil {
		return false, err
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	// Nothing inserted: fenced out, or written by an earlier try whose
	// answer was lost.
	var logged bool
	err = pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM chaos_log WHERE run = $1 AND event = $2)`,
		runID, event).Scan(&logged)
	switch {
	case err != nil:
		return false, err
	case logged:
		return true, nil
	}
	return true, errFenced
}

// logEvent writes one fenced event of a run, retrying for up to retryFor
// while the database is unreachable (it may be restarting), or until ctx
// ends. A write whose answer was lost is found on retry by its (run, event)
// key.
func logEvent(ctx context.Context, pool *pgxpool.Pool, run *stint.Run, runID uuid.UUID, event string) error {
	giveUp := time.Now().Add(retryFor)
	for attempt := 0; ; attempt++ {
		done, err := logOnce(ctx, pool, run, runID, event)
		if done {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(giveUp) {
			return fmt.Errorf("chaos.step: logging %s: %w", event, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(50*time.Millisecond<<min(attempt, 5), time.Second)):
		}
	}
}
