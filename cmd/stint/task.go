package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/client"
)

func newTaskCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Dispatch, list, show, cancel and wait for tasks on a Stint server",
		Args:  cobra.NoArgs, // so that a mistyped subcommand is an error
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTaskDispatchCommand(), newTaskListCommand(), newTaskShowCommand(),
		newTaskCancelCommand(), newTaskRetryCommand(), newTaskWaitCommand(), newTaskPurgeCommand())
	return cmd
}

func newTaskDispatchCommand() *cobra.Command {
	var (
		args                        string
		exclusive, shared, versions []string
		group                       string
		wait, immediate, noDefer    bool
		timeout                     time.Duration
		at                          string
		in                          time.Duration
		maxAttempts                 int
		uniqueKey                   string
		cf                          *clientFlags
	)
	cmd := &cobra.Command{
		Use:   "dispatch NAME",
		Short: "Dispatch a task and print its id",
		Long: `Dispatch a task of the type NAME and print its id (or, with -o json, the task).
With --wait, follow it to its end as "stint task wait" does, with the same
exit status.

--group dispatches it into a task group that is not sealed yet (see stint
group create). --immediate asks the API server to run it at once, inline,
if its resources are free, and answers when it has ended; if they are busy
it waits for a worker as usual, or with --no-defer too it ends skipped.

--at TIME (RFC 3339) or --in DURATION schedules the task for later: it holds
no resource and blocks nothing until then. --max-attempts N retries a failed
run up to N attempts in all, with the task type's delays (1 s, doubling, by
default). --unique-key K dispatches nothing while a task of yours with the
same name and key is incomplete: it prints that task's id instead, and says
so on stderr.`,
		Example: `  stint task dispatch stint.sleep --args '{"seconds": 2}' --exclusive repo:1 --wait
  stint task dispatch stint.noop --group 0190e5a4-0000-7000-8000-000000000001
  stint task dispatch stint.noop --exclusive repo:1 --immediate --no-defer
  stint task dispatch stint.noop --in 10m --unique-key nightly
  stint task dispatch stint.sleep --args '{"seconds": 1}' --max-attempts 3`,
		Args: oneArg("give one task name, such as stint.sleep"),
		RunE: func(cmd *cobra.Command, pos []string) error {
			body, err := dispatchBody(pos[0], args, exclusive, shared, versions)
			if err != nil {
				return err
			}
			if err := dispatchOptions(&body, group, immediate, noDefer); err != nil {
				return err
			}
			if err := timeOptions(cmd, &body, at, in, maxAttempts, uniqueKey); err != nil {
				return err
			}
			if timeout != 0 && !wait {
				return fmt.Errorf("--timeout: only with --wait")
			}
			if timeout < 0 {
				return fmt.Errorf("--timeout %s: must not be negative", timeout)
			}
			return runDispatch(cmd, cf, body, wait, timeout)
		},
	}
	cf = addClientFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&args, "args", "", "the task's args as JSON, e.g. '{\"seconds\": 2}'")
	f.StringArrayVar(&exclusive, "exclusive", nil, "a resource the task holds alone; repeatable")
	f.StringArrayVar(&shared, "shared", nil, "a resource the task shares with other shared holders; repeatable")
	f.StringArrayVar(&versions, "version", nil, "a minimum version a worker must provide, COMPONENT=VERSION; repeatable")
	f.StringVar(&group, "group", "", "dispatch into this task group, not yet sealed (id or href)")
	f.BoolVar(&immediate, "immediate", false, "run the task at once in the API server if its resources are free")
	f.BoolVar(&noDefer, "no-defer", false, "with --immediate, end the task skipped if its resources are busy instead of waiting")
	f.StringVar(&at, "at", "", "schedule the task for this time (RFC 3339, e.g. 2026-12-24T18:00:00Z)")
	f.DurationVar(&in, "in", 0, "schedule the task this long from now (e.g. 90s, 10m)")
	f.IntVar(&maxAttempts, "max-attempts", 0, "retry a failed run, up to this many attempts in all (1 to 100)")
	f.StringVar(&uniqueKey, "unique-key", "", "create no task while one of yours with this name and key is incomplete")
	f.BoolVar(&wait, "wait", false, "follow the task to its end")
	f.DurationVar(&timeout, "timeout", 0, "with --wait, stop waiting after this long (exit 8 if the task is not done)")
	return cmd
}

