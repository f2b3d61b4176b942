package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/apiv1"
)

func newWorkerListCommand() *cobra.Command {
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the workers a Stint server knows",
		Long:  "List the registered workers: a table, or with -o json a list of the API's worker documents.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			workers, err := c.Workers(cmd.Context())
			if err != nil {
				return err
			}
			if cf.jsonOut() {
				if workers == nil {
					workers = []apiv1.Worker{}
				}
				return writeJSON(cmd.OutOrStdout(), workers)
			}
			now := time.Now()
			tw := newTable(cmd.OutOrStdout(), "NAME", "HOSTNAME", "PID", "CONCURRENCY", "MISSING", "HEARTBEAT AGE", "CURRENT TASKS")
			for _, w := range workers {
				row(tw, w.Name, w.Hostname, strconv.Itoa(w.PID), strconv.Itoa(w.Concurrency),
					strconv.FormatBool(w.Missing), durationText(now.Sub(w.LastHeartbeat.Time)), currentTasksText(w.CurrentTasks))
			}
			return tw.Flush()
		},
	}
	cf = addClientFlags(cmd)
	return cmd
}

// currentTasksText lists up to three task ids, then how many more.
func currentTasksText(hrefs []string) string {
	const shown = 3
	ids := make([]string, 0, shown)
	for i, h := range hrefs {
		if i == shown {
			return strings.Join(ids, ",") + fmt.Sprintf(" +%d more", len(hrefs)-shown)
		}
		ids = append(ids, refID(h))
	}
	return strings.Join(ids, ",")
}
