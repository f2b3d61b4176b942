package stint

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/versions"
	"github.com/stint-dev/stint/internal/worker"
	"github.com/stint-dev/stint/store"
)

// The defaults of a worker's liveness (WorkerConfig, NodeConfig): every
// node uses the same unless told otherwise.
const (
	// DefaultMissingAfter: a worker silent this long is lost, and its
	// tasks are dropped.
	DefaultMissingAfter = worker.DefaultMissingAfter
	// DefaultHeartbeatInterval: how often a worker heartbeats.
	DefaultHeartbeatInterval = worker.DefaultHeartbeatInterval
)

// WorkerConfig configures a Worker. Zero values take the defaults noted.
type WorkerConfig struct {
	// Name is unique among online workers; default "{pid}@{hostname}".
	Name string
	// Concurrency is how many tasks run at once; default the number of CPUs.
	Concurrency int
	// Versions are the versions of the components this worker provides,
	// such as {"myplugin": "2.1"}: one to four dot-separated numbers each.
	// The worker claims only the tasks whose minimum versions they meet.
	Versions map[string]string
	// PollInterval: the worker looks for tasks at least this often, in case
	// a wake-up was missed; default 1 s.
	PollInterval time.Duration
	// HeartbeatInterval; default DefaultHeartbeatInterval (2 s).
	HeartbeatInterval time.Duration
	// MissingAfter: a worker silent this long is lost; every worker drops
	// the tasks of lost workers (DESIGN §5). Default DefaultMissingAfter
	// (10 s), more than HeartbeatInterval.
	MissingAfter time.Duration
	// LostCheckInterval is how often the worker looks for lost workers:
	// those silent for MissingAfter and, on PostgreSQL, those whose
	// database session ended (a killed process), found at once. Default
	// 1 s.
	LostCheckInterval time.Duration
	// SweepInterval is how often the scheduler's safety net runs; default
	// 30 s, negative disables it.
	SweepInterval time.Duration
	// ShutdownGrace is how long running tasks may finish when the worker
	// stops before they are canceled; default 30 s.
	ShutdownGrace time.Duration
	// CancelGrace is how long a run may take to return once it was
	// canceled or timed out, before it is abandoned (in-process) or its
	// child process killed; default DefaultCancelGrace (1 s).
	CancelGrace time.Duration
	// WorkDir holds the tasks' working directories; it is emptied at start.
	// Default: a directory named after the worker in the system's temporary
	// directory.
	WorkDir string
	// Logger; default slog.Default().
	Logger *slog.Logger
	// OnFinished, if set, is called after each run the worker ends, with
	// the task's name, its final state and its run time: a hook for
	// metrics.
	OnFinished func(name string, state store.State, run time.Duration)
}

// Worker claims the tasks of its registry's types and runs them in its own
// process, Concurrency at a time.
type Worker struct {
	inner   *worker.Worker
	name    string
	workDir string
}

// DefaultWorkerName is "{pid}@{hostname}".
func DefaultWorkerName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	return fmt.Sprintf("%d@%s", os.Getpid(), host)
}

// NewWorker returns a worker that runs reg's task types from st.
func NewWorker(st store.Store, reg *Registry, cfg WorkerConfig) (*Worker, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultWorkerName()
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = runtime.NumCPU()
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = defaultWorkDir(cfg.Name)
	}
	if err := versions.Validate(cfg.Versions); err != nil {
		return nil, fmt.Errorf("stint: worker versions: %w", err)
	}
	host, _ := os.Hostname()
	client := NewClient(st, reg)
	handler := client.handler(cfg.WorkDir, cfg.CancelGrace)
	inner, err := worker.New(st, worker.Config{
		Name: cfg.Name, Hostname: host, PID: os.Getpid(), Concurrency: cfg.Concurrency,
		ClaimBatch: cfg.Concurrency, Names: reg.Names(), Versions: cfg.Versions, Handler: handler,
		PollInterval: cfg.PollInterval, HeartbeatInterval: cfg.HeartbeatInterval, MissingAfter: cfg.MissingAfter,
		LostCheckInterval: cfg.LostCheckInterval,
		Cleanup:           func(ctx context.Context, ids []uuid.UUID) { client.runCleanups(ctx, ids, cfg.Logger) },
		SweepInterval:     cfg.SweepInterval, ShutdownGrace: cfg.ShutdownGrace, Logger: cfg.Logger,
		Finished: cfg.OnFinished,
	})
	if err != nil {
		return nil, err
	}
	return &Worker{inner: inner, name: cfg.Name, workDir: cfg.WorkDir}, nil
}

// defaultWorkDir is the working directory of the worker named name when
// its configuration sets none.
func defaultWorkDir(name string) string {
	return filepath.Join(os.TempDir(), "stint-worker-"+strings.NewReplacer("/", "_", "@", "_").Replace(name))
}

// Name returns the worker's name.
func (w *Worker) Name() string { return w.name }

// Run runs tasks until ctx ends, then shuts down gracefully: it stops
// claiming, lets running tasks finish within the grace period, cancels the
// rest, and leaves the worker list.
func (w *Worker) Run(ctx context.Context) error {
	if err := os.RemoveAll(w.workDir); err != nil {
		return fmt.Errorf("stint: worker directory: %w", err)
	}
	if err := ensurePrivateDir(w.workDir); err != nil {
		return err
	}
	return w.inner.Run(ctx)
}

// WorkerStats counts what a worker did.
type WorkerStats = worker.Stats

// Stats returns the worker's counters.
func (w *Worker) Stats() WorkerStats { return w.inner.Stats() }
