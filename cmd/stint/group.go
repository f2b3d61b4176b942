package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/client"
)

func newGroupCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Create, show, list, seal, cancel and wait for task groups on a Stint server",
		Long: `A task group is a set of tasks followed as one. Create a group, dispatch
tasks into it with "stint task dispatch --group ID", then seal it: a sealed
group takes no more tasks, and it is done once all its tasks have ended.`,
		Example: `  group=$(stint group create --description "nightly sync")
  stint task dispatch repo.sync --args '{"repository": 1}' --group "$group"
  stint task dispatch repo.sync --args '{"repository": 2}' --group "$group"
  stint group seal "$group"
  stint group wait "$group" --timeout 1h`,
		Args: cobra.NoArgs, // so that a mistyped subcommand is an error
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newGroupCreateCommand(), newGroupShowCommand(), newGroupListCommand(),
		newGroupSealCommand(), newGroupCancelCommand(), newGroupWaitCommand())
	return cmd
}

func newGroupCreateCommand() *cobra.Command {
	var (
		description string
		sealed      bool
		cf          *clientFlags
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create an empty task group and print its id",
		Long: `Create an empty task group and print its id (or, with -o json, the group).
Dispatch tasks into it with "stint task dispatch --group ID" and seal it with
"stint group seal ID" when all are dispatched. --sealed creates it sealed: it
then takes no task.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			body := apiv1.CreateTaskGroup{Description: description}
			if sealed {
				body.AllTasksDispatched = &sealed
			}
			g, id, err := c.CreateTaskGroup(cmd.Context(), body)
			if err != nil {
				return fmt.Errorf("create task group: %w", err)
			}
			if !cf.jsonOut() {
				fmt.Fprintln(cmd.OutOrStdout(), id)
				return nil
			}
			if g == nil {
				if g, err = c.TaskGroup(cmd.Context(), id); err != nil {
					return fmt.Errorf("task group %s: %w", id, err)
				}
			}
			return writeJSON(cmd.OutOrStdout(), g)
		},
	}
	cf = addClientFlags(cmd)
	cmd.Flags().StringVar(&description, "description", "", "what the group is for, shown with it")
	cmd.Flags().BoolVar(&sealed, "sealed", false, "create it sealed (all tasks dispatched)")
	return cmd
}

// parseGroupID reads a task group's id (or href) given as an argument.
func parseGroupID(arg string) (uuid.UUID, error) {
	id, err := apiv1.ParseTaskGroupRef(arg)
	if err != nil {
		return uuid.Nil, fmt.Errorf("task group id: %w", err)
	}
	return id, nil
}

func newGroupShowCommand() *cobra.Command {
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a task group: description, owner, sealed, done, tasks per state",
		Long: `Show a task group: its description, owner, creation time, whether it is sealed
and done, and how many of its tasks are in each state. With -o json it prints
the API's document, with the hrefs of its tasks in dispatch order.`,
		Args: oneArg("give one task group id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseGroupID(args[0])
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			g, err := c.TaskGroup(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("task group %s: %w", id, err)
			}
			if cf.jsonOut() {
				return writeJSON(cmd.OutOrStdout(), g)
			}
			showGroup(cmd.OutOrStdout(), g)
			return nil
		},
	}
	cf = addClientFlags(cmd)
	return cmd
}

// showGroup writes a task group for people to read, one field a line.
func showGroup(w io.Writer, g *apiv1.TaskGroup) {
	tw := newTable(w)
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", name, value)
		}
	}
	field("ID", g.ID.String())
	field("Description", g.Description)
	field("Owner", g.Owner)
	field("Created", timeText(&g.CreatedAt))
	if g.AllTasksDispatched {
		field("Sealed", "yes")
	} else {
		field("Sealed", "no: tasks may still be dispatched into it")
	}
	field("Done", map[bool]string{true: "yes", false: "no"}[g.Done])
	field("Tasks", countsText(g.Counts))
	tw.Flush() //nolint:errcheck // written as the other tables are
}

