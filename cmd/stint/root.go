package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/store/postgres"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "stint",
		Short:         "Stint runs background tasks for services",
		Long:          "Stint runs background tasks for services: dispatch named tasks with exclusive and shared resources, run them on workers, follow them to the end.",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newMigrateCommand(), newWorkerCommand(), newBenchCommand(), newServeCommand(), newAPICommand(), newTaskCommand(), newStatusCommand())
	return root
}

// dbFlag adds --db, defaulting to $STINT_DB.
func dbFlag(cmd *cobra.Command, target *string) {
	cmd.Flags().StringVar(target, "db", os.Getenv("STINT_DB"), "database URL, postgres://... (env STINT_DB)")
}

// openPostgres opens the PostgreSQL store a --db value names.
func openPostgres(ctx context.Context, dsn string) (*postgres.Store, error) {
	switch {
	case dsn == "":
		return nil, fmt.Errorf("--db is required (or set STINT_DB), e.g. --db postgres://user@host/dbname")
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return postgres.Open(ctx, dsn)
	case strings.HasPrefix(dsn, "sqlite:"):
		return nil, fmt.Errorf("--db %s: this command needs PostgreSQL (postgres://...)", dsn)
	default:
		return nil, fmt.Errorf("--db %q: not a database URL; use postgres://user@host/dbname", dsn)
	}
}

func newLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
