package stint

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// TaskGroupRequest describes a task group to create.
type TaskGroupRequest struct {
	Description string
	// Owner owns the group, and the tasks whose request sets no owner.
	Owner string
	// Tasks are dispatched into the group, in order, in the same
	// transaction. A request that sets TaskGroup is refused.
	Tasks []DispatchRequest
	// AllTasksDispatched seals the group at once: clients will dispatch
	// no more tasks into it, so it is done when its tasks are final.
	// Leave it false to dispatch into the group later (with
	// DispatchRequest.TaskGroup), then call SealTaskGroup.
	AllTasksDispatched bool
}

// CreateTaskGroup creates a task group and dispatches req.Tasks into it, in
// order, in one transaction: either the group and every task exist, or
// nothing does. Every request is validated first, as DispatchMany
// validates them; a *ValidationError names the field, and the index of
// the first bad task, and nothing is stored.
//
// It returns the group, with its counts and task ids, and the tasks as
// Dispatch returns them.
func (c *Client) CreateTaskGroup(ctx context.Context, req TaskGroupRequest) (*TaskGroup, []*Task, error) {
	if msg := textProblem(req.Description); msg != "" {
		return nil, nil, &ValidationError{Index: -1, Field: "description", Message: msg}
	}
	if msg := invisibleProblem(req.Description); msg != "" {
		return nil, nil, &ValidationError{Index: -1, Field: "description", Message: msg + "; a description is one line of text"}
	}
	if len(req.Description) > MaxDescriptionBytes {
		return nil, nil, &ValidationError{Index: -1, Field: "description", Message: fmt.Sprintf("is longer than %d bytes", MaxDescriptionBytes)}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, nil, err
	}
	tasks := make([]store.NewTask, len(req.Tasks))
	for i, r := range req.Tasks {
		if r.TaskGroup != nil {
			return nil, nil, &ValidationError{Index: i, Field: "task_group", Message: "leave it out: the task goes into the new group"}
		}
		r.TaskGroup = &id
		if r.Owner == "" {
			r.Owner = req.Owner
		}
		if tasks[i], err = c.prepare(r, i); err != nil {
			return nil, nil, err
		}
	}
	g := store.NewTaskGroup{ID: id, Description: req.Description, Owner: req.Owner, AllTasksDispatched: req.AllTasksDispatched}
	return c.store.CreateTaskGroup(ctx, g, tasks)
}

// MaxDescriptionBytes bounds a task group's description.
const MaxDescriptionBytes = 4096

// textProblem says what a stored text may not hold, or "" if it is fine.
func textProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL byte"
	}
	return ""
}

// TaskGroup returns a group with its counts per state and its tasks' ids in
// dispatch order, or an error wrapping store.ErrNotFound.
func (c *Client) TaskGroup(ctx context.Context, id uuid.UUID) (*TaskGroup, error) {
	return c.store.TaskGroup(ctx, id)
}

// SealTaskGroup records that no more tasks will be dispatched into a group
// (AllTasksDispatched), so that it is done once its tasks are final. Sealing
// a sealed group changes nothing. It returns the group, or an error
// wrapping store.ErrNotFound.
func (c *Client) SealTaskGroup(ctx context.Context, id uuid.UUID) (*TaskGroup, error) {
	return c.store.SealTaskGroup(ctx, id)
}

// CancelTaskGroup seals a group and cancels each of its tasks that is not
// final, as the store's Cancel does one task: waiting ones end canceled at once and
// free their resources, running ones become canceling and their workers
// stop them; final ones are left as they are. It returns the group, or an
// error wrapping store.ErrNotFound.
func (c *Client) CancelTaskGroup(ctx context.Context, id uuid.UUID) (*TaskGroup, error) {
	return c.store.CancelTaskGroup(ctx, id)
}
