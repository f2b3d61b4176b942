// Package changefeed carries task changes from a producer that must never
// block (a LISTEN connection, a commit) to the reader of a channel that may
// be slow: the two halves of store.Store.Changes that both engines share.
//
// The producer calls Backlog.Add; Backlog.Pump sends to the reader. Changes
// that arrive while the reader's channel is full wait in the backlog,
// coalesced: one entry per task, with its latest state, in the order the
// tasks first changed. The backlog goes out as one batch as soon as the
// channel has room, so a slow reader receives fewer, larger batches and
// may miss intermediate states, never a task's latest one. When the
// backlog holds MaxBacklog tasks, changes of further tasks are dropped and
// counted; an empty batch then tells the reader that changes were lost, so
// that it re-reads the tasks it follows.
package changefeed

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

const (
	// Buffer is how many batches the channel of a reader should hold.
	Buffer = 64
	// MaxBacklog is how many tasks a backlog holds before changes of
	// further tasks are dropped.
	MaxBacklog = 100_000
)

// Backlog holds the changes a reader has not received yet. Create it with
// NewBacklog; it is safe for concurrent use.
type Backlog struct {
	mu      sync.Mutex
	pending []store.TaskChange
	index   map[uuid.UUID]int // position of each task in pending
	lost    bool              // changes were lost since the last take
	ready   chan struct{}     // signaled when there is something to take
	dropped *atomic.Uint64
}

// NewBacklog returns an empty backlog that counts the changes it drops in
// dropped.
func NewBacklog(dropped *atomic.Uint64) *Backlog {
	return &Backlog{index: map[uuid.UUID]int{}, ready: make(chan struct{}, 1), dropped: dropped}
}

// Add appends changes, or updates the pending change of their task. It
// never waits for the reader.
func (b *Backlog) Add(changes []store.TaskChange) {
	if len(changes) == 0 {
		return
	}
	b.mu.Lock()
	for _, c := range changes {
		if i, ok := b.index[c.ID]; ok {
			b.pending[i].State = c.State
			continue
		}
		if len(b.pending) >= MaxBacklog {
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

// Lose records that changes were lost some other way (a reconnection):
// the reader gets an empty batch.
func (b *Backlog) Lose() {
	b.mu.Lock()
	b.lost = true
	b.mu.Unlock()
	b.signal()
}

func (b *Backlog) signal() {
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// take empties the backlog and returns what it held.
func (b *Backlog) take() (batch []store.TaskChange, lost bool) {
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

// Pump sends the backlog to out, a batch at a time, until ctx ends or stop
// is closed (a nil stop never is). It does not close out.
func (b *Backlog) Pump(ctx context.Context, stop <-chan struct{}, out chan<- []store.TaskChange) {
	send := func(batch []store.TaskChange) bool {
		select {
		case out <- batch:
			return true
		case <-ctx.Done():
			return false
		case <-stop:
			return false
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
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
}
