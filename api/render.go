package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/metrics"
	"github.com/stint-dev/stint/internal/versions"
	"github.com/stint-dev/stint/store"
)

// renderTasks turns stored tasks into their API form, with their workers
// and, for waiting tasks, what blocks them. The tasks come from the store
// calls that read their children with them (store.Task.ChildTasks). It
// reads the store at most once, plus once per waiting task.
func (s *Server) renderTasks(r *http.Request, tasks []*store.Task) ([]apiv1.Task, error) {
	ctx := r.Context()
	needWorkers, needFresh := false, false
	for _, t := range tasks {
		needWorkers = needWorkers || t.Worker != ""
		// Whether a waiting task is blocked for want of a worker with its
		// versions is read fresh: a worker that has just started must
		// not be reported missing.
		needFresh = needFresh || (t.State == store.StateWaiting && len(t.Versions) > 0)
	}
	workers := map[string]store.WorkerInfo{}
	if needWorkers || needFresh {
		read := s.liveWorkers
		if needFresh {
			read = s.cfg.Store.Workers
		}
		list, err := read(ctx)
		if err != nil {
			return nil, err
		}
		for _, w := range list {
			workers[w.Name] = w
		}
	}
	out := make([]apiv1.Task, len(tasks))
	blockers := map[int][]store.Blocker{}
	for i, t := range tasks {
		out[i] = s.renderTask(t, workers)
		if t.State == store.StateWaiting {
			var err error
			if blockers[i], err = s.client.BlockedBy(ctx, t.ID); err != nil {
				return nil, err
			}
		}
	}
	visible, err := s.visibleBlockers(r, blockers)
	if err != nil {
		return nil, err
	}
	for i, list := range blockers {
		shown := make([]apiv1.Blocker, 0, len(list))
		fullShown := map[string]bool{}
		for _, b := range list {
			var reason string
			if b.Capacity > 0 {
				reason = fmt.Sprintf("resource full (%d of %d)", b.Holders, b.Capacity)
			}
			switch {
			case visible(b.Task):
				shown = append(shown, apiv1.Blocker{Task: apiv1.TaskHref(b.Task), Resource: b.Resource, Reason: reason})
				fullShown[b.Resource] = fullShown[b.Resource] || reason != ""
			case reason != "" && !fullShown[b.Resource]:
				// The holders are other users' tasks: the reason without them.
				shown = append(shown, apiv1.Blocker{Resource: b.Resource, Reason: reason})
				fullShown[b.Resource] = true
			}
		}
		if reason := s.noWorkerFor(tasks[i], workers); reason != "" {
			shown = append(shown, apiv1.Blocker{Reason: reason})
		}
		out[i].BlockedBy = &shown
	}
	return out, nil
}

// noWorkerFor says why a waiting task that requires versions cannot run
// when no online worker provides them, or "" when one does.
func (s *Server) noWorkerFor(t *store.Task, workers map[string]store.WorkerInfo) string {
	if len(t.Versions) == 0 {
		return ""
	}
	for _, w := range workers {
		if !metrics.IsMissing(w, s.cfg.MissingAfter) && versions.Satisfies(t.Versions, w.Versions) {
			return ""
		}
	}
	return "no online worker provides " + strings.Join(versions.Unmet(t.Versions, nil), ", ")
}

// visibleBlockers returns whether the caller may see each blocking task:
// an admin sees all, a user only its own, so that blocked_by does not
// leak the ids of other users' tasks. It reads the store once at most.
func (s *Server) visibleBlockers(r *http.Request, blockers map[int][]store.Blocker) (func(uuid.UUID) bool, error) {
	p := caller(r)
	if p.admin {
		return func(uuid.UUID) bool { return true }, nil
	}
	var ids []uuid.UUID
	for _, list := range blockers {
		for _, b := range list {
			ids = append(ids, b.Task)
		}
	}
	if len(ids) == 0 {
		return func(uuid.UUID) bool { return false }, nil
	}
	tasks, _, err := s.cfg.Store.ListTasks(r.Context(), store.TaskFilter{IDs: ids, Owner: p.user})
	if err != nil {
		return nil, err
	}
	own := make(map[uuid.UUID]bool, len(tasks))
	for _, t := range tasks {
		own[t.ID] = true
	}
	return func(id uuid.UUID) bool { return own[id] }, nil
}

