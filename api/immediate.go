package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/store"
)

// DefaultImmediateSlots is how many immediate tasks an API server runs
// inline at once unless Config.ImmediateSlots says otherwise.
const DefaultImmediateSlots = 4

// errAnswered says that the request was answered already.
var errAnswered = errors.New("api: answered")

// dispatchImmediate dispatches an immediate task. It runs inline, in this
// process, only in one of the server's immediate slots (Config.
// ImmediateSlots), so that no number of requests makes the node run more
// tasks at once than that. When every slot is taken, a deferred task is
// dispatched for a worker, as if its resources were busy; one with
// deferred: false is refused with 429 (no task is created: the client may
// try again), and errAnswered is returned.
//
// The run does not end with the request: its outcome is recorded even if
// the client hangs up, and it holds its slot until then.
func (s *Server) dispatchImmediate(w http.ResponseWriter, r *http.Request, req stint.DispatchRequest, deferred bool) (*store.Task, error) {
	select {
	case s.immediate <- struct{}{}:
		defer func() { <-s.immediate }()
	default:
		if deferred {
			return s.client.Dispatch(r.Context(), req)
		}
		s.log.Warn("immediate dispatch refused: every immediate slot is taken", "slots", cap(s.immediate), "name", req.Name, "user", caller(r).user)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "this server runs %d immediate tasks at once, its limit, and all are taken; "+
			"try again, or dispatch with deferred: true to let a worker run it", cap(s.immediate))
		return nil, errAnswered
	}
	noWriteDeadline(w) // the answer waits for the run
	return s.client.DispatchImmediate(context.WithoutCancel(r.Context()), req, s.cfg.ImmediateWorker, deferred)
}
