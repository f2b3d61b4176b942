package main

import (
	"fmt"
	"net"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/node"
)

func newWorkerCommand() *cobra.Command {
	var (
		db          string
		migrate     bool
		metricsAddr string
		cfg         stint.WorkerConfig
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run tasks from a PostgreSQL database",
		Long: `Run a worker: it registers itself, heartbeats, and runs the tasks it claims,
--concurrency at a time, until SIGINT or SIGTERM. Then it stops claiming, lets
running tasks finish within --shutdown-grace, cancels the rest (they end
dropped), and leaves the worker list. See docs/operations.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, _, err := openStore(ctx, "worker", db, true)
			if err != nil {
				return err
			}
			defer st.Close()
			if migrate {
				if err := st.Migrate(ctx); err != nil {
					return err
				}
			}
			nc := node.Config{Store: st, Name: cfg.Name, MissingAfter: cfg.MissingAfter, Logger: newLogger(), Worker: &cfg}
			if metricsAddr != "" {
				ln, err := net.Listen("tcp", metricsAddr)
				if err != nil {
					return fmt.Errorf("--metrics-addr %s: %w", metricsAddr, err)
				}
				nc.MetricsListener = ln
			}
			return node.Run(ctx, nc)
		},
	}
	cmd.AddCommand(newWorkerListCommand())
	dbFlag(cmd, &db, "")
	f := cmd.Flags()
	f.BoolVar(&migrate, "migrate", false, "apply schema migrations at start")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics and /healthz at this host:port (default: not at all)")
	f.StringVar(&cfg.Name, "name", "", "worker name, unique among online workers (default {pid}@{hostname})")
	f.IntVar(&cfg.Concurrency, "concurrency", runtime.NumCPU(), "tasks run at once")
	f.DurationVar(&cfg.PollInterval, "poll-interval", 0, "look for tasks at least this often (default 1s)")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", 0, "heartbeat period (default 2s)")
	f.DurationVar(&cfg.MissingAfter, "missing-after", 0, "a worker silent this long is lost and its tasks dropped; more than --heartbeat-interval (default 10s)")
	f.DurationVar(&cfg.LostCheckInterval, "lost-check-interval", 0, "look for lost workers this often; on PostgreSQL a killed worker is found at the next look (default 1s)")
	f.DurationVar(&cfg.CancelGrace, "cancel-grace", 0, "time a canceled or timed-out task gets to return before it is abandoned, or its child process killed (default 1s)")
	f.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", 0, "time running tasks get to finish at shutdown, before they are canceled and end dropped (default 30s)")
	f.DurationVar(&cfg.SweepInterval, "sweep-interval", 0, "period of the scheduler's safety net, negative to disable (default 30s)")
	f.StringVar(&cfg.WorkDir, "workdir", "", "directory for the tasks' working directories, emptied at start")
	f.StringToStringVar(&cfg.Versions, "provides", nil, "versions of the components this worker provides, NAME=VERSION[,...]; tasks requiring newer ones are left to other workers")
	return cmd
}
