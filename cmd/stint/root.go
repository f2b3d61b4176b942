package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"
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
	root.AddCommand(newMigrateCommand(), newWorkerCommand(), newBenchCommand(), newServeCommand(), newAPICommand(), newTaskCommand(), newGroupCommand(), newResourceCommand(), newStatusCommand(), newUserCommand())
	return root
}

func newLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