// countsText shows a group's counts: "5: 3 completed, 2 running", the
// states in the order of DESIGN §2 (any other after, sorted), or "0".
func countsText(counts map[string]int) string {
	var parts []string
	add := func(state string) {
		if n := counts[state]; n != 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, state))
		}
	}
	for _, s := range states {
		add(s)
	}
	var others []string
	for s := range counts {
		if s != "total" && !slices.Contains(states, s) {
			others = append(others, s)
		}
	}
	slices.Sort(others)
	for _, s := range others {
		add(s)
	}
	total, ok := counts["total"]
	if !ok {
		for _, n := range counts {
			total += n
		}
	}
	if len(parts) == 0 {
		return strconv.Itoa(total)
	}
	return fmt.Sprintf("%d: %s", total, strings.Join(parts, ", "))
}

// groupStatus is one word: done, sealed or unsealed.
func groupStatus(g *apiv1.TaskGroup) string {
	switch {
	case g.Done:
		return "done"
	case g.AllTasksDispatched:
		return "sealed"
	default:
		return "unsealed"
	}
}

// groupLine is a group in one line: "<id> <status> <counts>".
func groupLine(g *apiv1.TaskGroup) string {
	return fmt.Sprintf("%s %s %s", g.ID, groupStatus(g), countsText(g.Counts))
}

