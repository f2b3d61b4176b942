package api

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/metrics"
	"github.com/stint-dev/stint/store"
)

// DefaultStatusCacheTTL is how long GET /status answers from the figures it
// last read.
const DefaultStatusCacheTTL = time.Second

// recent keeps the last value a read returned, for values that many
// requests want and that may be a little old: the figures of GET /status,
// which load balancers, dashboards and `stint status` poll, often many at
// once, and the workers' liveness shown with tasks. It answers from
// memory, and when its value is older than the TTL one request reads it
// again while the others get the previous one at once (never older than
// the TTL plus one read). A read that fails is not kept.
type recent[T any] struct {
	ttl time.Duration // zero: read on every request

	mu         sync.Mutex
	last       T
	readAt     time.Time
	have       bool
	refreshing chan struct{} // closed when the read in flight ends; nil if none
}

// get returns the value, reading it through read when it is stale.
func (c *recent[T]) get(ctx context.Context, read func(context.Context) (T, error)) (T, error) {
	if c.ttl == 0 {
		return read(ctx)
	}
	c.mu.Lock()
	if c.have && time.Since(c.readAt) < c.ttl {
		v := c.last
		c.mu.Unlock()
		return v, nil
	}
	if wait := c.refreshing; wait != nil {
		if c.have {
			v := c.last // stale by less than one read
			c.mu.Unlock()
			return v, nil
		}
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
		}
		c.mu.Lock()
		v, have := c.last, c.have
		c.mu.Unlock()
		if have {
			return v, nil
		}
		return read(ctx)
	}
	done := make(chan struct{})
	c.refreshing = done
	c.mu.Unlock()

	// Read under a context of its own: the value serves every caller,
	// not only this request, which may go away.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	v, err := read(rctx)
	cancel()
	c.mu.Lock()
	if err == nil {
		c.last, c.readAt, c.have = v, time.Now(), true
	}
	c.refreshing = nil
	c.mu.Unlock()
	close(done)
	return v, err
}

// status is GET /status: version, engine, whether the database answers,
// workers, and incomplete tasks, at most Config.StatusCacheTTL old. It
// answers 200 even when the database does not, saying so.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	body, _ := s.statuses.get(r.Context(), s.encodedStatus) // it never fails
	w.Header().Set("Content-Type", "application/json")
	w.Write(body) //nolint:errcheck // the client went away
}

// encodedStatus is the body of GET /status, as writeJSON writes it. It
// never fails: a store that does not answer is part of the status.
func (s *Server) encodedStatus(ctx context.Context) ([]byte, error) {
	b, err := json.Marshal(s.readStatus(ctx))
	if err != nil { // a Status always encodes
		panic("api: encoding the status: " + err.Error())
	}
	return append(b, '\n'), nil
}

// liveWorkers returns the registered workers, at most StatusCacheTTL old:
// what tasks show of the worker that runs or ran them (whether it is
// missing, its last heartbeat).
func (s *Server) liveWorkers(ctx context.Context) ([]store.WorkerInfo, error) {
	return s.workers.get(ctx, s.cfg.Store.Workers)
}

// readStatus reads the figures of GET /status from the store.
func (s *Server) readStatus(ctx context.Context) apiv1.Status {
	st := apiv1.Status{Version: s.cfg.Version, Engine: s.cfg.Engine}
	workers, werr := s.cfg.Store.Workers(ctx)
	counts, cerr := s.cfg.Store.CountByState(ctx)
	st.Database.Reachable = werr == nil && cerr == nil
	for _, wi := range workers {
		if metrics.IsMissing(wi, s.cfg.MissingAfter) {
			st.Workers.Missing++
		} else {
			st.Workers.Online++
		}
	}
	st.Tasks.Scheduled = counts[store.StateScheduled]
	st.Tasks.Waiting = counts[store.StateWaiting]
	st.Tasks.Running = counts[store.StateRunning]
	st.Tasks.Canceling = counts[store.StateCanceling]
	return st
}
