package postgres

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stint-dev/stint/store"
)

// changesChannel is the LISTEN/NOTIFY channel on which every change of a
// task's state or progress is published, in the transaction that makes it:
// one line "<id> <state>" per task, at most 100 lines per notification (see
// migration 0002).
const changesChannel = "stint_changes"

const (
	// changesBuffer is how many batches the channel of Changes holds.
	changesBuffer = 64
	// maxBacklog is how many tasks the backlog of a slow reader of Changes
	// holds before changes of further tasks are dropped.
	maxBacklog = 100_000
)

// Changes implements store.Store with LISTEN on a dedicated connection,
// which is destroyed rather than returned to the pool, and re-established
// after errors.
//
// A slow reader never blocks the listener. Each notification is one batch;
// the channel holds changesBuffer batches, and changes that arrive while it
// is full wait in a backlog where they are coalesced: one entry per task,
// with the latest state, in the order the tasks first changed. The backlog
// goes out as one batch as soon as the channel has room, so a slow reader
// receives fewer, larger batches and may miss intermediate states, never a
// task's latest one. When the backlog holds 100,000 tasks, changes of
// further tasks are dropped and counted (see DroppedChanges).
//
// An empty batch says that changes may have been lost: it follows each
// reconnection of the listener and each drop, and a reader then re-reads
// the tasks it follows.
func (s *Store) Changes(ctx context.Context) (<-chan []store.TaskChange, error) {
	listen := func() (*pgxpool.Conn, error) {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		if _, err := conn.Exec(ctx, "LISTEN "+changesChannel); err != nil {
			conn.Release()
			return nil, err
		}
		return conn, nil
	}
	conn, err := listen()
	if err != nil {
		return nil, err
	}
	b := &changeBacklog{index: map[uuid.UUID]int{}, ready: make(chan struct{}, 1), dropped: &s.droppedChanges}
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		for {
			n, err := conn.Conn().WaitForNotification(ctx)
			if err == nil {
				b.add(parseChanges(n.Payload))
				continue
			}
			// Destroy the connection rather than return it to the pool
			// still listening.
			conn.Conn().Close(context.WithoutCancel(ctx)) //nolint:errcheck
			conn.Release()
			for {
				if ctx.Err() != nil {
					return
				}
				if conn, err = listen(); err == nil {
					b.lose()
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
		}
	}()
	out := make(chan []store.TaskChange, changesBuffer)
	go func() {
		// Close the channel once the listening connection is gone.
		defer func() {
			<-listening
			close(out)
		}()
		send := func(batch []store.TaskChange) bool {
			select {
			case out <- batch:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-b.ready:
			}
			batch, lost := b.take()
			if len(batch) > 0 && !send(batch) {
				return
			}
			if lost && !send([]store.TaskChange{}) {
				return
			}
		}
	}()
	return out, nil
}

// DroppedChanges counts the task changes that readers of Changes lost
// because they fell too far behind, since the store was opened. Above zero,
// a reader is too slow for the rate of changes.
func (s *Store) DroppedChanges() uint64 { return s.droppedChanges.Load() }

// changeBacklog holds the changes the listener received and the sender has
// not sent yet, coalesced by task.
type changeBacklog struct {
	mu      sync.Mutex
	pending []store.TaskChange
	index   map[uuid.UUID]int // position of each task in pending
	lost    bool              // changes were lost since the last take
	ready   chan struct{}     // signaled when there is something to take
	dropped *atomic.Uint64
}

// add appends changes, or updates the pending change of their task, and
// never blocks for long.
func (b *changeBacklog) add(changes []store.TaskChange) {
	if len(changes) == 0 {
		return
	}
	b.mu.Lock()
	for _, c := range changes {
		if i, ok := b.index[c.ID]; ok {
			b.pending[i].State = c.State
			continue
		}
		if len(b.pending) >= maxBacklog {
			b.dropped.Add(1)
			b.lost = true
			continue
		}
		b.index[c.ID] = len(b.pending)
		b.pending = append(b.pending, c)
	}
	b.mu.Unlock()
	b.signal()
}

// lose records that changes were lost.
func (b *changeBacklog) lose() {
	b.mu.Lock()
	b.lost = true
	b.mu.Unlock()
	b.signal()
}

func (b *changeBacklog) signal() {
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// take empties the backlog and returns what it held.
func (b *changeBacklog) take() (batch []store.TaskChange, lost bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	batch, lost = b.pending, b.lost
	b.pending, b.lost = nil, false
	if len(b.index) > 4096 {
		b.index = map[uuid.UUID]int{} // let a large backlog's table go
	} else {
		clear(b.index)
	}
	return batch, lost
}

// parseChanges reads a notification of changesChannel, skipping malformed
// lines.
func parseChanges(payload string) []store.TaskChange {
	var out []store.TaskChange
	for line := range strings.SplitSeq(payload, "\n") {
		idText, stateText, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		id, err := uuid.Parse(idText)
		state := store.State(stateText)
		if err != nil || !state.Valid() {
			continue
		}
		out = append(out, store.TaskChange{ID: id, State: state})
	}
	return out
}
