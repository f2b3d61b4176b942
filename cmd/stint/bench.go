package main

import (
	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/internal/bench"
)

func newBenchCommand() *cobra.Command {
	var (
		db  string
		cfg bench.Config
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run the benchmark scenarios",
		Long: `Run benchmark scenarios and print one line each ("NAME: VALUE UNIT", details
after). Each scenario runs in a scratch database created on the server that
--db names and dropped afterwards, so the role needs CREATEDB.

Scenarios: throughput-noop, throughput-resources, depth, latency.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openPostgres(cmd.Context(), db)
			if err != nil {
				return err
			}
			st.Close()
			cfg.ServerURL = db
			cfg.Out = cmd.OutOrStdout()
			cfg.Logger = newLogger()
			return bench.Run(cmd.Context(), cfg)
		},
	}
	dbFlag(cmd, &db)
	f := cmd.Flags()
	f.StringSliceVar(&cfg.Scenarios, "scenario", nil, "scenario to run, repeatable (default all)")
	f.IntVar(&cfg.Tasks, "tasks", 50_000, "tasks per throughput run")
	f.IntVar(&cfg.Concurrency, "concurrency", 100, "worker slots")
	f.IntVar(&cfg.BatchSize, "batch", 1000, "tasks per dispatch call")
	f.IntVar(&cfg.DepthWaiting, "depth-waiting", 1_000_000, "waiting tasks in the deep run of the depth scenario")
	f.IntVar(&cfg.Samples, "samples", 300, "latency samples")
	f.BoolVar(&cfg.Keep, "keep", false, "keep the scratch databases for inspection")
	return cmd
}
