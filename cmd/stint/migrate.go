package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func newMigrateCommand() *cobra.Command {
	var db string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the database schema",
		Long:  "Apply the schema migrations embedded in this binary that the database lacks. Safe to run again and, on PostgreSQL, from several nodes at once. An SQLite file is migrated whenever it is opened, so this only creates or upgrades it.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, _, err := openStore(cmd.Context(), "migrate", db, false)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.Migrate(cmd.Context()); err != nil {
				return err
			}
			vs, ok := st.(versioned)
			if !ok {
				fmt.Fprintln(cmd.OutOrStdout(), "schema up to date")
				return nil
			}
			v, err := vs.SchemaVersion(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "schema at version %d\n", v)
			return nil
		},
	}
	dbFlag(cmd, &db, "")
	return cmd
}

// versioned is a store that reports its schema version; both engines are.
type versioned interface {
	SchemaVersion(ctx context.Context) (int, error)
}
