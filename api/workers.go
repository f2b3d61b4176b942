package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/metrics"
	"github.com/stint-dev/stint/store"
)

// workerQuery is what GET /workers may ask.
type workerQuery struct {
	limit, offset int
	missing       *bool
}

var workerFilters = map[string]func(*workerQuery, string) error{
	"limit":  func(q *workerQuery, v string) (err error) { q.limit, err = parseLimit(v); return },
	"offset": func(q *workerQuery, v string) (err error) { q.offset, err = parseOffset(v); return },
	"missing": func(q *workerQuery, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		q.missing = &b
		return nil
	},
}

// listWorkers is GET /workers.
func (s *Server) listWorkers(w http.ResponseWriter, r *http.Request) {
	if !s.adminOnly(w, r, "see workers") {
		return
	}
	q := workerQuery{limit: apiv1.DefaultLimit}
	values, err := parseRawQuery(r.URL.RawQuery)
	if err == nil {
		err = parseQuery(values, workerFilters, &q)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	all, err := s.cfg.Store.Workers(r.Context())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	var selected []apiv1.Worker
	for _, wi := range all {
		aw := s.renderWorker(wi)
		if q.missing == nil || *q.missing == aw.Missing {
			selected = append(selected, aw)
		}
	}
	count := len(selected)
	selected = selected[min(q.offset, count):min(q.offset+q.limit, count)]
	writeJSON(w, http.StatusOK, page(r, &count, q.offset+q.limit < count, q.limit, q.offset, selected))
}

// getWorker is GET /workers/{name}.
func (s *Server) getWorker(w http.ResponseWriter, r *http.Request) {
	if !s.adminOnly(w, r, "see workers") {
		return
	}
	wi, err := s.cfg.Store.Worker(r.Context(), r.PathValue("name"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no worker %q", r.PathValue("name"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.renderWorker(*wi))
}

// adminOnly answers 403 unless the caller is an admin, and reports
// whether to go on. what says what only admins may do.
func (s *Server) adminOnly(w http.ResponseWriter, r *http.Request, what string) bool {
	if !caller(r).admin {
		writeError(w, http.StatusForbidden, "only admins may %s", what)
		return false
	}
	return true
}

func (s *Server) renderWorker(w store.WorkerInfo) apiv1.Worker {
	a := apiv1.Worker{
		Name: w.Name, Href: apiv1.WorkerHref(w.Name), Hostname: w.Hostname, PID: w.PID,
		Versions: w.Versions, Concurrency: w.Concurrency,
		StartedAt: apiv1.Time{Time: w.StartedAt}, LastHeartbeat: apiv1.Time{Time: w.LastHeartbeat},
		Missing: metrics.IsMissing(w, s.cfg.MissingAfter), CurrentTasks: make([]string, len(w.CurrentTasks)),
	}
	if a.Versions == nil {
		a.Versions = map[string]string{}
	}
	for i, id := range w.CurrentTasks {
		a.CurrentTasks[i] = apiv1.TaskHref(id)
	}
	return a
}
