package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/apiv1"
)

// finalStates are the states a purge may delete.
var finalStates = []string{"completed", "failed", "canceled", "skipped", "dropped"}

func newTaskPurgeCommand() *cobra.Command {
	var (
		before  string
		sts     []string
		wait    bool
		timeout time.Duration
		cf      *clientFlags
	)
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Delete finished tasks by age and state (admins only)",
		Long: `Dispatch a stint.purge task that deletes the tasks in the given final states
(default completed) that finished before --finished-before (default 30 days
ago), and print its id (or, with -o json, the task). TIME is RFC 3339
(2026-01-02T15:04:05Z), a date (2026-01-02, local midnight), or a duration
meaning that long ago (720h). Only admins may purge.

With --wait, follow the purge task to its end as "stint task wait" does, with
the same exit status, then print how many tasks it deleted.`,
		Example: `  stint task purge --finished-before 168h --state completed --state canceled --wait
  stint task purge --finished-before 2026-01-01T00:00:00Z --state failed`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := purgeBody(before, sts, time.Now())
			if err != nil {
				return err
			}
			if timeout != 0 && !wait {
				return fmt.Errorf("--timeout: only with --wait")
			}
			if timeout < 0 {
				return fmt.Errorf("--timeout %s: must not be negative", timeout)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			id, err := c.PurgeTasks(ctx, body)
			if err != nil {
				return fmt.Errorf("purge: %w", err)
			}
			if err := followDispatched(cmd, cf, c, id, wait, timeout); err != nil || !wait || cf.jsonOut() {
				return err
			}
			if task, err := c.Task(ctx, id); err == nil {
				var res struct {
					Deleted *int `json:"deleted"`
				}
				if json.Unmarshal(task.Result, &res) == nil && res.Deleted != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "deleted %d %s\n", *res.Deleted, map[bool]string{true: "task", false: "tasks"}[*res.Deleted == 1])
				}
			}
			return nil
		},
	}
	cf = addClientFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&before, "finished-before", "", "delete tasks that finished before this TIME (default 30 days ago)")
	f.StringSliceVar(&sts, "state", nil, "delete tasks in this final state; repeatable or comma-separated ("+strings.Join(finalStates, ", ")+"; default completed)")
	f.BoolVar(&wait, "wait", false, "follow the purge task to its end")
	f.DurationVar(&timeout, "timeout", 0, "with --wait, stop waiting after this long (exit 8 if the purge is not done)")
	return cmd
}

// purgeBody checks the flags of task purge and builds the request; what is
// not given is left to the server's defaults.
func purgeBody(before string, sts []string, now time.Time) (apiv1.PurgeTasks, error) {
	var body apiv1.PurgeTasks
	if before != "" {
		t, err := parseTimeFlag(before, now)
		if err != nil {
			return body, fmt.Errorf("--finished-before: %w", err)
		}
		body.FinishedBefore = &apiv1.Time{Time: t.UTC()}
	}
	for _, s := range sts {
		s = strings.TrimSpace(s)
		if !slices.Contains(finalStates, s) {
			return body, fmt.Errorf("--state %q: not a final state; final states are %s", s, strings.Join(finalStates, ", "))
		}
		if !slices.Contains(body.States, s) {
			body.States = append(body.States, s)
		}
	}
	return body, nil
}
