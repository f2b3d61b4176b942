package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stint-dev/stint/client"
)

// waitOutcome turns how the tasks ended into the exit status of DESIGN §9
// and a one-line reason: nil if every task completed; otherwise 4 if any
// failed, 8 if any was incomplete at the timeout, 16 if any was canceled,
// skipped or dropped, ORed together. why tells why a failed task failed
// (": kind: description", or "").
func waitOutcome(tasks []*client.WaitedTask, timeout time.Duration, why func(*client.WaitedTask) string) error {
	code := 0
	counts := map[string]int{}
	var order []string
	var failed *client.WaitedTask
	for _, t := range tasks {
		state := t.State
		switch state {
		case "completed":
		case "failed":
			code |= 4
			if failed == nil {
				failed = t
			}
		case "canceled", "skipped", "dropped":
			code |= 16
		default:
			code |= 8
			state = "incomplete"
		}
		if counts[state] == 0 {
			order = append(order, state)
		}
		counts[state]++
	}
	if code == 0 {
		return nil
	}
	var parts []string
	for _, s := range order {
		part := fmt.Sprintf("%d %s", counts[s], s)
		if s == "incomplete" {
			part += fmt.Sprintf(" at the %s timeout", timeout)
		}
		parts = append(parts, part)
	}
	reason := fmt.Sprintf("of %d tasks: %s", len(tasks), strings.Join(parts, ", "))
	if len(tasks) == 1 {
		t := tasks[0]
		reason = fmt.Sprintf("task %s (%s) %s", t.ID, t.Name, t.State)
		if code&8 != 0 {
			reason += fmt.Sprintf(", still incomplete at the %s timeout", timeout)
		}
	}
	if failed != nil && len(tasks) == 1 {
		reason += why(failed)
	} else if failed != nil {
		reason += fmt.Sprintf("; first failure: %s (%s)%s", failed.ID, failed.Name, why(failed))
	}
	return withExitCode(code, errors.New(reason))
}

// failureText tells why a failed task failed, as far as the server says:
// ": kind: description", or "".
func failureText(ctx context.Context, c *client.Client, t *client.WaitedTask) string {
	if c == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	task, err := c.Task(ctx, t.ID)
	if err != nil || task.Error == nil {
		return ""
	}
	text := ""
	if task.Error.Kind != "" {
		text = ": " + task.Error.Kind
	}
	return text + ": " + task.Error.Description
}
