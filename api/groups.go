package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/store"
)

// createTaskGroup is POST /task-groups: without tasks, 201 and the new
// group; with tasks, every task dispatched into the new group in one
// transaction (all or nothing) and 202 with the group's href.
func (s *Server) createTaskGroup(w http.ResponseWriter, r *http.Request) {
	var body apiv1.CreateTaskGroup
	if !s.decodeBody(w, r, &body) {
		return
	}
	req := stint.TaskGroupRequest{Description: body.Description, Owner: caller(r).user, AllTasksDispatched: body.Tasks != nil}
	if body.AllTasksDispatched != nil {
		req.AllTasksDispatched = *body.AllTasksDispatched
	}
	if body.Tasks != nil {
		req.Tasks = make([]stint.DispatchRequest, len(*body.Tasks))
		for i, t := range *body.Tasks {
			switch {
			case t.TaskGroup != "":
				writeError(w, http.StatusBadRequest, "tasks[%d].task_group: leave it out: the tasks go into the new group", i)
				return
			case t.Immediate || t.Deferred != nil:
				writeError(w, http.StatusBadRequest, "tasks[%d].immediate: a group's tasks are dispatched for workers; immediate and deferred are not allowed here", i)
				return
			case !s.mayDispatch(w, r, fmt.Sprintf("tasks[%d].name", i), t.Name):
				return
			}
			var err error
			if req.Tasks[i], err = s.dispatchRequest(r, t, i); s.refuseDispatch(w, r, err) {
				return
			}
		}
	}
	group, created, err := s.client.CreateTaskGroup(r.Context(), req)
	if s.refuseDispatch(w, r, err) {
		return
	}
	id := group.ID
	href := apiv1.TaskGroupHref(id)
	w.Header().Set("Location", href)
	if body.Tasks == nil {
		writeJSON(w, http.StatusCreated, renderTaskGroup(group, true))
		return
	}
	for _, t := range created {
		s.cfg.Metrics.Dispatched(t.Name, 1)
	}
	writeJSON(w, http.StatusAccepted, apiv1.TaskGroupRef{TaskGroup: href})
}

// taskGroupQuery is what GET /task-groups may ask.
var taskGroupFilters = map[string]func(*store.TaskGroupFilter, string) error{
	"limit":  func(f *store.TaskGroupFilter, v string) (err error) { f.Limit, err = parseLimit(v); return },
	"offset": func(f *store.TaskGroupFilter, v string) (err error) { f.Offset, err = parseOffset(v); return },
	"owner": func(f *store.TaskGroupFilter, v string) error {
		if v == "" {
			return errors.New("is empty")
		}
		f.Owner = v
		return nil
	},
	"all_tasks_dispatched": func(f *store.TaskGroupFilter, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		f.AllTasksDispatched = &b
		return nil
	},
}

