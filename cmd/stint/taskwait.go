package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/client"
)

func newTaskWaitCommand() *cobra.Command {
	var (
		timeout time.Duration
		cf      *clientFlags
	)
	cmd := &cobra.Command{
		Use:   "wait ID...|all",
		Short: "Wait until tasks end",
		Long: `Follow tasks until each is final (completed, failed, canceled, skipped or
dropped). "all" waits until no task is scheduled, waiting, running or canceling, including
tasks dispatched meanwhile. On a terminal it shows a progress bar per task;
otherwise it prints "<id> <name> <state>" at each change of state.

Exit status: 0 if every task completed; otherwise the sum of 4 if a task
failed, 8 if one was still incomplete at --timeout, 16 if one was canceled,
skipped or dropped; 1 for usage or connection errors.`,
		Example: `  stint task wait 0190e5a4-0000-7000-8000-000000000001 --timeout 10m
  stint task wait all`,
		Args: needArgs("give task ids, or all"),
		RunE: func(cmd *cobra.Command, args []string) error {
			all := len(args) == 1 && args[0] == "all"
			var ids []uuid.UUID
			if !all {
				var err error
				if ids, err = parseTaskIDs(args); err != nil {
					return err
				}
			}
			if timeout < 0 {
				return fmt.Errorf("--timeout %s: must not be negative", timeout)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			return waitFor(cmd, cf, c, ids, all, timeout, false)
		},
	}
	cf = addClientFlags(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "stop waiting after this long, e.g. 10m (exit 8 if a task is not done; default no limit)")
	return cmd
}

// parseTaskIDs reads task ids (or hrefs) given as arguments.
func parseTaskIDs(args []string) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, 0, len(args))
	seen := map[uuid.UUID]bool{}
	for _, a := range args {
		if a == "all" {
			return nil, errors.New(`"all" is given alone, without task ids`)
		}
		id, err := apiv1.ParseTaskRef(a)
		if err != nil {
			return nil, fmt.Errorf("task id: %w", err)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// waitFor follows tasks (ids, or every incomplete one with all) until they
// end or the timeout (0 for none), shows them as cf asks, and returns the
// exit error of the outcome. With -o json it prints the tasks at the end:
// one task with single, a list otherwise.
func waitFor(cmd *cobra.Command, cf *clientFlags, c *client.Client, ids []uuid.UUID, all bool, timeout time.Duration, single bool) error {
	ctx := cmd.Context()
	wait := func(ctx context.Context, opts client.WaitOptions) ([]*client.WaitedTask, error) {
		if all {
			return c.WaitForAll(ctx, opts)
		}
		return c.WaitForTasks(ctx, ids, opts)
	}
	tasks, _, err := runWait(ctx, timeout, newWaitView(cmd.OutOrStdout(), cf.jsonOut()), wait, client.WaitOptions{})
	if err != nil {
		return err
	}
	if cf.jsonOut() {
		if err := printWaited(ctx, cmd, c, tasks, single); err != nil {
			return err
		}
	}
	return waitOutcome(tasks, timeout, func(t *client.WaitedTask) string { return failureText(ctx, c, t) })
}

// printWaited prints the tasks a wait followed as JSON, as they are now.
func printWaited(ctx context.Context, cmd *cobra.Command, c *client.Client, order []*client.WaitedTask, single bool) error {
	tasks := make([]*apiv1.Task, 0, len(order))
	for _, t := range order {
		task, err := c.Task(ctx, t.ID)
		if err != nil {
			return fmt.Errorf("task %s: %w", t.ID, err)
		}
		tasks = append(tasks, task)
	}
	if single && len(tasks) == 1 {
		return writeJSON(cmd.OutOrStdout(), tasks[0])
	}
	return writeJSON(cmd.OutOrStdout(), tasks)
}