func newGroupListCommand() *cobra.Command {
	var (
		owner            string
		sealed, unsealed bool
		limit, offset    int
		cf               *clientFlags
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List task groups",
		Long: `List task groups: a table, or with -o json the page of the API
({"count", "next", "previous", "results"}).`,
		Example: `  stint group list --unsealed
  stint group list --owner alice -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := groupListQuery(owner, sealed, unsealed, limit, offset)
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			page, err := c.ListTaskGroups(cmd.Context(), q)
			if err != nil {
				return err
			}
			if cf.jsonOut() {
				return writeJSON(cmd.OutOrStdout(), page)
			}
			tw := newTable(cmd.OutOrStdout(), "ID", "CREATED", "OWNER", "STATUS", "TASKS", "DESCRIPTION")
			for i := range page.Results {
				g := &page.Results[i]
				row(tw, g.ID.String(), timeText(&g.CreatedAt), g.Owner, groupStatus(g), countsText(g.Counts), oneLine(g.Description))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if page.Next != nil {
				shown := offset + len(page.Results)
				fmt.Fprintf(cmd.ErrOrStderr(), "(%d-%d of %s groups; --offset %d for more)\n", offset+1, shown, totalText(page.Count), shown)
			}
			return nil
		},
	}
	cf = addClientFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&owner, "owner", "", "only groups of this owner")
	f.BoolVar(&sealed, "sealed", false, "only sealed groups (all tasks dispatched)")
	f.BoolVar(&unsealed, "unsealed", false, "only groups not sealed yet")
	f.IntVar(&limit, "limit", apiv1.DefaultLimit, fmt.Sprintf("groups per page, 1 to %d", apiv1.MaxLimit))
	f.IntVar(&offset, "offset", 0, "groups to skip")
	return cmd
}

// groupListQuery checks the flags of group list and turns them into the
// API's query.
func groupListQuery(owner string, sealed, unsealed bool, limit, offset int) (url.Values, error) {
	q := url.Values{}
	if owner != "" {
		q.Set("owner", owner)
	}
	switch {
	case sealed && unsealed:
		return nil, errors.New("--sealed and --unsealed: give one or neither")
	case sealed:
		q.Set("all_tasks_dispatched", "true")
	case unsealed:
		q.Set("all_tasks_dispatched", "false")
	}
	if limit < 1 || limit > apiv1.MaxLimit {
		return nil, fmt.Errorf("--limit %d: must be from 1 to %d", limit, apiv1.MaxLimit)
	}
	q.Set("limit", strconv.Itoa(limit))
	if offset < 0 {
		return nil, fmt.Errorf("--offset %d: must not be negative", offset)
	}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	return q, nil
}

func newGroupSealCommand() *cobra.Command {
	return newGroupPatchCommand("seal", "Seal a task group: all its tasks are dispatched",
		`Seal a task group: no task may be dispatched into it any more, and it is
done once all its tasks have ended. Prints "<id> <status> <counts>" (or, with
-o json, the group).`,
		(*client.Client).SealTaskGroup)
}

func newGroupCancelCommand() *cobra.Command {
	return newGroupPatchCommand("cancel", "Cancel every incomplete task of a task group",
		`Cancel every incomplete task of a task group, and seal it: waiting tasks are
canceled at once, running ones are canceling until their runners stop them
(see stint group wait). Prints "<id> <status> <counts>" (or, with -o json, the
group).`,
		(*client.Client).CancelTaskGroup)
}

// newGroupPatchCommand returns the command "name ID" that changes a group
// with patch and prints it.
func newGroupPatchCommand(name, short, long string, patch func(*client.Client, context.Context, uuid.UUID) (*apiv1.TaskGroup, error)) *cobra.Command {
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   name + " ID",
		Short: short,
		Long:  long,
		Args:  oneArg("give one task group id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseGroupID(args[0])
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			g, err := patch(c, cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("%s task group %s: %w", name, id, err)
			}
			if cf.jsonOut() {
				return writeJSON(cmd.OutOrStdout(), g)
			}
			fmt.Fprintln(cmd.OutOrStdout(), groupLine(g))
			return nil
		},
	}
	cf = addClientFlags(cmd)
	return cmd
}

func newGroupWaitCommand() *cobra.Command {
	var (
		timeout time.Duration
		cf      *clientFlags
	)
	cmd := &cobra.Command{
		Use:   "wait ID",
		Short: "Wait until a task group is done",
		Long: `Follow a task group until it is done: sealed, and each of its tasks final
(completed, failed, canceled, skipped or dropped). Tasks dispatched into it
meanwhile are followed too; if it is not sealed yet, that is said once on
stderr and the wait goes on until it is. On a terminal it shows a progress
bar per task; otherwise it prints "<id> <name> <state>" at each change of
state. With -o json it prints the group at the end.

Exit status: 0 if every task completed; otherwise the sum of 4 if a task
failed, 8 if one was still incomplete (or the group unsealed) at --timeout,
16 if one was canceled, skipped or dropped; 1 for usage or connection errors.`,
		Example: `  stint group wait 0190e5a4-0000-7000-8000-000000000001 --timeout 1h`,
		Args:    oneArg("give one task group id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseGroupID(args[0])
			if err != nil {
				return err
			}
			if timeout < 0 {
				return fmt.Errorf("--timeout %s: must not be negative", timeout)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			return waitForGroup(cmd, cf, c, id, timeout)
		},
	}
	cf = addClientFlags(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "stop waiting after this long, e.g. 1h (exit 8 if the group is not done; default no limit)")
	return cmd
}

// waitForGroup follows a group until it is done or the timeout (0 for
// none), shows its tasks as cf asks, and returns the exit error of the
// outcome, as waitFor does for tasks.
func waitForGroup(cmd *cobra.Command, cf *clientFlags, c *client.Client, id uuid.UUID, timeout time.Duration) error {
	ctx := cmd.Context()
	sealed := false
	wait := func(ctx context.Context, opts client.WaitOptions) (tasks []*client.WaitedTask, err error) {
		tasks, sealed, err = c.WaitForTaskGroup(ctx, id, opts)
		return tasks, err
	}
	tasks, timedOut, err := runWait(ctx, timeout, newWaitView(cmd.OutOrStdout(), cf.jsonOut()), wait, client.WaitOptions{
		OnUnsealed: func() {
			fmt.Fprintf(cmd.ErrOrStderr(), "stint: task group %s is not sealed: waiting until it is (see stint group seal)\n", id)
		},
	})
	if err != nil {
		return err
	}
	if cf.jsonOut() {
		g, err := c.TaskGroup(ctx, id)
		if err != nil {
			return fmt.Errorf("task group %s: %w", id, err)
		}
		if err := writeJSON(cmd.OutOrStdout(), g); err != nil {
			return err
		}
	}
	err = waitOutcome(tasks, timeout, func(t *client.WaitedTask) string { return failureText(ctx, c, t) })
	if timedOut && !sealed {
		code, reason := 8, fmt.Sprintf("task group %s is not sealed at the %s timeout", id, timeout)
		if err != nil {
			code |= exitCode(err)
			reason += "; " + err.Error()
		}
		return withExitCode(code, errors.New(reason))
	}
	if err != nil {
		return fmt.Errorf("task group %s: %w", id, err)
	}
	return nil
}
