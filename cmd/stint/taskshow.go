package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/apiv1"
)

func newTaskShowCommand() *cobra.Command {
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a task: state, timings, resources, progress, error, result",
		Args:  oneArg("give one task id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := apiv1.ParseTaskRef(args[0])
			if err != nil {
				return fmt.Errorf("task id: %w", err)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			task, err := c.Task(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("task %s: %w", id, err)
			}
			if cf.jsonOut() {
				return writeJSON(cmd.OutOrStdout(), task)
			}
			showTask(cmd.OutOrStdout(), task)
			return nil
		},
	}
	cf = addClientFlags(cmd)
	return cmd
}

// showTask writes a task for people to read, one field a line; what is
// empty is left out.
func showTask(w io.Writer, t *apiv1.Task) {
	tw := newTable(w)
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", name, cellText(value))
		}
	}
	field("ID", t.ID.String())
	field("Name", t.Name)
	field("State", t.State)
	field("Owner", t.Owner)
	field("Args", compactJSON(t.Args))
	field("Created", timeText(&t.CreatedAt))
	if t.ScheduledAt != nil {
		when := timeText(t.ScheduledAt)
		if t.State == "scheduled" {
			when += fmt.Sprintf(" (in %s)", durationText(time.Until(t.ScheduledAt.Time)))
		}
		field("Scheduled", when)
	}
	if t.UniqueKey != nil {
		field("Unique key", *t.UniqueKey)
	}
	if t.RetryOf != nil {
		field("Retry of", refID(*t.RetryOf))
	}
	if t.Retry != nil {
		field("Retry", fmt.Sprintf("up to %d attempts, %s then ×%g up to %s", t.Retry.MaxAttempts,
			t.Retry.InitialDelay, t.Retry.Multiplier, t.Retry.MaxDelay))
	}
	if t.UnblockedAt != nil {
		field("Unblocked", timeText(t.UnblockedAt))
	}
	if t.StartedAt != nil {
		field("Started", fmt.Sprintf("%s (waited %s)", timeText(t.StartedAt), durationText(t.StartedAt.Sub(t.CreatedAt.Time))))
	}
	if t.FinishedAt != nil {
		ran := ""
		if t.StartedAt != nil {
			ran = fmt.Sprintf(" (ran %s)", durationText(t.FinishedAt.Sub(t.StartedAt.Time)))
		}
		field("Finished", timeText(t.FinishedAt)+ran)
	}
	field("Exclusive", strings.Join(t.ExclusiveResources, ", "))
	field("Shared", strings.Join(t.SharedResources, ", "))
	field("Versions", versionsText(t.Versions))
	if t.Worker != nil {
		worker := t.Worker.Name
		if t.Worker.Missing {
			worker += " (missing)"
		}
		field("Worker", worker)
	}
	if t.ParentTask != nil {
		field("Parent", refID(*t.ParentTask))
	}
	if t.TaskGroup != nil {
		field("Group", refID(*t.TaskGroup))
	}
	for i, c := range t.ChildTasks {
		field(label("Children", i), refID(c))
	}
	if t.BlockedBy != nil {
		if len(*t.BlockedBy) == 0 {
			field("Blocked by", "nothing: waiting for a worker")
		}
		for i, b := range *t.BlockedBy {
			field(label("Blocked by", i), fmt.Sprintf("task %s on %s", refID(b.Task), b.Resource))
		}
	}
	for i, p := range t.ProgressReports {
		field(label("Progress", i), progressText(p))
	}
	for i, r := range t.CreatedResources {
		field(label("Created resources", i), r)
	}
	for i, e := range t.NonFatalErrors {
		field(label("Non-fatal errors", i), errorText(e))
	}
	if len(t.Attempts) > 1 || t.Retry != nil {
		for i, a := range t.Attempts {
			field(label("Attempts", i), attemptText(a))
		}
	}
	if t.Error != nil {
		field("Error", errorText(*t.Error))
	}
	field("Result", compactJSON(t.Result))
	tw.Flush() //nolint:errcheck // as every write to w
	if t.Error != nil && t.Error.Traceback != "" {
		fmt.Fprintln(w, "Traceback:")
		for _, line := range strings.Split(strings.TrimRight(t.Error.Traceback, "\n"), "\n") {
			fmt.Fprintln(w, "  "+line)
		}
	}
}

// attemptText is one attempt of a task on one line: its number, how it
// ended, where it ran, for how long, and its error.
func attemptText(a apiv1.Attempt) string {
	text := fmt.Sprintf("#%d %s", a.Number, a.State)
	if a.Worker != "" {
		text += " on " + a.Worker
	}
	if a.StartedAt != nil {
		text += " at " + timeText(a.StartedAt)
		if a.FinishedAt != nil {
			text += fmt.Sprintf(" (ran %s)", durationText(a.FinishedAt.Sub(a.StartedAt.Time)))
		}
	}
	if a.Error != nil {
		text += ": " + errorText(*a.Error)
	}
	return text
}

// label names the first line of a list; the next ones are left blank.
func label(name string, i int) string {
	if i == 0 {
		return name
	}
	return " "
}

func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

func versionsText(v map[string]string) string {
	parts := make([]string, 0, len(v))
	for comp, ver := range v {
		parts = append(parts, comp+">="+ver)
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func progressText(p apiv1.ProgressReport) string {
	text := p.Message
	if p.Total != nil {
		text += fmt.Sprintf(" %d/%d", p.Done, *p.Total)
	} else if p.Done > 0 {
		text += fmt.Sprintf(" %d", p.Done)
	}
	if p.Suffix != "" {
		text += " " + p.Suffix
	}
	if p.State != "" {
		text += " (" + p.State + ")"
	}
	return strings.TrimSpace(text)
}

func errorText(e apiv1.TaskError) string {
	if e.Kind == "" {
		return e.Description
	}
	return e.Kind + ": " + e.Description
}

func newTaskCancelCommand() *cobra.Command {
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "cancel ID...",
		Short: "Cancel tasks",
		Long: `Cancel tasks and print each one's new state: a waiting task is canceled at
once; a running one is canceling until its runner stops it (see stint task
wait). Canceling a task that has ended is an error.`,
		Args: needArgs("give the ids of the tasks to cancel"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseTaskIDs(args)
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			var (
				canceled []*apiv1.Task
				failures []string
			)
			for _, id := range ids {
				task, err := c.CancelTask(cmd.Context(), id)
				if err != nil {
					failures = append(failures, fmt.Sprintf("task %s: %v", id, err))
					continue
				}
				canceled = append(canceled, task)
				if !cf.jsonOut() {
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", task.ID, task.Name, task.State)
				}
			}
			if cf.jsonOut() {
				if err := writeJSON(cmd.OutOrStdout(), canceled); err != nil {
					return err
				}
			}
			switch len(failures) {
			case 0:
				return nil
			case 1:
				return errors.New(failures[0])
			default:
				return fmt.Errorf("%d of %d cancels failed: %s", len(failures), len(ids), strings.Join(failures, "; "))
			}
		},
	}
	cf = addClientFlags(cmd)
	return cmd
}
