package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/store"
)

// dispatchTask is POST /tasks: validate, dispatch, answer 202 with the
// task's href. An immediate task is run inline first, when its resources
// are free, so that it is final when the answer leaves.
func (s *Server) dispatchTask(w http.ResponseWriter, r *http.Request) {
	var body apiv1.DispatchTask
	if !s.decodeBody(w, r, &body) || !s.mayDispatch(w, r, "name", body.Name) {
		return
	}
	deferred := body.Deferred == nil || *body.Deferred
	if !body.Immediate && !deferred {
		writeError(w, http.StatusBadRequest, "deferred: false needs immediate: true (a task that is not immediate always waits for a worker)")
		return
	}
	if body.Immediate && body.ScheduledAt != nil {
		writeError(w, http.StatusBadRequest, "scheduled_at: an immediate task runs now; leave out scheduled_at or immediate")
		return
	}
	req, err := s.dispatchRequest(r, body, -1)
	if s.refuseDispatch(w, r, err) {
		return
	}
	group, ok := s.dispatchGroup(w, r, body.TaskGroup)
	if !ok {
		return
	}
	req.TaskGroup = group
	var task *store.Task
	if body.Immediate {
		// Inline in one of the node's immediate slots (api/immediate.go).
		if task, err = s.dispatchImmediate(w, r, req, deferred); errors.Is(err, errAnswered) {
			return
		}
	} else {
		task, err = s.client.Dispatch(r.Context(), req)
	}
	if s.refuseDispatch(w, r, err) {
		return
	}
	if !task.Deduplicated {
		s.cfg.Metrics.Dispatched(task.Name, 1)
	}
	href := apiv1.TaskHref(task.ID)
	w.Header().Set("Location", href)
	writeJSON(w, http.StatusAccepted, apiv1.TaskRef{Task: href, Deduplicated: task.Deduplicated})
}

// dispatchRequest turns a dispatch body into a request owned by the
// caller; the task group is resolved separately. Its error is a
// *stint.ValidationError (index is the task's in a group's list, -1
// alone).
func (s *Server) dispatchRequest(r *http.Request, body apiv1.DispatchTask, index int) (stint.DispatchRequest, error) {
	req := stint.DispatchRequest{
		Name: body.Name, ExclusiveResources: body.ExclusiveResources, SharedResources: body.SharedResources,
		Versions: body.Versions,
		Owner:    caller(r).user, // the body has no owner: a task is its dispatcher's
	}
	if body.Args != nil {
		req.Args = body.Args
	}
	bad := func(field, format string, a ...any) error {
		return &stint.ValidationError{Index: index, Field: field, Message: fmt.Sprintf(format, a...)}
	}
	if body.ScheduledAt != nil {
		req.ScheduledAt = body.ScheduledAt.Time
	}
	if body.UniqueKey != nil {
		if *body.UniqueKey == "" {
			return req, bad("unique_key", "is empty; leave it out for a task without one")
		}
		req.UniqueKey = *body.UniqueKey
	}
	if rb := body.Retry; rb != nil {
		p := &stint.RetryPolicy{MaxAttempts: rb.MaxAttempts, Multiplier: rb.Multiplier, Jitter: rb.Jitter}
		for _, d := range []struct {
			field string
			text  string
			into  *time.Duration
		}{{"initial_delay", rb.InitialDelay, &p.InitialDelay}, {"max_delay", rb.MaxDelay, &p.MaxDelay}} {
			if d.text == "" {
				continue
			}
			v, err := time.ParseDuration(d.text)
			if err != nil {
				return req, bad("retry."+d.field, "%q is not a duration such as 1s, 1m30s or 10m", d.text)
			}
			if v <= 0 {
				return req, bad("retry."+d.field, "must be positive, not %s", d.text)
			}
			*d.into = v
		}
		req.Retry = p
	}
	return req, nil
}

// jsonKind names a Go kind the way a JSON client thinks of it.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "bool":
		return "true or false"
	case "int", "int64", "int32", "float64":
		return "a number"
	}
	return "a " + kind
}

