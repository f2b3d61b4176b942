package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newStatusCommand() *cobra.Command {
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a Stint server's status: version, database, workers, tasks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			s, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if cf.jsonOut() {
				return writeJSON(cmd.OutOrStdout(), s)
			}
			db := "reachable"
			if !s.Database.Reachable {
				db = "NOT reachable"
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintf(tw, "Server:\t%s\n", c.Server())
			fmt.Fprintf(tw, "Version:\t%s\n", s.Version)
			fmt.Fprintf(tw, "Engine:\t%s\n", s.Engine)
			fmt.Fprintf(tw, "Database:\t%s\n", db)
			fmt.Fprintf(tw, "Workers:\t%d online, %d missing\n", s.Workers.Online, s.Workers.Missing)
			fmt.Fprintf(tw, "Tasks:\t%d scheduled, %d waiting, %d running, %d canceling\n", s.Tasks.Scheduled, s.Tasks.Waiting, s.Tasks.Running, s.Tasks.Canceling)
			return tw.Flush()
		},
	}
	cf = addClientFlags(cmd)
	return cmd
}