// dispatchBody checks the flags of task dispatch and builds the request.
func dispatchBody(name, args string, exclusive, shared, versions []string) (apiv1.DispatchTask, error) {
	body := apiv1.DispatchTask{Name: name, ExclusiveResources: exclusive, SharedResources: shared}
	if strings.TrimSpace(name) == "" {
		return body, fmt.Errorf("NAME is empty: give a task type such as stint.sleep")
	}
	if args != "" {
		var v any
		if err := json.Unmarshal([]byte(args), &v); err != nil {
			return body, fmt.Errorf("--args: not JSON: %v", err)
		}
		body.Args = json.RawMessage(args)
	}
	for _, v := range versions {
		comp, ver, ok := strings.Cut(v, "=")
		if !ok || strings.TrimSpace(comp) == "" || strings.TrimSpace(ver) == "" {
			return body, fmt.Errorf("--version %q: use COMPONENT=VERSION, e.g. myplugin=1.4.0", v)
		}
		if body.Versions == nil {
			body.Versions = map[string]string{}
		}
		if _, dup := body.Versions[comp]; dup {
			return body, fmt.Errorf("--version: %s given twice", comp)
		}
		body.Versions[comp] = ver
	}
	return body, nil
}

// dispatchOptions checks --group, --immediate and --no-defer and sets them
// in body.
func dispatchOptions(body *apiv1.DispatchTask, group string, immediate, noDefer bool) error {
	if group != "" {
		id, err := apiv1.ParseTaskGroupRef(group)
		if err != nil {
			return fmt.Errorf("--group: %w", err)
		}
		body.TaskGroup = id.String()
	}
	if noDefer && !immediate {
		return fmt.Errorf("--no-defer: only with --immediate")
	}
	body.Immediate = immediate
	if noDefer {
		deferred := false
		body.Deferred = &deferred
	}
	return nil
}

// timeOptions checks --at, --in, --max-attempts and --unique-key and sets
// them in body.
func timeOptions(cmd *cobra.Command, body *apiv1.DispatchTask, at string, in time.Duration, maxAttempts int, uniqueKey string) error {
	flags := cmd.Flags()
	switch {
	case at != "" && flags.Changed("in"):
		return fmt.Errorf("--at and --in: give one of the two")
	case at != "":
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return fmt.Errorf("--at %q: not an RFC 3339 time such as 2026-12-24T18:00:00Z", at)
		}
		body.ScheduledAt = &apiv1.Time{Time: t}
	case flags.Changed("in"):
		if in < 0 {
			return fmt.Errorf("--in %s: must not be negative", in)
		}
		body.ScheduledAt = &apiv1.Time{Time: time.Now().Add(in)}
	}
	if flags.Changed("max-attempts") {
		if maxAttempts < 1 || maxAttempts > 100 {
			return fmt.Errorf("--max-attempts %d: must be 1 to 100", maxAttempts)
		}
		body.Retry = &apiv1.Retry{MaxAttempts: maxAttempts}
	}
	if flags.Changed("unique-key") {
		if uniqueKey == "" {
			return fmt.Errorf("--unique-key: is empty")
		}
		body.UniqueKey = &uniqueKey
	}
	return nil
}

func runDispatch(cmd *cobra.Command, cf *clientFlags, body apiv1.DispatchTask, wait bool, timeout time.Duration) error {
	c, err := cf.client()
	if err != nil {
		return err
	}
	d, err := c.DispatchTask(cmd.Context(), body)
	if err != nil {
		return fmt.Errorf("dispatch %s: %w", body.Name, err)
	}
	if d.Deduplicated {
		fmt.Fprintf(cmd.ErrOrStderr(), "deduplicated: task %s has the unique key %q and is not done; no task was created\n", d.ID, *body.UniqueKey)
	}
	return followDispatched(cmd, cf, c, d.ID, wait, timeout)
}

func newTaskRetryCommand() *cobra.Command {
	var (
		wait bool
		cf   *clientFlags
	)
	cmd := &cobra.Command{
		Use:   "retry ID",
		Short: "Run a failed, dropped or canceled task again, as a new task",
		Long: `Dispatch a new task with the name, args, resources, group and owner of a
failed, dropped or canceled task, linked to it (retry_of), and print its id.
With --wait, follow it to its end as "stint task wait" does.`,
		Args: oneArg("give one task id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := apiv1.ParseTaskRef(args[0])
			if err != nil {
				return fmt.Errorf("task id: %w", err)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			again, err := c.RetryTask(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("retry %s: %w", id, err)
			}
			return followDispatched(cmd, cf, c, again, wait, 0)
		},
	}
	cf = addClientFlags(cmd)
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the new task to its end")
	return cmd
}

// followDispatched shows a task a command dispatched: with wait, its id
// (unless -o json) and then its wait to the end; with -o json, the task;
// otherwise its id.
func followDispatched(cmd *cobra.Command, cf *clientFlags, c *client.Client, id uuid.UUID, wait bool, timeout time.Duration) error {
	out := cmd.OutOrStdout()
	switch {
	case wait:
		if !cf.jsonOut() {
			fmt.Fprintln(out, id)
		}
		return waitFor(cmd, cf, c, []uuid.UUID{id}, false, timeout, true)
	case cf.jsonOut():
		task, err := c.Task(cmd.Context(), id)
		if err != nil {
			return fmt.Errorf("task %s: %w", id, err)
		}
		return writeJSON(out, task)
	default:
		fmt.Fprintln(out, id)
		return nil
	}
}