// listTasks is GET /tasks.
func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) {
	f, err := parseTaskFilter(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if p := caller(r); !p.admin {
		// A user lists its own tasks, and the client's filters apply
		// within them: owner=someone-else selects nothing.
		if f.Owner != "" && f.Owner != p.user {
			writeJSON(w, http.StatusOK, emptyPage[apiv1.Task](r, f.Limit, f.Offset))
			return
		}
		f.Owner = p.user
	}
	// One task more than the page says whether another page follows,
	// whether or not the total is known.
	limit := f.Limit
	f.Limit++
	tasks, count, err := s.cfg.Store.ListTasks(r.Context(), f)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	tasks, more := overLimit(tasks, limit)
	results, err := s.renderTasks(r, tasks)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page(r, count, more, limit, f.Offset, results))
}

// pathID parses the {id} of the path, answering 400 if it is no UUID.
func pathID(w http.ResponseWriter, r *http.Request) (uuid.UUID, bool) {
	raw := r.PathValue("id")
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		writeError(w, http.StatusBadRequest, "id: %q is not a UUID", raw)
		return uuid.Nil, false
	}
	return id, true
}

// getTask is GET /tasks/{id}.
func (s *Server) getTask(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	task, err := s.visibleTask(r, id)
	s.writeTask(w, r, task, err)
}

// visibleTask reads a task the caller may access; another user's task is
// store.ErrNotFound, as if it did not exist.
func (s *Server) visibleTask(r *http.Request, id uuid.UUID) (*store.Task, error) {
	task, err := s.client.Task(r.Context(), id)
	if err == nil && !caller(r).mayAccess(task.Owner) {
		return nil, store.ErrNotFound
	}
	return task, err
}

// retryTask is POST /tasks/{id}/retry: a new task runs the failed,
// dropped or canceled one again; 202 with its href. The caller must be
// allowed to cancel the task (its owner, or an admin) and to dispatch its
// type.
func (s *Server) retryTask(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if p := caller(r); !p.mayCancel(s.cfg.CancelPolicy) {
		writeError(w, http.StatusForbidden, "only admins may retry tasks on this server (cancel policy %s)", s.cfg.CancelPolicy)
		return
	}
	task, err := s.visibleTask(r, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "task %s not found", id)
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	case !s.mayDispatch(w, r, "name", task.Name):
		return
	}
	again, err := s.client.RetryTask(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFinal):
		writeError(w, http.StatusConflict, "the task is %s: only a final task is retried (cancel it first)", task.State)
		return
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "task %s not found", id)
		return
	}
	var verr *stint.ValidationError
	if errors.As(err, &verr) && verr.Field == "state" {
		writeError(w, http.StatusConflict, "%s", verr.Message)
		return
	}
	if s.refuseDispatch(w, r, err) {
		return
	}
	if !again.Deduplicated {
		s.cfg.Metrics.Dispatched(again.Name, 1)
	}
	href := apiv1.TaskHref(again.ID)
	w.Header().Set("Location", href)
	writeJSON(w, http.StatusAccepted, apiv1.TaskRef{Task: href, Deduplicated: again.Deduplicated})
}

// patchTask is PATCH /tasks/{id}: {"state": "canceled"} cancels it.
func (s *Server) patchTask(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	p := caller(r)
	if !p.mayCancel(s.cfg.CancelPolicy) {
		writeError(w, http.StatusForbidden, "only admins may cancel tasks on this server (cancel policy %s)", s.cfg.CancelPolicy)
		return
	}
	var body apiv1.PatchTask
	if !s.decodeBody(w, r, &body) {
		return
	}
	if body.State != string(store.StateCanceled) {
		writeError(w, http.StatusBadRequest, "state: must be %q, the only change a client may ask for (got %q)", store.StateCanceled, body.State)
		return
	}
	if !p.admin {
		if _, err := s.visibleTask(r, id); err != nil {
			s.writeTask(w, r, nil, err)
			return
		}
	}
	task, err := s.client.CancelTask(r.Context(), id)
	if errors.Is(err, store.ErrFinal) {
		state := "final"
		if task != nil {
			state = string(task.State)
		}
		writeError(w, http.StatusConflict, "task %s is %s already: it cannot be canceled", id, state)
		return
	}
	s.writeTask(w, r, task, err)
}

