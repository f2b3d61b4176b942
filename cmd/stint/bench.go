package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/internal/bench"
	"github.com/stint-dev/stint/store/postgres"
)

func newBenchCommand() *cobra.Command {
	var (
		db         string
		cfg        bench.Config
		cpuProfile string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run the benchmark scenarios",
		Long: `Run benchmark scenarios and print one line each ("NAME: VALUE UNIT", details
after). With --db postgres://..., each scenario runs in a scratch database
created on that server and dropped afterwards (the role needs CREATEDB), and
the sqlite scenario in a scratch file in the system's temporary directory.
With --db sqlite:PATH, only the sqlite scenario runs, in a scratch file in
PATH's directory (PATH itself is not touched).

Scenarios: throughput-noop, throughput-resources, depth, latency, process
(no-op tasks each in a child process), dispatch-single (client.Dispatch of
one task per call from 1, 8 and 50 goroutines), http (an API node and a
worker driven by 50 HTTP clients: POST /tasks, GET /tasks/{id},
GET /tasks?limit=20, GET /status with --http-tasks tasks in the table)
(PostgreSQL); sqlite (throughput-noop on the embedded engine).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			target, err := parseDB(db)
			if err != nil {
				return err
			}
			switch target.engine {
			case engineSQLite:
				cfg.SQLiteDir = filepath.Dir(target.dsn)
			default:
				st, err := postgres.Open(cmd.Context(), target.dsn)
				if err != nil {
					return err
				}
				st.Close()
				cfg.ServerURL = target.dsn
			}
			cfg.Out = cmd.OutOrStdout()
			cfg.Logger = newLogger()
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			return bench.Run(cmd.Context(), cfg)
		},
	}
	dbFlag(cmd, &db, "")
	f := cmd.Flags()
	f.StringSliceVar(&cfg.Scenarios, "scenario", nil, "scenario to run, repeatable (default all)")
	f.IntVar(&cfg.Tasks, "tasks", 50_000, "tasks per throughput run")
	f.IntVar(&cfg.Concurrency, "concurrency", 100, "worker slots")
	f.IntVar(&cfg.ProcessTasks, "process-tasks", 1000, "tasks of the process scenario")
	f.IntVar(&cfg.BatchSize, "batch", 1000, "tasks per dispatch call")
	f.IntVar(&cfg.DepthWaiting, "depth-waiting", 1_000_000, "waiting tasks in the deep run of the depth scenario")
	f.IntVar(&cfg.Samples, "samples", 300, "latency samples")
	f.DurationVar(&cfg.Duration, "duration", 5*time.Second, "length of each timed run (dispatch-single, http)")
	f.IntVar(&cfg.HTTPTasks, "http-tasks", 1_000_000, "tasks in the table for the read paths of the http scenario")
	f.BoolVar(&cfg.Keep, "keep", false, "keep the scratch databases for inspection")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the API node, workers and load generators of the scenarios) to `FILE`, for go tool pprof")
	return cmd
}

// startCPUProfile profiles this process into path until stop.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
