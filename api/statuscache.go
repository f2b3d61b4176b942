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

// statusCache keeps the last answer of GET /status. /status is what load
// balancers, dashboards and `stint status` poll, often many at once: it
// answers from memory, and when its figures are older than the TTL one
// request reads them again while the others get the previous ones at once
// (never older than the TTL plus one read).
type statusCache struct {
	ttl time.Duration // zero: read on every request

	mu         sync.Mutex
	last       []byte // the answer's body, encoded once
	readAt     time.Time
	have       bool
	refreshing chan struct{} // closed when the read in flight ends; nil if none
}

// get returns the status, reading it through read when it is stale.
func (c *statusCache) get(ctx context.Context, read func(context.Context) []byte) []byte {
	if c.ttl == 0 {
		return read(ctx)
	}
	c.mu.Lock()
	if c.have && time.Since(c.readAt) < c.ttl {
		st := c.last
		c.mu.Unlock()
		return st
	}
	if wait := c.refreshing; wait != nil {
		if c.have {
			st := c.last // stale by less than one read
			c.mu.Unlock()
			return st
		}
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
		}
		c.mu.Lock()
		st, have := c.last, c.have
		c.mu.Unlock()
		if have {
			return st
		}
		return read(ctx)
	}
	done := make(chan struct{})
	c.refreshing = done
	c.mu.Unlock()

	// Read under a context of its own: the figures serve every caller,
	// not only this request, which may go away.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	st := read(rctx)
	cancel()
	c.mu.Lock()
	c.last, c.readAt, c.have, c.refreshing = st, time.Now(), true, nil
	c.mu.Unlock()
	close(done)
	return st
}

// status is GET /status: version, engine, whether the database answers,
// workers, and incomplete tasks, at most Config.StatusCacheTTL old. It
// answers 200 even when the database does not, saying so.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	body := s.statuses.get(r.Context(), s.encodedStatus)
	w.Header().Set("Content-Type", "application/json")
	w.Write(body) //nolint:errcheck // the client went away
}

// encodedStatus is the body of GET /status, as writeJSON writes it.
func (s *Server) encodedStatus(ctx context.Context) []byte {
	b, err := json.Marshal(s.readStatus(ctx))
	if err != nil { // a Status always encodes
		panic("api: encoding the status: " + err.Error())
	}
	return append(b, '\n')
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
	st.Tasks.Waiting = counts[store.StateWaiting]
	st.Tasks.Running = counts[store.StateRunning]
	st.Tasks.Canceling = counts[store.StateCanceling]
	return st
}