func (s *Server) renderTask(t *store.Task, workers map[string]store.WorkerInfo) apiv1.Task {
	a := apiv1.Task{
		ID: t.ID, Href: apiv1.TaskHref(t.ID), Name: t.Name, State: string(t.State),
		Args: t.Args, Owner: t.Owner,
		CreatedAt: apiv1.Time{Time: t.CreatedAt}, UpdatedAt: apiv1.Time{Time: t.UpdatedAt},
		UnblockedAt: apiv1.NewTime(t.UnblockedAt), StartedAt: apiv1.NewTime(t.StartedAt), FinishedAt: apiv1.NewTime(t.FinishedAt),
		ExclusiveResources: nonNil(t.ExclusiveResources), SharedResources: nonNil(t.SharedResources),
		Versions: t.Versions, Result: t.Result, ChildTasks: make([]string, len(t.ChildTasks)),
		NonFatalErrors:   make([]apiv1.TaskError, len(t.NonFatalErrors)),
		ProgressReports:  progressReports(t.ProgressReports),
		CreatedResources: nonNil(t.CreatedResources),
	}
	if a.Versions == nil {
		a.Versions = map[string]string{}
	}
	if len(a.Args) == 0 {
		a.Args = json.RawMessage("{}")
	}
	if len(a.Result) == 0 {
		a.Result = json.RawMessage("null")
	}
	if t.Worker != "" {
		tw := &apiv1.TaskWorker{Name: t.Worker} // a worker that left cleanly is no longer listed
		if w, ok := workers[t.Worker]; ok {
			tw.Missing = metrics.IsMissing(w, s.cfg.MissingAfter)
			tw.LastHeartbeat = &apiv1.Time{Time: w.LastHeartbeat}
		}
		a.Worker = tw
	}
	if t.ParentTask != nil {
		href := apiv1.TaskHref(*t.ParentTask)
		a.ParentTask = &href
	}
	if t.TaskGroup != nil {
		href := apiv1.TaskGroupHref(*t.TaskGroup)
		a.TaskGroup = &href
	}
	for i, c := range t.ChildTasks {
		a.ChildTasks[i] = apiv1.TaskHref(c)
	}
	if t.Error != nil {
		e := apiv1.TaskError(*t.Error)
		a.Error = &e
	}
	for i, e := range t.NonFatalErrors {
		a.NonFatalErrors[i] = apiv1.TaskError(e)
	}
	a.ScheduledAt = apiv1.NewTime(t.ScheduledAt)
	if t.Retry != nil {
		a.Retry = &apiv1.Retry{MaxAttempts: t.Retry.MaxAttempts, InitialDelay: t.Retry.InitialDelay.String(),
			MaxDelay: t.Retry.MaxDelay.String(), Multiplier: t.Retry.Multiplier, Jitter: t.Retry.Jitter,
			Dropped: t.Retry.Dropped}
	}
	a.Attempts = make([]apiv1.Attempt, 0, len(t.Attempts)+1)
	for _, at := range t.Attempts {
		a.Attempts = append(a.Attempts, apiv1.Attempt{Number: at.Number, State: string(at.State),
			StartedAt: apiv1.NewTime(&at.StartedAt), FinishedAt: apiv1.NewTime(&at.FinishedAt),
			Worker: at.Worker, Error: apiError(at.Error)})
	}
	if t.StartedAt != nil {
		a.Attempts = append(a.Attempts, apiv1.Attempt{Number: len(t.Attempts) + 1, State: string(t.State),
			StartedAt: a.StartedAt, FinishedAt: a.FinishedAt, Worker: t.Worker, Error: a.Error})
	}
	if t.UniqueKey != "" {
		a.UniqueKey = &t.UniqueKey
	}
	if t.RetryOf != nil {
		href := apiv1.TaskHref(*t.RetryOf)
		a.RetryOf = &href
	}
	return a
}

func apiError(e *store.TaskError) *apiv1.TaskError {
	if e == nil {
		return nil
	}
	a := apiv1.TaskError(*e)
	return &a
}

func progressReports(in []store.ProgressReport) []apiv1.ProgressReport {
	out := make([]apiv1.ProgressReport, len(in))
	for i, p := range in {
		out[i] = apiv1.ProgressReport(p)
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