// listTaskGroups is GET /task-groups: newest first; a user sees its own.
func (s *Server) listTaskGroups(w http.ResponseWriter, r *http.Request) {
	f := store.TaskGroupFilter{Limit: apiv1.DefaultLimit}
	values, err := parseRawQuery(r.URL.RawQuery)
	if err == nil {
		err = parseQuery(values, taskGroupFilters, &f)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if p := caller(r); !p.admin {
		if f.Owner != "" && f.Owner != p.user {
			writeJSON(w, http.StatusOK, emptyPage[apiv1.TaskGroup](r, f.Limit, f.Offset))
			return
		}
		f.Owner = p.user
	}
	limit := f.Limit
	f.Limit++ // one more: another page follows when it is there
	groups, count, err := s.cfg.Store.ListTaskGroups(r.Context(), f)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	groups, more := overLimit(groups, limit)
	out := make([]apiv1.TaskGroup, len(groups))
	for i, g := range groups {
		out[i] = renderTaskGroup(g, false)
	}
	writeJSON(w, http.StatusOK, page(r, count, more, limit, f.Offset, out))
}

// getTaskGroup is GET /task-groups/{id}.
func (s *Server) getTaskGroup(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	g, err := s.visibleTaskGroup(r, id)
	s.writeTaskGroup(w, r, g, err)
}

// patchTaskGroup is PATCH /task-groups/{id}: {"all_tasks_dispatched":
// true} seals the group, {"state": "canceled"} cancels every incomplete
// task in it (and seals it).
func (s *Server) patchTaskGroup(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var body apiv1.PatchTaskGroup
	if !s.decodeBody(w, r, &body) {
		return
	}
	cancel := body.State != ""
	switch {
	case cancel && body.AllTasksDispatched != nil:
		writeError(w, http.StatusBadRequest, "state: give either state or all_tasks_dispatched, not both")
		return
	case cancel && body.State != string(store.StateCanceled):
		writeError(w, http.StatusBadRequest, "state: must be %q, the only change a client may ask for (got %q)", store.StateCanceled, body.State)
		return
	case !cancel && body.AllTasksDispatched == nil:
		writeError(w, http.StatusBadRequest, `all_tasks_dispatched: give {"all_tasks_dispatched": true} or {"state": "canceled"}`)
		return
	case !cancel && !*body.AllTasksDispatched:
		writeError(w, http.StatusBadRequest, "all_tasks_dispatched: a group cannot be reopened; only true is allowed")
		return
	}
	p := caller(r)
	if cancel && !p.mayCancel(s.cfg.CancelPolicy) {
		writeError(w, http.StatusForbidden, "only admins may cancel on this server (cancel policy %s)", s.cfg.CancelPolicy)
		return
	}
	if _, err := s.visibleTaskGroup(r, id); err != nil {
		s.writeTaskGroup(w, r, nil, err)
		return
	}
	var (
		g   *store.TaskGroup
		err error
	)
	if cancel {
		g, err = s.client.CancelTaskGroup(r.Context(), id)
	} else {
		g, err = s.client.SealTaskGroup(r.Context(), id)
	}
	s.writeTaskGroup(w, r, g, err)
}

// visibleTaskGroup reads a group the caller may access; another user's
// group is store.ErrNotFound, as if it did not exist.
func (s *Server) visibleTaskGroup(r *http.Request, id uuid.UUID) (*store.TaskGroup, error) {
	g, err := s.client.TaskGroup(r.Context(), id)
	if err == nil && !caller(r).mayAccess(g.Owner) {
		return nil, store.ErrNotFound
	}
	return g, err
}

// writeTaskGroup answers a group read or changed with err: 200, 404 or 503.
func (s *Server) writeTaskGroup(w http.ResponseWriter, r *http.Request, g *store.TaskGroup, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no task group %s", r.PathValue("id"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, renderTaskGroup(g, true))
}

// renderTaskGroup shows a group: counts of every state and "total", and,
// with tasks, the hrefs of its tasks.
func renderTaskGroup(g *store.TaskGroup, tasks bool) apiv1.TaskGroup {
	a := apiv1.TaskGroup{
		ID: g.ID, Href: apiv1.TaskGroupHref(g.ID), Description: g.Description, Owner: g.Owner,
		CreatedAt: apiv1.Time{Time: g.CreatedAt}, AllTasksDispatched: g.AllTasksDispatched, Done: g.Done(),
		Counts: make(map[string]int, len(store.States)+1),
	}
	total := 0
	for _, st := range store.States {
		a.Counts[string(st)] = g.Counts[st]
		total += g.Counts[st]
	}
	a.Counts["total"] = total
	if tasks {
		hrefs := make([]string, len(g.Tasks))
		for i, id := range g.Tasks {
			hrefs[i] = apiv1.TaskHref(id)
		}
		a.Tasks = &hrefs
	}
	return a
}

// dispatchGroup resolves the task_group of a dispatch body: a group the
// caller owns. Another user's group is a 400 as an unknown one would be,
// or, for an admin, who sees it, a 403: a group's tasks are its owner's,
// so that its owner reads every task it counts and cancels (see
// docs/security.md). It answers itself and reports whether to go on.
// Whether the group is sealed is the store's to say, in the dispatch's own
// transaction (store.ErrSealed, a 409): a check here could pass just
// before a seal commits.
func (s *Server) dispatchGroup(w http.ResponseWriter, r *http.Request, ref string) (*uuid.UUID, bool) {
	if ref == "" {
		return nil, true
	}
	id, err := apiv1.ParseTaskGroupRef(ref)
	if err != nil {
		writeError(w, http.StatusBadRequest, "task_group: %v", err)
		return nil, false
	}
	g, err := s.visibleTaskGroup(r, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusBadRequest, "task_group: no task group %s", id)
		return nil, false
	case err != nil:
		s.internalError(w, r, err)
		return nil, false
	case g.Owner != caller(r).user:
		writeError(w, http.StatusForbidden, "task_group: group %s belongs to %q: only its owner dispatches into it", id, g.Owner)
		return nil, false
	}
	return &g.ID, true
}

// refuseDispatch answers a dispatch error: 400 for a request the client
// or the store refused, 409 for a sealed group, 5xx for the rest. It
// reports whether it answered.
func (s *Server) refuseDispatch(w http.ResponseWriter, r *http.Request, err error) bool {
	var verr *stint.ValidationError
	switch {
	case err == nil:
		return false
	case errors.As(err, &verr):
		writeError(w, http.StatusBadRequest, "%s", verr.Error())
	case errors.Is(err, store.ErrUnstorable):
		writeError(w, http.StatusBadRequest, "args: %v", err)
	case errors.Is(err, store.ErrSealed):
		writeError(w, http.StatusConflict, "task_group: the group has all_tasks_dispatched set: no more tasks may be dispatched into it")
	default:
		s.internalError(w, r, fmt.Errorf("dispatch: %w", err))
	}
	return true
}