// deleteTask is DELETE /tasks/{id}: remove a final task. Who may delete is
// who may cancel.
func (s *Server) deleteTask(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if p := caller(r); !p.mayCancel(s.cfg.CancelPolicy) {
		writeError(w, http.StatusForbidden, "only admins may delete tasks on this server (cancel policy %s)", s.cfg.CancelPolicy)
		return
	}
	if _, err := s.visibleTask(r, id); err != nil {
		s.writeTask(w, r, nil, err)
		return
	}
	err := s.cfg.Store.DeleteTask(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFinal):
		writeError(w, http.StatusConflict, "task %s is not final: cancel it first, or wait for it to end", id)
	case err != nil:
		s.writeTask(w, r, nil, err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// DefaultPurgeAge is how old finished tasks must be for POST /tasks/purge
// when the body names no time.
const DefaultPurgeAge = 30 * 24 * time.Hour

// PurgeResource is the exclusive resource of every stint.purge task, so
// that two never run at once: the task type's own (stint.PurgeResource),
// held however the task is dispatched.
const PurgeResource = stint.PurgeResource

// purgeTasks is POST /tasks/purge: admins dispatch stint.purge, which
// deletes finished tasks in batches; 202 with its href.
func (s *Server) purgeTasks(w http.ResponseWriter, r *http.Request) {
	if !s.adminOnly(w, r, "purge tasks") {
		return
	}
	// apiv1.PurgeTasks, with the time as text, so that a bad one is a 400
	// that names its field.
	var body struct {
		FinishedBefore *string  `json:"finished_before"`
		States         []string `json:"states"`
	}
	if !s.decodeBody(w, r, &body) {
		return
	}
	args := stint.PurgeArgs{FinishedBefore: time.Now().Add(-DefaultPurgeAge).UTC()}
	if body.FinishedBefore != nil {
		t, err := time.Parse(time.RFC3339Nano, *body.FinishedBefore)
		if err != nil {
			writeError(w, http.StatusBadRequest, "finished_before: %q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", *body.FinishedBefore)
			return
		}
		args.FinishedBefore = t.UTC()
	}
	if body.States == nil {
		body.States = []string{string(store.StateCompleted)}
	}
	if len(body.States) == 0 {
		writeError(w, http.StatusBadRequest, "states: name at least one final state")
		return
	}
	for _, st := range body.States {
		if state := store.State(st); !state.Valid() || !state.Final() {
			writeError(w, http.StatusBadRequest, "states: %q is not a final state (%s)", st, finalStates())
			return
		}
		args.States = append(args.States, store.State(st))
	}
	task, err := s.client.Dispatch(r.Context(), stint.DispatchRequest{
		Name: "stint.purge", Args: args, Owner: caller(r).user, // the type holds PurgeResource
	})
	if s.refuseDispatch(w, r, err) {
		return
	}
	if !task.Deduplicated {
		s.cfg.Metrics.Dispatched(task.Name, 1)
	}
	href := apiv1.TaskHref(task.ID)
	w.Header().Set("Location", href)
	writeJSON(w, http.StatusAccepted, apiv1.TaskRef{Task: href, Deduplicated: task.Deduplicated})
}

// finalStates lists the final states for error messages.
func finalStates() string {
	var out []string
	for _, st := range store.States {
		if st.Final() {
			out = append(out, string(st))
		}
	}
	return strings.Join(out, ", ")
}

// writeTask answers a task read or changed with err: 200, 404 or 503.
func (s *Server) writeTask(w http.ResponseWriter, r *http.Request, task *store.Task, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no task %s", r.PathValue("id"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	out, err := s.renderTasks(r, []*store.Task{task})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out[0])
}

// page builds a list answer with the hrefs of the neighbouring pages.
// count is the total when it is known; more says whether results follow
// this page.
func page[T any](r *http.Request, count *int, more bool, limit, offset int, results []T) apiv1.Page[T] {
	p := apiv1.Page[T]{Count: count, Results: results}
	if p.Results == nil {
		p.Results = []T{}
	}
	link := func(off int) *string {
		q := r.URL.Query()
		q.Set("limit", fmt.Sprint(limit))
		if off > 0 {
			q.Set("offset", fmt.Sprint(off))
		} else {
			q.Del("offset")
		}
		s := r.URL.Path + "?" + q.Encode()
		return &s
	}
	if more {
		p.Next = link(offset + limit)
	}
	if offset > 0 {
		p.Previous = link(max(0, offset-limit))
	}
	return p
}

// emptyPage is the answer of a list that selects nothing.
func emptyPage[T any](r *http.Request, limit, offset int) apiv1.Page[T] {
	return page[T](r, new(0), false, limit, offset, nil)
}

// overLimit trims a page read with one result more than limit, which
// says whether another page follows.
func overLimit[T any](results []T, limit int) ([]T, bool) {
	if len(results) > limit {
		return results[:limit], true
	}
	return results, false
}
