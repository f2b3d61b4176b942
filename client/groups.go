package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
)

// CreateTaskGroup creates a task group (POST /task-groups) and returns its
// id. Without body.Tasks the server answers 201 with the group, which is
// returned too; with body.Tasks it dispatches them all into the new group,
// all or nothing, and answers 202 with the group's href only: the returned
// group is then nil (read it with TaskGroup). A bad task is an *APIError
// with status 400 whose detail names it, such as "tasks[3].name: ...".
func (c *Client) CreateTaskGroup(ctx context.Context, body apiv1.CreateTaskGroup) (*apiv1.TaskGroup, uuid.UUID, error) {
	const what = "create task group"
	resp, err := c.do(ctx, http.MethodPost, "/task-groups", body, "application/json")
	if err != nil {
		return nil, uuid.Nil, err
	}
	defer resp.Body.Close()
	// 201 carries the group, 202 {"task_group": href}: read either.
	var doc struct {
		apiv1.TaskGroup
		Ref string `json:"task_group"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		if ctx.Err() != nil {
			return nil, uuid.Nil, context.Cause(ctx)
		}
		return nil, uuid.Nil, fmt.Errorf("%s: the answer of %s is not the expected JSON: %w", what, c.server, err)
	}
	if doc.Ref == "" && doc.ID != uuid.Nil {
		return &doc.TaskGroup, doc.ID, nil
	}
	ref := doc.Ref
	if ref == "" {
		ref = resp.Header.Get("Location")
		if u, err := url.Parse(ref); err == nil && u.IsAbs() {
			ref = u.Path
		}
	}
	id, err := apiv1.ParseTaskGroupRef(ref)
	if err != nil {
		return nil, uuid.Nil, fmt.Errorf("%s: the server answered %s without a task group id: %w", what, resp.Status, err)
	}
	return nil, id, nil
}

// TaskGroup returns one task group (GET /task-groups/{id}), with the hrefs
// of its tasks in dispatch order.
func (c *Client) TaskGroup(ctx context.Context, id uuid.UUID) (*apiv1.TaskGroup, error) {
	var g apiv1.TaskGroup
	if err := c.call(ctx, http.MethodGet, apiv1.TaskGroupHref(id), nil, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// ListTaskGroups returns one page of task groups (GET /task-groups) that
// match filter, whose keys are the API's query parameters (owner,
// all_tasks_dispatched, limit, offset). A nil filter lists the first page
// of all groups. Groups in a list have no Tasks, only their Counts.
func (c *Client) ListTaskGroups(ctx context.Context, filter url.Values) (*apiv1.Page[apiv1.TaskGroup], error) {
	return getPage[apiv1.TaskGroup](ctx, c, "/task-groups?"+filter.Encode())
}

// SealTaskGroup marks a group's tasks as all dispatched (PATCH
// /task-groups/{id} with {"all_tasks_dispatched": true}) and returns the
// group: no task may be dispatched into it any more, and it is done once
// all its tasks are final.
func (c *Client) SealTaskGroup(ctx context.Context, id uuid.UUID) (*apiv1.TaskGroup, error) {
	sealed := true
	return c.patchTaskGroup(ctx, id, apiv1.PatchTaskGroup{AllTasksDispatched: &sealed})
}

// CancelTaskGroup cancels every incomplete task of a group, and seals it
// (PATCH /task-groups/{id} with {"state": "canceled"}); it returns the
// group, whose running tasks may still be canceling.
func (c *Client) CancelTaskGroup(ctx context.Context, id uuid.UUID) (*apiv1.TaskGroup, error) {
	return c.patchTaskGroup(ctx, id, apiv1.PatchTaskGroup{State: "canceled"})
}

func (c *Client) patchTaskGroup(ctx context.Context, id uuid.UUID, body apiv1.PatchTaskGroup) (*apiv1.TaskGroup, error) {
	var g apiv1.TaskGroup
	if err := c.call(ctx, http.MethodPatch, apiv1.TaskGroupHref(id), body, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// DeleteTask removes a final task (DELETE /tasks/{id}). Deleting a task
// that is not final is an *APIError with status 409.
func (c *Client) DeleteTask(ctx context.Context, id uuid.UUID) error {
	resp, err := c.do(ctx, http.MethodDelete, apiv1.TaskHref(id), nil, "application/json")
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// PurgeTasks dispatches a stint.purge task (POST /tasks/purge) that deletes
// the tasks in the given final states (default completed) that finished
// before the given time (default 30 days ago), and returns its id. Only
// admins may purge: others get an *APIError with status 403.
func (c *Client) PurgeTasks(ctx context.Context, body apiv1.PurgeTasks) (uuid.UUID, error) {
	var ref apiv1.TaskRef
	if err := c.call(ctx, http.MethodPost, "/tasks/purge", body, &ref); err != nil {
		return uuid.Nil, err
	}
	id, err := apiv1.ParseTaskRef(ref.Task)
	if err != nil {
		return uuid.Nil, fmt.Errorf("purge: the server answered a bad task href: %w", err)
	}
	return id, nil
}
